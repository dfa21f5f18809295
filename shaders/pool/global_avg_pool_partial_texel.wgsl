// global_avg_pool_partial_texel: the first stage of global_avg_pool (see global_avg_pool_fwd.wgsl:
// per (image, chunk, channel) the sum of CHUNK rows) for CPU adapters, C a multiple of 4: the
// input is read as texels and a thread sums 4 channels.
//
// Bindings: 0 src = x        (N, HW, C)      texels
//           1 dst = partials (N, NCHUNK, C)

override N: u32;
override HW: u32;
override C: u32;
override CHUNK: u32;

@group(0) @binding(0) var src: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let c4 = C / 4u;
    let nchunk = (HW + CHUNK - 1u) / CHUNK;
    if (t >= N * nchunk * c4) {
        return;
    }
    let q = t % c4;
    let chunk = (t / c4) % nchunk;
    let n = t / (c4 * nchunk);
    let start = chunk * CHUNK;
    let end = min(start + CHUNK, HW);
    var s = vec4<f32>(0.0);
    for (var i = start; i < end; i++) {
        s += textureLoad(src, texel((n * HW + i) * c4 + q));
    }
    dst[t] = s;
}
