// adamw_step: AdamW (decoupled weight decay, PyTorch semantics) over the flat parameter buffer:
//   g = clip * grad;  m = B1 m + (1 - B1) g;  v = B2 v + (1 - B2) g^2
//   p -= lr * (m / bc1) / (sqrt(v / bc2) + EPS) + lr * WEIGHT_DECAY * p (decayed parameters only)
// bc1 = 1 - B1^t and bc2 = 1 - B2^t come from the host in hyper[1], hyper[2].
//
// Bindings: 0 grads  1 hyper (lr, bc1, bc2, max_norm)  2 norm2  3 params  4 m  5 v. Thread: one
// parameter.

override TOTAL: u32;
override DECAY_END: u32;
override B1: f32 = 0.9;
override B2: f32 = 0.999;
override EPS: f32 = 1e-8;
override WEIGHT_DECAY: f32 = 0.0;

@group(0) @binding(0) var<storage, read> grads: array<f32>;
@group(0) @binding(1) var<storage, read> hyper: array<f32>;
@group(0) @binding(2) var<storage, read> norm2: array<f32>;
@group(0) @binding(3) var<storage, read_write> params: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= TOTAL) {
        return;
    }
    let lr = hyper[0];
    var p = params[i];
    if (i < DECAY_END) {
        p -= lr * WEIGHT_DECAY * p;
    }
    let g = grads[i] * clip_scale(hyper[3], norm2[0]);
    let mi = B1 * m[i] + (1.0 - B1) * g;
    let vi = B2 * v[i] + (1.0 - B2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = p - lr * (mi / hyper[1]) / (sqrt(vi / hyper[2]) + EPS);
}
