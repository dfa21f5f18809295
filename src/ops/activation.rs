//! Elementwise activation and its backward, unfused: for activations no kernel epilogue can take,
//! and for tests of the pieces.

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Kernel};
use crate::ops::Activation;

/// `y = act(x)` over `total` elements.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationParams {
    /// Elements of x, y (and dy, dx).
    pub total: usize,
    /// The activation applied (forward) or differentiated (backward).
    pub act: Activation,
    /// [`activation_bwd`] adds into `dx` instead of overwriting it.
    pub accumulate: bool,
}

fn check(p: &ActivationParams, bufs: &[&GpuBuffer], out: &GpuBuffer) -> Result<()> {
    for b in bufs.iter().chain([&out]) {
        if b.len < p.total {
            return Err(Error::Shape { what: "activation buffer".into(), expected: vec![p.total], got: vec![b.len] });
        }
    }
    if bufs.iter().any(|b| b.same_buffer(out)) {
        return Err(Error::invalid("activation: the output shares a wgpu buffer with an input"));
    }
    Ok(())
}

/// Records `y = act(x)`.
pub fn activation_fwd(gpu: &Gpu, p: &ActivationParams, x: &GpuBuffer, y: &GpuBuffer) -> Result<Dispatch> {
    check(p, &[x], y)?;
    let c = [("TOTAL", p.total as f64), ("ACT", p.act as u32 as f64)];
    let n = p.total as u64;
    Ok(Dispatch::new(gpu, Kernel::ActivationFwd, &c, &[x, y], n, "activation_fwd")?.with_cost(4 * n, 8 * n))
}

/// Records `dx = dy * act'(x)` (`x` is the pre-activation), added into `dx` when `p.accumulate`.
pub fn activation_bwd(
    gpu: &Gpu,
    p: &ActivationParams,
    x: &GpuBuffer,
    dy: &GpuBuffer,
    dx: &GpuBuffer,
) -> Result<Dispatch> {
    check(p, &[x, dy], dx)?;
    let c = [("TOTAL", p.total as f64), ("ACT", p.act as u32 as f64), ("ACCUMULATE", p.accumulate as u32 as f64)];
    let n = p.total as u64;
    Ok(Dispatch::new(gpu, Kernel::ActivationBwd, &c, &[x, dy, dx], n, "activation_bwd")?
        .with_cost(6 * n, 4 * n * (3 + p.accumulate as u64)))
}
