// bn_act_bwd_texel: the two passes of bn_act_bwd (see bn_act_bwd_reduce.wgsl and
// bn_act_bwd_apply.wgsl) for CPU adapters, C a multiple of 4, in one module so that they share
// grad_y4: dy and z are read as texels (vector gathers where the buffer kernels pay a per-lane loop
// per value) and a thread takes 4 channels.
//
// reduce: per chunk of CHUNK rows and 4 channels, the sums of u * xhat and u into partial.
// apply:  dz from the finished sums, 4 channels of ROWS_PT rows per thread, so the per-channel
//         values are loaded once for all of them.
//
// Bindings: 0 dy          (M, C)       texels, read when HAS_DY = 1
//           1 dy_pool     (N, C)       read when HAS_DY_POOL = 1
//           2 z           (M, C)       texels
//           3 stats       (2C)         batch mean then invstd
//           4 gamma_beta  (2C)         gamma then beta
//           5 seed        (u32 array)  seed[0] = the step's seed, read when DROP_PATH = 1
//           6 partial     (S, 2, C)    reduce's output, S = ceil(M / CHUNK)
//           6 sums        (2C)         apply's input: dgamma then dbeta
//           7 dz          (M, C)       apply's output

override M: u32;
override C: u32;
override CHUNK: u32 = 1u;
override ACT: u32 = 0u;
override HAS_DY: u32 = 1u;
override HAS_DY_POOL: u32 = 0u;
override ROWS_PER_SAMPLE: u32 = 1u;
override DROP_PATH: u32 = 0u;
override SURVIVAL: f32 = 1.0;
override SALT: u32 = 0u;
override ACCUMULATE: u32 = 0u;

@group(0) @binding(0) var dy: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var<storage, read> dy_pool: array<vec4<f32>>;
@group(0) @binding(2) var z: texture_storage_2d<rgba32float, read>;
@group(0) @binding(3) var<storage, read> stats: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> gamma_beta: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> seed: array<u32>;
@group(0) @binding(6) var<storage, read_write> partial: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> sums: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> dz: array<vec4<f32>>;

const ROWS_PT: u32 = 4u;

// The gradient reaching y at (row, channels 4q..4q+3).
fn grad_y4(row: u32, q: u32, step_seed: u32) -> vec4<f32> {
    let c4 = C / 4u;
    let n = row / ROWS_PER_SAMPLE;
    var g = vec4<f32>(0.0);
    if (HAS_DY == 1u) {
        g = textureLoad(dy, texel(row * c4 + q));
    }
    if (HAS_DY_POOL == 1u) {
        g += dy_pool[n * c4 + q] * (1.0 / f32(ROWS_PER_SAMPLE));
    }
    if (DROP_PATH == 1u) {
        g = select(vec4<f32>(0.0), g / SURVIVAL, uniform01(step_seed, SALT, n) < SURVIVAL);
    }
    return g;
}

fn step_seed() -> u32 {
    if (DROP_PATH == 1u) {
        return seed[0];
    }
    return 0u;
}

@compute @workgroup_size(WG)
fn reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let c4 = C / 4u;
    let chunks = (M + CHUNK - 1u) / CHUNK;
    if (t >= chunks * c4) {
        return;
    }
    let q = t % c4;
    let s = t / c4;
    let mean = stats[q];
    let invstd = stats[c4 + q];
    let gamma = gamma_beta[q];
    let beta = gamma_beta[c4 + q];
    let sd = step_seed();
    let end = min(s * CHUNK + CHUNK, M);
    var sum_u = vec4<f32>(0.0);
    var sum_u_xhat = vec4<f32>(0.0);
    for (var r = s * CHUNK; r < end; r++) {
        let xhat = (textureLoad(z, texel(r * c4 + q)) - mean) * invstd;
        let u = grad_y4(r, q, sd) * activate_grad4(gamma * xhat + beta, ACT);
        sum_u += u;
        sum_u_xhat += u * xhat;
    }
    partial[(s * 2u) * c4 + q] = sum_u_xhat;
    partial[(s * 2u + 1u) * c4 + q] = sum_u;
}

@compute @workgroup_size(WG)
fn apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let c4 = C / 4u;
    if (t >= c4 * ((M + ROWS_PT - 1u) / ROWS_PT)) {
        return;
    }
    let q = t % c4;
    let row0 = (t / c4) * ROWS_PT;
    let mean = stats[q];
    let invstd = stats[c4 + q];
    let gamma = gamma_beta[q];
    let beta = gamma_beta[c4 + q];
    let inv_m = 1.0 / f32(M);
    let dbeta_m = sums[c4 + q] * inv_m;
    let dgamma_m = sums[q] * inv_m;
    let sd = step_seed();
    for (var r = row0; r < min(row0 + ROWS_PT, M); r++) {
        let i = r * c4 + q;
        let xhat = (textureLoad(z, texel(i)) - mean) * invstd;
        let u = grad_y4(r, q, sd) * activate_grad4(gamma * xhat + beta, ACT);
        var v = gamma * invstd * (u - dbeta_m - xhat * dgamma_m);
        if (ACCUMULATE == 1u) {
            v += dz[i];
        }
        dz[i] = v;
    }
}
