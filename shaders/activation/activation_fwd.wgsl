// activation_fwd: y = act(x) elementwise, the unfused activation (where no kernel epilogue can
// take it, and for tests of the pieces). ACT as in common.wgsl: 0 none, 1 swish, 2 ReLU6,
// 3 sigmoid.
//
// Bindings: 0 x (TOTAL), 1 y (TOTAL). Thread: one element.

override TOTAL: u32;
override ACT: u32 = 0u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= TOTAL) {
        return;
    }
    y[i] = activate(x[i], ACT);
}
