//! CPU twin of the `pool` kernels.

use crate::ops::GlobalAvgPoolParams;

/// (n, c) = mean over hw of x (n, hw, c).
pub fn global_avg_pool_fwd(p: &GlobalAvgPoolParams, x: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; p.n * p.c];
    for n in 0..p.n {
        for c in 0..p.c {
            let s: f64 = (0..p.hw).map(|i| x[(n * p.hw + i) * p.c + c] as f64).sum();
            y[n * p.c + c] = (s / p.hw as f64) as f32;
        }
    }
    y
}
