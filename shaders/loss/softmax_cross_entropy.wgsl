// softmax_cross_entropy: the training loss over N rows of K logits, with label smoothing
// eps = SMOOTHING: the target distribution is q = (1 - eps) * onehot(target) + eps / K, and
//     log p = logits - max - log(sum exp(logits - max))   (max-subtracted: no overflow)
//     losses[n] = -sum_k q_k * log p_k
//     dlogits   = (p - q) / N                              (the gradient of the batch MEAN loss)
// The mean loss itself is sum_partials(parts = N, len = 1, scale = 1 / N) over `losses`.
// A target >= K is clamped to K - 1 so no read or write leaves the row; the host validates targets
// before upload, so this only keeps a bad label from touching memory out of bounds.
//
// Bindings: 0 logits   (N, K)
//           1 labels   (N) u32 class indices (the recorder's `target`; `target` is reserved in WGSL)
//           2 losses   (N)
//           3 dlogits  (N, K)
// Thread: one row (N is the batch, small), three streaming passes over its K logits: max, sum of
// exponentials, then loss and gradient.

override N: u32;
override K: u32;
override SMOOTHING: f32 = 0.0;

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read_write> losses: array<f32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_id(gid, nwg);
    if (row >= N) {
        return;
    }
    let base = row * K;
    let t = min(labels[row], K - 1u);
    var mx = logits[base];
    for (var k = 1u; k < K; k++) {
        mx = max(mx, logits[base + k]);
    }
    var sum = 0.0;
    for (var k = 0u; k < K; k++) {
        sum += exp(logits[base + k] - mx);
    }
    let log_sum = log(sum);
    let q_off = SMOOTHING / f32(K);
    let q_on = 1.0 - SMOOTHING + q_off;
    let inv_n = 1.0 / f32(N);
    var loss = 0.0;
    for (var k = 0u; k < K; k++) {
        let log_p = logits[base + k] - mx - log_sum;
        let q = select(q_off, q_on, k == t);
        loss -= q * log_p;
        dlogits[base + k] = (exp(log_p) - q) * inv_n;
    }
    losses[row] = loss;
}
