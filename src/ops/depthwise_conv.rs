//! Depthwise convolution (one filter per channel), NHWC, with a fused bias + activation epilogue.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Kernel};
use crate::model::{conv_padding, Padding};
use crate::ops::Activation;

/// Input (n, h, w, c), weights (kh, kw, c), output (n, oh, ow, c).
#[derive(Clone, Debug, PartialEq)]
pub struct DepthwiseConvParams {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub oh: usize,
    pub ow: usize,
    pub act: Activation,
    pub has_bias: bool,
}

impl DepthwiseConvParams {
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
            has_bias: false,
        }
    }
    pub fn output_len(&self) -> usize {
        self.n * self.oh * self.ow * self.c
    }
    pub fn macs(&self) -> u64 {
        (self.output_len() * self.kh * self.kw) as u64
    }
    fn constants(&self) -> Vec<(&'static str, f64)> {
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
            ("ACT", self.act as u32 as f64),
            ("HAS_BIAS", self.has_bias as u32 as f64),
        ]
    }
}

pub fn depthwise_conv_fwd(
    gpu: &Gpu,
    p: &DepthwiseConvParams,
    x: &GpuBuffer,
    w: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    y: &GpuBuffer,
) -> Result<Dispatch> {
    let threads = (p.n * p.oh * p.ow.div_ceil(4) * p.c.div_ceil(4)) as u64;
    let bytes = 4 * (p.n * p.h * p.w * p.c + p.output_len()) as u64;
    Ok(Dispatch::new(
        gpu,
        Kernel::DepthwiseConvFwd,
        &p.constants(),
        &[x, w, bias.unwrap_or(w), y],
        threads,
        "depthwise_conv_fwd",
    )?
    .with_cost(2 * p.macs(), bytes))
}
