// depthwise_conv_fwd_texel: depthwise_conv_fwd (see depthwise_conv_fwd.wgsl) for CPU adapters,
// C a multiple of 4. x and w arrive as textures (copied in by the host just before the dispatch):
// there one texel load is a vector gather where the storage-buffer kernel pays a per-lane loop
// for each of 4 scalar loads.
//
// Bindings: 0 x    (N, H, W, C)   texels
//           1 w    (KH, KW, C)    texels
//           2 bias (C)            read when HAS_BIAS = 1
//           3 y    (N, OH, OW, C)
//           4 in_scale_shift (2C)   read when IN_BN = 1
// IN_BN = 1: x is a BatchNorm + activation's input, applied as it is read (see
// depthwise_conv_fwd.wgsl).
// Thread: COLS output columns x ROWS output rows x 4 channels (one texel), the channel block
// fastest.

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
// Output rows per thread: 2 for the 3x3 stride-1 shape (rows2_3x3s1; the host sets it), else 1.
override ROWS: u32 = 1u;

@group(0) @binding(0) var x: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var w: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> in_scale_shift: array<vec4<f32>>;

// The thread's channels' input BatchNorm (IN_BN = 1), loaded once in main.
var<private> in_scale: vec4<f32>;
var<private> in_shift: vec4<f32>;

const COLS: u32 = 4u;

// Input column ix of row `row` (zero outside the image), channels 4q..4q+3.
fn x_col(row: u32, ix: i32, q: u32) -> vec4<f32> {
    var xv = textureLoad(x, texel((row + u32(clamp(ix, 0, i32(W) - 1))) * (C / 4u) + q));
    if (IN_BN == 1u) {
        xv = activate4(xv * in_scale + in_shift, IN_ACT);
    }
    return select(vec4<f32>(0.0), xv, ix >= 0 && ix < i32(W));
}

// Input row iy (zeros outside the image): the 6 columns from b that 4 output columns of a 3x3
// stride-1 filter read.
fn x_row6(n: u32, iy: i32, b: i32, q: u32) -> array<vec4<f32>, 6> {
    var r = array<vec4<f32>, 6>();
    if (iy >= 0 && iy < i32(H)) {
        let row = (n * H + u32(iy)) * W;
        r = array<vec4<f32>, 6>(
            x_col(row, b, q), x_col(row, b + 1, q), x_col(row, b + 2, q),
            x_col(row, b + 3, q), x_col(row, b + 4, q), x_col(row, b + 5, q),
        );
    }
    return r;
}

// One filter row (w0, w1, w2) over one input row for 4 output columns, added to acc.
fn taps3(acc: array<vec4<f32>, 4>, x: array<vec4<f32>, 6>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(
        acc[0] + (x[0] * w0 + x[1] * w1 + x[2] * w2),
        acc[1] + (x[1] * w0 + x[2] * w1 + x[3] * w2),
        acc[2] + (x[2] * w0 + x[3] * w1 + x[4] * w2),
        acc[3] + (x[3] * w0 + x[4] * w1 + x[5] * w2),
    );
}

// 3x3 at stride 1, output rows oy0 and oy0 + 1 at once: their 4 input rows are loaded once
// (the middle two serve both), 24 texel loads of inputs for 8 outputs where one row at a time
// takes 36; 5-15% faster on lavapipe. Each output sums its filter rows in the one-row path's
// order (rows in the padding add zeros instead of being skipped).
fn rows2_3x3s1(n: u32, oy0: u32, ox0: u32, q: u32) -> array<array<vec4<f32>, 4>, 2> {
    let c4 = C / 4u;
    let wt = array<vec4<f32>, 9>(
        textureLoad(w, texel(0u * c4 + q)), textureLoad(w, texel(1u * c4 + q)), textureLoad(w, texel(2u * c4 + q)),
        textureLoad(w, texel(3u * c4 + q)), textureLoad(w, texel(4u * c4 + q)), textureLoad(w, texel(5u * c4 + q)),
        textureLoad(w, texel(6u * c4 + q)), textureLoad(w, texel(7u * c4 + q)), textureLoad(w, texel(8u * c4 + q)),
    );
    let iy = i32(oy0) - i32(PT);
    let b = i32(ox0) - i32(PL);
    var a0 = array<vec4<f32>, 4>();
    var a1 = array<vec4<f32>, 4>();
    var r = x_row6(n, iy, b, q);
    a0 = taps3(a0, r, wt[0], wt[1], wt[2]);
    r = x_row6(n, iy + 1, b, q);
    a0 = taps3(a0, r, wt[3], wt[4], wt[5]);
    a1 = taps3(a1, r, wt[0], wt[1], wt[2]);
    r = x_row6(n, iy + 2, b, q);
    a0 = taps3(a0, r, wt[6], wt[7], wt[8]);
    a1 = taps3(a1, r, wt[3], wt[4], wt[5]);
    r = x_row6(n, iy + 3, b, q);
    a1 = taps3(a1, r, wt[6], wt[7], wt[8]);
    return array<array<vec4<f32>, 4>, 2>(a0, a1);
}

fn act4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(activate(v.x, ACT), activate(v.y, ACT), activate(v.z, ACT), activate(v.w, ACT));
}

// Output row oy, columns ox0 .. ox0 + 3, channels 4q .. 4q + 3, before bias and activation.
fn row1(n: u32, oy: u32, ox0: u32, q: u32) -> array<vec4<f32>, COLS> {
    let c4 = C / 4u;
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
    return acc;
}

// Written out with constant indices: a loop that leaves early kept `acc` in memory on lavapipe
// (as it did in gemm_fwd_texel, 30-60% slower there). Column ox0 is always < OW.
fn store_row(acc: array<vec4<f32>, COLS>, n: u32, oy: u32, ox0: u32, q: u32, bias_v: vec4<f32>) {
    let c4 = C / 4u;
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

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let c4 = C / 4u;
    let xb = (OW + COLS - 1u) / COLS;
    let yb = (OH + ROWS - 1u) / ROWS;
    if (t >= N * yb * xb * c4) {
        return;
    }
    let q = t % c4;
    let p = t / c4;
    let ox0 = (p % xb) * COLS;
    let oy0 = ((p / xb) % yb) * ROWS;
    let n = p / (xb * yb);
    var bias_v = vec4<f32>(0.0);
    if (HAS_BIAS == 1u) {
        bias_v = bias[q];
    }
    if (IN_BN == 1u) {
        in_scale = in_scale_shift[q];
        in_shift = in_scale_shift[c4 + q];
    }
    if (ROWS == 2u) {
        let a = rows2_3x3s1(n, oy0, ox0, q);
        store_row(a[0], n, oy0, ox0, q, bias_v);
        if (oy0 + 1u < OH) {
            store_row(a[1], n, oy0 + 1u, ox0, q, bias_v);
        }
        return;
    }
    store_row(row1(n, oy0, ox0, q), n, oy0, ox0, q, bias_v);
}
