// bn_fold_weights: folds inference-mode BatchNorm into the conv before it, on the GPU, for
// evaluating the training parameters with the inference kernels: scale = gamma / sqrt(var + EPS),
// weight' = weight * scale[o] and bias = beta - mean * scale. The weights are in the layout the
// kernels read (HWIO; depthwise (kh, kw, C); 1x1 (cin, cout)): the output channel is innermost.
//
// Bindings: 0 weight (LEN, output channel innermost), 1 gamma_beta (2C), 2 running (2C: mean then
// var), 3 folded (LEN), 4 bias (C). Thread: one weight element (the first C also write the bias).

override LEN: u32;
override C: u32;
override EPS: f32;

@group(0) @binding(0) var<storage, read> weight: array<f32>;
@group(0) @binding(1) var<storage, read> gamma_beta: array<f32>;
@group(0) @binding(2) var<storage, read> running: array<f32>;
@group(0) @binding(3) var<storage, read_write> folded: array<f32>;
@group(0) @binding(4) var<storage, read_write> bias: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= LEN) {
        return;
    }
    let o = i % C;
    let scale = gamma_beta[o] / sqrt(running[C + o] + EPS);
    folded[i] = weight[i] * scale;
    if (i < C) {
        bias[i] = gamma_beta[C + i] - running[i] * scale;
    }
}
