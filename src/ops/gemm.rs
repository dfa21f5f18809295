//! GEMM with a fused epilogue: 1x1 convolutions, the squeeze-excite FCs and the classifier.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Kernel};
use crate::ops::Activation;

/// `out (m, n) = act((a * a_scale) (m, k) x b (k, n) + bias (n)) + residual (m, n)`.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmParams {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub act: Activation,
    pub has_bias: bool,
    pub has_residual: bool,
    /// Rows of A per row of `a_scale` (H*W for a per-image, per-channel gate); 0 = no scale.
    pub a_scale_rows: usize,
}

impl GemmParams {
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        GemmParams { m, n, k, act: Activation::None, has_bias: false, has_residual: false, a_scale_rows: 0 }
    }
    pub fn macs(&self) -> u64 {
        (self.m * self.n * self.k) as u64
    }
    fn constants(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("M", self.m as f64),
            ("N", self.n as f64),
            ("K", self.k as f64),
            ("ACT", self.act as u32 as f64),
            ("HAS_BIAS", self.has_bias as u32 as f64),
            ("HAS_RESIDUAL", self.has_residual as u32 as f64),
            ("HAS_A_SCALE", (self.a_scale_rows > 0) as u32 as f64),
            ("A_SCALE_ROWS", self.a_scale_rows.max(1) as f64),
        ]
    }
}

/// Records the GEMM. Absent optional inputs are bound to `a` (never read).
#[allow(clippy::too_many_arguments)] // one argument per binding of the kernel
pub fn gemm_fwd(
    gpu: &Gpu,
    p: &GemmParams,
    a: &GpuBuffer,
    b: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    residual: Option<&GpuBuffer>,
    a_scale: Option<&GpuBuffer>,
    out: &GpuBuffer,
) -> Result<Dispatch> {
    let threads = (p.m.div_ceil(4) * p.n.div_ceil(4)) as u64;
    let bytes = 4 * (p.m * p.k + p.k * p.n + p.m * p.n * (1 + p.has_residual as usize)) as u64;
    let buffers = [a, b, bias.unwrap_or(a), residual.unwrap_or(a), a_scale.unwrap_or(a), out];
    Ok(Dispatch::new(gpu, Kernel::GemmFwd, &p.constants(), &buffers, threads, "gemm_fwd")?
        .with_cost(2 * p.macs(), bytes))
}
