//! Row-wise softmax (probabilities from logits).

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Kernel};

/// Softmax over each row of a (rows, cols) matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxParams {
    /// Rows (the batch).
    pub rows: usize,
    /// Columns (the classes): each row sums to 1.
    pub cols: usize,
}

/// Records `y (rows, cols) = softmax(x)` along each row, with the row's max subtracted first.
pub fn softmax_fwd(gpu: &Gpu, p: &SoftmaxParams, x: &GpuBuffer, y: &GpuBuffer) -> Result<Dispatch> {
    let c = [("ROWS", p.rows as f64), ("COLS", p.cols as f64)];
    let n = (p.rows * p.cols) as u64;
    Ok(Dispatch::new(gpu, Kernel::SoftmaxFwd, &c, &[x, y], p.rows as u64, "softmax_fwd")?.with_cost(3 * n, 8 * n))
}
