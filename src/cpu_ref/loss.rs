//! CPU twin of the `loss` kernel.

use crate::ops::SoftmaxCrossEntropyParams;

/// What `ops::softmax_cross_entropy` writes.
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropy {
    /// Per-row loss (rows).
    pub losses: Vec<f32>,
    /// Gradient of the mean loss (rows, classes).
    pub dlogits: Vec<f32>,
    /// The batch mean of `losses`.
    pub mean_loss: f32,
}

/// Label-smoothed softmax cross-entropy: q = (1 - eps) * onehot + eps / k, loss = -sum q log p,
/// dlogits = (p - q) / n. Targets >= k are clamped to k - 1, as the kernel does.
pub fn softmax_cross_entropy(p: &SoftmaxCrossEntropyParams, logits: &[f32], target: &[u32]) -> CrossEntropy {
    let (n, k) = (p.rows, p.classes);
    let eps = p.smoothing as f64;
    let mut out = CrossEntropy { losses: vec![0.0; n], dlogits: vec![0.0; n * k], mean_loss: 0.0 };
    let mut total = 0f64;
    for r in 0..n {
        let row = &logits[r * k..(r + 1) * k];
        let t = (target[r] as usize).min(k - 1);
        let mx = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
        let log_sum = row.iter().map(|&v| (v as f64 - mx).exp()).sum::<f64>().ln();
        let mut loss = 0f64;
        for (j, &v) in row.iter().enumerate() {
            let log_p = v as f64 - mx - log_sum;
            let q = eps / k as f64 + if j == t { 1.0 - eps } else { 0.0 };
            loss -= q * log_p;
            out.dlogits[r * k + j] = ((log_p.exp() - q) / n as f64) as f32;
        }
        out.losses[r] = loss as f32;
        total += loss;
    }
    out.mean_loss = (total / n as f64) as f32;
    out
}
