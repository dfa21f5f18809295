//! CPU twin of the `activation` kernels.

use super::{act64, act_grad64};
use crate::ops::ActivationParams;

/// y = act(x).
pub fn activation_fwd(p: &ActivationParams, x: &[f32]) -> Vec<f32> {
    x[..p.total].iter().map(|&v| act64(p.act, v as f64) as f32).collect()
}

/// dx = dy * act'(x), x the pre-activation (the contribution alone; the kernel may accumulate).
pub fn activation_bwd(p: &ActivationParams, x: &[f32], dy: &[f32]) -> Vec<f32> {
    x[..p.total].iter().zip(dy).map(|(&v, &g)| (g as f64 * act_grad64(p.act, v as f64)) as f32).collect()
}
