// depthwise_conv_bwd_data: the input gradient of a depthwise convolution (the gradient dy is taken
// with respect to the convolution's output before any bias/activation epilogue):
//   dx[n, iy, ix, c] = sum over taps (ky, kx) with oy * SH + ky - PT = iy and ox * SW + kx - PL = ix
//                      of dy[n, oy, ox, c] * w[ky, kx, c]
// in gather form: each dx element is written by exactly one invocation, no scatter, no atomics.
// ACCUMULATE = 1 adds the result to dx (another branch's gradient is already there).
//
// Bindings: 0 dy (N, OH, OW, C)
//           1 w  (KH, KW, C)
//           2 dx (N, H, W, C)     read too when ACCUMULATE = 1
// Thread: 4 input columns x 4 channels; the channel block varies fastest (contiguous in NHWC).
// The 4 columns are SW apart (ix = block * 4 * SW + r + j * SW), so for a tap kx either all 4
// columns receive it or none (kx = ix + PL mod SW), and they read 4 consecutive dy columns: each
// tap's 4 weights are loaded once for the 4 columns, and the tap loops step by the stride instead
// of testing divisibility. dy columns outside [0, OW) are loaded clamped and multiplied by zero.

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
override ACCUMULATE: u32 = 0u;

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

const COLS: u32 = 4u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let cb = (C + 3u) / 4u;
    // Column threads per row: blocks of COLS * SW columns, SW residues per block, residue-major so
    // that neighbouring invocations take the same taps (no divergence when C < 32).
    let xb = (W + COLS * SW - 1u) / (COLS * SW);
    let xt = xb * SW;
    if (t >= N * H * xt * cb) {
        return;
    }
    let c0 = (t % cb) * 4u;
    let p = t / cb;
    let q = p % xt;
    let iy = (p / xt) % H;
    let n = p / (xt * H);
    let ix0 = (q % xb) * COLS * SW + q / xb;
    if (ix0 >= W) {
        return;
    }
    let c = min(vec4<u32>(c0, c0 + 1u, c0 + 2u, c0 + 3u), vec4<u32>(C - 1u));

    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    // Taps with ky = iy + PT (mod SH) land on an output row; the row index falls as ky grows.
    for (var ky = (iy + PT) % SH; ky < KH; ky += SH) {
        let ty = i32(iy + PT) - i32(ky);
        if (ty < 0) {
            break;
        }
        let oy = u32(ty) / SH;
        if (oy >= OH) {
            continue;
        }
        let row = (n * OH + oy) * OW;
        for (var kx = (ix0 + PL) % SW; kx < KW; kx += SW) {
            // Exact division: ix0 + PL - kx is a multiple of SW (possibly negative).
            let ox0 = (i32(ix0 + PL) - i32(kx)) / i32(SW);
            if (ox0 + i32(COLS) <= 0) {
                break;
            }
            if (ox0 >= i32(OW)) {
                continue;
            }
            let wb = (ky * KW + kx) * C;
            let wv = vec4<f32>(w[wb + c.x], w[wb + c.y], w[wb + c.z], w[wb + c.w]);
            for (var j = 0u; j < COLS; j++) {
                let ox = ox0 + i32(j);
                let inside = ox >= 0 && ox < i32(OW);
                let o = (row + u32(clamp(ox, 0, i32(OW) - 1))) * C;
                let dv = vec4<f32>(dy[o + c.x], dy[o + c.y], dy[o + c.z], dy[o + c.w]);
                acc[j] += select(vec4<f32>(0.0), dv, inside) * wv;
            }
        }
    }
    // Written out with constant indices, so that `acc` stays in registers whatever the
    // compiler's unrolling. Column ix0 is always < W.
    let base = ((n * H + iy) * W + ix0) * C + c0;
    store_col(base, c0, acc[0]);
    if (ix0 + SW < W) {
        store_col(base + SW * C, c0, acc[1]);
    }
    if (ix0 + 2u * SW < W) {
        store_col(base + 2u * SW * C, c0, acc[2]);
    }
    if (ix0 + 3u * SW < W) {
        store_col(base + 3u * SW * C, c0, acc[3]);
    }
}

// Channels c0 .. c0 + 3 (those within C) of one input pixel, from dx[o]; added when ACCUMULATE.
fn store_col(o: u32, c0: u32, v: vec4<f32>) {
    for (var k = 0u; k < 4u; k++) {
        if (c0 + k < C) {
            if (ACCUMULATE == 1u) {
                dx[o + k] = dx[o + k] + v[k];
            } else {
                dx[o + k] = v[k];
            }
        }
    }
}
