//! Bilinear resampling of NCHW images (PyTorch `align_corners=False`), with an optional source
//! window (center crop), antialiasing and a per-channel affine (normalisation).

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Kernel};
use crate::ops::reduce::check_len;

/// Input (n, c, ih, iw), output (n, c, oh, ow), both NCHW.
#[derive(Clone, Debug, PartialEq)]
pub struct BilinearResizeParams {
    /// Images.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub ih: usize,
    /// Input width.
    pub iw: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Top-left corner of the source window, in source pixels.
    pub y0: f32,
    /// Left edge of the source window, in source pixels (`y0` is its top).
    pub x0: f32,
    /// Source pixels per output pixel.
    pub ratio_h: f32,
    /// Source pixels per output pixel along W (`ratio_h`: along H).
    pub ratio_w: f32,
    /// Widen the filter to the ratio when shrinking (PyTorch's `antialias=True`); forward only.
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

    /// Elements of the (n, c, oh, ow) output.
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

/// Records `dx (n, c, ih, iw) = d resize / dx` for `dy` (n, c, oh, ow): the gradient of the plain
/// bilinear resize (times the affine's multipliers; the addends have no input gradient). The
/// antialiased filter has no backward kernel: an error when `p.antialias` would select it
/// (it does only when shrinking; otherwise the forward is plain bilinear and so is this).
pub fn bilinear_resize_bwd(
    gpu: &Gpu,
    p: &BilinearResizeParams,
    dy: &GpuBuffer,
    affine: &GpuBuffer,
    dx: &GpuBuffer,
) -> Result<Dispatch> {
    if p.antialias && (p.ratio_h > 1.0 || p.ratio_w > 1.0) {
        return Err(Error::invalid(
            "bilinear_resize_bwd: the antialiased (shrinking) resize has no backward; use antialias = false",
        ));
    }
    let finite = [p.y0, p.x0, p.ratio_h, p.ratio_w].iter().all(|v| v.is_finite());
    if !finite || p.ratio_h <= 0.0 || p.ratio_w <= 0.0 || p.ih == 0 || p.iw == 0 {
        return Err(Error::invalid(format!("bilinear_resize_bwd: invalid resize {p:?}")));
    }
    let input_len = p.n * p.c * p.ih * p.iw;
    check_len("bilinear_resize_bwd dy", dy, p.output_len())?;
    check_len("bilinear_resize_bwd affine", affine, 2 * p.c)?;
    check_len("bilinear_resize_bwd dx", dx, input_len)?;
    let mut c = p.constants();
    c.retain(|&(k, _)| k != "ANTIALIAS");
    // Each output element feeds 4 input elements: ~2 FLOPs each, plus the tap recomputation.
    let n = p.output_len() as u64;
    Ok(Dispatch::new(gpu, Kernel::BilinearResizeBwd, &c, &[dy, affine, dx], input_len as u64, "bilinear_resize_bwd")?
        .with_cost(8 * n, 4 * (n + input_len as u64)))
}

/// The preprocessing's separable resize read from a host's texture (`resample_image_h` then
/// `resample_image_v`): source rows `y0..y0 + rows` resampled across to `res` columns, then down
/// to `res` rows. The taps tables hold a header (`taps_*`, `rows`, `y0` for the horizontal pass
/// or 0, then 0) and per output the first source index and `taps_*` weights (zero-padded), as
/// `infer::Preprocess` computes them; the kernels read the sizes from the header, so that one
/// pipeline serves every image size.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageResampleParams {
    /// First source row the vertical pass reads.
    pub y0: usize,
    /// Source rows the vertical pass reads.
    pub rows: usize,
    /// Output side (the crop).
    pub res: usize,
    /// Weights per output column.
    pub taps_h: usize,
    /// Weights per output row.
    pub taps_v: usize,
    /// The texture's format is sRGB: encode its values back before rounding to 8 bits.
    pub srgb: bool,
    /// Round the horizontal pass to 8 bits (PIL); off keeps it exact (torch on uint8 tensors).
    pub round_between: bool,
}

impl ImageResampleParams {
    /// Elements of the horizontal pass's output, (3, rows, res).
    pub fn across_len(&self) -> usize {
        3 * self.rows * self.res
    }

    /// Elements of the result, (3, res, res).
    pub fn output_len(&self) -> usize {
        3 * self.res * self.res
    }
}

/// Records the horizontal pass over `image` (a `texture_2d<f32>` view) into `across`.
pub fn resample_image_h(
    gpu: &Gpu,
    p: &ImageResampleParams,
    taps: &GpuBuffer,
    across: &GpuBuffer,
    image: &wgpu::TextureView,
) -> Result<Dispatch> {
    check_len("resample_image_h taps", taps, 4 + p.res * (1 + p.taps_h))?;
    check_len("resample_image_h across", across, p.across_len())?;
    let c = [("RES", p.res as f64), ("SRGB", p.srgb as u32 as f64), ("ROUND", p.round_between as u32 as f64)];
    let n = (p.rows * p.res) as u64;
    Ok(Dispatch::with_image(gpu, Kernel::ResampleImageH, &c, &[taps, across], image, n, "resample_image_h")?
        .with_cost(6 * n * p.taps_h as u64, 4 * (3 * n + n * p.taps_h as u64)))
}

/// Records the vertical pass: `across` → `y` (3, res, res), rounded to 8 bits and normalised by
/// `affine` (3 multipliers, 3 addends).
pub fn resample_image_v(
    gpu: &Gpu,
    p: &ImageResampleParams,
    across: &GpuBuffer,
    taps: &GpuBuffer,
    affine: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<Dispatch> {
    check_len("resample_image_v across", across, p.across_len())?;
    check_len("resample_image_v taps", taps, 4 + p.res * (1 + p.taps_v))?;
    check_len("resample_image_v affine", affine, 6)?;
    check_len("resample_image_v y", y, p.output_len())?;
    let c = [("RES", p.res as f64)];
    let n = p.output_len() as u64;
    Ok(Dispatch::new(gpu, Kernel::ResampleImageV, &c, &[across, taps, affine, y], n, "resample_image_v")?
        .with_cost(2 * n * p.taps_v as u64, 4 * (2 * n + n * p.taps_v as u64)))
}
