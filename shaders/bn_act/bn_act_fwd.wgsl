// bn_act_fwd: y = act(x * scale[c] + shift[c]) over an NHWC tensor: BatchNorm with its statistics
// folded into a per-channel scale and shift, then the activation. The unfused path (inference
// folds BN into the conv weights instead).
//
// Bindings: 0 x (TOTAL = N*H*W*C), 1 scale (C), 2 shift (C), 3 y (TOTAL). Thread: one element.

override TOTAL: u32;
override C: u32;
override ACT: u32 = 0u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> shift: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= TOTAL) {
        return;
    }
    let c = i % C;
    y[i] = activate(x[i] * scale[c] + shift[c], ACT);
}
