//! Generic reductions shared by the backward passes: the fixed-order sum of per-chunk partials
//! (the second stage of every deterministic weight-gradient or statistics reduction) and the
//! in-place add that accumulates gradients.

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Kernel};

/// `out[i] (+)= scale * sum_{s < parts} partial[s * len + i]`, the chunks added in order s = 0, 1, ...
#[derive(Clone, Debug, PartialEq)]
pub struct SumPartialsParams {
    /// Number of partial-sum chunks (rows of `partial`).
    pub parts: usize,
    /// Elements per chunk (= elements of `out`).
    pub len: usize,
    /// Multiplies the sum (1 for a plain sum; 1/count for a mean).
    pub scale: f32,
    /// Add into `out` instead of overwriting it.
    pub accumulate: bool,
}

impl SumPartialsParams {
    /// A plain sum (scale 1, overwrite).
    pub fn new(parts: usize, len: usize) -> Self {
        SumPartialsParams { parts, len, scale: 1.0, accumulate: false }
    }
    /// Elements of `partial`: parts * len.
    pub fn partial_len(&self) -> usize {
        self.parts * self.len
    }
}

/// Elements per invocation of `sum_partials` and `add_inplace` (see the WGSL headers).
const ELEMS: usize = 4;

/// Errors unless `b` holds at least `needed` values (a shape mistake in the caller's graph).
pub(crate) fn check_len(what: &str, b: &GpuBuffer, needed: usize) -> Result<()> {
    if b.len < needed {
        return Err(Error::Shape { what: what.into(), expected: vec![needed], got: vec![b.len] });
    }
    Ok(())
}

fn check_distinct(kernel: &str, a: &GpuBuffer, b: &GpuBuffer) -> Result<()> {
    if a.same_buffer(b) {
        return Err(Error::invalid(format!("{kernel}: input and output must be different buffers")));
    }
    Ok(())
}

/// Records `out (len) (+)= scale * sum of partial (parts, len)` over the parts, in order.
pub fn sum_partials(gpu: &Gpu, p: &SumPartialsParams, partial: &GpuBuffer, out: &GpuBuffer) -> Result<Dispatch> {
    check_len("sum_partials partial (parts, len)", partial, p.partial_len())?;
    check_len("sum_partials out (len)", out, p.len)?;
    check_distinct("sum_partials", partial, out)?;
    let c = [
        ("PARTS", p.parts as f64),
        ("LEN", p.len as f64),
        ("SCALE", p.scale as f64),
        ("ACCUMULATE", p.accumulate as u32 as f64),
    ];
    let threads = p.len.div_ceil(ELEMS) as u64;
    let bytes = 4 * (p.partial_len() + p.len * (1 + p.accumulate as usize)) as u64;
    Ok(Dispatch::new(gpu, Kernel::SumPartials, &c, &[partial, out], threads, "sum_partials")?
        .with_cost(p.partial_len() as u64, bytes))
}

/// Records `y[i] += x[i]` for i < total (gradient accumulation).
pub fn add_inplace(gpu: &Gpu, total: usize, x: &GpuBuffer, y: &GpuBuffer) -> Result<Dispatch> {
    check_len("add_inplace x", x, total)?;
    check_len("add_inplace y", y, total)?;
    check_distinct("add_inplace", x, y)?;
    let threads = total.div_ceil(ELEMS) as u64;
    Ok(Dispatch::new(gpu, Kernel::AddInplace, &[("TOTAL", total as f64)], &[x, y], threads, "add_inplace")?
        .with_cost(total as u64, 12 * total as u64))
}
