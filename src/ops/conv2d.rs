//! General direct convolution (the stem): any kernel, stride, padding and groups, NHWC or NCHW input.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Kernel};
use crate::model::{conv_padding, Padding};
use crate::ops::Activation;

/// Shapes of one convolution. Output is NHWC (n, oh, ow, cout); weights are HWIO
/// (kh, kw, cin / groups, cout).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2dParams {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub oh: usize,
    pub ow: usize,
    pub groups: usize,
    pub act: Activation,
    pub has_bias: bool,
    /// The input is (n, cin, h, w), as the network's input arrives from PyTorch users.
    pub input_nchw: bool,
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
            has_bias: false,
            input_nchw: false,
        }
    }

    pub fn input_len(&self) -> usize {
        self.n * self.h * self.w * self.cin
    }
    pub fn weight_len(&self) -> usize {
        self.kh * self.kw * (self.cin / self.groups) * self.cout
    }
    pub fn output_len(&self) -> usize {
        self.n * self.oh * self.ow * self.cout
    }
    pub fn macs(&self) -> u64 {
        (self.output_len() * self.kh * self.kw * (self.cin / self.groups)) as u64
    }

    fn constants(&self) -> Vec<(&'static str, f64)> {
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
            ("ACT", self.act as u32 as f64),
            ("HAS_BIAS", self.has_bias as u32 as f64),
            ("IN_NCHW", self.input_nchw as u32 as f64),
        ]
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
    let threads = (p.n * p.oh * p.ow * p.cout.div_ceil(4)) as u64;
    let bytes = 4 * (p.input_len() + p.weight_len() + p.output_len()) as u64;
    Ok(Dispatch::new(gpu, Kernel::Conv2dFwd, &p.constants(), &[x, w, bias.unwrap_or(w), y], threads, "conv2d_fwd")?
        .with_cost(2 * p.macs(), bytes))
}
