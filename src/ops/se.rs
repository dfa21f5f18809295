//! Squeeze-excite backward through the gate. The forward needs no kernel of its own: the squeeze
//! is `global_avg_pool`, the excitation FCs are `gemm_fwd`, and the gate multiplies the project
//! conv's input as `gemm_fwd` reads it (`a_scale`).

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Kernel};
use crate::ops::reduce::{sum_partials, SumPartialsParams};
use crate::ops::KernelVariant;

/// Gated tensor (n, hw, c) = y (n, hw, c) * gate (n, c).
#[derive(Clone, Debug, PartialEq)]
pub struct SeGateParams {
    /// Images.
    pub n: usize,
    /// Rows per image (H*W).
    pub hw: usize,
    /// Channels, of y and of the gate.
    pub c: usize,
    /// Rows of H*W per partial sum of the gate gradient.
    pub rows: usize,
    /// The storage-buffer kernel (`Scalar`) or the texel one (CPU adapters, C a multiple of 4).
    pub variant: KernelVariant,
}

impl SeGateParams {
    /// Chunks of 64 rows, `Auto` variant.
    pub fn new(n: usize, hw: usize, c: usize) -> Self {
        SeGateParams { n, hw, c, rows: 64, variant: KernelVariant::Auto }
    }
    /// The kernel that runs on `gpu`: texels on CPU adapters when C is a multiple of 4 (forced,
    /// on any adapter), else the storage-buffer kernel.
    pub fn kernel_variant(&self, gpu: &Gpu) -> KernelVariant {
        self.variant.texel_or_scalar(gpu, self.c.is_multiple_of(4))
    }
    /// Partial sums per image and channel: ceil(hw / rows).
    pub fn chunks(&self) -> usize {
        self.hw.div_ceil(self.rows)
    }
    /// Elements of the (chunks, n, c) partial-sum scratch of the gate gradient.
    pub fn partial_len(&self) -> usize {
        self.chunks() * self.n * self.c
    }
}

/// Records `dy = d_gated * gate` and `d_gate = sum_hw d_gated * y` (partials, then their sum).
#[allow(clippy::too_many_arguments)] // one argument per binding of the kernels
pub fn se_gate_bwd(
    gpu: &Gpu,
    p: &SeGateParams,
    d_gated: &GpuBuffer,
    y: &GpuBuffer,
    gate: &GpuBuffer,
    dy: &GpuBuffer,
    partial: &GpuBuffer,
    d_gate: &GpuBuffer,
) -> Result<[Dispatch; 2]> {
    let c = [("N", p.n as f64), ("HW", p.hw as f64), ("C", p.c as f64), ("ROWS", p.rows as f64)];
    let total = (p.n * p.hw * p.c) as u64;
    let (kernel, threads) = match p.kernel_variant(gpu) {
        KernelVariant::Texel => (Kernel::SeGateBwdTexel, p.partial_len() / 4),
        _ => (Kernel::SeGateBwd, p.partial_len()),
    };
    let part = Dispatch::new(gpu, kernel, &c, &[d_gated, y, gate, dy, partial], threads as u64, "se_gate_bwd")?
        .with_cost(3 * total, 16 * total);
    let sum = sum_partials(
        gpu,
        &SumPartialsParams { parts: p.chunks(), len: p.n * p.c, scale: 1.0, accumulate: false },
        partial,
        d_gate,
    )?;
    Ok([part, sum])
}
