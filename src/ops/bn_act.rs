//! Standalone BatchNorm (as a per-channel scale and shift) + activation over NHWC.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Kernel};
use crate::ops::Activation;

#[derive(Clone, Debug, PartialEq)]
pub struct BnActParams {
    /// Elements in the tensor (n*h*w*c).
    pub total: usize,
    pub c: usize,
    pub act: Activation,
}

/// The per-channel (scale, shift) of inference-mode BatchNorm:
/// `scale = gamma / sqrt(var + eps)`, `shift = beta - mean * scale`.
pub fn bn_scale_shift(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = gamma.iter().zip(var).map(|(g, v)| g / (v + eps).sqrt()).collect();
    let shift = beta.iter().zip(mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
    (scale, shift)
}

pub fn bn_act_fwd(
    gpu: &Gpu,
    p: &BnActParams,
    x: &GpuBuffer,
    scale: &GpuBuffer,
    shift: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<Dispatch> {
    let c = [("TOTAL", p.total as f64), ("C", p.c as f64), ("ACT", p.act as u32 as f64)];
    Ok(Dispatch::new(gpu, Kernel::BnActFwd, &c, &[x, scale, shift, y], p.total as u64, "bn_act_fwd")?
        .with_cost(2 * p.total as u64, 8 * p.total as u64))
}
