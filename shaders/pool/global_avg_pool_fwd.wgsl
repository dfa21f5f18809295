// global_avg_pool: mean over H*W of an NHWC tensor, as a deterministic two-stage reduction:
// `partial` sums CHUNK rows per (image, chunk, channel); `finish` adds the chunks in a fixed order
// and divides by H*W. No atomics, so the result is bit-identical run to run, and the work is spread
// over N * NCHUNK * C invocations instead of N * C.
//
// partial: 0 src = x        (N, HW, C)      1 dst = partials (N, NCHUNK, C)
// finish:  0 src = partials (N, NCHUNK, C)  1 dst = mean     (N, C)
// Thread: one channel of one (image, chunk) / one image; channels fastest (contiguous).

override N: u32;
override HW: u32;
override C: u32;
override CHUNK: u32;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

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
        s += src[(n * HW + i) * C + c];
    }
    dst[t] = s;
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
        s += src[(n * nchunk + k) * C + c];
    }
    dst[t] = s / f32(HW);
}
