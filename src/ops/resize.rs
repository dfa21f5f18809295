//! Bilinear resampling of NCHW images (PyTorch `align_corners=False`), with an optional source
//! window (center crop), antialiasing and a per-channel affine (normalisation).

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Kernel};

#[derive(Clone, Debug, PartialEq)]
pub struct BilinearResizeParams {
    pub n: usize,
    pub c: usize,
    pub ih: usize,
    pub iw: usize,
    pub oh: usize,
    pub ow: usize,
    /// Top-left corner of the source window, in source pixels.
    pub y0: f32,
    pub x0: f32,
    /// Source pixels per output pixel.
    pub ratio_h: f32,
    pub ratio_w: f32,
    pub antialias: bool,
}

impl BilinearResizeParams {
    /// Resize the whole image to (oh, ow), as `F.interpolate(size=(oh, ow))`.
    pub fn to_size(n: usize, c: usize, ih: usize, iw: usize, oh: usize, ow: usize) -> Self {
        BilinearResizeParams {
            n,
            c,
            ih,
            iw,
            oh,
            ow,
            y0: 0.0,
            x0: 0.0,
            ratio_h: ih as f32 / oh as f32,
            ratio_w: iw as f32 / ow as f32,
            antialias: false,
        }
    }

    /// `F.interpolate(scale_factor=scale)`: the output is floor(in * scale) and the source
    /// coordinates use 1/scale, as PyTorch does when the scale factor is given.
    pub fn by_scale(n: usize, c: usize, ih: usize, iw: usize, scale: f32) -> Self {
        let oh = ((ih as f64) * scale as f64).floor().max(1.0) as usize;
        let ow = ((iw as f64) * scale as f64).floor().max(1.0) as usize;
        BilinearResizeParams { ratio_h: 1.0 / scale, ratio_w: 1.0 / scale, ..Self::to_size(n, c, ih, iw, oh, ow) }
    }

    pub fn output_len(&self) -> usize {
        self.n * self.c * self.oh * self.ow
    }

    fn constants(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("N", self.n as f64),
            ("C", self.c as f64),
            ("IH", self.ih as f64),
            ("IW", self.iw as f64),
            ("OH", self.oh as f64),
            ("OW", self.ow as f64),
            ("Y0", self.y0 as f64),
            ("X0", self.x0 as f64),
            ("RATIO_H", self.ratio_h as f64),
            ("RATIO_W", self.ratio_w as f64),
            ("ANTIALIAS", self.antialias as u32 as f64),
        ]
    }
}

/// Records the resize; `affine` holds c multipliers then c addends.
pub fn bilinear_resize_fwd(
    gpu: &Gpu,
    p: &BilinearResizeParams,
    x: &GpuBuffer,
    affine: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<Dispatch> {
    let n = p.output_len() as u64;
    Ok(Dispatch::new(gpu, Kernel::BilinearResizeFwd, &p.constants(), &[x, affine, y], n, "bilinear_resize_fwd")?
        .with_cost(8 * n, 4 * (n + (p.n * p.c * p.ih * p.iw) as u64)))
}
