// activation_bwd: dx = dy * act'(x), with x the PRE-activation saved by the forward (ReLU6 passes
// the gradient strictly inside (0, 6), as PyTorch). ACCUMULATE = 1 adds into dx (x also feeds
// another consumer whose gradient is already there).
//
// Bindings: 0 x (TOTAL), 1 dy (TOTAL), 2 dx (TOTAL). Thread: one element.

override TOTAL: u32;
override ACT: u32 = 0u;
override ACCUMULATE: u32 = 0u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= TOTAL) {
        return;
    }
    var v = dy[i] * activate_grad(x[i], ACT);
    if (ACCUMULATE == 1u) {
        v += dx[i];
    }
    dx[i] = v;
}
