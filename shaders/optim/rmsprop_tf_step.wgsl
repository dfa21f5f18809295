// rmsprop_tf_step: the paper's optimizer, TensorFlow's RMSProp with momentum, over the whole flat
// parameter buffer in one dispatch:
//   g   = clip * grad + WEIGHT_DECAY * p        (L2 on decayed parameters: index < DECAY_END)
//   ms  = DECAY * ms + (1 - DECAY) * g^2        (accumulator initialised to 1 by the host)
//   mom = MOMENTUM * mom + lr * g / sqrt(ms + EPS)   (eps INSIDE the square root, unlike PyTorch)
//   p  -= mom
// clip = min(1, max_norm / ||grad||) when hyper[3] (max_norm) > 0, from the squared global norm
// `norm2` that sum_squares_partial + sum_partials computed; 1 otherwise.
//
// Bindings: 0 grads (TOTAL)  1 hyper (4: lr, bias correction 1, bias correction 2, max_norm)
//           2 norm2 (1)      3 params (TOTAL)  4 ms (TOTAL)  5 mom (TOTAL)
// Thread: one parameter. The step's hyper-parameters come from a buffer, not overrides, so the
// learning-rate schedule never recompiles the pipeline.

override TOTAL: u32;
override DECAY_END: u32;
override DECAY: f32 = 0.9;
override MOMENTUM: f32 = 0.9;
override EPS: f32 = 0.001;
override WEIGHT_DECAY: f32 = 0.0;

@group(0) @binding(0) var<storage, read> grads: array<f32>;
@group(0) @binding(1) var<storage, read> hyper: array<f32>;
@group(0) @binding(2) var<storage, read> norm2: array<f32>;
@group(0) @binding(3) var<storage, read_write> params: array<f32>;
@group(0) @binding(4) var<storage, read_write> ms: array<f32>;
@group(0) @binding(5) var<storage, read_write> mom: array<f32>;

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
    let s = DECAY * ms[i] + (1.0 - DECAY) * g * g;
    ms[i] = s;
    let m = MOMENTUM * mom[i] + hyper[0] * g / sqrt(s + EPS);
    mom[i] = m;
    params[i] = p - m;
}
