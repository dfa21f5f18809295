// depthwise_conv_bwd_weight, first stage of the deterministic weight gradient:
//   partial[s, ky, kx, c] = sum over output rows (n, oy) of chunk s, and all ox, of
//                           dy[n, oy, ox, c] * x[n, oy * SH + ky - PT, ox * SW + kx - PL, c]
// (dy is the gradient of the convolution's output before any bias/activation epilogue). Chunk s
// covers the ROWS rows s * ROWS .. of the N * OH output rows (the last chunk may be shorter);
// `sum_partials` then adds the chunks in order into dw (KH, KW, C). No atomics.
//
// Bindings: 0 x       (N, H, W, C)
//           1 dy      (N, OH, OW, C)
//           2 partial (ceil(N * OH / ROWS), KH, KW, C)
// Thread: one chunk x one tap row ky x KB consecutive taps kx x 4 channels (channel block
// fastest). Each dy load (4 channels) is reused for the KB taps, KB <= 5 vec4 accumulators stay
// in registers; the host picks KB to split KW evenly (KW = 3 or 5: one block). Taps reading
// outside the input are loaded clamped and multiplied by zero, so the inner loop has no branch.

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
override ROWS: u32;
override KB: u32;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;

const MAX_KB: u32 = 5u;

// acc[j] += x[n, iy, ox * SW + kx0 + j - PL, c] * dy[r, ox, c] for the KB taps of one column.
fn tap_row(acc: ptr<function, array<vec4<f32>, MAX_KB>>, r: u32, ox: u32, xrow: u32, kx0: u32, c: vec4<u32>) {
    let o = (r * OW + ox) * C;
    let dv = vec4<f32>(dy[o + c.x], dy[o + c.y], dy[o + c.z], dy[o + c.w]);
    for (var j = 0u; j < KB; j++) {
        let ix = i32(ox * SW + kx0 + j) - i32(PL);
        let inside = ix >= 0 && ix < i32(W);
        let xo = (xrow + u32(clamp(ix, 0, i32(W) - 1))) * C;
        let xv = vec4<f32>(x[xo + c.x], x[xo + c.y], x[xo + c.z], x[xo + c.w]);
        (*acc)[j] += select(vec4<f32>(0.0), xv, inside) * dv;
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let cb = (C + 3u) / 4u;
    let kxb = (KW + KB - 1u) / KB;
    let rows = N * OH;
    let chunks = (rows + ROWS - 1u) / ROWS;
    if (t >= chunks * KH * kxb * cb) {
        return;
    }
    let c0 = (t % cb) * 4u;
    let q = t / cb;
    let kx0 = (q % kxb) * KB;
    let ky = (q / kxb) % KH;
    let s = q / (kxb * KH);
    let c = min(vec4<u32>(c0, c0 + 1u, c0 + 2u, c0 + 3u), vec4<u32>(C - 1u));

    var acc = array<vec4<f32>, MAX_KB>(
        vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    let r_end = min(s * ROWS + ROWS, rows);
    for (var r = s * ROWS; r < r_end; r++) {
        let oy = r % OH;
        let n = r / OH;
        let iy = i32(oy * SH + ky) - i32(PT);
        if (iy < 0 || iy >= i32(H)) {
            continue;
        }
        let xrow = (n * H + u32(iy)) * W;
        // Two output columns per iteration: lavapipe pays per iteration for every loop-carried
        // accumulator.
        var ox = 0u;
        for (; ox + 1u < OW; ox += 2u) {
            tap_row(&acc, r, ox, xrow, kx0, c);
            tap_row(&acc, r, ox + 1u, xrow, kx0, c);
        }
        if (ox < OW) {
            tap_row(&acc, r, ox, xrow, kx0, c);
        }
    }
    // Written out with constant indices, so that `acc` stays in registers whatever the
    // compiler's unrolling. Tap kx0 is always < KW.
    let base = ((s * KH + ky) * KW + kx0) * C + c0;
    store_tap(base, c0, acc[0]);
    if (1u < KB && kx0 + 1u < KW) {
        store_tap(base + C, c0, acc[1]);
    }
    if (2u < KB && kx0 + 2u < KW) {
        store_tap(base + 2u * C, c0, acc[2]);
    }
    if (3u < KB && kx0 + 3u < KW) {
        store_tap(base + 3u * C, c0, acc[3]);
    }
    if (4u < KB && kx0 + 4u < KW) {
        store_tap(base + 4u * C, c0, acc[4]);
    }
}

// Channels c0 .. c0 + 3 (those within C) of one tap's partial sum, from partial[o].
fn store_tap(o: u32, c0: u32, v: vec4<f32>) {
    for (var k = 0u; k < 4u; k++) {
        if (c0 + k < C) {
            partial[o + k] = v[k];
        }
    }
}
