// bn_eval_scale_shift: inference-mode BatchNorm's per-channel (scale, shift) from the parameters and
// running statistics, for evaluating the training parameters without folding them into the convs:
// invstd = 1 / sqrt(var + EPS), scale = gamma * invstd, shift = beta - mean * scale (the formula of
// bn_stats_finish, with the running statistics in place of the batch's).
//
// Bindings: 0 gamma_beta (2C: gamma then beta), 1 running (2C: mean then var), 2 scale_shift (2C:
// scale then shift). Thread: one channel.

override C: u32;
override EPS: f32;

@group(0) @binding(0) var<storage, read> gamma_beta: array<f32>;
@group(0) @binding(1) var<storage, read> running: array<f32>;
@group(0) @binding(2) var<storage, read_write> scale_shift: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = linear_id(gid, nwg);
    if (c >= C) {
        return;
    }
    let invstd = 1.0 / sqrt(running[C + c] + EPS);
    let scale = gamma_beta[c] * invstd;
    scale_shift[c] = scale;
    scale_shift[C + c] = gamma_beta[C + c] - running[c] * scale;
}
