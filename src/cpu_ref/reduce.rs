//! CPU twin of the `reduce` kernels.

use crate::ops::SumPartialsParams;

/// (len) = scale * sum over the parts of partial (parts, len). With `p.accumulate` the kernel adds
/// this to its output; the twin returns the value to be added.
pub fn sum_partials(p: &SumPartialsParams, partial: &[f32]) -> Vec<f32> {
    (0..p.len)
        .map(|i| {
            let s: f64 = (0..p.parts).map(|s| partial[s * p.len + i] as f64).sum();
            (s * p.scale as f64) as f32
        })
        .collect()
}

/// `y[i] += x[i]` for i < total.
pub fn add_inplace(total: usize, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y[..total].iter_mut().zip(&x[..total]) {
        *yi += *xi;
    }
}
