// conv2d_fwd_texel: conv2d_fwd (see conv2d_fwd.wgsl) for the stem on CPU adapters: one group,
// input (N, CIN, H, W) with W a multiple of 4, COUT a multiple of 4. Input and weights are read as
// texels (vector gathers where the buffer kernel pays a per-lane loop per scalar), and a thread
// computes 4 output columns x 8 output channels, so each tap's 2 weight texels serve 4 columns.
//
// Bindings: 0 x     (N, CIN, H, W)         texels
//           1 w     (KH, KW, CIN, COUT)    HWIO, texels
//           2 bias  (COUT)                 read only when HAS_BIAS = 1
//           3 y     (N, OH, OW, COUT)

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
override ACT: u32 = 0u;
override HAS_BIAS: u32 = 0u;

@group(0) @binding(0) var x: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var w: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;

const COLS: u32 = 4u;

fn x_at(i: u32) -> f32 {
    return textureLoad(x, texel(i >> 2u))[i & 3u];
}

// Input column a - PL + v (v a literal) from the texels t = (texels a/4 - 1 .. a/4 + 2 of the row),
// zero outside the image: with PL an override the texel and component are constants.
fn pick(t: array<vec4<f32>, 4>, a: i32, v: i32) -> f32 {
    let e = v - i32(PL);
    let ix = a + e;
    return select(0.0, t[(e >> 2u) + 1][e & 3], ix >= 0 && ix < i32(W));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let co4 = COUT / 4u;
    let cob = (co4 + 1u) / 2u;
    let xb = (OW + COLS - 1u) / COLS;
    if (t >= N * OH * xb * cob) {
        return;
    }
    let q0 = (t % cob) * 2u;
    let q1 = min(q0 + 1u, co4 - 1u);
    let p = t / cob;
    let ox0 = (p % xb) * COLS;
    let oy = (p / xb) % OH;
    let n = p / (xb * OH);

    var acc0 = array<vec4<f32>, COLS>();
    var acc1 = array<vec4<f32>, COLS>();
    for (var ky = 0u; ky < KH; ky++) {
        let iy = i32(oy * SH + ky) - i32(PT);
        if (iy < 0 || iy >= i32(H)) {
            continue;
        }
        for (var ci = 0u; ci < CIN; ci++) {
            let row = ((n * CIN + ci) * H + u32(iy)) * W;
            if (KW == 3u && SW == 2u && PL < 4u) {
                // The stem's shape: the 4 columns read 9 neighbouring inputs, 4 texels of the
                // row (row and 2 * ox0 are multiples of 4) instead of 12 single values.
                let a = i32(ox0 * 2u);
                let tb = i32((row + ox0 * 2u) / 4u);
                let t = array<vec4<f32>, 4>(
                    textureLoad(x, texel(u32(max(tb - 1, 0)))),
                    textureLoad(x, texel(u32(tb))),
                    textureLoad(x, texel(u32(tb + 1))),
                    textureLoad(x, texel(u32(tb + 2))),
                );
                let x0 = pick(t, a, 0);
                let x1 = pick(t, a, 1);
                let x2 = pick(t, a, 2);
                let x3 = pick(t, a, 3);
                let x4 = pick(t, a, 4);
                let x5 = pick(t, a, 5);
                let x6 = pick(t, a, 6);
                let x7 = pick(t, a, 7);
                let x8 = pick(t, a, 8);
                let wb = ((ky * 3u) * CIN + ci) * co4;
                let w00 = textureLoad(w, texel(wb + q0));
                let w01 = textureLoad(w, texel(wb + q1));
                let w10 = textureLoad(w, texel(wb + CIN * co4 + q0));
                let w11 = textureLoad(w, texel(wb + CIN * co4 + q1));
                let w20 = textureLoad(w, texel(wb + 2u * CIN * co4 + q0));
                let w21 = textureLoad(w, texel(wb + 2u * CIN * co4 + q1));
                acc0[0] += x0 * w00 + x1 * w10 + x2 * w20;
                acc1[0] += x0 * w01 + x1 * w11 + x2 * w21;
                acc0[1] += x2 * w00 + x3 * w10 + x4 * w20;
                acc1[1] += x2 * w01 + x3 * w11 + x4 * w21;
                acc0[2] += x4 * w00 + x5 * w10 + x6 * w20;
                acc1[2] += x4 * w01 + x5 * w11 + x6 * w21;
                acc0[3] += x6 * w00 + x7 * w10 + x8 * w20;
                acc1[3] += x6 * w01 + x7 * w11 + x8 * w21;
                continue;
            }
            for (var kx = 0u; kx < KW; kx++) {
                let wb = ((ky * KW + kx) * CIN + ci) * co4;
                let w0 = textureLoad(w, texel(wb + q0));
                let w1 = textureLoad(w, texel(wb + q1));
                for (var j = 0u; j < COLS; j++) {
                    let ix = i32((ox0 + j) * SW + kx) - i32(PL);
                    let inside = ix >= 0 && ix < i32(W);
                    let v = select(0.0, x_at(row + u32(clamp(ix, 0, i32(W) - 1))), inside);
                    acc0[j] += v * w0;
                    acc1[j] += v * w1;
                }
            }
        }
    }
    var b0 = vec4<f32>(0.0);
    var b1 = vec4<f32>(0.0);
    if (HAS_BIAS == 1u) {
        b0 = bias[q0];
        b1 = bias[q1];
    }
    // Written out with constant indices: a loop that leaves early kept the accumulators in
    // memory on lavapipe (as in gemm_fwd_texel). Column ox0 is always < OW.
    let o = ((n * OH + oy) * OW + ox0) * co4;
    store_col(o, q0, co4, acc0[0] + b0, acc1[0] + b1);
    if (ox0 + 1u < OW) {
        store_col(o + co4, q0, co4, acc0[1] + b0, acc1[1] + b1);
    }
    if (ox0 + 2u < OW) {
        store_col(o + 2u * co4, q0, co4, acc0[2] + b0, acc1[2] + b1);
    }
    if (ox0 + 3u < OW) {
        store_col(o + 3u * co4, q0, co4, acc0[3] + b0, acc1[3] + b1);
    }
}

// Output channel texels q0 and q0 + 1 (when within COUT) of the pixel at texel o.
fn store_col(o: u32, q0: u32, co4: u32, v0: vec4<f32>, v1: vec4<f32>) {
    y[o + q0] = activate4(v0, ACT);
    if (q0 + 1u < co4) {
        y[o + q0 + 1u] = activate4(v1, ACT);
    }
}
