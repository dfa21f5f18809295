// gemm_bwd_data: the gradient of gemm_fwd's A operand, dA = dC x B^T (before any a_scale: the
// squeeze-excite gate's share is taken by se_gate_bwd). With A = NHWC activations and B = 1x1-conv
// weights this is the input gradient of a 1x1 convolution (and of the SE FCs and the classifier).
//
// Bindings: 0 dc  (M, N)   gradient of gemm_fwd's output (after its activation's backward)
//           1 b   (K, N)   the forward's B
//           2 da  (M, K)   written, or accumulated into when ACCUMULATE = 1 (a tensor with
//                          several consumers sums their gradients)
// Thread: a 4 x 4 register tile of dA (4 rows, 4 of the K columns), column blocks fastest; the
// loop runs over N. No barriers: the CPU-adapter variant, correct everywhere.

override M: u32;
override N: u32;
override K: u32;
override ACCUMULATE: u32 = 0u;

@group(0) @binding(0) var<storage, read> dc: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> da: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let kb = (K + 3u) / 4u;
    let mb = (M + 3u) / 4u;
    if (t >= kb * mb) {
        return;
    }
    let k0 = (t % kb) * 4u;
    let r0 = (t / kb) * 4u;
    let r = min(vec4<u32>(r0, r0 + 1u, r0 + 2u, r0 + 3u), vec4<u32>(M - 1u)) * N;
    let k = min(vec4<u32>(k0, k0 + 1u, k0 + 2u, k0 + 3u), vec4<u32>(K - 1u)) * N;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var n = 0u; n < N; n++) {
        let bv = vec4<f32>(b[k.x + n], b[k.y + n], b[k.z + n], b[k.w + n]);
        let dv = vec4<f32>(dc[r.x + n], dc[r.y + n], dc[r.z + n], dc[r.w + n]);
        acc0 += dv.x * bv;
        acc1 += dv.y * bv;
        acc2 += dv.z * bv;
        acc3 += dv.w * bv;
    }
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let row = r0 + i;
        if (row >= M) {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let col = k0 + j;
            if (col < K) {
                let o = row * K + col;
                if (ACCUMULATE == 1u) {
                    da[o] = da[o] + accs[i][j];
                } else {
                    da[o] = accs[i][j];
                }
            }
        }
    }
}
