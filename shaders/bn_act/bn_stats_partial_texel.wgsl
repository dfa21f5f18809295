// bn_stats_partial_texel: bn_stats_partial (see bn_stats_partial.wgsl: per chunk and channel the
// chunk mean and M2, two passes relative to the chunk's first value) for CPU adapters, C a
// multiple of 4: z is read as texels (one vector gather where the buffer kernel pays a per-lane
// loop per value) and a thread takes 4 channels.
//
// Bindings: 0 z        (M, C)      texels
//           1 partial  (S, 2, C)   S = ceil(M / CHUNK)

override M: u32;
override C: u32;
override CHUNK: u32;

@group(0) @binding(0) var z: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var<storage, read_write> partial: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let c4 = C / 4u;
    let chunks = (M + CHUNK - 1u) / CHUNK;
    if (t >= chunks * c4) {
        return;
    }
    let q = t % c4;
    let s = t / c4;
    let start = s * CHUNK;
    let end = min(start + CHUNK, M);

    let k = textureLoad(z, texel(start * c4 + q));
    var sum = vec4<f32>(0.0);
    for (var r = start; r < end; r++) {
        sum += textureLoad(z, texel(r * c4 + q)) - k;
    }
    let mean_k = sum / f32(end - start);
    var m2 = vec4<f32>(0.0);
    for (var r = start; r < end; r++) {
        let d = (textureLoad(z, texel(r * c4 + q)) - k) - mean_k;
        m2 += d * d;
    }
    partial[(s * 2u) * c4 + q] = k + mean_k;
    partial[(s * 2u + 1u) * c4 + q] = m2;
}
