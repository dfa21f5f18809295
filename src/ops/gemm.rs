//! GEMM with a fused epilogue: 1x1 convolutions, the squeeze-excite FCs and the classifier.

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Dtype, Gpu, GpuBuffer, Kernel};
use crate::ops::pool::global_avg_pool_partial;
use crate::ops::reduce::{sum_partials, SumPartialsParams};
use crate::ops::{kernel_for, store_of, Activation, GlobalAvgPoolParams, KernelVariant};

/// `out (m, n) = act((a * a_scale) (m, k) x b (k, n) + bias (n)) + residual (m, n)`.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmParams {
    /// Rows of A (and of the output).
    pub m: usize,
    /// Columns of B (and of the output).
    pub n: usize,
    /// Columns of A, rows of B: the reduction length.
    pub k: usize,
    /// Activation of the epilogue, after the bias and before the residual add.
    pub act: Activation,
    /// Rows of A per row of `a_scale` (H*W for a per-image, per-channel gate); 0 = no scale.
    pub a_scale_rows: usize,
    /// Kernel family; `Auto` picks per adapter and shape (see `kernel_variant`).
    pub variant: KernelVariant,
}

impl GemmParams {
    /// A plain `(m, k) x (k, n)` GEMM: no activation, no a_scale, `Auto` variant.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        GemmParams { m, n, k, act: Activation::None, a_scale_rows: 0, variant: KernelVariant::Auto }
    }
    /// Multiply-adds: m * n * k.
    pub fn macs(&self) -> u64 {
        (self.m * self.n * self.k) as u64
    }
    /// The kernel family that runs this GEMM on `gpu`. The choice never depends on M, so a batch
    /// run in slices is bit-identical to the whole batch.
    pub fn kernel_variant(&self, gpu: &Gpu) -> KernelVariant {
        let vec4 = self.k.is_multiple_of(4) && self.n.is_multiple_of(4);
        let texel = gpu.caps.texel_kernels() && self.k.is_multiple_of(8) && self.n.is_multiple_of(4);
        let cpu = gpu.caps.kernel_class == crate::gpu::KernelClass::Cpu;
        match self.variant {
            KernelVariant::Auto | KernelVariant::Texel if texel => KernelVariant::Texel,
            KernelVariant::Auto if vec4 && !cpu => KernelVariant::Tiled,
            KernelVariant::Tiled if vec4 => KernelVariant::Tiled,
            KernelVariant::Auto | KernelVariant::Texel | KernelVariant::Vec4 if vec4 => KernelVariant::Vec4,
            _ => KernelVariant::Scalar,
        }
    }
    /// The kernel's overrides, its optional inputs' flags taken from which of them are given.
    fn constants(&self, bias: bool, residual: bool, a_scale: bool) -> Result<Vec<(&'static str, f64)>> {
        if a_scale != (self.a_scale_rows > 0) {
            return Err(Error::invalid(format!(
                "gemm: a_scale_rows is {} but a_scale is {}",
                self.a_scale_rows,
                if a_scale { "given" } else { "absent" }
            )));
        }
        Ok(vec![
            ("M", self.m as f64),
            ("N", self.n as f64),
            ("K", self.k as f64),
            ("ACT", self.act as u32 as f64),
            ("HAS_BIAS", bias as u32 as f64),
            ("HAS_RESIDUAL", residual as u32 as f64),
            ("HAS_A_SCALE", a_scale as u32 as f64),
            ("A_SCALE_ROWS", self.a_scale_rows.max(1) as f64),
        ])
    }
}

/// Threads of a `gemm_tiled` workgroup, which owns one `TILE` x `TILE` output tile.
const TILED_THREADS: usize = crate::gpu::WG as usize;
const TILE: usize = 64;

/// Output tiles of a `rows` x `cols` result in the tiled kernels.
fn tiles(rows: usize, cols: usize) -> usize {
    rows.div_ceil(TILE) * cols.div_ceil(TILE)
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
    let buffers = [a, b, bias.unwrap_or(a), residual.unwrap_or(a), a_scale.unwrap_or(a), out];
    let store = store_of("gemm_fwd", &buffers)?;
    // Texels are f32: f16 tensors take the buffer kernel of the same vec4 shape.
    let variant = match p.kernel_variant(gpu) {
        KernelVariant::Texel if store != Dtype::F32 => KernelVariant::Vec4,
        v => v,
    };
    let (kernel, threads) = match variant {
        KernelVariant::Texel => (Kernel::GemmFwdTexel, texel_threads(p)),
        KernelVariant::Tiled => (Kernel::GemmFwdTiled, TILED_THREADS * tiles(p.m, p.n)),
        KernelVariant::Vec4 => (Kernel::GemmFwdVec4, p.m.div_ceil(4) * p.n.div_ceil(4)),
        _ => (Kernel::GemmFwd, p.m.div_ceil(4) * p.n.div_ceil(4)),
    };
    let kernel = kernel_for("gemm_fwd", kernel, store)?;
    let c = p.constants(bias.is_some(), residual.is_some(), a_scale.is_some())?;
    Ok(Dispatch::new(gpu, kernel, &c, &buffers, threads as u64, kernel.name())?
        .with_cost(2 * p.macs(), fwd_bytes(p, store, residual.is_some())))
}

/// Invocations of the texel GEMM: a subgroup of 8 per 16 x 16 block.
fn texel_threads(p: &GemmParams) -> usize {
    8 * p.m.div_ceil(16) * p.n.div_ceil(16)
}

/// Bytes the forward moves: A, B, out and the residual.
fn fwd_bytes(p: &GemmParams, store: Dtype, residual: bool) -> u64 {
    (store.size() * (p.m * p.k + p.k * p.n + p.m * p.n * (1 + residual as usize))) as u64
}

impl GemmParams {
    /// Rows per BatchNorm partial of [`gemm_fwd_bn_stats`] on `gpu`: the row block of the
    /// variant that runs (64 tiled, 16 texel), or `None` where that variant has no statistics
    /// epilogue (the statistics then take their own pass, `ops::bn_stats`).
    pub fn bn_stats_rows(&self, gpu: &Gpu) -> Option<usize> {
        match self.kernel_variant(gpu) {
            KernelVariant::Tiled => Some(TILE),
            KernelVariant::Texel => Some(16),
            _ => None,
        }
    }
    /// Length of the `bn_partial` of [`gemm_fwd_bn_stats`]: (chunks, 2, n), or 0 without the
    /// epilogue.
    pub fn bn_partial_len(&self, gpu: &Gpu) -> usize {
        self.bn_stats_rows(gpu).map_or(0, |rows| self.m.div_ceil(rows) * 2 * self.n)
    }
}

/// Records [`gemm_fwd`] (f32) with the first stage of training-mode BatchNorm statistics of
/// `out` in its epilogue, from the registers that hold the output: `bn_partial`
/// (`p.bn_partial_len(gpu)`) receives each chunk's (mean, M2) per column, in the layout of
/// `ops::bn_stats`'s partials with chunks of `p.bn_stats_rows(gpu)` rows. `ops::bn_stats_finish`
/// completes the statistics. An error where the variant has no such epilogue.
#[allow(clippy::too_many_arguments)] // one argument per binding of the kernel
pub fn gemm_fwd_bn_stats(
    gpu: &Gpu,
    p: &GemmParams,
    a: &GpuBuffer,
    b: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    residual: Option<&GpuBuffer>,
    a_scale: Option<&GpuBuffer>,
    out: &GpuBuffer,
    bn_partial: &GpuBuffer,
) -> Result<Dispatch> {
    let buffers = [a, b, bias.unwrap_or(a), residual.unwrap_or(a), a_scale.unwrap_or(a), out, bn_partial];
    if store_of("gemm_fwd_bn_stats", &buffers)? != Dtype::F32 {
        return Err(Error::invalid("gemm_fwd_bn_stats: the statistics epilogue takes f32 tensors"));
    }
    let len = p.bn_partial_len(gpu);
    if bn_partial.len < len {
        return Err(Error::Shape {
            what: "gemm_fwd_bn_stats bn_partial".into(),
            expected: vec![len],
            got: vec![bn_partial.len],
        });
    }
    let (kernel, threads) = match p.kernel_variant(gpu) {
        KernelVariant::Texel => (Kernel::GemmFwdBnStatsTexel, texel_threads(p)),
        KernelVariant::Tiled => (Kernel::GemmFwdBnStatsTiled, TILED_THREADS * tiles(p.m, p.n)),
        v => {
            return Err(Error::invalid(format!(
                "gemm_fwd_bn_stats: the {v:?} GEMM has no statistics epilogue (bn_stats_rows is None); \
                 use gemm_fwd then bn_stats"
            )))
        }
    };
    let c = p.constants(bias.is_some(), residual.is_some(), a_scale.is_some())?;
    Ok(Dispatch::new(gpu, kernel, &c, &buffers, threads as u64, kernel.name())?
        .with_cost(2 * p.macs(), fwd_bytes(p, Dtype::F32, residual.is_some()) + 4 * len as u64))
}

impl GemmParams {
    /// Rows of A per split-K chunk of the weight gradient: enough chunks to fill the device
    /// (~16K threads of 4x4 tiles, or ~1K workgroups of the tiled kernel, on a GPU; 64 subgroups or ~2K threads on a CPU, whose few
    /// cores gain nothing from more and would pay for the partial sums), and at least 32 rows
    /// (64 on a CPU) each.
    pub fn weight_grad_rows(&self, gpu: &Gpu) -> usize {
        let cpu = gpu.caps.kernel_class == crate::gpu::KernelClass::Cpu;
        let (threads, tiles, min_rows) = match self.kernel_variant(gpu) {
            KernelVariant::Texel => (64, self.k.div_ceil(32) * self.n.div_ceil(8), 64),
            // ~1K workgroups of 64 x 64 tiles (several per multiprocessor), 16 stages or more each.
            KernelVariant::Tiled => (1024, tiles(self.k, self.n), 256),
            _ if cpu => (2048, self.k.div_ceil(4) * self.n.div_ceil(4), 64),
            _ => (16_384, self.k.div_ceil(4) * self.n.div_ceil(4), 32),
        };
        let chunks = (threads / tiles.max(1)).clamp(1, self.m.div_ceil(min_rows).max(1));
        self.m.div_ceil(chunks).max(1)
    }
    /// Length of the partial-sum scratch of `gemm_bwd_weight`.
    pub fn weight_partial_len(&self, gpu: &Gpu) -> usize {
        self.m.div_ceil(self.weight_grad_rows(gpu)) * self.k * self.n
    }
    /// Length of the partial-sum scratch of `gemm_bwd_bias`.
    pub fn bias_partial_len(&self) -> usize {
        GlobalAvgPoolParams::new(1, self.m, self.n).partial_len()
    }
}

/// Records `da (m, k) = dc (m, n) x b^T`, accumulated into `da` when `accumulate`.
pub fn gemm_bwd_data(
    gpu: &Gpu,
    p: &GemmParams,
    dc: &GpuBuffer,
    b: &GpuBuffer,
    da: &GpuBuffer,
    accumulate: bool,
) -> Result<Dispatch> {
    let c = [("M", p.m as f64), ("N", p.n as f64), ("K", p.k as f64), ("ACCUMULATE", accumulate as u32 as f64)];
    let bytes = 4 * (p.m * p.n + p.k * p.n + p.m * p.k * (1 + accumulate as usize)) as u64;
    let (kernel, threads) = match p.kernel_variant(gpu) {
        KernelVariant::Texel => (Kernel::GemmBwdDataTexel, 8 * p.m.div_ceil(16) * p.k.div_ceil(16)),
        KernelVariant::Tiled => (Kernel::GemmBwdDataTiled, TILED_THREADS * tiles(p.m, p.k)),
        KernelVariant::Vec4 => (Kernel::GemmBwdDataVec4, p.m.div_ceil(4) * p.k.div_ceil(4)),
        _ => (Kernel::GemmBwdData, p.m.div_ceil(4) * p.k.div_ceil(4)),
    };
    Ok(Dispatch::new(gpu, kernel, &c, &[dc, b, da], threads as u64, kernel.name())?.with_cost(2 * p.macs(), bytes))
}

/// Records `db (k, n) = (a * a_scale)^T x dc` as split-K partials plus their fixed-order sum
/// (one chunk writes `db` directly).
pub fn gemm_bwd_weight(
    gpu: &Gpu,
    p: &GemmParams,
    a: &GpuBuffer,
    a_scale: Option<&GpuBuffer>,
    dc: &GpuBuffer,
    partial: &GpuBuffer,
    db: &GpuBuffer,
) -> Result<Vec<Dispatch>> {
    let rows = p.weight_grad_rows(gpu);
    let chunks = p.m.div_ceil(rows);
    let c = [
        ("M", p.m as f64),
        ("N", p.n as f64),
        ("K", p.k as f64),
        ("ROWS", rows as f64),
        ("HAS_A_SCALE", (p.a_scale_rows > 0) as u32 as f64),
        ("A_SCALE_ROWS", p.a_scale_rows.max(1) as f64),
    ];
    let bytes = 4 * (p.m * p.k + p.m * p.n + chunks * p.k * p.n) as u64;
    let (kernel, threads) = match p.kernel_variant(gpu) {
        KernelVariant::Texel => (Kernel::GemmBwdWeightTexel, chunks * 8 * p.k.div_ceil(32) * p.n.div_ceil(8)),
        KernelVariant::Tiled => (Kernel::GemmBwdWeightTiled, chunks * TILED_THREADS * tiles(p.k, p.n)),
        KernelVariant::Vec4 => (Kernel::GemmBwdWeightVec4, chunks * p.k.div_ceil(4) * p.n.div_ceil(4)),
        _ => (Kernel::GemmBwdWeight, chunks * p.k.div_ceil(4) * p.n.div_ceil(4)),
    };
    let a_scale = a_scale.unwrap_or(a);
    let target = if chunks == 1 { db } else { partial };
    let part = Dispatch::new(gpu, kernel, &c, &[a, a_scale, dc, target], threads as u64, kernel.name())?
        .with_cost(2 * p.macs(), bytes);
    if chunks == 1 {
        return Ok(vec![part]);
    }
    let sum = sum_partials(
        gpu,
        &SumPartialsParams { parts: chunks, len: p.k * p.n, scale: 1.0, accumulate: false },
        partial,
        db,
    )?;
    Ok(vec![part, sum])
}

/// Records `dbias (n) = sum over rows of dc (m, n)`: chunked column sums (the pooling kernel's
/// first stage), then their fixed-order sum.
pub fn gemm_bwd_bias(
    gpu: &Gpu,
    p: &GemmParams,
    dc: &GpuBuffer,
    partial: &GpuBuffer,
    dbias: &GpuBuffer,
) -> Result<[Dispatch; 2]> {
    let pp = GlobalAvgPoolParams::new(1, p.m, p.n);
    let part = global_avg_pool_partial(gpu, &pp, dc, partial)?;
    let sum = sum_partials(
        gpu,
        &SumPartialsParams { parts: pp.chunks(), len: p.n, scale: 1.0, accumulate: false },
        partial,
        dbias,
    )?;
    Ok([part, sum])
}
