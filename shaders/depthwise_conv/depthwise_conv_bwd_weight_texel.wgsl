// depthwise_conv_bwd_weight_texel: the first stage of depthwise_conv_bwd_weight (see
// depthwise_conv_bwd_weight.wgsl: chunks of output rows, KB taps per invocation, then
// sum_partials) for CPU adapters, C a multiple of 4, with x and dy read as texels (see
// depthwise_conv_fwd_texel.wgsl for why).
//
// Bindings: 0 x       (N, H, W, C)                         texels
//           1 dy      (N, OH, OW, C)                       texels
//           2 partial (ceil(N * OH / ROWS), KH, KW, C)
// Thread: one chunk x one tap row ky x KB consecutive taps kx x 4 channels (one texel).

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

@group(0) @binding(0) var x: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var dy: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<storage, read_write> partial: array<vec4<f32>>;

const MAX_KB: u32 = 5u;

fn tap_row(acc: ptr<function, array<vec4<f32>, MAX_KB>>, r: u32, ox: u32, xrow: u32, kx0: u32, q: u32) {
    let c4 = C / 4u;
    let dv = textureLoad(dy, texel((r * OW + ox) * c4 + q));
    for (var j = 0u; j < KB; j++) {
        let ix = i32(ox * SW + kx0 + j) - i32(PL);
        let inside = ix >= 0 && ix < i32(W);
        let xv = textureLoad(x, texel((xrow + u32(clamp(ix, 0, i32(W) - 1))) * c4 + q));
        (*acc)[j] += select(vec4<f32>(0.0), xv, inside) * dv;
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let c4 = C / 4u;
    let kxb = (KW + KB - 1u) / KB;
    let rows = N * OH;
    let chunks = (rows + ROWS - 1u) / ROWS;
    if (t >= chunks * KH * kxb * c4) {
        return;
    }
    let q = t % c4;
    let u = t / c4;
    let kx0 = (u % kxb) * KB;
    let ky = (u / kxb) % KH;
    let s = u / (kxb * KH);

    var acc = array<vec4<f32>, MAX_KB>();
    let r_end = min(s * ROWS + ROWS, rows);
    for (var r = s * ROWS; r < r_end; r++) {
        let iy = i32((r % OH) * SH + ky) - i32(PT);
        if (iy < 0 || iy >= i32(H)) {
            continue;
        }
        let xrow = (r / OH * H + u32(iy)) * W;
        var ox = 0u;
        for (; ox + 1u < OW; ox += 2u) {
            tap_row(&acc, r, ox, xrow, kx0, q);
            tap_row(&acc, r, ox + 1u, xrow, kx0, q);
        }
        if (ox < OW) {
            tap_row(&acc, r, ox, xrow, kx0, q);
        }
    }
    // Written out with constant indices: a loop that leaves early kept `acc` in memory on
    // lavapipe (as in gemm_fwd_texel). Tap kx0 is always < KW.
    let o = ((s * KH + ky) * KW + kx0) * c4 + q;
    partial[o] = acc[0];
    if (1u < KB && kx0 + 1u < KW) {
        partial[o + c4] = acc[1];
    }
    if (2u < KB && kx0 + 2u < KW) {
        partial[o + 2u * c4] = acc[2];
    }
    if (3u < KB && kx0 + 3u < KW) {
        partial[o + 3u * c4] = acc[3];
    }
    if (4u < KB && kx0 + 4u < KW) {
        partial[o + 4u * c4] = acc[4];
    }
}
