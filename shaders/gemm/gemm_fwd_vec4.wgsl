// gemm_fwd_vec4: gemm_fwd for K and N multiples of 4 (every EfficientNet 1x1 conv), reading and
// writing whole vec4s. Per 4 steps of K a thread loads 4 vec4 of A and 4 of B and does 64 FMAs,
// where the scalar kernel loads 32 scalars for the same work: on lavapipe every storage-buffer
// load is a per-lane loop, so loads, not FMAs, bound the GEMM. Same semantics and bindings as
// gemm_fwd (see gemm_fwd.wgsl), with a, b, residual, a_scale and out viewed as vec4 arrays.
//
// Thread: 4 rows x 4 columns (one vec4 of the output row), column blocks fastest.
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

@group(0) @binding(0) var<storage, read> a: array<vec4<Store>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<Store>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<Store>>;
@group(0) @binding(3) var<storage, read> residual: array<vec4<Store>>;
@group(0) @binding(4) var<storage, read> a_scale: array<vec4<Store>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<Store>>;

fn act4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(activate(v.x, ACT), activate(v.y, ACT), activate(v.z, ACT), activate(v.w, ACT));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let n4 = N / 4u;
    let k4 = K / 4u;
    let mb = (M + 3u) / 4u;
    if (t >= n4 * mb) {
        return;
    }
    let cb = t % n4;
    let r0 = (t / n4) * 4u;
    let r = min(vec4<u32>(r0, r0 + 1u, r0 + 2u, r0 + 3u), vec4<u32>(M - 1u));
    let ra = r * k4;
    let rs = (r / A_SCALE_ROWS) * k4;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kq = 0u; kq < k4; kq++) {
        let kb = kq * 4u * n4 + cb;
        let b0 = vec4<f32>(b[kb]);
        let b1 = vec4<f32>(b[kb + n4]);
        let b2 = vec4<f32>(b[kb + 2u * n4]);
        let b3 = vec4<f32>(b[kb + 3u * n4]);
        var a0 = vec4<f32>(a[ra.x + kq]);
        var a1 = vec4<f32>(a[ra.y + kq]);
        var a2 = vec4<f32>(a[ra.z + kq]);
        var a3 = vec4<f32>(a[ra.w + kq]);
        if (HAS_A_SCALE == 1u) {
            a0 *= vec4<f32>(a_scale[rs.x + kq]);
            a1 *= vec4<f32>(a_scale[rs.y + kq]);
            a2 *= vec4<f32>(a_scale[rs.z + kq]);
            a3 *= vec4<f32>(a_scale[rs.w + kq]);
        }
        acc0 += a0.x * b0 + a0.y * b1 + a0.z * b2 + a0.w * b3;
        acc1 += a1.x * b0 + a1.y * b1 + a1.z * b2 + a1.w * b3;
        acc2 += a2.x * b0 + a2.y * b1 + a2.z * b2 + a2.w * b3;
        acc3 += a3.x * b0 + a3.y * b1 + a3.z * b2 + a3.w * b3;
    }
    var bias_v = vec4<f32>(0.0);
    if (HAS_BIAS == 1u) {
        bias_v = vec4<f32>(bias[cb]);
    }
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let row = r0 + i;
        if (row >= M) {
            break;
        }
        let o = row * n4 + cb;
        var v = act4(accs[i] + bias_v);
        if (HAS_RESIDUAL == 1u) {
            v += vec4<f32>(residual[o]);
        }
        out[o] = to_store4(v);
    }
}
