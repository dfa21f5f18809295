//! General direct convolution (the stem): any kernel, stride, padding and groups, NHWC or NCHW input.

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Dtype, Gpu, GpuBuffer, Kernel};
use crate::ops::padding::{conv_padding, Padding};
use crate::ops::reduce::{check_len, sum_partials, SumPartialsParams};
use crate::ops::{kernel_for, store_of, Activation, KernelVariant};

/// Shapes of one convolution. Output is NHWC (n, oh, ow, cout); weights are HWIO
/// (kh, kw, cin / groups, cout).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2dParams {
    /// Batch size.
    pub n: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
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
    /// Channel groups: each output channel sees `cin / groups` input channels. 1 = dense.
    pub groups: usize,
    /// Activation of the forward's epilogue, after the bias.
    pub act: Activation,
    /// The input is (n, cin, h, w), as the network's input arrives from PyTorch users.
    pub input_nchw: bool,
    /// The forward's kernel family: `Texel` or `Auto` may pick the texel kernel (see `kernel_variant`).
    pub variant: KernelVariant,
}

impl Conv2dParams {
    /// A square-kernel convolution with padding decided by `padding` (symmetric or TF-SAME).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n: usize,
        h: usize,
        w: usize,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: Padding,
    ) -> Self {
        let (oh, pad_top) = conv_padding(padding, h, k, stride);
        let (ow, pad_left) = conv_padding(padding, w, k, stride);
        Conv2dParams {
            n,
            h,
            w,
            cin,
            cout,
            kh: k,
            kw: k,
            stride,
            pad_top,
            pad_left,
            oh,
            ow,
            groups: 1,
            act: Activation::None,
            input_nchw: false,
            variant: KernelVariant::Auto,
        }
    }

    /// The forward kernel's family on `gpu`: texels on CPU adapters (forced: on any adapter) for a
    /// stem-like shape: one group, NCHW input with W a multiple of 4, COUT a multiple of 4.
    pub fn kernel_variant(&self, gpu: &Gpu) -> KernelVariant {
        let fits = self.groups == 1 && self.input_nchw && self.w.is_multiple_of(4) && self.cout.is_multiple_of(4);
        self.variant.texel_or_scalar(gpu, fits)
    }

    /// Elements of the input: n * h * w * cin (either layout).
    pub fn input_len(&self) -> usize {
        self.n * self.h * self.w * self.cin
    }
    /// Elements of the HWIO weights: kh * kw * (cin / groups) * cout.
    pub fn weight_len(&self) -> usize {
        self.kh * self.kw * (self.cin / self.groups) * self.cout
    }
    /// Elements of the (n, oh, ow, cout) output.
    pub fn output_len(&self) -> usize {
        self.n * self.oh * self.ow * self.cout
    }
    /// Multiply-adds of the forward: kh * kw * (cin / groups) per output element.
    pub fn macs(&self) -> u64 {
        (self.output_len() * self.kh * self.kw * (self.cin / self.groups)) as u64
    }

    /// Output rows (of the n * oh) per chunk of the weight gradient's partial sums: enough chunks
    /// for ~16K invocations, so that a GPU is busy and each invocation sums a short stretch.
    pub fn weight_grad_rows(&self) -> usize {
        let cin_g = self.cin / self.groups.max(1);
        let per_chunk = self.kh * self.kw * cin_g.div_ceil(4) * self.cout.div_ceil(4);
        let rows = self.n * self.oh;
        let chunks = (16_384 / per_chunk.max(1)).clamp(1, rows.max(1));
        rows.div_ceil(chunks).max(1)
    }
    /// Number of partial-sum chunks of the weight gradient.
    pub fn weight_grad_chunks(&self) -> usize {
        (self.n * self.oh).div_ceil(self.weight_grad_rows())
    }
    /// Length of the partial-sum scratch of `conv2d_bwd_weight`: (chunks, kh, kw, cin / groups, cout).
    pub fn weight_partial_len(&self) -> usize {
        self.weight_grad_chunks() * self.weight_len()
    }

    /// The backward kernels divide by the stride and the group sizes.
    fn check_backward(&self) -> Result<()> {
        let ok = self.stride > 0
            && self.groups > 0
            && self.cin > 0
            && self.cout > 0
            && self.kh > 0
            && self.kw > 0
            && self.cin.is_multiple_of(self.groups)
            && self.cout.is_multiple_of(self.groups);
        if !ok {
            return Err(Error::invalid(format!("conv2d backward: unsupported shape {self:?}")));
        }
        Ok(())
    }

    /// The shape overrides shared by the forward and backward kernels.
    fn shape_constants(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("N", self.n as f64),
            ("H", self.h as f64),
            ("W", self.w as f64),
            ("CIN", self.cin as f64),
            ("COUT", self.cout as f64),
            ("KH", self.kh as f64),
            ("KW", self.kw as f64),
            ("SH", self.stride as f64),
            ("SW", self.stride as f64),
            ("PT", self.pad_top as f64),
            ("PL", self.pad_left as f64),
            ("OH", self.oh as f64),
            ("OW", self.ow as f64),
            ("GROUPS", self.groups as f64),
            ("IN_NCHW", self.input_nchw as u32 as f64),
        ]
    }

    /// The forward's overrides; `bias`: whether a bias is given.
    fn constants(&self, bias: bool) -> Vec<(&'static str, f64)> {
        let mut c = self.shape_constants();
        c.extend([("ACT", self.act as u32 as f64), ("HAS_BIAS", bias as u32 as f64)]);
        c
    }
}

/// Records `y = act(conv(x, w) + bias)`.
pub fn conv2d_fwd(
    gpu: &Gpu,
    p: &Conv2dParams,
    x: &GpuBuffer,
    w: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    y: &GpuBuffer,
) -> Result<Dispatch> {
    let buffers = [x, w, bias.unwrap_or(w), y];
    let store = store_of("conv2d_fwd", &buffers)?;
    let bytes = (store.size() * (p.input_len() + p.weight_len() + p.output_len())) as u64;
    let (kernel, threads) = match p.kernel_variant(gpu) {
        KernelVariant::Texel if store == Dtype::F32 => {
            (Kernel::Conv2dFwdTexel, p.n * p.oh * p.ow.div_ceil(4) * p.cout.div_ceil(8))
        }
        _ => (kernel_for("conv2d_fwd", Kernel::Conv2dFwd, store)?, p.n * p.oh * p.ow * p.cout.div_ceil(4)),
    };
    let mut c = p.constants(bias.is_some());
    if kernel == Kernel::Conv2dFwdTexel {
        c.retain(|(k, _)| !matches!(*k, "GROUPS" | "IN_NCHW"));
    }
    Ok(Dispatch::new(gpu, kernel, &c, &buffers, threads as u64, kernel.name())?.with_cost(2 * p.macs(), bytes))
}

/// Records `dx (+)= d conv / dx` for `dy` (n, oh, ow, cout), the gradient of the convolution's
/// output before its bias and activation. dx is (n, h, w, cin), or (n, cin, h, w) when
/// `p.input_nchw`. With `accumulate`, dx is added to.
pub fn conv2d_bwd_data(
    gpu: &Gpu,
    p: &Conv2dParams,
    dy: &GpuBuffer,
    w: &GpuBuffer,
    dx: &GpuBuffer,
    accumulate: bool,
) -> Result<Dispatch> {
    p.check_backward()?;
    check_len("conv2d_bwd_data dy", dy, p.output_len())?;
    check_len("conv2d_bwd_data w", w, p.weight_len())?;
    check_len("conv2d_bwd_data dx", dx, p.input_len())?;
    let mut c = p.shape_constants();
    c.push(("ACCUMULATE", accumulate as u32 as f64));
    let threads = (p.n * p.h * p.w.div_ceil(p.stride) * p.stride * p.cin.div_ceil(4)) as u64;
    let bytes = 4 * (p.output_len() + p.weight_len() + p.input_len() * (1 + accumulate as usize)) as u64;
    Ok(Dispatch::new(gpu, Kernel::Conv2dBwdData, &c, &[dy, w, dx], threads, "conv2d_bwd_data")?
        .with_cost(2 * p.macs(), bytes))
}

/// Records `dw (kh, kw, cin / groups, cout) = d conv / dw`: per-chunk partial sums into `partial`
/// (`p.weight_partial_len()` values), then their fixed-order sum into `dw`.
pub fn conv2d_bwd_weight(
    gpu: &Gpu,
    p: &Conv2dParams,
    x: &GpuBuffer,
    dy: &GpuBuffer,
    partial: &GpuBuffer,
    dw: &GpuBuffer,
) -> Result<[Dispatch; 2]> {
    conv2d_bwd_weight_rows(gpu, p, p.weight_grad_rows(), x, dy, partial, dw)
}

/// `conv2d_bwd_weight` with an explicit chunk size: `rows` output rows (of the n * oh) per
/// partial sum, so `partial` holds `(n * oh).div_ceil(rows) * p.weight_len()` values.
pub fn conv2d_bwd_weight_rows(
    gpu: &Gpu,
    p: &Conv2dParams,
    rows: usize,
    x: &GpuBuffer,
    dy: &GpuBuffer,
    partial: &GpuBuffer,
    dw: &GpuBuffer,
) -> Result<[Dispatch; 2]> {
    if rows == 0 {
        return Err(Error::invalid("conv2d_bwd_weight: rows per chunk must be at least 1"));
    }
    let chunks = (p.n * p.oh).div_ceil(rows);
    p.check_backward()?;
    check_len("conv2d_bwd_weight x", x, p.input_len())?;
    check_len("conv2d_bwd_weight dy", dy, p.output_len())?;
    check_len("conv2d_bwd_weight partial", partial, chunks * p.weight_len())?;
    let mut c = p.shape_constants();
    c.push(("ROWS", rows as f64));
    let cin_g = p.cin / p.groups;
    let threads = (chunks * p.kh * p.kw * cin_g.div_ceil(4) * p.cout.div_ceil(4)) as u64;
    let bytes = 4 * (p.input_len() + p.output_len() + chunks * p.weight_len()) as u64;
    let part = Dispatch::new(gpu, Kernel::Conv2dBwdWeight, &c, &[x, dy, partial], threads, "conv2d_bwd_weight")?
        .with_cost(2 * p.macs(), bytes);
    let sum = sum_partials(gpu, &SumPartialsParams::new(chunks, p.weight_len()), partial, dw)?;
    Ok([part, sum])
}
