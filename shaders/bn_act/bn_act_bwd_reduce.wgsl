// bn_act_bwd_reduce: first stage of training-mode BatchNorm + activation backward: per chunk of
// CHUNK rows and per channel, the partial sums
//     partial[s][0][c] = sum u * xhat    (-> dgamma)
//     partial[s][1][c] = sum u           (-> dbeta)
// with xhat = (z - mean) * invstd, u = g * act'(gamma * xhat + beta) and g the gradient reaching
// bn_act_fwd's output y (before its residual add, whose gradient the graph routes separately):
//     g = (HAS_DY ? dy : 0) + (HAS_DY_POOL ? dy_pool[n, c] / ROWS_PER_SAMPLE : 0),
//     times keep(n) / SURVIVAL when DROP_PATH = 1 (the forward's stochastic depth, regenerated),
// n = row / ROWS_PER_SAMPLE. dy_pool is the gradient of a global average pool that read y, so the
// pool's backward costs nothing extra. sum_partials(parts = S, len = 2C) adds the chunks in a
// fixed order and yields the gamma_beta gradient (dgamma then dbeta) directly; bn_act_bwd_apply
// then forms dz. Two stages instead of atomics: deterministic.
//
// Bindings: 0 dy          (M, C)       read when HAS_DY = 1 (else any buffer)
//           1 dy_pool     (N, C)       read when HAS_DY_POOL = 1 (else any buffer)
//           2 z           (M, C)       the BatchNorm input saved by the forward
//           3 stats       (2C)         batch mean then invstd (bn_stats_finish)
//           4 gamma_beta  (2C)         gamma then beta
//           5 seed        (u32 array)  seed[0] = the step's seed, read when DROP_PATH = 1
//           6 partial     (S, 2, C)    S = ceil(M / CHUNK)
// Thread: one (chunk, channel), channels fastest (coalesced row reads), as bn_stats_partial.

override M: u32;
override C: u32;
override CHUNK: u32;
override ACT: u32 = 0u;
override HAS_DY: u32 = 1u;
override HAS_DY_POOL: u32 = 0u;
override ROWS_PER_SAMPLE: u32 = 1u;
override DROP_PATH: u32 = 0u;
override SURVIVAL: f32 = 1.0;
override SALT: u32 = 0u;

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> dy_pool: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> gamma_beta: array<f32>;
@group(0) @binding(5) var<storage, read> seed: array<u32>;
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;

// The gradient reaching y at (row, c); identical in bn_act_bwd_apply.wgsl.
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
    let t = linear_id(gid, nwg);
    let chunks = (M + CHUNK - 1u) / CHUNK;
    if (t >= chunks * C) {
        return;
    }
    let c = t % C;
    let s = t / C;
    let mean = stats[c];
    let invstd = stats[C + c];
    let gamma = gamma_beta[c];
    let beta = gamma_beta[C + c];
    let end = min(s * CHUNK + CHUNK, M);
    var sum_u = 0.0;
    var sum_u_xhat = 0.0;
    for (var r = s * CHUNK; r < end; r++) {
        let xhat = (z[r * C + c] - mean) * invstd;
        let u = grad_y(r, c) * activate_grad(gamma * xhat + beta, ACT);
        sum_u += u;
        sum_u_xhat += u * xhat;
    }
    partial[(s * 2u) * C + c] = sum_u_xhat;
    partial[(s * 2u + 1u) * C + c] = sum_u;
}

// tiled: the same partials for GPUs, with LANES row lanes per channel (see the tiled entry of
// bn_stats_partial.wgsl for why and how): a workgroup takes one chunk and CH channels, and the
// lanes' two sums meet in workgroup memory in lane order.
const CH: u32 = 16u;
const LANES: u32 = 4u;
var<workgroup> lane_u: array<f32, 64>;
var<workgroup> lane_u_xhat: array<f32, 64>;

@compute @workgroup_size(WG)
fn tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let cblocks = (C + CH - 1u) / CH;
    let chunks = (M + CHUNK - 1u) / CHUNK;
    let g = wid.x + wid.y * nwg.x;
    if (g >= chunks * cblocks) {
        return;
    }
    let s = g / cblocks;
    let j = lid % CH;
    let c = (g % cblocks) * CH + j;
    let cc = min(c, C - 1u);
    let lane = lid / CH;
    let mean = stats[cc];
    let invstd = stats[C + cc];
    let gamma = gamma_beta[cc];
    let beta = gamma_beta[C + cc];
    let end = min(s * CHUNK + CHUNK, M);
    var sum_u = 0.0;
    var sum_u_xhat = 0.0;
    for (var r = s * CHUNK + lane; r < end; r += LANES) {
        let xhat = (z[r * C + cc] - mean) * invstd;
        let u = grad_y(r, cc) * activate_grad(gamma * xhat + beta, ACT);
        sum_u += u;
        sum_u_xhat += u * xhat;
    }
    lane_u[lid] = sum_u;
    lane_u_xhat[lid] = sum_u_xhat;
    workgroupBarrier();
    if (lane == 0u && c < C) {
        let u = ((lane_u[j] + lane_u[CH + j]) + lane_u[2u * CH + j]) + lane_u[3u * CH + j];
        let ux = ((lane_u_xhat[j] + lane_u_xhat[CH + j]) + lane_u_xhat[2u * CH + j]) + lane_u_xhat[3u * CH + j];
        partial[(s * 2u) * C + c] = ux;
        partial[(s * 2u + 1u) * C + c] = u;
    }
}
