// ema_update: exponential moving average of the weights, ema = DECAY * ema + (1 - DECAY) * params
// (used for evaluation when on). Bindings: 0 params (TOTAL)  1 ema (TOTAL). Thread: one value.

override TOTAL: u32;
override DECAY: f32;

@group(0) @binding(0) var<storage, read> params: array<f32>;
@group(0) @binding(1) var<storage, read_write> ema: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= TOTAL) {
        return;
    }
    ema[i] = DECAY * ema[i] + (1.0 - DECAY) * params[i];
}
