//! Depthwise convolution (one filter per channel), NHWC, with a fused bias + activation epilogue.

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Dtype, Gpu, GpuBuffer, Kernel, KernelClass};
use crate::ops::padding::{conv_padding, Padding};
use crate::ops::reduce::{check_len, sum_partials, SumPartialsParams};
use crate::ops::{kernel_for, store_of, Activation, KernelVariant};

/// Input (n, h, w, c), weights (kh, kw, c), output (n, oh, ow, c).
#[derive(Clone, Debug, PartialEq)]
pub struct DepthwiseConvParams {
    /// Batch size.
    pub n: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Channels, of the input and the output alike (one filter each).
    pub c: usize,
    /// Kernel size along H.
    pub kh: usize,
    /// Kernel size along W.
    pub kw: usize,
    /// Stride along both H and W.
    pub stride: usize,
    /// Zero rows padded above the input (the padding below follows from `oh`).
    pub pad_top: usize,
    /// Zero columns padded left of the input (the padding on the right follows from `ow`).
    pub pad_left: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Activation of the forward's epilogue, after the bias.
    pub act: Activation,
    /// Kernel family: `Texel` or `Auto` may pick the texel kernels (see `kernel_variant`).
    pub variant: KernelVariant,
}

impl DepthwiseConvParams {
    /// A square `k` x `k` filter with padding decided by `padding`; no activation, `Auto` variant.
    pub fn new(n: usize, h: usize, w: usize, c: usize, k: usize, stride: usize, padding: Padding) -> Self {
        let (oh, pad_top) = conv_padding(padding, h, k, stride);
        let (ow, pad_left) = conv_padding(padding, w, k, stride);
        DepthwiseConvParams {
            n,
            h,
            w,
            c,
            kh: k,
            kw: k,
            stride,
            pad_top,
            pad_left,
            oh,
            ow,
            act: Activation::None,
            variant: KernelVariant::Auto,
        }
    }
    /// Elements of the (n, oh, ow, c) output.
    pub fn output_len(&self) -> usize {
        self.n * self.oh * self.ow * self.c
    }
    /// Multiply-adds of the forward: kh * kw per output element.
    pub fn macs(&self) -> u64 {
        (self.output_len() * self.kh * self.kw) as u64
    }
    /// Elements of the (n, h, w, c) input.
    pub fn input_len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }
    /// Elements of the (kh, kw, c) weights.
    pub fn weight_len(&self) -> usize {
        self.kh * self.kw * self.c
    }

    /// The kernel family that runs on `gpu`: texels on CPU adapters when C is a multiple of 4
    /// (forced, on any adapter: they need no subgroups).
    pub fn kernel_variant(&self, gpu: &Gpu) -> KernelVariant {
        self.variant.texel_or_scalar(gpu, self.c.is_multiple_of(4))
    }

    /// Output rows (of the n * oh) per chunk of the weight gradient's partial sums: enough chunks
    /// for ~16K invocations on a GPU (~1K on a CPU, whose few cores gain nothing from more), so
    /// that the device is busy and each invocation sums a short stretch.
    pub fn weight_grad_rows(&self, gpu: &Gpu) -> usize {
        let target = if gpu.caps.kernel_class == KernelClass::Cpu { 1024 } else { 16_384 };
        let per_chunk = self.kh * self.kw.div_ceil(self.weight_grad_kx_block()) * self.c.div_ceil(4);
        let rows = self.n * self.oh;
        let chunks = (target / per_chunk.max(1)).clamp(1, rows.max(1));
        rows.div_ceil(chunks).max(1)
    }
    /// Number of partial-sum chunks of the weight gradient.
    pub fn weight_grad_chunks(&self, gpu: &Gpu) -> usize {
        (self.n * self.oh).div_ceil(self.weight_grad_rows(gpu))
    }
    /// Length of the partial-sum scratch of `depthwise_conv_bwd_weight`: (chunks, kh, kw, c).
    pub fn weight_partial_len(&self, gpu: &Gpu) -> usize {
        self.weight_grad_chunks(gpu) * self.weight_len()
    }
    /// Taps kx per invocation of the weight gradient (at most 5 accumulators), splitting kw evenly.
    fn weight_grad_kx_block(&self) -> usize {
        let blocks = self.kw.div_ceil(5).max(1);
        self.kw.div_ceil(blocks).max(1)
    }

    /// Output rows per invocation of the forward `kernel`: the texel kernel takes two rows of the
    /// 3x3 stride-1 shape at once, sharing the input rows between them (5-15% faster on
    /// lavapipe; two rows of 5x5 ran 5-18% slower, out of registers).
    fn fwd_rows_per_thread(&self, kernel: Kernel) -> usize {
        let two_rows = kernel == Kernel::DepthwiseConvFwdTexel && self.kh == 3 && self.kw == 3 && self.stride == 1;
        if two_rows {
            2
        } else {
            1
        }
    }

    /// The backward kernels divide by the stride and index the last channel.
    fn check_backward(&self) -> Result<()> {
        if self.stride == 0 || self.c == 0 || self.kh == 0 || self.kw == 0 {
            return Err(Error::invalid(format!("depthwise_conv backward: degenerate shape {self:?}")));
        }
        Ok(())
    }

    /// The shape overrides shared by the forward and backward kernels.
    fn shape_constants(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("N", self.n as f64),
            ("H", self.h as f64),
            ("W", self.w as f64),
            ("C", self.c as f64),
            ("KH", self.kh as f64),
            ("KW", self.kw as f64),
            ("SH", self.stride as f64),
            ("SW", self.stride as f64),
            ("PT", self.pad_top as f64),
            ("PL", self.pad_left as f64),
            ("OH", self.oh as f64),
            ("OW", self.ow as f64),
        ]
    }

    /// The forward's overrides; `bias`: whether a bias is given.
    fn constants(&self, bias: bool) -> Vec<(&'static str, f64)> {
        let mut c = self.shape_constants();
        c.extend([("ACT", self.act as u32 as f64), ("HAS_BIAS", bias as u32 as f64)]);
        c
    }
}

/// Records `y (n, oh, ow, c) = act(depthwise(x, w) + bias)` (`p.act`; bias where given).
pub fn depthwise_conv_fwd(
    gpu: &Gpu,
    p: &DepthwiseConvParams,
    x: &GpuBuffer,
    w: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    y: &GpuBuffer,
) -> Result<Dispatch> {
    fwd(gpu, p, x, None, w, bias, y)
}

/// `depthwise_conv_fwd` of `act(z * scale + shift)`, where `z` is a BatchNorm's input and
/// `scale_shift` (2C: scale, then shift) its folded batch statistics, as `bn_act_fwd` takes them:
/// applied as the conv reads its input, so the activated tensor is never written (training).
/// f32 only.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv_fwd_bn_input(
    gpu: &Gpu,
    p: &DepthwiseConvParams,
    z: &GpuBuffer,
    scale_shift: &GpuBuffer,
    act: Activation,
    w: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    y: &GpuBuffer,
) -> Result<Dispatch> {
    check_len("depthwise_conv_fwd_bn_input scale_shift", scale_shift, 2 * p.c)?;
    fwd(gpu, p, z, Some((scale_shift, act)), w, bias, y)
}

/// Both forwards; `input_bn`: the input's BN scale/shift and activation, applied as it is read.
fn fwd(
    gpu: &Gpu,
    p: &DepthwiseConvParams,
    x: &GpuBuffer,
    input_bn: Option<(&GpuBuffer, Activation)>,
    w: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    y: &GpuBuffer,
) -> Result<Dispatch> {
    let store = store_of("depthwise_conv_fwd", &[x, w, bias.unwrap_or(w), y])?;
    if input_bn.is_some() && store != Dtype::F32 {
        return Err(Error::invalid("depthwise_conv_fwd_bn_input: f32 tensors only (a training op)"));
    }
    let buffers = [x, w, bias.unwrap_or(w), y, input_bn.map_or(w, |(ss, _)| ss)];
    let bytes = (store.size() * (p.n * p.h * p.w * p.c + p.output_len())) as u64;
    let kernel = match p.kernel_variant(gpu) {
        KernelVariant::Texel if store == Dtype::F32 => Kernel::DepthwiseConvFwdTexel,
        _ => kernel_for("depthwise_conv_fwd", Kernel::DepthwiseConvFwd, store)?,
    };
    let mut constants = p.constants(bias.is_some());
    if let Some((_, act)) = input_bn {
        constants.extend([("IN_BN", 1.0), ("IN_ACT", act as u32 as f64)]);
    }
    let rows = p.fwd_rows_per_thread(kernel);
    if rows > 1 {
        constants.push(("ROWS", rows as f64));
    }
    let threads = (p.n * p.oh.div_ceil(rows) * p.ow.div_ceil(4) * p.c.div_ceil(4)) as u64;
    Ok(Dispatch::new(gpu, kernel, &constants, &buffers, threads, kernel.name())?.with_cost(2 * p.macs(), bytes))
}

/// Records `dx (n, h, w, c) (+)= d conv / dx` for `dy` (n, oh, ow, c), the gradient of the
/// convolution's output before its bias and activation. With `accumulate`, dx is added to.
pub fn depthwise_conv_bwd_data(
    gpu: &Gpu,
    p: &DepthwiseConvParams,
    dy: &GpuBuffer,
    w: &GpuBuffer,
    dx: &GpuBuffer,
    accumulate: bool,
) -> Result<Dispatch> {
    p.check_backward()?;
    check_len("depthwise_conv_bwd_data dy", dy, p.output_len())?;
    check_len("depthwise_conv_bwd_data w", w, p.weight_len())?;
    check_len("depthwise_conv_bwd_data dx", dx, p.input_len())?;
    let mut c = p.shape_constants();
    c.push(("ACCUMULATE", accumulate as u32 as f64));
    let threads = (p.n * p.h * p.w.div_ceil(4 * p.stride) * p.stride * p.c.div_ceil(4)) as u64;
    let bytes = 4 * (p.output_len() + p.weight_len() + p.input_len() * (1 + accumulate as usize)) as u64;
    let kernel = match p.kernel_variant(gpu) {
        KernelVariant::Texel => Kernel::DepthwiseConvBwdDataTexel,
        _ => Kernel::DepthwiseConvBwdData,
    };
    Ok(Dispatch::new(gpu, kernel, &c, &[dy, w, dx], threads, kernel.name())?.with_cost(2 * p.macs(), bytes))
}

/// Records `dw (kh, kw, c) = d conv / dw`: per-chunk partial sums into `partial`
/// (`p.weight_partial_len(gpu)` values), then their fixed-order sum into `dw`.
pub fn depthwise_conv_bwd_weight(
    gpu: &Gpu,
    p: &DepthwiseConvParams,
    x: &GpuBuffer,
    dy: &GpuBuffer,
    partial: &GpuBuffer,
    dw: &GpuBuffer,
) -> Result<[Dispatch; 2]> {
    depthwise_conv_bwd_weight_rows(gpu, p, p.weight_grad_rows(gpu), x, dy, partial, dw)
}

/// `depthwise_conv_bwd_weight` with an explicit chunk size: `rows` output rows (of the n * oh) per
/// partial sum, so `partial` holds `(n * oh).div_ceil(rows) * p.weight_len()` values.
pub fn depthwise_conv_bwd_weight_rows(
    gpu: &Gpu,
    p: &DepthwiseConvParams,
    rows: usize,
    x: &GpuBuffer,
    dy: &GpuBuffer,
    partial: &GpuBuffer,
    dw: &GpuBuffer,
) -> Result<[Dispatch; 2]> {
    if rows == 0 {
        return Err(Error::invalid("depthwise_conv_bwd_weight: rows per chunk must be at least 1"));
    }
    let chunks = (p.n * p.oh).div_ceil(rows);
    p.check_backward()?;
    check_len("depthwise_conv_bwd_weight x", x, p.input_len())?;
    check_len("depthwise_conv_bwd_weight dy", dy, p.output_len())?;
    check_len("depthwise_conv_bwd_weight partial", partial, chunks * p.weight_len())?;
    let kb = p.weight_grad_kx_block();
    let mut c = p.shape_constants();
    c.extend([("ROWS", rows as f64), ("KB", kb as f64)]);
    let threads = (chunks * p.kh * p.kw.div_ceil(kb) * p.c.div_ceil(4)) as u64;
    let bytes = 4 * (p.input_len() + p.output_len() + chunks * p.weight_len()) as u64;
    let kernel = match p.kernel_variant(gpu) {
        KernelVariant::Texel => Kernel::DepthwiseConvBwdWeightTexel,
        _ => Kernel::DepthwiseConvBwdWeight,
    };
    let part =
        Dispatch::new(gpu, kernel, &c, &[x, dy, partial], threads, kernel.name())?.with_cost(2 * p.macs(), bytes);
    let sum = sum_partials(gpu, &SumPartialsParams::new(chunks, p.weight_len()), partial, dw)?;
    Ok([part, sum])
}
