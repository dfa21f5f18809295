// bn_act_fwd_texel: bn_act_fwd (see bn_act_fwd.wgsl: scale and shift, activation, stochastic
// depth, residual) for CPU adapters, C a multiple of 4. x and the residual are read as texels
// (vector gathers instead of per-lane loops), and a thread takes 4 channels of ROWS_PT rows, so
// its scale and shift are loaded once for all of them.
//
// Bindings: 0 x            (M, C)   texels, M = TOTAL / C
//           1 scale_shift  (2C)     scale then shift
//           2 residual     (M, C)   texels, read only when HAS_RESIDUAL = 1
//           3 seed         (u32 array, seed[0] = the step's seed) read only when DROP_PATH = 1
//           4 y            (M, C)

override TOTAL: u32;
override C: u32;
override ACT: u32 = 0u;
override HAS_RESIDUAL: u32 = 0u;
override DROP_PATH: u32 = 0u;
override ROWS_PER_SAMPLE: u32 = 1u;
override SURVIVAL: f32 = 1.0;
override SALT: u32 = 0u;

@group(0) @binding(0) var x: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var<storage, read> scale_shift: array<vec4<f32>>;
@group(0) @binding(2) var residual: texture_storage_2d<rgba32float, read>;
@group(0) @binding(3) var<storage, read> seed: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>;

const ROWS_PT: u32 = 4u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let c4 = C / 4u;
    let rows = TOTAL / C;
    if (t >= c4 * ((rows + ROWS_PT - 1u) / ROWS_PT)) {
        return;
    }
    let q = t % c4;
    let row0 = (t / c4) * ROWS_PT;
    let scale = scale_shift[q];
    let shift = scale_shift[c4 + q];
    var step_seed = 0u;
    if (DROP_PATH == 1u) {
        step_seed = seed[0];
    }
    // The 4 rows written out: as a loop, lavapipe pays masked stores of its counter each trip.
    bn_act_row(row0, q, scale, shift, step_seed);
    if (row0 + 1u < rows) {
        bn_act_row(row0 + 1u, q, scale, shift, step_seed);
    }
    if (row0 + 2u < rows) {
        bn_act_row(row0 + 2u, q, scale, shift, step_seed);
    }
    if (row0 + 3u < rows) {
        bn_act_row(row0 + 3u, q, scale, shift, step_seed);
    }
}

fn bn_act_row(r: u32, q: u32, scale: vec4<f32>, shift: vec4<f32>, step_seed: u32) {
    let i = r * (C / 4u) + q;
    var v = activate4(textureLoad(x, texel(i)) * scale + shift, ACT);
    if (DROP_PATH == 1u) {
        let keep = uniform01(step_seed, SALT, r / ROWS_PER_SAMPLE) < SURVIVAL;
        v = select(vec4<f32>(0.0), v / SURVIVAL, keep);
    }
    if (HAS_RESIDUAL == 1u) {
        v += textureLoad(residual, texel(i));
    }
    y[i] = v;
}
