// depthwise_conv_bwd_data_texel: depthwise_conv_bwd_data (see depthwise_conv_bwd_data.wgsl: the
// gather form, its column blocks SW apart and its tap loops) for CPU adapters, C a multiple of 4,
// with dy and w read as texels (see depthwise_conv_fwd_texel.wgsl for why).
//
// Bindings: 0 dy (N, OH, OW, C)   texels
//           1 w  (KH, KW, C)      texels
//           2 dx (N, H, W, C)     read too when ACCUMULATE = 1
// Thread: 4 input columns x 4 channels (one texel), the channel block fastest.

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

@group(0) @binding(0) var dy: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var w: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<storage, read_write> dx: array<vec4<f32>>;

const COLS: u32 = 4u;

// dy column ox of row `row` (zero outside [0, OW)), channels 4q..4q+3.
fn dy_col(row: u32, ox: i32, q: u32) -> vec4<f32> {
    let v = textureLoad(dy, texel((row + u32(clamp(ox, 0, i32(OW) - 1))) * (C / 4u) + q));
    return select(vec4<f32>(0.0), v, ox >= 0 && ox < i32(OW));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let c4 = C / 4u;
    let xb = (W + COLS * SW - 1u) / (COLS * SW);
    let xt = xb * SW;
    if (t >= N * H * xt * c4) {
        return;
    }
    let q = t % c4;
    let p = t / c4;
    let b = p % xt;
    let iy = (p / xt) % H;
    let n = p / (xt * H);
    let ix0 = (b % xb) * COLS * SW + b / xb;
    if (ix0 >= W) {
        return;
    }

    var acc = array<vec4<f32>, COLS>();
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
        // Stride 1, 3x3 or 5x5, written out: the 4 columns share their dy inputs in registers
        // (3x3: 6 loads per row instead of 12), as in depthwise_conv_fwd_texel.wgsl.
        if (SW == 1u && KW == 3u) {
            let b = i32(ix0 + PL) - 2;
            let d0 = dy_col(row, b, q);
            let d1 = dy_col(row, b + 1, q);
            let d2 = dy_col(row, b + 2, q);
            let d3 = dy_col(row, b + 3, q);
            let d4 = dy_col(row, b + 4, q);
            let d5 = dy_col(row, b + 5, q);
            let w0 = textureLoad(w, texel((ky * 3u + 0u) * c4 + q));
            let w1 = textureLoad(w, texel((ky * 3u + 1u) * c4 + q));
            let w2 = textureLoad(w, texel((ky * 3u + 2u) * c4 + q));
            acc[0] += d2 * w0 + d1 * w1 + d0 * w2;
            acc[1] += d3 * w0 + d2 * w1 + d1 * w2;
            acc[2] += d4 * w0 + d3 * w1 + d2 * w2;
            acc[3] += d5 * w0 + d4 * w1 + d3 * w2;
            continue;
        }
        if (SW == 1u && KW == 5u) {
            let b = i32(ix0 + PL) - 4;
            let d0 = dy_col(row, b, q);
            let d1 = dy_col(row, b + 1, q);
            let d2 = dy_col(row, b + 2, q);
            let d3 = dy_col(row, b + 3, q);
            let d4 = dy_col(row, b + 4, q);
            let d5 = dy_col(row, b + 5, q);
            let d6 = dy_col(row, b + 6, q);
            let d7 = dy_col(row, b + 7, q);
            let w0 = textureLoad(w, texel((ky * 5u + 0u) * c4 + q));
            let w1 = textureLoad(w, texel((ky * 5u + 1u) * c4 + q));
            let w2 = textureLoad(w, texel((ky * 5u + 2u) * c4 + q));
            let w3 = textureLoad(w, texel((ky * 5u + 3u) * c4 + q));
            let w4 = textureLoad(w, texel((ky * 5u + 4u) * c4 + q));
            acc[0] += d4 * w0 + d3 * w1 + d2 * w2 + d1 * w3 + d0 * w4;
            acc[1] += d5 * w0 + d4 * w1 + d3 * w2 + d2 * w3 + d1 * w4;
            acc[2] += d6 * w0 + d5 * w1 + d4 * w2 + d3 * w3 + d2 * w4;
            acc[3] += d7 * w0 + d6 * w1 + d5 * w2 + d4 * w3 + d3 * w4;
            continue;
        }
        for (var kx = (ix0 + PL) % SW; kx < KW; kx += SW) {
            let ox0 = (i32(ix0 + PL) - i32(kx)) / i32(SW);
            if (ox0 + i32(COLS) <= 0) {
                break;
            }
            if (ox0 >= i32(OW)) {
                continue;
            }
            let wv = textureLoad(w, texel((ky * KW + kx) * c4 + q));
            for (var j = 0u; j < COLS; j++) {
                let ox = ox0 + i32(j);
                let inside = ox >= 0 && ox < i32(OW);
                let dv = textureLoad(dy, texel((row + u32(clamp(ox, 0, i32(OW) - 1))) * c4 + q));
                acc[j] += select(vec4<f32>(0.0), dv, inside) * wv;
            }
        }
    }
    // Written out with constant indices: a loop that leaves early kept `acc` in memory on
    // lavapipe (as in gemm_fwd_texel). Column ix0 is always < W.
    let o = ((n * H + iy) * W + ix0) * c4 + q;
    store(o, acc[0]);
    if (ix0 + SW < W) {
        store(o + SW * c4, acc[1]);
    }
    if (ix0 + 2u * SW < W) {
        store(o + 2u * SW * c4, acc[2]);
    }
    if (ix0 + 3u * SW < W) {
        store(o + 3u * SW * c4, acc[3]);
    }
}

fn store(o: u32, v: vec4<f32>) {
    if (ACCUMULATE == 1u) {
        dx[o] += v;
    } else {
        dx[o] = v;
    }
}
