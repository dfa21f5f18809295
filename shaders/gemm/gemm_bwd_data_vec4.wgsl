// gemm_bwd_data_vec4: gemm_bwd_data (dA = dC x B^T) for K and N multiples of 4, with vec4 loads
// of dC rows and B rows along N: 8 vec4 loads per 64 FMAs (see gemm_fwd_vec4.wgsl for why).
// Same bindings and ACCUMULATE semantics as gemm_bwd_data.wgsl.
//
// Thread: 4 rows x 4 columns of dA (one vec4 along K), column blocks fastest.

override M: u32;
override N: u32;
override K: u32;
override ACCUMULATE: u32 = 0u;

@group(0) @binding(0) var<storage, read> dc: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> da: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let n4 = N / 4u;
    let k4 = K / 4u;
    let mb = (M + 3u) / 4u;
    if (t >= k4 * mb) {
        return;
    }
    let kq = t % k4;
    let r0 = (t / k4) * 4u;
    let r = min(vec4<u32>(r0, r0 + 1u, r0 + 2u, r0 + 3u), vec4<u32>(M - 1u)) * n4;
    // Rows 4kq .. 4kq+3 of B (one per output column).
    let kb = kq * 4u * n4;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var nq = 0u; nq < n4; nq++) {
        let b0 = b[kb + nq];
        let b1 = b[kb + n4 + nq];
        let b2 = b[kb + 2u * n4 + nq];
        let b3 = b[kb + 3u * n4 + nq];
        let d0 = dc[r.x + nq];
        let d1 = dc[r.y + nq];
        let d2 = dc[r.z + nq];
        let d3 = dc[r.w + nq];
        acc0 += vec4<f32>(dot(d0, b0), dot(d0, b1), dot(d0, b2), dot(d0, b3));
        acc1 += vec4<f32>(dot(d1, b0), dot(d1, b1), dot(d1, b2), dot(d1, b3));
        acc2 += vec4<f32>(dot(d2, b0), dot(d2, b1), dot(d2, b2), dot(d2, b3));
        acc3 += vec4<f32>(dot(d3, b0), dot(d3, b1), dot(d3, b2), dot(d3, b3));
    }
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let row = r0 + i;
        if (row >= M) {
            break;
        }
        let o = row * k4 + kq;
        if (ACCUMULATE == 1u) {
            da[o] = da[o] + accs[i];
        } else {
            da[o] = accs[i];
        }
    }
}
