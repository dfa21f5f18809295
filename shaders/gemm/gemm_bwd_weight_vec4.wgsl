// gemm_bwd_weight_vec4: gemm_bwd_weight (split-K partials of dB = (A * a_scale)^T x dC) for K and
// N multiples of 4: per row of A, one vec4 of A (and of a_scale) and one vec4 of dC feed a 4 x 4
// outer product, 2-3 loads per 16 FMAs instead of 8. Same bindings as gemm_bwd_weight.wgsl.
//
// Thread: a 4 x 4 tile (4 of K, one vec4 of N) of one chunk's partial, N blocks fastest.

override M: u32;
override N: u32;
override K: u32;
override ROWS: u32;
override HAS_A_SCALE: u32 = 0u;
override A_SCALE_ROWS: u32 = 1u;

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> a_scale: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dc: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> partial: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let n4 = N / 4u;
    let k4 = K / 4u;
    let chunks = (M + ROWS - 1u) / ROWS;
    if (t >= n4 * k4 * chunks) {
        return;
    }
    let nq = t % n4;
    let kq = (t / n4) % k4;
    let s = t / (n4 * k4);
    let start = s * ROWS;
    let end = min(start + ROWS, M);

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var m = start; m < end; m++) {
        var av = a[m * k4 + kq];
        if (HAS_A_SCALE == 1u) {
            av *= a_scale[(m / A_SCALE_ROWS) * k4 + kq];
        }
        let dv = dc[m * n4 + nq];
        acc0 += av.x * dv;
        acc1 += av.y * dv;
        acc2 += av.z * dv;
        acc3 += av.w * dv;
    }
    // Partial (S, K, N) as vec4 along N: row k of chunk s starts at (s * K + k) * n4.
    let base = (s * K + kq * 4u) * n4 + nq;
    partial[base] = acc0;
    partial[base + n4] = acc1;
    partial[base + 2u * n4] = acc2;
    partial[base + 3u * n4] = acc3;
}
