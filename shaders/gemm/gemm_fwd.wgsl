// gemm_fwd: out = act((A * a_scale) x B + bias) + residual. A 1x1 convolution in NHWC is this GEMM
// with A = (N*H*W, Cin) and B = the (Cin, Cout) weights; so are the squeeze-excite FCs and the
// classifier. BatchNorm arrives folded into B and bias.
//
// Bindings: 0 a         (M, K)
//           1 b         (K, N)
//           2 bias      (N)                     read when HAS_BIAS = 1
//           3 residual  (M, N)                  added after the activation when HAS_RESIDUAL = 1
//           4 a_scale   (M / A_SCALE_ROWS, K)   multiplies A's rows per image when HAS_A_SCALE = 1:
//                                               the squeeze-excite gate, fused into the project conv
//           5 out       (M, N)
// Thread: a 4 x 4 register tile (4 rows, 4 columns), column blocks fastest. No barriers and no
// workgroup memory: the variant for CPU adapters, correct everywhere.
// Tensors are stored as `Store` (f32, or f16 for the f16 inference path; see the prelude in
// src/gpu/kernels.rs); arithmetic is f32.

override M: u32;
override N: u32;
override K: u32;
override ACT: u32 = 0u;
override HAS_BIAS: u32 = 0u;
override HAS_RESIDUAL: u32 = 0u;
override HAS_A_SCALE: u32 = 0u;
override A_SCALE_ROWS: u32 = 1u;

@group(0) @binding(0) var<storage, read> a: array<Store>;
@group(0) @binding(1) var<storage, read> b: array<Store>;
@group(0) @binding(2) var<storage, read> bias: array<Store>;
@group(0) @binding(3) var<storage, read> residual: array<Store>;
@group(0) @binding(4) var<storage, read> a_scale: array<Store>;
@group(0) @binding(5) var<storage, read_write> out: array<Store>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let nb = (N + 3u) / 4u;
    let mb = (M + 3u) / 4u;
    if (t >= nb * mb) {
        return;
    }
    let c0 = (t % nb) * 4u;
    let r0 = (t / nb) * 4u;
    // Rows and columns past the edge are clamped for loads and never stored.
    let r = min(vec4<u32>(r0, r0 + 1u, r0 + 2u, r0 + 3u), vec4<u32>(M - 1u));
    let c = min(vec4<u32>(c0, c0 + 1u, c0 + 2u, c0 + 3u), vec4<u32>(N - 1u));
    let ra = r * K;
    let rs = (r / A_SCALE_ROWS) * K;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k = 0u; k < K; k++) {
        let kb = k * N;
        let bv = vec4<f32>(vec4<Store>(b[kb + c.x], b[kb + c.y], b[kb + c.z], b[kb + c.w]));
        var av = vec4<f32>(vec4<Store>(a[ra.x + k], a[ra.y + k], a[ra.z + k], a[ra.w + k]));
        if (HAS_A_SCALE == 1u) {
            av *= vec4<f32>(vec4<Store>(a_scale[rs.x + k], a_scale[rs.y + k], a_scale[rs.z + k], a_scale[rs.w + k]));
        }
        acc0 += av.x * bv;
        acc1 += av.y * bv;
        acc2 += av.z * bv;
        acc3 += av.w * bv;
    }

    var bias_v = vec4<f32>(0.0);
    if (HAS_BIAS == 1u) {
        bias_v = vec4<f32>(vec4<Store>(bias[c.x], bias[c.y], bias[c.z], bias[c.w]));
    }
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let row = r0 + i;
        if (row >= M) {
            break;
        }
        let v = accs[i] + bias_v;
        for (var j = 0u; j < 4u; j++) {
            let col = c0 + j;
            if (col < N) {
                var o = activate(v[j], ACT);
                if (HAS_RESIDUAL == 1u) {
                    o += f32(residual[row * N + col]);
                }
                out[row * N + col] = to_store(o);
            }
        }
    }
}
