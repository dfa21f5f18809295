//! Row-wise softmax (probabilities from logits).

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Kernel};

#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxParams {
    pub rows: usize,
    pub cols: usize,
}

pub fn softmax_fwd(gpu: &Gpu, p: &SoftmaxParams, x: &GpuBuffer, y: &GpuBuffer) -> Result<Dispatch> {
    let c = [("ROWS", p.rows as f64), ("COLS", p.cols as f64)];
    let n = (p.rows * p.cols) as u64;
    Ok(Dispatch::new(gpu, Kernel::SoftmaxFwd, &c, &[x, y], p.rows as u64, "softmax_fwd")?.with_cost(3 * n, 8 * n))
}
