//! CPU twin of the `softmax` kernels.

use crate::ops::SoftmaxParams;

/// Twin of `ops::softmax_fwd`: each row of `x` (rows, cols) to probabilities.
pub fn softmax_fwd(p: &SoftmaxParams, x: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; p.rows * p.cols];
    for r in 0..p.rows {
        let row = &x[r * p.cols..(r + 1) * p.cols];
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        for (i, &v) in row.iter().enumerate() {
            y[r * p.cols + i] = ((v as f64 - m).exp() / s) as f32;
        }
    }
    y
}
