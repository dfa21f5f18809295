// depthwise_conv_fwd: one KH x KW filter per channel, any stride and padding, with a fused bias
// (folded BatchNorm) + activation epilogue.
//
// Bindings: 0 x     (N, H, W, C)
//           1 w     (KH, KW, C)
//           2 bias  (C)              read when HAS_BIAS = 1
//           3 y     (N, OH, OW, C)
//           4 in_scale_shift (2C) f32     read when IN_BN = 1
// With IN_BN = 1, x is the input of a BatchNorm + activation (training): the kernel reads
// act(x * scale + shift) per channel (IN_ACT; scale then shift, as bn_act_fwd's), so that tensor
// is never written; the padding stays zero.
// Thread: 4 output columns x 4 channels; the channel block varies fastest (contiguous in NHWC).
// Each tap's 4 weights are loaded once and used for the 4 columns. Taps in the padding are
// loaded clamped and multiplied by zero, so the inner loop has no divergent branch.
// Tensors are stored as `Store` (f32, or f16 for the f16 inference path; see the prelude in
// src/gpu/kernels.rs); arithmetic is f32.

override N: u32;
override H: u32;
override W: u32;
override C: u32;
override KH: u32;
override KW: u32;
override SH: u32;
override SW: u32;
override PT: u32;
override PL: u32;
override OH: u32;
override OW: u32;
override ACT: u32 = 0u;
override HAS_BIAS: u32 = 0u;
override IN_BN: u32 = 0u;
override IN_ACT: u32 = 0u;

@group(0) @binding(0) var<storage, read> x: array<Store>;
@group(0) @binding(1) var<storage, read> w: array<Store>;
@group(0) @binding(2) var<storage, read> bias: array<Store>;
@group(0) @binding(3) var<storage, read_write> y: array<Store>;
@group(0) @binding(4) var<storage, read> in_scale_shift: array<f32>;

const COLS: u32 = 4u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let cb = (C + 3u) / 4u;
    let xb = (OW + COLS - 1u) / COLS;
    if (t >= N * OH * xb * cb) {
        return;
    }
    let c0 = (t % cb) * 4u;
    let p = t / cb;
    let ox0 = (p % xb) * COLS;
    let oy = (p / xb) % OH;
    let n = p / (xb * OH);
    let c = min(vec4<u32>(c0, c0 + 1u, c0 + 2u, c0 + 3u), vec4<u32>(C - 1u));
    var in_scale = vec4<f32>(1.0);
    var in_shift = vec4<f32>(0.0);
    if (IN_BN == 1u) {
        in_scale = vec4<f32>(in_scale_shift[c.x], in_scale_shift[c.y], in_scale_shift[c.z], in_scale_shift[c.w]);
        in_shift = vec4<f32>(in_scale_shift[C + c.x], in_scale_shift[C + c.y], in_scale_shift[C + c.z], in_scale_shift[C + c.w]);
    }

    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var ky = 0u; ky < KH; ky++) {
        let iy = i32(oy * SH + ky) - i32(PT);
        if (iy < 0 || iy >= i32(H)) {
            continue;
        }
        let row = (n * H + u32(iy)) * W;
        for (var kx = 0u; kx < KW; kx++) {
            let wb = (ky * KW + kx) * C;
            let wv = vec4<f32>(vec4<Store>(w[wb + c.x], w[wb + c.y], w[wb + c.z], w[wb + c.w]));
            for (var j = 0u; j < COLS; j++) {
                let ix = i32((ox0 + j) * SW + kx) - i32(PL);
                let inside = ix >= 0 && ix < i32(W);
                let xo = (row + u32(clamp(ix, 0, i32(W) - 1))) * C;
                var xv = vec4<f32>(vec4<Store>(x[xo + c.x], x[xo + c.y], x[xo + c.z], x[xo + c.w]));
                if (IN_BN == 1u) {
                    xv = activate4(xv * in_scale + in_shift, IN_ACT);
                }
                acc[j] += select(vec4<f32>(0.0), xv, inside) * wv;
            }
        }
    }
    var bias_v = vec4<f32>(0.0);
    if (HAS_BIAS == 1u) {
        bias_v = vec4<f32>(vec4<Store>(bias[c.x], bias[c.y], bias[c.z], bias[c.w]));
    }
    // Written out with constant indices, so that `acc` stays in registers whatever the
    // compiler's unrolling (a loop that leaves early kept it in memory on lavapipe). Column ox0 is
    // always < OW.
    let ybase = ((n * OH + oy) * OW + ox0) * C + c0;
    store_col(ybase, c0, acc[0] + bias_v);
    if (ox0 + 1u < OW) {
        store_col(ybase + C, c0, acc[1] + bias_v);
    }
    if (ox0 + 2u < OW) {
        store_col(ybase + 2u * C, c0, acc[2] + bias_v);
    }
    if (ox0 + 3u < OW) {
        store_col(ybase + 3u * C, c0, acc[3] + bias_v);
    }
}

// The activated channels c0 .. c0 + 3 (those within C) of one output pixel, from y[o].
fn store_col(o: u32, c0: u32, v: vec4<f32>) {
    for (var k = 0u; k < 4u; k++) {
        if (c0 + k < C) {
            y[o + k] = to_store(activate(v[k], ACT));
        }
    }
}
