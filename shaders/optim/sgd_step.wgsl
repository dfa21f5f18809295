// sgd_step: SGD with momentum (PyTorch semantics) over the flat parameter buffer:
//   g = clip * grad + WEIGHT_DECAY * p (decayed parameters only)
//   v = MOMENTUM * v + g;  p -= lr * (NESTEROV ? g + MOMENTUM * v : v)
//
// Bindings: 0 grads  1 hyper (lr, -, -, max_norm)  2 norm2  3 params  4 velocity. Thread: one
// parameter.

override TOTAL: u32;
override DECAY_END: u32;
override MOMENTUM: f32 = 0.9;
override NESTEROV: u32 = 0u;
override WEIGHT_DECAY: f32 = 0.0;

@group(0) @binding(0) var<storage, read> grads: array<f32>;
@group(0) @binding(1) var<storage, read> hyper: array<f32>;
@group(0) @binding(2) var<storage, read> norm2: array<f32>;
@group(0) @binding(3) var<storage, read_write> params: array<f32>;
@group(0) @binding(4) var<storage, read_write> velocity: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= TOTAL) {
        return;
    }
    let p = params[i];
    var g = grads[i] * clip_scale(hyper[3], norm2[0]);
    if (i < DECAY_END) {
        g += WEIGHT_DECAY * p;
    }
    let v = MOMENTUM * velocity[i] + g;
    velocity[i] = v;
    var d = v;
    if (NESTEROV == 1u) {
        d = g + MOMENTUM * v;
    }
    params[i] = p - hyper[0] * d;
}
