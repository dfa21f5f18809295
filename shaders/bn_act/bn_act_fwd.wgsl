// bn_act_fwd: y = act(x * scale[c] + shift[c]) over an NHWC tensor: BatchNorm with its statistics
// folded into a per-channel scale and shift (bn_stats_finish in training, folded running
// statistics otherwise), then the activation, then optionally
//   - stochastic depth (DROP_PATH = 1): the whole sample n = row / ROWS_PER_SAMPLE is kept with
//     probability SURVIVAL and then scaled by 1 / SURVIVAL, else zeroed. keep(n) =
//     uniform01(seed[0], SALT, n) < SURVIVAL, a pure function of (step seed, layer salt, sample),
//     so the backward regenerates the mask instead of storing it;
//   - the residual add (HAS_RESIDUAL = 1): y += residual, after the drop (only the branch drops).
// Fusing these removes a full read and write of the activation per step.
//
// Bindings: 0 x            (TOTAL = M*C, M = N*H*W rows)
//           1 scale_shift  (2C)     scale then shift
//           2 residual     (TOTAL)  read only when HAS_RESIDUAL = 1 (else any buffer)
//           3 seed         (u32 array, seed[0] = the step's seed) read only when DROP_PATH = 1
//           4 y            (TOTAL)
// Thread: one element, channels fastest.

override TOTAL: u32;
override C: u32;
override ACT: u32 = 0u;
override HAS_RESIDUAL: u32 = 0u;
override DROP_PATH: u32 = 0u;
override ROWS_PER_SAMPLE: u32 = 1u;
override SURVIVAL: f32 = 1.0;
override SALT: u32 = 0u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> scale_shift: array<f32>;
@group(0) @binding(2) var<storage, read> residual: array<f32>;
@group(0) @binding(3) var<storage, read> seed: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= TOTAL) {
        return;
    }
    let c = i % C;
    var v = activate(x[i] * scale_shift[c] + scale_shift[C + c], ACT);
    if (DROP_PATH == 1u) {
        let n = (i / C) / ROWS_PER_SAMPLE;
        let keep = uniform01(seed[0], SALT, n) < SURVIVAL;
        v = select(0.0, v / SURVIVAL, keep);
    }
    if (HAS_RESIDUAL == 1u) {
        v += residual[i];
    }
    y[i] = v;
}
