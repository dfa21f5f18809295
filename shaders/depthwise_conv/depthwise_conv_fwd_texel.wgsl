// depthwise_conv_fwd_texel: depthwise_conv_fwd (see depthwise_conv_fwd.wgsl) for CPU adapters,
// C a multiple of 4. x and w arrive as textures (copied in by the host just before the dispatch):
// there one texel load is a vector gather where the storage-buffer kernel pays a per-lane loop
// for each of 4 scalar loads.
//
// Bindings: 0 x    (N, H, W, C)   texels
//           1 w    (KH, KW, C)    texels
//           2 bias (C)            read when HAS_BIAS = 1
//           3 y    (N, OH, OW, C)
// Thread: COLS output columns x 4 channels (one texel), the channel block fastest.

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

@group(0) @binding(0) var x: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var w: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;

const COLS: u32 = 4u;

// Input column ix of row `row` (zero outside the image), channels 4q..4q+3.
fn x_col(row: u32, ix: i32, q: u32) -> vec4<f32> {
    let xv = textureLoad(x, texel((row + u32(clamp(ix, 0, i32(W) - 1))) * (C / 4u) + q));
    return select(vec4<f32>(0.0), xv, ix >= 0 && ix < i32(W));
}

fn act4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(activate(v.x, ACT), activate(v.y, ACT), activate(v.z, ACT), activate(v.w, ACT));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let c4 = C / 4u;
    let xb = (OW + COLS - 1u) / COLS;
    if (t >= N * OH * xb * c4) {
        return;
    }
    let q = t % c4;
    let p = t / c4;
    let ox0 = (p % xb) * COLS;
    let oy = (p / xb) % OH;
    let n = p / (xb * OH);

    var acc = array<vec4<f32>, COLS>();
    for (var ky = 0u; ky < KH; ky++) {
        let iy = i32(oy * SH + ky) - i32(PT);
        if (iy < 0 || iy >= i32(H)) {
            continue;
        }
        let row = (n * H + u32(iy)) * W;
        // The common shapes written out: the 4 columns share their inputs (3x3 at stride 1: 6
        // loads per row instead of 12), held in registers. Measured 2x faster on lavapipe than
        // the generic loop below, which an array of the row's inputs did not speed up.
        if (KW == 3u && SW == 1u) {
            let b = i32(ox0 * SW) - i32(PL);
            let x0 = x_col(row, b, q);
            let x1 = x_col(row, b + 1, q);
            let x2 = x_col(row, b + 2, q);
            let x3 = x_col(row, b + 3, q);
            let x4 = x_col(row, b + 4, q);
            let x5 = x_col(row, b + 5, q);
            let w0 = textureLoad(w, texel((ky * 3u + 0u) * c4 + q));
            let w1 = textureLoad(w, texel((ky * 3u + 1u) * c4 + q));
            let w2 = textureLoad(w, texel((ky * 3u + 2u) * c4 + q));
            acc[0] += x0 * w0 + x1 * w1 + x2 * w2;
            acc[1] += x1 * w0 + x2 * w1 + x3 * w2;
            acc[2] += x2 * w0 + x3 * w1 + x4 * w2;
            acc[3] += x3 * w0 + x4 * w1 + x5 * w2;
            continue;
        }
        if (KW == 3u && SW == 2u) {
            let b = i32(ox0 * SW) - i32(PL);
            let x0 = x_col(row, b, q);
            let x1 = x_col(row, b + 1, q);
            let x2 = x_col(row, b + 2, q);
            let x3 = x_col(row, b + 3, q);
            let x4 = x_col(row, b + 4, q);
            let x5 = x_col(row, b + 5, q);
            let x6 = x_col(row, b + 6, q);
            let x7 = x_col(row, b + 7, q);
            let x8 = x_col(row, b + 8, q);
            let w0 = textureLoad(w, texel((ky * 3u + 0u) * c4 + q));
            let w1 = textureLoad(w, texel((ky * 3u + 1u) * c4 + q));
            let w2 = textureLoad(w, texel((ky * 3u + 2u) * c4 + q));
            acc[0] += x0 * w0 + x1 * w1 + x2 * w2;
            acc[1] += x2 * w0 + x3 * w1 + x4 * w2;
            acc[2] += x4 * w0 + x5 * w1 + x6 * w2;
            acc[3] += x6 * w0 + x7 * w1 + x8 * w2;
            continue;
        }
        if (KW == 5u && SW == 1u) {
            let b = i32(ox0 * SW) - i32(PL);
            let x0 = x_col(row, b, q);
            let x1 = x_col(row, b + 1, q);
            let x2 = x_col(row, b + 2, q);
            let x3 = x_col(row, b + 3, q);
            let x4 = x_col(row, b + 4, q);
            let x5 = x_col(row, b + 5, q);
            let x6 = x_col(row, b + 6, q);
            let x7 = x_col(row, b + 7, q);
            let w0 = textureLoad(w, texel((ky * 5u + 0u) * c4 + q));
            let w1 = textureLoad(w, texel((ky * 5u + 1u) * c4 + q));
            let w2 = textureLoad(w, texel((ky * 5u + 2u) * c4 + q));
            let w3 = textureLoad(w, texel((ky * 5u + 3u) * c4 + q));
            let w4 = textureLoad(w, texel((ky * 5u + 4u) * c4 + q));
            acc[0] += x0 * w0 + x1 * w1 + x2 * w2 + x3 * w3 + x4 * w4;
            acc[1] += x1 * w0 + x2 * w1 + x3 * w2 + x4 * w3 + x5 * w4;
            acc[2] += x2 * w0 + x3 * w1 + x4 * w2 + x5 * w3 + x6 * w4;
            acc[3] += x3 * w0 + x4 * w1 + x5 * w2 + x6 * w3 + x7 * w4;
            continue;
        }
        if (KW == 5u && SW == 2u) {
            let b = i32(ox0 * SW) - i32(PL);
            let x0 = x_col(row, b, q);
            let x1 = x_col(row, b + 1, q);
            let x2 = x_col(row, b + 2, q);
            let x3 = x_col(row, b + 3, q);
            let x4 = x_col(row, b + 4, q);
            let x5 = x_col(row, b + 5, q);
            let x6 = x_col(row, b + 6, q);
            let x7 = x_col(row, b + 7, q);
            let x8 = x_col(row, b + 8, q);
            let x9 = x_col(row, b + 9, q);
            let x10 = x_col(row, b + 10, q);
            let w0 = textureLoad(w, texel((ky * 5u + 0u) * c4 + q));
            let w1 = textureLoad(w, texel((ky * 5u + 1u) * c4 + q));
            let w2 = textureLoad(w, texel((ky * 5u + 2u) * c4 + q));
            let w3 = textureLoad(w, texel((ky * 5u + 3u) * c4 + q));
            let w4 = textureLoad(w, texel((ky * 5u + 4u) * c4 + q));
            acc[0] += x0 * w0 + x1 * w1 + x2 * w2 + x3 * w3 + x4 * w4;
            acc[1] += x2 * w0 + x3 * w1 + x4 * w2 + x5 * w3 + x6 * w4;
            acc[2] += x4 * w0 + x5 * w1 + x6 * w2 + x7 * w3 + x8 * w4;
            acc[3] += x6 * w0 + x7 * w1 + x8 * w2 + x9 * w3 + x10 * w4;
            continue;
        }
        for (var kx = 0u; kx < KW; kx++) {
            let wv = textureLoad(w, texel((ky * KW + kx) * c4 + q));
            for (var j = 0u; j < COLS; j++) {
                acc[j] += x_col(row, i32((ox0 + j) * SW + kx) - i32(PL), q) * wv;
            }
        }
    }
    var bias_v = vec4<f32>(0.0);
    if (HAS_BIAS == 1u) {
        bias_v = bias[q];
    }
    // Written out with constant indices: a loop that leaves early kept `acc` in memory on
    // lavapipe (as it did in gemm_fwd_texel, 30-60% slower there). Column ox0 is always < OW.
    let o = ((n * OH + oy) * OW + ox0) * c4 + q;
    y[o] = act4(acc[0] + bias_v);
    if (ox0 + 1u < OW) {
        y[o + c4] = act4(acc[1] + bias_v);
    }
    if (ox0 + 2u < OW) {
        y[o + 2u * c4] = act4(acc[2] + bias_v);
    }
    if (ox0 + 3u < OW) {
        y[o + 3u * c4] = act4(acc[3] + bias_v);
    }
}
