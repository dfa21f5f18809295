// gemm_bwd_weight: the gradient of gemm_fwd's B operand, dB = (A * a_scale)^T x dC, as a
// deterministic split-K: this kernel writes one partial dB per chunk of ROWS rows of A, and
// sum_partials adds the chunks in a fixed order (no float atomics, bit-identical run to run).
// With A = NHWC activations this is the weight gradient of a 1x1 convolution; M (pixels) is long
// and K x N (channels) small, so splitting M is what gives the GPU enough parallel work.
//
// Bindings: 0 a        (M, K)
//           1 a_scale  (M / A_SCALE_ROWS, K)   per-image gate on A when HAS_A_SCALE = 1
//           2 dc       (M, N)
//           3 partial  (S, K, N), S = ceil(M / ROWS)
// Thread: a 4 x 4 tile of one chunk's partial dB (4 of K, 4 of N), N blocks fastest, then K
// blocks, then chunks.

override M: u32;
override N: u32;
override K: u32;
override ROWS: u32;
override HAS_A_SCALE: u32 = 0u;
override A_SCALE_ROWS: u32 = 1u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> a_scale: array<f32>;
@group(0) @binding(2) var<storage, read> dc: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let nb = (N + 3u) / 4u;
    let kb = (K + 3u) / 4u;
    let chunks = (M + ROWS - 1u) / ROWS;
    if (t >= nb * kb * chunks) {
        return;
    }
    let n0 = (t % nb) * 4u;
    let k0 = ((t / nb) % kb) * 4u;
    let s = t / (nb * kb);
    let n = min(vec4<u32>(n0, n0 + 1u, n0 + 2u, n0 + 3u), vec4<u32>(N - 1u));
    let k = min(vec4<u32>(k0, k0 + 1u, k0 + 2u, k0 + 3u), vec4<u32>(K - 1u));
    let start = s * ROWS;
    let end = min(start + ROWS, M);

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var m = start; m < end; m++) {
        let ra = m * K;
        var av = vec4<f32>(a[ra + k.x], a[ra + k.y], a[ra + k.z], a[ra + k.w]);
        if (HAS_A_SCALE == 1u) {
            let rs = (m / A_SCALE_ROWS) * K;
            av *= vec4<f32>(a_scale[rs + k.x], a_scale[rs + k.y], a_scale[rs + k.z], a_scale[rs + k.w]);
        }
        let rc = m * N;
        let dv = vec4<f32>(dc[rc + n.x], dc[rc + n.y], dc[rc + n.z], dc[rc + n.w]);
        acc0 += av.x * dv;
        acc1 += av.y * dv;
        acc2 += av.z * dv;
        acc3 += av.w * dv;
    }
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    let base = s * K * N;
    for (var i = 0u; i < 4u; i++) {
        let kk = k0 + i;
        if (kk >= K) {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let nn = n0 + j;
            if (nn < N) {
                partial[base + kk * N + nn] = accs[i][j];
            }
        }
    }
}
