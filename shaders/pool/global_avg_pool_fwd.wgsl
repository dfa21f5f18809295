// global_avg_pool: mean over H*W of an NHWC tensor, as a deterministic two-stage reduction:
// `partial` sums CHUNK rows per (image, chunk, channel); `finish` adds the chunks in a fixed order
// and divides by H*W. No atomics, so the result is bit-identical run to run, and the work is spread
// over N * NCHUNK * C invocations instead of N * C.
//
// partial: 0 x    (N, HW, C)       1 sums (N, NCHUNK, C)
// finish:  0 sums (N, NCHUNK, C)   1 mean (N, C)
// Thread: one channel of one (image, chunk) / one image; channels fastest (contiguous).
// x and mean are stored as `Store` (f32, or f16 for the f16 inference path); the sums are f32.

override N: u32;
override HW: u32;
override C: u32;
override CHUNK: u32;

@group(0) @binding(0) var<storage, read> x: array<Store>;
@group(0) @binding(1) var<storage, read_write> partial_sums: array<f32>;
@group(0) @binding(0) var<storage, read> sums: array<f32>;
@group(0) @binding(1) var<storage, read_write> mean: array<Store>;

@compute @workgroup_size(WG)
fn partial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let nchunk = (HW + CHUNK - 1u) / CHUNK;
    if (t >= N * nchunk * C) {
        return;
    }
    let c = t % C;
    let chunk = (t / C) % nchunk;
    let n = t / (C * nchunk);
    let start = chunk * CHUNK;
    let end = min(start + CHUNK, HW);
    var s = 0.0;
    for (var i = start; i < end; i++) {
        s += f32(x[(n * HW + i) * C + c]);
    }
    partial_sums[t] = s;
}

@compute @workgroup_size(WG)
fn finish(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if (t >= N * C) {
        return;
    }
    let nchunk = (HW + CHUNK - 1u) / CHUNK;
    let c = t % C;
    let n = t / C;
    var s = 0.0;
    for (var k = 0u; k < nchunk; k++) {
        s += sums[(n * nchunk + k) * C + c];
    }
    mean[t] = to_store(s / f32(HW));
}
