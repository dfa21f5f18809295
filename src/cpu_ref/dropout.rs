//! CPU twin of the `dropout` kernel: the same counter-based mask, bit for bit.

use crate::ops::rng::uniform01;
use crate::ops::DropoutParams;

/// y = x * keep(i) / (1 - rate), keep(i) = uniform01(seed, salt, i) >= rate. Also the backward
/// (applied to dy with the same seed and salt).
pub fn dropout_fwd(p: &DropoutParams, x: &[f32], seed: u32) -> Vec<f32> {
    x[..p.total]
        .iter()
        .enumerate()
        .map(
            |(i, &v)| {
                if uniform01(seed, p.salt, i as u32) >= p.rate {
                    (v as f64 / (1.0 - p.rate as f64)) as f32
                } else {
                    0.0
                }
            },
        )
        .collect()
}
