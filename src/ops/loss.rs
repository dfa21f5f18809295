//! The training loss: softmax cross-entropy with label smoothing and its gradient.

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Kernel};

/// Logits (rows, classes), integer targets (rows).
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxCrossEntropyParams {
    /// Rows (the batch).
    pub rows: usize,
    /// Classes: logits per row.
    pub classes: usize,
    /// Label smoothing eps in [0, 1): the target distribution is (1 - eps) * onehot + eps / classes.
    pub smoothing: f32,
}

/// Records the per-row losses into `losses` (rows) and the gradient of their MEAN into `dlogits`
/// (rows, classes). The mean loss itself is `sum_partials` with
/// `SumPartialsParams { parts: rows, len: 1, scale: 1 / rows, accumulate: false }` over `losses`.
/// `target` holds `rows` u32 class indices (`Gpu::upload_u32`); the host must check them
/// (< classes): the kernel clamps an out-of-range target to `classes - 1` only to stay in bounds.
pub fn softmax_cross_entropy(
    gpu: &Gpu,
    p: &SoftmaxCrossEntropyParams,
    logits: &GpuBuffer,
    target: &GpuBuffer,
    losses: &GpuBuffer,
    dlogits: &GpuBuffer,
) -> Result<Dispatch> {
    if p.rows == 0 || p.classes == 0 {
        return Err(Error::invalid(format!("softmax_cross_entropy needs rows, classes > 0: {p:?}")));
    }
    if !(0.0..1.0).contains(&p.smoothing) {
        return Err(Error::invalid(format!("label smoothing must be in [0, 1), got {}", p.smoothing)));
    }
    let nk = p.rows * p.classes;
    for (what, b, len) in
        [("logits", logits, nk), ("target", target, p.rows), ("losses", losses, p.rows), ("dlogits", dlogits, nk)]
    {
        if b.len < len {
            return Err(Error::Shape {
                what: format!("softmax_cross_entropy {what}"),
                expected: vec![len],
                got: vec![b.len],
            });
        }
    }
    for out in [losses, dlogits] {
        if out.same_buffer(logits) || out.same_buffer(target) {
            return Err(Error::invalid("softmax_cross_entropy: an output shares a wgpu buffer with an input"));
        }
    }
    let c = [("N", p.rows as f64), ("K", p.classes as f64), ("SMOOTHING", p.smoothing as f64)];
    let buffers = [logits, target, losses, dlogits];
    Ok(Dispatch::new(gpu, Kernel::SoftmaxCrossEntropy, &c, &buffers, p.rows as u64, "softmax_cross_entropy")?
        .with_cost(8 * nk as u64, 4 * (3 * nk + 2 * p.rows) as u64))
}
