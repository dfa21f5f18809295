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
    for (var j = 0u; j < COLS; j++) {
        let ix = ix0 + j * SW;
        if (ix >= W) {
            break;
        }
        let o = ((n * H + iy) * W + ix) * c4 + q;
        if (ACCUMULATE == 1u) {
            dx[o] += acc[j];
        } else {
            dx[o] = acc[j];
        }
    }
}
