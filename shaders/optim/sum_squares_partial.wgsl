// sum_squares_partial: per-chunk sums of x^2 (the first stage of the global gradient norm; the
// second is sum_partials). Fixed order, so the norm is bit-identical run to run.
// Bindings: 0 x (TOTAL)  1 partial (ceil(TOTAL / CHUNK)). Thread: one chunk.

override TOTAL: u32;
override CHUNK: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = linear_id(gid, nwg);
    let start = s * CHUNK;
    if (start >= TOTAL) {
        return;
    }
    let end = min(start + CHUNK, TOTAL);
    var acc = 0.0;
    for (var i = start; i < end; i++) {
        acc += x[i] * x[i];
    }
    partial[s] = acc;
}
