//! Inverted dropout with a regenerated mask: `y = x * keep(i) / (1 - rate)` where
//! `keep(i) = uniform01(seed, salt, i) >= rate` (`ops::rng`). Nothing is stored between forward
//! and backward: the backward is the same kernel, with the same seed and salt, applied to `dy`.

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Kernel};

/// Inverted dropout over `total` elements.
#[derive(Clone, Debug, PartialEq)]
pub struct DropoutParams {
    /// Elements of x and y.
    pub total: usize,
    /// Probability of dropping an element, in [0, 1). 0 passes `x` through unchanged.
    pub rate: f32,
    /// Distinguishes the dropout layers of one step.
    pub salt: u32,
}

/// Records `y = x * keep / (1 - rate)`; `seed[0]` (u32) is the step's seed. Its own backward:
/// call it on `dy` with the same `p` and `seed` to get `dx`.
pub fn dropout_fwd(gpu: &Gpu, p: &DropoutParams, x: &GpuBuffer, seed: &GpuBuffer, y: &GpuBuffer) -> Result<Dispatch> {
    if !(0.0..1.0).contains(&p.rate) {
        return Err(Error::invalid(format!("dropout rate must be in [0, 1), got {}", p.rate)));
    }
    for (b, len) in [(x, p.total), (seed, 1), (y, p.total)] {
        if b.len < len {
            return Err(Error::Shape { what: "dropout buffer".into(), expected: vec![len], got: vec![b.len] });
        }
    }
    if y.same_buffer(x) || y.same_buffer(seed) {
        return Err(Error::invalid("dropout: the output shares a wgpu buffer with an input"));
    }
    let c = [("TOTAL", p.total as f64), ("RATE", p.rate as f64), ("SALT", p.salt as f64)];
    let n = p.total as u64;
    Ok(Dispatch::new(gpu, Kernel::DropoutFwd, &c, &[x, seed, y], n, "dropout_fwd")?.with_cost(12 * n, 8 * n))
}
