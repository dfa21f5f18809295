//! Global average pooling over H*W of an NHWC tensor (squeeze-excite's squeeze and the head).

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Dtype, Gpu, GpuBuffer, Kernel};
use crate::ops::{kernel_for, store_of, KernelVariant};

/// Input (n, hw, c), output (n, c).
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalAvgPoolParams {
    /// Images.
    pub n: usize,
    /// Rows averaged per image (H*W).
    pub hw: usize,
    /// Channels.
    pub c: usize,
    /// Rows summed by one invocation of the first stage.
    pub chunk: usize,
    /// The first stage reads texels on CPU adapters when C is a multiple of 4.
    pub variant: KernelVariant,
}

impl GlobalAvgPoolParams {
    /// Chunks of 64 rows, `Auto` variant.
    pub fn new(n: usize, hw: usize, c: usize) -> Self {
        GlobalAvgPoolParams { n, hw, c, chunk: 64, variant: KernelVariant::Auto }
    }
    /// Whether the first stage runs the texel kernel on `gpu` (forced: on any adapter).
    pub fn texel(&self, gpu: &Gpu) -> bool {
        self.variant.texel_or_scalar(gpu, self.c.is_multiple_of(4)) == KernelVariant::Texel
    }
    /// Partial sums per image and channel: ceil(hw / chunk).
    pub fn chunks(&self) -> usize {
        self.hw.div_ceil(self.chunk)
    }
    /// Length of the scratch buffer holding the per-chunk sums.
    pub fn partial_len(&self) -> usize {
        self.n * self.chunks() * self.c
    }
    fn constants(&self) -> Vec<(&'static str, f64)> {
        vec![("N", self.n as f64), ("HW", self.hw as f64), ("C", self.c as f64), ("CHUNK", self.chunk as f64)]
    }
}

/// Records the first stage alone: per-chunk sums over rows, (n, chunks, c). With n = 1 these are
/// column sums of a (rows, c) matrix, which `sum_partials` finishes (bias gradients).
pub fn global_avg_pool_partial(
    gpu: &Gpu,
    p: &GlobalAvgPoolParams,
    x: &GpuBuffer,
    partial: &GpuBuffer,
) -> Result<Dispatch> {
    // The partial sums are f32 whatever x is stored as.
    let store = x.dtype;
    let (kernel, threads) = if p.texel(gpu) && store == Dtype::F32 {
        (Kernel::GlobalAvgPoolPartialTexel, p.partial_len() / 4)
    } else {
        (kernel_for("global_avg_pool", Kernel::GlobalAvgPoolPartial, store)?, p.partial_len())
    };
    if partial.dtype != Dtype::F32 {
        return Err(Error::invalid("global_avg_pool: the partial sums must be an f32 buffer"));
    }
    Ok(Dispatch::new(gpu, kernel, &p.constants(), &[x, partial], threads as u64, "global_avg_pool")?
        .with_cost((p.n * p.hw * p.c) as u64, (store.size() * p.n * p.hw * p.c) as u64))
}

/// Records both stages; `partial` must hold `p.partial_len()` values.
pub fn global_avg_pool_fwd(
    gpu: &Gpu,
    p: &GlobalAvgPoolParams,
    x: &GpuBuffer,
    partial: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<[Dispatch; 2]> {
    let c = p.constants();
    store_of("global_avg_pool", &[x, y])?;
    let finish = kernel_for("global_avg_pool", Kernel::GlobalAvgPoolFinish, y.dtype)?;
    Ok([
        global_avg_pool_partial(gpu, p, x, partial)?,
        Dispatch::new(gpu, finish, &c, &[partial, y], (p.n * p.c) as u64, "global_avg_pool")?
            .with_cost(p.partial_len() as u64, 4 * p.partial_len() as u64),
    ])
}
