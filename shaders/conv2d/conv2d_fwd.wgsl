// conv2d_fwd: direct convolution with any kernel size, stride, padding and group count, with a fused
// bias (folded BatchNorm) + activation epilogue. Used for the stem (3x3, stride 2, Cin = 3), where
// Cin is too small for a GEMM to pay.
//
// Bindings: 0 x     (N, H, W, CIN), or (N, CIN, H, W) when IN_NCHW = 1 (the network's input)
//           1 w     (KH, KW, CIN / GROUPS, COUT)   HWIO
//           2 bias  (COUT)                         read only when HAS_BIAS = 1
//           3 y     (N, OH, OW, COUT)
// Thread: one output pixel x 4 consecutive output channels; the channel block varies fastest, so
// neighbouring invocations read the same input pixel and neighbouring weights.
// Padding: PT/PL before (symmetric or TF-SAME, decided by the host); taps outside read as zero.
// Tensors are stored as `Store` (f32, or f16 for the f16 inference path; see the prelude in
// src/gpu/kernels.rs); arithmetic is f32.

override N: u32;
override H: u32;
override W: u32;
override CIN: u32;
override COUT: u32;
override KH: u32;
override KW: u32;
override SH: u32;
override SW: u32;
override PT: u32;
override PL: u32;
override OH: u32;
override OW: u32;
override GROUPS: u32 = 1u;
override ACT: u32 = 0u;
override HAS_BIAS: u32 = 0u;
override IN_NCHW: u32 = 0u;

@group(0) @binding(0) var<storage, read> x: array<Store>;
@group(0) @binding(1) var<storage, read> w: array<Store>;
@group(0) @binding(2) var<storage, read> bias: array<Store>;
@group(0) @binding(3) var<storage, read_write> y: array<Store>;

fn x_index(n: u32, c: u32, iy: u32, ix: u32) -> u32 {
    if (IN_NCHW == 1u) {
        return ((n * CIN + c) * H + iy) * W + ix;
    }
    return ((n * H + iy) * W + ix) * CIN + c;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let cob = (COUT + 3u) / 4u;
    if (t >= N * OH * OW * cob) {
        return;
    }
    let co0 = (t % cob) * 4u;
    let p = t / cob;
    let ox = p % OW;
    let oy = (p / OW) % OH;
    let n = p / (OW * OH);
    let cin_g = CIN / GROUPS;
    let cout_g = COUT / GROUPS;
    // Channels past COUT are clamped for loads and never stored.
    let co = min(vec4<u32>(co0, co0 + 1u, co0 + 2u, co0 + 3u), vec4<u32>(COUT - 1u));
    let cbase = (co / cout_g) * cin_g;

    var acc = vec4<f32>(0.0);
    for (var ky = 0u; ky < KH; ky++) {
        let iy = i32(oy * SH + ky) - i32(PT);
        if (iy < 0 || iy >= i32(H)) {
            continue;
        }
        for (var kx = 0u; kx < KW; kx++) {
            let ix = i32(ox * SW + kx) - i32(PL);
            if (ix < 0 || ix >= i32(W)) {
                continue;
            }
            for (var ci = 0u; ci < cin_g; ci++) {
                let wb = ((ky * KW + kx) * cin_g + ci) * COUT;
                let wv = vec4<f32>(vec4<Store>(w[wb + co.x], w[wb + co.y], w[wb + co.z], w[wb + co.w]));
                var xv: vec4<f32>;
                if (GROUPS == 1u) {
                    xv = vec4<f32>(f32(x[x_index(n, ci, u32(iy), u32(ix))]));
                } else {
                    xv = vec4<f32>(vec4<Store>(
                        x[x_index(n, cbase.x + ci, u32(iy), u32(ix))],
                        x[x_index(n, cbase.y + ci, u32(iy), u32(ix))],
                        x[x_index(n, cbase.z + ci, u32(iy), u32(ix))],
                        x[x_index(n, cbase.w + ci, u32(iy), u32(ix))]));
                }
                acc += xv * wv;
            }
        }
    }
    let ybase = ((n * OH + oy) * OW + ox) * COUT;
    for (var j = 0u; j < 4u; j++) {
        let c = co0 + j;
        if (c < COUT) {
            var v = acc[j];
            if (HAS_BIAS == 1u) {
                v += f32(bias[c]);
            }
            y[ybase + c] = to_store(activate(v, ACT));
        }
    }
}
