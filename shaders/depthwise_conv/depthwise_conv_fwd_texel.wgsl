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
        for (var kx = 0u; kx < KW; kx++) {
            let wv = textureLoad(w, texel((ky * KW + kx) * c4 + q));
            for (var j = 0u; j < COLS; j++) {
                let ix = i32((ox0 + j) * SW + kx) - i32(PL);
                let inside = ix >= 0 && ix < i32(W);
                let xv = textureLoad(x, texel((row + u32(clamp(ix, 0, i32(W) - 1))) * c4 + q));
                acc[j] += select(vec4<f32>(0.0), xv, inside) * wv;
            }
        }
    }
    var bias_v = vec4<f32>(0.0);
    if (HAS_BIAS == 1u) {
        bias_v = bias[q];
    }
    for (var j = 0u; j < COLS; j++) {
        let ox = ox0 + j;
        if (ox >= OW) {
            break;
        }
        y[((n * OH + oy) * OW + ox) * c4 + q] = act4(acc[j] + bias_v);
    }
}
