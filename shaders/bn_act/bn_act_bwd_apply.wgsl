// bn_act_bwd_apply: second pass of training-mode BatchNorm + activation backward, the gradient of
// the BatchNorm input:
//     dz = gamma * invstd * (u - dbeta / M - xhat * dgamma / M)
// with xhat, u and the gradient g reaching y exactly as in bn_act_bwd_reduce.wgsl, and (dgamma,
// dbeta) the finished sums of its partials. ACCUMULATE = 1 adds into dz (z also feeds another
// consumer whose gradient is already there).
//
// Bindings: 0 dy          (M, C)       read when HAS_DY = 1 (else any buffer)
//           1 dy_pool     (N, C)       read when HAS_DY_POOL = 1 (else any buffer)
//           2 z           (M, C)
//           3 stats       (2C)         batch mean then invstd
//           4 gamma_beta  (2C)         gamma then beta
//           5 seed        (u32 array)  seed[0] = the step's seed, read when DROP_PATH = 1
//           6 sums        (2C)         dgamma then dbeta
//           7 dz          (M, C)
// Thread: one element, channels fastest.

override M: u32;
override C: u32;
override ACT: u32 = 0u;
override HAS_DY: u32 = 1u;
override HAS_DY_POOL: u32 = 0u;
override ROWS_PER_SAMPLE: u32 = 1u;
override DROP_PATH: u32 = 0u;
override SURVIVAL: f32 = 1.0;
override SALT: u32 = 0u;
override ACCUMULATE: u32 = 0u;

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> dy_pool: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> gamma_beta: array<f32>;
@group(0) @binding(5) var<storage, read> seed: array<u32>;
@group(0) @binding(6) var<storage, read> sums: array<f32>;
@group(0) @binding(7) var<storage, read_write> dz: array<f32>;

// The gradient reaching y at (row, c); identical in bn_act_bwd_reduce.wgsl.
fn grad_y(row: u32, c: u32) -> f32 {
    let n = row / ROWS_PER_SAMPLE;
    var g = 0.0;
    if (HAS_DY == 1u) {
        g = dy[row * C + c];
    }
    if (HAS_DY_POOL == 1u) {
        g += dy_pool[n * C + c] * (1.0 / f32(ROWS_PER_SAMPLE));
    }
    if (DROP_PATH == 1u) {
        g = select(0.0, g / SURVIVAL, uniform01(seed[0], SALT, n) < SURVIVAL);
    }
    return g;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= M * C) {
        return;
    }
    let c = i % C;
    let row = i / C;
    let invstd = stats[C + c];
    let gamma = gamma_beta[c];
    let xhat = (z[i] - stats[c]) * invstd;
    let u = grad_y(row, c) * activate_grad(gamma * xhat + gamma_beta[C + c], ACT);
    let inv_m = 1.0 / f32(M);
    var v = gamma * invstd * (u - sums[C + c] * inv_m - xhat * (sums[c] * inv_m));
    if (ACCUMULATE == 1u) {
        v += dz[i];
    }
    dz[i] = v;
}
