//! Image classification: decoded images → preprocessing (the resize and center crop of the
//! weights' source library on the CPU, normalisation on the GPU) → the network → probabilities →
//! top-k.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

pub use crate::data::load_image;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Readback};
use crate::model::{imagenet_label, Config, EfficientNet, ForwardPlan, Variant, WeightFormat};
use crate::ops::{bilinear_resize_fwd, resample_image_h, resample_image_v, BilinearResizeParams, ImageResampleParams};

/// ImageNet's per-channel mean (R, G, B) on the 0–1 scale.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation (R, G, B) on the 0–1 scale.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// The mean and std of TF's "inception" preprocessing, `x * 2 - 1` (timm `tf_efficientnet_lite*`).
const HALF: [f32; 3] = [0.5, 0.5, 0.5];
/// Largest `resize_size` (and so `resolution`) [`Preprocess::validate`] accepts.
const MAX_SIDE: usize = 4096;

/// The resampling filter of the resize, as PIL and torch's antialiased resize define them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    /// Triangle filter, support 1 (PIL `BILINEAR`, torch `bilinear`).
    Bilinear,
    /// Keys cubic with a = -0.5, support 2 (PIL `BICUBIC`, torch `bicubic` with `antialias=True`).
    Bicubic,
}

impl Interpolation {
    /// Half-width of the filter in source pixels at scale 1.
    fn support(self) -> f64 {
        match self {
            Interpolation::Bilinear => 1.0,
            Interpolation::Bicubic => 2.0,
        }
    }

    /// The filter at distance `x` (source pixels at scale 1), as PIL's `Resample.c` computes it.
    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Interpolation::Bilinear => (1.0 - x).max(0.0),
            Interpolation::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// How images are turned into network input, the way torchvision's `ImageClassification` and
/// timm's eval transform do it: resize (short side to `resize_size`, or both sides when
/// `keep_aspect` is off), center crop `resolution` x `resolution`, scale 8-bit values to [0, 1],
/// subtract `mean` and divide by `std`. [`Preprocess::preset`] gives the numbers each weight
/// source was evaluated with; [`Preprocess::imagenet`] is REFERENCE.md's rule.
///
/// The resize and crop run on the CPU ([`Preprocess::resample`], any image size, only the crop's
/// source pixels touched): the GPU resize kernel has no bicubic filter, and the libraries' 8-bit
/// rounding is easiest to reproduce exactly in a plain loop (tests/preprocess.rs: within one
/// level of PIL and torch on the same pixels). The normalisation runs on the GPU, writing the
/// network's input.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Preprocess {
    /// Output side in pixels: the center crop the network sees.
    pub resolution: usize,
    /// Size the image is resized to before the crop: its short side when `keep_aspect` (the long
    /// side follows, truncated as torchvision does), both sides otherwise. At least `resolution`.
    pub resize_size: usize,
    /// Keep the aspect ratio (torchvision's `Resize(int)`); off squashes the image to
    /// `resize_size` x `resize_size` (timm's `crop_mode="squash"`).
    pub keep_aspect: bool,
    /// The resampling filter.
    pub interpolation: Interpolation,
    /// Widen the filter by the downscale factor when shrinking, as PIL always does and torch does
    /// with `antialias=True`; off aliases on large photos.
    pub antialias: bool,
    /// Round and clip to 8 bits between the two resize passes, as PIL does (torchvision and timm
    /// on PIL images); off keeps the first pass exact and rounds only the result, as torch's
    /// resize of a uint8 tensor does (torchvision's transforms on `read_image` tensors). The two
    /// differ by a few levels next to sharp dark or bright edges, where the bicubic pass
    /// overshoots [0, 255] (up to 7 levels on tests/fixtures/photos/coffee.jpg).
    pub round_between_passes: bool,
    /// Per-channel mean (R, G, B) on the 0–1 scale, subtracted before dividing by `std`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation (R, G, B) on the 0–1 scale.
    pub std: [f32; 3],
}

impl Preprocess {
    /// REFERENCE.md's ImageNet preprocessing at `resolution`: bicubic (antialiased) resize of the
    /// short side to `floor(resolution / 0.875)` (256 for 224), center crop, ImageNet mean and std,
    /// rounded between the passes like PIL.
    pub fn imagenet(resolution: usize) -> Self {
        Preprocess {
            resolution,
            resize_size: (resolution as f64 / 0.875).floor() as usize,
            keep_aspect: true,
            interpolation: Interpolation::Bicubic,
            antialias: true,
            round_between_passes: true,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// The evaluation preprocessing of the weights `format` publishes for `variant`, read from the
    /// libraries (baselines/make_preprocess_fixtures.py prints them; tests/preprocess.rs checks
    /// this table against the copy in the fixtures' metadata):
    ///
    /// - torchvision 0.29: `EfficientNet_B*_Weights.IMAGENET1K_V1.transforms()`, bicubic with
    ///   `antialias=True`, ImageNet mean/std; resize → crop B0 256 → 224, B1 256 → 240, B2 288 → 288,
    ///   B3 320 → 300, B4 384 → 380, B5–B7 equal to the crop (456, 528, 600), run on uint8
    ///   tensors (`round_between_passes` off; turn it on to match the transform on PIL images).
    ///   No Lite weights: Lite gets [`Preprocess::imagenet`] at its resolution.
    /// - timm 1.0 (`efficientnet_*`, `efficientnet_lite*`) and timm-tf (`tf_efficientnet_*`,
    ///   `tf_efficientnet_lite*`): `resolve_data_config` of the default pretrained tag, resize to
    ///   `floor(input_size / crop_pct)` then crop `input_size`. The sizes are the tags' own and can
    ///   differ from the variant's (timm B2 256, B3 288, B4 320, B5 448 squashed; tf Lite3 300,
    ///   Lite4 380). timm B1 (`ra4_e3600_r240_in1k`) and every tf Lite use mean = std = 0.5;
    ///   tf Lite3/4 are bilinear, the rest bicubic. timm B6, B7 and Lite1–4 have no weights: their
    ///   default config is used. (Other tags differ: `tf_efficientnet_*.ap_in1k` (AdvProp) uses
    ///   mean = std = 0.5; set the fields for those.)
    /// - lukemelas (`efficientnet_pytorch`, which ships no transform): its examples/imagenet
    ///   evaluation, `Resize(image_size, BICUBIC)` + `CenterCrop(image_size)` with ImageNet mean/std,
    ///   i.e. the short side resized straight to the variant's resolution (crop fraction 1). No Lite
    ///   weights: Lite gets [`Preprocess::imagenet`].
    pub fn preset(format: WeightFormat, variant: Variant) -> Self {
        use Variant::*;
        // (resolution, resize_size) per variant; squash, filter and normalisation set below.
        let (resolution, resize_size) = match (format, variant) {
            (WeightFormat::Torchvision, B0) => (224, 256),
            (WeightFormat::Torchvision, B1) => (240, 256),
            (WeightFormat::Torchvision, B2) => (288, 288),
            (WeightFormat::Torchvision, B3) => (300, 320),
            (WeightFormat::Torchvision, B4) => (380, 384),
            (WeightFormat::Torchvision, B5) => (456, 456),
            (WeightFormat::Torchvision, B6) => (528, 528),
            (WeightFormat::Torchvision, B7) => (600, 600),
            (WeightFormat::Timm, B0) => (224, 256),    // ra_in1k, crop_pct 0.875
            (WeightFormat::Timm, B1) => (240, 266),    // ra4_e3600_r240_in1k, 0.9
            (WeightFormat::Timm, B2) => (256, 292),    // ra_in1k, 0.875
            (WeightFormat::Timm, B3) => (288, 329),    // ra2_in1k, 0.875
            (WeightFormat::Timm, B4) => (320, 365),    // ra2_in1k, 0.875
            (WeightFormat::Timm, B5) => (448, 448),    // sw_in12k_ft_in1k, 1.0, squash
            (WeightFormat::Timm, B6) => (528, 560),    // no weights, 0.942
            (WeightFormat::Timm, B7) => (600, 632),    // no weights, 0.949
            (WeightFormat::Timm, Lite0) => (224, 256), // ra_in1k, 0.875
            (WeightFormat::Timm, Lite1) => (240, 272), // no weights, 0.882
            (WeightFormat::Timm, Lite2) => (260, 292), // no weights, 0.89
            (WeightFormat::Timm, Lite3) => (300, 331), // no weights, 0.904
            (WeightFormat::Timm, Lite4) => (380, 412), // no weights, 0.922
            (WeightFormat::TimmTf, B0) => (224, 256),  // ns_jft_in1k, 0.875
            (WeightFormat::TimmTf, B1) => (240, 272),  // 0.882
            (WeightFormat::TimmTf, B2) => (260, 292),  // 0.89
            (WeightFormat::TimmTf, B3) => (300, 331),  // 0.904
            (WeightFormat::TimmTf, B4) => (380, 412),  // 0.922
            (WeightFormat::TimmTf, B5) => (456, 488),  // 0.934
            (WeightFormat::TimmTf, B6) => (528, 560),  // 0.942
            (WeightFormat::TimmTf, B7) => (600, 632),  // 0.949
            (WeightFormat::TimmTf, Lite0) => (224, 256), // in1k, 0.875
            (WeightFormat::TimmTf, Lite1) => (240, 272), // 0.882
            (WeightFormat::TimmTf, Lite2) => (260, 292), // 0.89
            (WeightFormat::TimmTf, Lite3) => (300, 331), // 0.904
            (WeightFormat::TimmTf, Lite4) => (380, 413), // 0.92
            (WeightFormat::Lukemelas, B0 | B1 | B2 | B3 | B4 | B5 | B6 | B7) => {
                let r = variant.coefficients().2 as usize;
                (r, r)
            }
            (WeightFormat::Torchvision | WeightFormat::Lukemelas, Lite0 | Lite1 | Lite2 | Lite3 | Lite4) => {
                return Preprocess::imagenet(variant.coefficients().2 as usize);
            }
        };
        let half = matches!((format, variant), (WeightFormat::Timm, B1))
            || matches!((format, variant), (WeightFormat::TimmTf, Lite0 | Lite1 | Lite2 | Lite3 | Lite4));
        let bilinear = matches!((format, variant), (WeightFormat::TimmTf, Lite3 | Lite4));
        Preprocess {
            resolution,
            resize_size,
            keep_aspect: !matches!((format, variant), (WeightFormat::Timm, B5)),
            interpolation: if bilinear { Interpolation::Bilinear } else { Interpolation::Bicubic },
            antialias: true,
            // The fixtures check torchvision's transform on uint8 tensors and timm's on PIL images.
            round_between_passes: format != WeightFormat::Torchvision,
            mean: if half { HALF } else { IMAGENET_MEAN },
            std: if half { HALF } else { IMAGENET_STD },
        }
    }

    /// The preset for weights in `format` for `config`: [`Preprocess::preset`] of its built-in
    /// variant, or [`Preprocess::imagenet`] at `config.resolution` for a custom config.
    pub fn for_weights(format: WeightFormat, config: &Config) -> Self {
        match config.variant() {
            Some(v) => Preprocess::preset(format, v),
            None => Preprocess::imagenet(config.resolution as usize),
        }
    }

    /// Fraction of the resized short side the crop covers (`input_size / resize_size`, timm's
    /// `crop_pct`): 0.875 for 224 of 256.
    pub fn crop_fraction(&self) -> f32 {
        self.resolution as f32 / self.resize_size as f32
    }

    /// Refuses sizes that cannot give a `resolution` x `resolution` crop, and a mean or std that
    /// would make the input non-finite.
    pub fn validate(&self) -> Result<()> {
        if self.resolution == 0 || self.resize_size < self.resolution {
            return Err(Error::invalid(format!(
                "preprocess: resize_size ({}) must be at least resolution ({}), which must be at least 1",
                self.resize_size, self.resolution
            )));
        }
        // The largest published input is 600 px; the bound keeps a typo from allocating gigabytes.
        if self.resize_size > MAX_SIDE {
            return Err(Error::invalid(format!("preprocess: resize_size {} is over {MAX_SIDE}", self.resize_size)));
        }
        if !self.mean.iter().chain(&self.std).all(|v| v.is_finite()) || self.std.contains(&0.0) {
            return Err(Error::invalid(format!(
                "preprocess: mean {:?} and std {:?} must be finite, std non-zero",
                self.mean, self.std
            )));
        }
        Ok(())
    }

    /// (height, width) of an `h` x `w` image after the resize: the short side becomes
    /// `resize_size` and the long side `trunc(resize_size * long / short)` (torchvision's
    /// `_compute_resized_output_size`), or both sides `resize_size` when `keep_aspect` is off.
    pub fn resized_size(&self, h: usize, w: usize) -> (usize, usize) {
        let s = self.resize_size;
        if !self.keep_aspect {
            return (s, s);
        }
        let long = |long: usize, short: usize| ((s as f64 * long as f64 / short as f64) as usize).max(s);
        if h <= w {
            (s, long(w, h))
        } else {
            (long(h, w), s)
        }
    }

    /// Resizes and center-crops `img` as the libraries do, on the CPU: (3, resolution,
    /// resolution) values in [0, 1] on the 8-bit grid, not yet normalised.
    ///
    /// Two separable passes over only the source pixels the crop needs, W first and then H as PIL
    /// does; the result is rounded to 8 bits as both libraries round (inputs that are not 8-bit
    /// are quantised the same way), the intermediate too when `round_between_passes`. Filter
    /// weights: PIL's `precompute_coeffs`, the filter scaled by the shrink factor when
    /// `antialias`, normalised over the taps inside the image. The crop's offset rounds half to
    /// even (torchvision's `center_crop`). Without `antialias` the filters keep their natural
    /// width: bilinear then equals torch's `antialias=False`; bicubic keeps PIL's a = -0.5 where
    /// torch's plain bicubic uses -0.75.
    pub fn resample(&self, img: &RgbPlanes) -> Result<RgbPlanes> {
        self.validate()?;
        img.check_shape()?;
        let res = self.resolution;
        let (rh, rw) = self.resized_size(img.h, img.w);
        let top = ((rh - res) as f64 / 2.0).round_ties_even() as usize;
        let left = ((rw - res) as f64 / 2.0).round_ties_even() as usize;
        // One (first source index, weights) per output row and per output column of the crop.
        let rows = self.taps(img.h, rh, top, res);
        let cols = self.taps(img.w, rw, left, res);
        // Source rows the vertical pass reads: the horizontal pass resamples only those.
        let y_lo = rows.iter().map(|t| t.0).min().unwrap_or(0);
        let y_hi = rows.iter().map(|t| t.0 + t.1.len()).max().unwrap_or(0);
        let round8 = |v: f64| (v + 0.5).floor().clamp(0.0, 255.0);
        let (h, w, n_rows) = (img.h, img.w, y_hi - y_lo);
        let mut across = vec![0f64; 3 * n_rows * res]; // (3, y_hi - y_lo, res), 0–255 scale
        for c in 0..3 {
            for y in y_lo..y_hi {
                let src = &img.data[(c * h + y) * w..(c * h + y + 1) * w];
                let dst = &mut across[(c * n_rows + y - y_lo) * res..(c * n_rows + y - y_lo + 1) * res];
                for (d, (start, weights)) in dst.iter_mut().zip(&cols) {
                    let sum: f64 = weights.iter().zip(&src[*start..]).map(|(&k, &v)| k * v as f64).sum();
                    *d = if self.round_between_passes { round8(255.0 * sum) } else { 255.0 * sum };
                }
            }
        }
        let mut data = vec![0f32; 3 * res * res]; // (3, res, res)
        for c in 0..3 {
            for (oy, (start, weights)) in rows.iter().enumerate() {
                for ox in 0..res {
                    let sum: f64 = weights
                        .iter()
                        .enumerate()
                        .map(|(k, &wk)| wk * across[(c * n_rows + start + k - y_lo) * res + ox])
                        .sum();
                    data[(c * res + oy) * res + ox] = (round8(sum) / 255.0) as f32;
                }
            }
        }
        Ok(RgbPlanes { h: res, w: res, data })
    }

    /// Taps of outputs `first..first + count` of a resize of `in_size` to `out_size` samples along
    /// one axis: (first source index, normalised weights), as PIL's `precompute_coeffs`.
    fn taps(&self, in_size: usize, out_size: usize, first: usize, count: usize) -> Vec<(usize, Vec<f64>)> {
        let scale = in_size as f64 / out_size as f64;
        let filter_scale = if self.antialias { scale.max(1.0) } else { 1.0 };
        let support = self.interpolation.support() * filter_scale;
        (first..first + count)
            .map(|i| {
                let center = (i as f64 + 0.5) * scale;
                // `as usize` saturates a negative start at 0, as PIL clamps it.
                let lo = ((center - support + 0.5) as usize).min(in_size - 1);
                let hi = ((center + support + 0.5) as usize).clamp(lo + 1, in_size);
                let mut weights: Vec<f64> =
                    (lo..hi).map(|j| self.interpolation.weight((j as f64 - center + 0.5) / filter_scale)).collect();
                let total: f64 = weights.iter().sum();
                if total != 0.0 {
                    weights.iter_mut().for_each(|k| *k /= total);
                }
                (lo, weights)
            })
            .collect()
    }

    /// The resize of an `h` x `w` image as the GPU passes run it: their parameters (not yet
    /// `srgb`) and taps tables, the weights of [`Preprocess::resample`]'s in f32.
    pub fn image_tables(&self, h: usize, w: usize) -> Result<(ImageResampleParams, Vec<f32>, Vec<f32>)> {
        self.validate()?;
        if h == 0 || w == 0 {
            return Err(Error::invalid(format!("an image of {w}x{h} pixels has nothing to classify")));
        }
        let res = self.resolution;
        let (rh, rw) = self.resized_size(h, w);
        let top = ((rh - res) as f64 / 2.0).round_ties_even() as usize;
        let left = ((rw - res) as f64 / 2.0).round_ties_even() as usize;
        let rows = self.taps(h, rh, top, res);
        let cols = self.taps(w, rw, left, res);
        let y0 = rows.iter().map(|t| t.0).min().unwrap_or(0);
        let y_hi = rows.iter().map(|t| t.0 + t.1.len()).max().unwrap_or(0);
        // A header the kernels read their sizes from (K, rows, first row), then the taps.
        let table = |taps: &[(usize, Vec<f64>)], base: usize, first_row: usize| {
            let k = taps.iter().map(|t| t.1.len()).max().unwrap_or(1);
            let mut out = Vec::with_capacity(4 + taps.len() * (1 + k));
            out.extend([k as f32, (y_hi - y0) as f32, first_row as f32, 0.0]);
            for (first, weights) in taps {
                out.push((first - base) as f32);
                out.extend(weights.iter().map(|&v| v as f32));
                out.extend(std::iter::repeat_n(0.0, k - weights.len()));
            }
            (k, out)
        };
        let (taps_h, h_table) = table(&cols, 0, y0);
        let (taps_v, v_table) = table(&rows, y0, 0);
        let p = ImageResampleParams {
            y0,
            rows: y_hi - y0,
            res,
            taps_h,
            taps_v,
            srgb: false,
            round_between: self.round_between_passes,
        };
        Ok((p, h_table, v_table))
    }

    /// Records the preprocessing of a host's texture on the GPU (resize, crop, 8-bit rounding,
    /// normalisation: no CPU copy of the image), writing `dst` (3, resolution, resolution). The
    /// buffers returned must live until the dispatches are submitted.
    fn record_texture(
        &self,
        gpu: &Gpu,
        texture: &wgpu::Texture,
        affine: &GpuBuffer,
        dst: &GpuBuffer,
    ) -> Result<(Vec<Dispatch>, Vec<GpuBuffer>)> {
        let srgb = check_texture(texture)?;
        let (mut p, h_table, v_table) = self.image_tables(texture.height() as usize, texture.width() as usize)?;
        p.srgb = srgb;
        let view = texture.create_view(&wgpu::TextureViewDescriptor {
            label: Some("classified image"),
            mip_level_count: Some(1),
            ..Default::default()
        });
        let (h_taps, v_taps) = (gpu.upload(&h_table, "taps across")?, gpu.upload(&v_table, "taps down")?);
        let across = gpu.empty(p.across_len(), "resized rows")?;
        let dispatches = vec![
            resample_image_h(gpu, &p, &h_taps, &across, &view)?,
            resample_image_v(gpu, &p, &across, &v_taps, affine, dst)?,
        ];
        Ok((dispatches, vec![h_taps, v_taps, across]))
    }

    /// The network input for `textures` (each an image on `gpu`'s device), made on the GPU as
    /// [`Classifier::classify_textures`] makes it: (n, 3, resolution, resolution), NCHW.
    pub fn apply_textures(&self, gpu: &Gpu, textures: &[&wgpu::Texture]) -> Result<Vec<f32>> {
        let affine = gpu.upload(&self.affine(), "normalisation")?;
        let mut out = Vec::new();
        for texture in textures {
            let dst = gpu.empty(3 * self.resolution * self.resolution, "preprocessed")?;
            let (dispatches, _keep) = self.record_texture(gpu, texture, &affine, &dst)?;
            crate::gpu::submit(gpu, &dispatches)?;
            out.extend(gpu.read(&dst)?);
        }
        Ok(out)
    }

    /// The kernel's per-channel affine: `(x - mean) / std` as `x * (1/std) + (-mean/std)`.
    fn affine(&self) -> [f32; 6] {
        let [m0, m1, m2] = self.mean;
        let [s0, s1, s2] = self.std;
        [1.0 / s0, 1.0 / s1, 1.0 / s2, -m0 / s0, -m1 / s1, -m2 / s2]
    }

    /// Resamples `img` on the CPU and records its normalisation on the GPU: the resize kernel at
    /// ratio 1 (an exact copy) with the affine. Returns the dispatch, and the buffers it reads and
    /// writes (`dst`: (3, resolution, resolution)), which must live until it is submitted.
    fn record(&self, gpu: &Gpu, img: &RgbPlanes, affine: &GpuBuffer) -> Result<(Dispatch, GpuBuffer, GpuBuffer)> {
        let crop = self.resample(img)?;
        let res = self.resolution;
        let p = BilinearResizeParams::to_size(1, 3, res, res, res, res);
        let src = gpu.upload(&crop.data, "image")?;
        let dst = gpu.empty(p.output_len(), "preprocessed")?;
        Ok((bilinear_resize_fwd(gpu, &p, &src, affine, &dst)?, src, dst))
    }

    /// The network input for `images`: (n, 3, resolution, resolution), NCHW, normalised, made
    /// exactly as [`Classifier`] makes it (CPU resample, GPU normalisation).
    pub fn apply(&self, gpu: &Gpu, images: &[RgbPlanes]) -> Result<Vec<f32>> {
        let affine = gpu.upload(&self.affine(), "normalisation")?;
        let mut out = Vec::with_capacity(images.len() * 3 * self.resolution * self.resolution);
        for img in images {
            let (dispatch, _src, dst) = self.record(gpu, img, &affine)?;
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            crate::gpu::encode_dispatches(&mut encoder, "preprocess", [&dispatch]);
            gpu.submit("preprocessing", [encoder.finish()])?;
            out.extend(gpu.read(&dst)?);
        }
        Ok(out)
    }
}

/// One class of a top-k answer.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// Class index: the column of the model's output.
    pub class: usize,
    /// The class's name, where the classifier has names (`Classifier::labels`).
    pub label: Option<String>,
    /// Softmax probability of the class, in [0, 1].
    pub prob: f32,
}

/// An RGB image as (3, h, w) f32 planes in [0, 1], the form uploaded to the GPU.
#[derive(Clone, Debug)]
pub struct RgbPlanes {
    /// Height in pixels.
    pub h: usize,
    /// Width in pixels.
    pub w: usize,
    /// The values, (3, h, w) row-major: R, G then B planes, each in [0, 1].
    pub data: Vec<f32>,
}

impl RgbPlanes {
    /// An error unless `data` holds 3 x h x w values and the image has at least one pixel.
    fn check_shape(&self) -> Result<()> {
        if self.data.len() != 3 * self.h * self.w || self.h == 0 || self.w == 0 {
            return Err(Error::Shape {
                what: "image planes".into(),
                expected: vec![3, self.h, self.w],
                got: vec![self.data.len()],
            });
        }
        Ok(())
    }

    /// Converts a decoded image to RGB (alpha dropped, gray replicated) with 8-bit values scaled to [0, 1].
    pub fn from_image(img: &image::DynamicImage) -> RgbPlanes {
        let rgb = img.to_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let mut data = vec![0f32; 3 * h * w];
        for (i, p) in rgb.pixels().enumerate() {
            for c in 0..3 {
                data[c * h * w + i] = p.0[c] as f32 / 255.0;
            }
        }
        RgbPlanes { h, w, data }
    }
}

/// EfficientNet as an image classifier on the model's GPU. Usable from any thread (see
/// [`EfficientNet`]'s note on sharing); desktop apps build the `Gpu` from their own device with
/// `Gpu::from_device`.
pub struct Classifier {
    /// The network with its weights on its GPU; `config.num_classes` is the width of each output row.
    pub model: EfficientNet,
    /// How images become network input; ImageNet's at the model's resolution unless changed.
    /// Set it to `Preprocess::for_weights(format, &model.config)` to match where the weights came from.
    pub preprocess: Preprocess,
    /// Images per GPU batch.
    pub batch_size: usize,
    /// The class names predictions carry: one per class. ImageNet's for 1000-class models unless
    /// set (`with_labels`), none otherwise.
    pub labels: Option<Vec<String>>,
}

impl Classifier {
    /// A classifier with ImageNet preprocessing at the model's `config.resolution` and batches of
    /// 8; 1000-class models name their classes with ImageNet's names.
    pub fn new(model: EfficientNet) -> Classifier {
        let preprocess = Preprocess::imagenet(model.config.resolution as usize);
        let labels = (model.config.num_classes == 1000)
            .then(|| (0..1000).map(|c| imagenet_label(c).unwrap_or_default().to_string()).collect());
        Classifier { model, preprocess, batch_size: 8, labels }
    }

    /// The GPU the model lives on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        self.model.gpu()
    }

    /// Compiles and runs once everything a classification of one image uses (the network at the
    /// preprocessing's resolution, and the texture path's resize), so that the first real one is
    /// fast. An app runs it on a background thread at start.
    pub fn warm_up(&self) -> Result<()> {
        let res = self.preprocess.resolution;
        self.model.warm_up(1, res, res)?;
        let blank = image::RgbaImage::new(res as u32, res as u32);
        self.texture_probabilities(&[&image_texture(self.gpu(), &blank)?])?;
        Ok(())
    }

    /// Names the classes with `labels` (one per class, in class order): the names a trained model
    /// carries (`Weights::class_names_in_file`) or a labels file.
    pub fn with_labels(mut self, labels: Vec<String>) -> Result<Classifier> {
        let classes = self.model.config.num_classes;
        if labels.len() != classes {
            return Err(Error::invalid(format!("{} class names given for a model of {classes} classes", labels.len())));
        }
        self.labels = Some(labels);
        Ok(self)
    }

    /// Class probabilities (one row of `num_classes` per image).
    pub fn probabilities(&self, images: &[RgbPlanes]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.slice()?) {
            let probs = self.submit_images(chunk)?.wait()?.remove(0);
            out.extend(self.rows(probs)?);
        }
        Ok(out)
    }

    /// `probabilities` without blocking: the work is submitted now and the future resolves through
    /// `map_async` (see [`crate::gpu::Readback`]). No thread is started.
    pub fn probabilities_async(
        &self,
        images: &[RgbPlanes],
    ) -> impl Future<Output = Result<Vec<Vec<f32>>>> + Send + 'static {
        let submitted: Result<Vec<Readback>> =
            self.slice().and_then(|slice| images.chunks(slice).map(|c| self.submit_images(c)).collect());
        let (classes, allow) = (self.model.config.num_classes, self.model.allows_non_finite());
        async move {
            let mut out = Vec::new();
            for readback in submitted? {
                let probs = readback.await?.remove(0);
                out.extend(probability_rows(probs, classes, allow)?);
            }
            Ok(out)
        }
    }

    /// Images per submission: the batch size, within what one slice holds on the device.
    fn slice(&self) -> Result<usize> {
        self.preprocess.validate()?;
        let res = self.preprocess.resolution;
        Ok(self.batch_size.max(1).min(self.model.max_batch(res, res)?.max(1)))
    }

    fn rows(&self, probs: Vec<f32>) -> Result<Vec<Vec<f32>>> {
        probability_rows(probs, self.model.config.num_classes, self.model.allows_non_finite())
    }

    /// Submits one chunk of images in one command buffer: the normalisation of each CPU-resampled
    /// crop into its slot of the plan's input, the forward with softmax, and the copy of the
    /// probabilities out.
    fn submit_images(&self, chunk: &[RgbPlanes]) -> Result<Readback> {
        let gpu = self.gpu();
        let res = self.preprocess.resolution;
        let plan = self.model.plan(chunk.len(), res, res, &[])?;
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        // The buffers and dispatches live until the submit below.
        let affine = gpu.upload(&self.preprocess.affine(), "normalisation")?;
        let mut keep = Vec::new();
        let mut pre = Vec::new();
        for img in chunk {
            img.check_shape()?;
            if !self.model.allows_non_finite() {
                crate::model::efficientnet::check_finite("image values", &img.data, img.data.len())?;
            }
            // Resized and cropped on the CPU (any size: only the crop is uploaded), normalised
            // on the GPU.
            let (dispatch, src, dst) = self.preprocess.record(gpu, img, &affine)?;
            pre.push(dispatch);
            keep.push((src, dst));
        }
        crate::gpu::encode_dispatches(&mut encoder, "preprocess", &pre);
        let per_image = (3 * res * res * 4) as u64;
        for (i, (_, dst)) in keep.iter().enumerate() {
            encoder.copy_buffer_to_buffer(&dst.buffer, 0, &plan.input().buffer, i as u64 * per_image, per_image);
        }
        self.finish(plan, encoder)
    }

    /// Encodes the forward with softmax after whatever filled the plan's input in `encoder`,
    /// stages the probabilities, submits.
    fn finish(&self, plan: Arc<ForwardPlan>, mut encoder: wgpu::CommandEncoder) -> Result<Readback> {
        let gpu = self.gpu();
        plan.encode(gpu, None, &mut encoder, true)?;
        let staged = gpu.stage(&mut encoder, &[plan.probabilities()])?;
        let index = gpu.submit("classifying", [encoder.finish()])?;
        Ok(staged.read(gpu, index))
    }

    /// Class probabilities of images the app already has on the GPU (a rendered or video
    /// frame, an uploaded photo): resized, cropped, rounded and normalised on the GPU as the
    /// CPU-decoded path does it, with no copy to the CPU. Each texture must be 2-D, on the
    /// model's device, with `TEXTURE_BINDING` usage and an RGBA/BGRA 8-bit (sRGB or not),
    /// `Rgba16Float` or `Rgba32Float` format; alpha is ignored, values are rounded to 8 bits.
    pub fn texture_probabilities(&self, textures: &[&wgpu::Texture]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(textures.len());
        for chunk in textures.chunks(self.slice()?) {
            let probs = self.submit_textures(chunk)?.wait()?.remove(0);
            out.extend(self.rows(probs)?);
        }
        Ok(out)
    }

    /// The `k` most probable classes of each texture (see `texture_probabilities`).
    pub fn classify_textures(&self, textures: &[&wgpu::Texture], k: usize) -> Result<Vec<Vec<Prediction>>> {
        Ok(self.top(self.texture_probabilities(textures)?, k))
    }

    /// `classify_textures` without blocking: submitted now, resolved through `map_async`.
    pub fn classify_textures_async(
        &self,
        textures: &[&wgpu::Texture],
        k: usize,
    ) -> impl Future<Output = Result<Vec<Vec<Prediction>>>> + Send + 'static {
        let submitted: Result<Vec<Readback>> =
            self.slice().and_then(|slice| textures.chunks(slice).map(|c| self.submit_textures(c)).collect());
        let (classes, allow) = (self.model.config.num_classes, self.model.allows_non_finite());
        let labels = self.labels.clone();
        async move {
            let mut out = Vec::new();
            for readback in submitted? {
                out.extend(probability_rows(readback.await?.remove(0), classes, allow)?);
            }
            Ok(top_predictions(out, k, labels.as_deref()))
        }
    }

    /// One chunk of textures in one command buffer: each preprocessed straight into its slot of
    /// the plan's input, then the forward with softmax and the copy of the probabilities out.
    fn submit_textures(&self, chunk: &[&wgpu::Texture]) -> Result<Readback> {
        let gpu = self.gpu();
        let res = self.preprocess.resolution;
        let plan = self.model.plan(chunk.len(), res, res, &[])?;
        let affine = gpu.upload(&self.preprocess.affine(), "normalisation")?;
        let per_image = 3 * res * res;
        let (mut dispatches, mut keep, mut copies) = (Vec::new(), Vec::new(), Vec::new());
        for (i, texture) in chunk.iter().enumerate() {
            let slot = plan.input().slice(i * per_image, per_image);
            // A slot at an offset the device cannot bind goes through a buffer of its own.
            let dst = match slot.offset.is_multiple_of(gpu.limits.min_storage_buffer_offset_alignment as u64) {
                true => slot,
                false => {
                    let own = gpu.empty(per_image, "preprocessed")?;
                    copies.push((slot.offset, own.clone()));
                    own
                }
            };
            let (d, k) = self.preprocess.record_texture(gpu, texture, &affine, &dst)?;
            dispatches.extend(d);
            keep.extend(k);
        }
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        crate::gpu::encode_dispatches(&mut encoder, "preprocess", &dispatches);
        for (offset, own) in &copies {
            encoder.copy_buffer_to_buffer(&own.buffer, 0, &plan.input().buffer, *offset, own.bytes());
        }
        self.finish(plan, encoder)
    }

    /// The `k` most probable classes of each image, most probable first.
    pub fn classify(&self, images: &[RgbPlanes], k: usize) -> Result<Vec<Vec<Prediction>>> {
        Ok(self.top(self.probabilities(images)?, k))
    }

    /// `classify` without blocking: submitted now, resolved through `map_async` (see
    /// [`crate::gpu::Readback`]: the host's frame loop, or anything else polling the device,
    /// drives it). No thread is started.
    pub fn classify_async(
        &self,
        images: &[RgbPlanes],
        k: usize,
    ) -> impl Future<Output = Result<Vec<Vec<Prediction>>>> + Send + 'static {
        let probs = self.probabilities_async(images);
        let labels = self.labels.clone();
        async move { Ok(top_predictions(probs.await?, k, labels.as_deref())) }
    }

    fn top(&self, probs: Vec<Vec<f32>>, k: usize) -> Vec<Vec<Prediction>> {
        top_predictions(probs, k, self.labels.as_deref())
    }

    /// Decodes and classifies image files.
    pub fn classify_files<P: AsRef<Path>>(&self, paths: &[P], k: usize) -> Result<Vec<Vec<Prediction>>> {
        let planes =
            paths.iter().map(|p| load_image(p).map(|i| RgbPlanes::from_image(&i))).collect::<Result<Vec<_>>>()?;
        self.classify(&planes, k)
    }
}

/// Rows of `classes` probabilities, refused when one is not finite (unless `allow`).
fn probability_rows(probs: Vec<f32>, classes: usize, allow: bool) -> Result<Vec<Vec<f32>>> {
    if !allow {
        crate::model::efficientnet::check_finite("probabilities", &probs, classes)?;
    }
    Ok(probs.chunks(classes).map(<[f32]>::to_vec).collect())
}

/// The `k` most probable classes of each row, named from `labels` where given.
fn top_predictions(probs: Vec<Vec<f32>>, k: usize, labels: Option<&[String]>) -> Vec<Vec<Prediction>> {
    probs
        .into_iter()
        .map(|p| {
            top_k(&p, k)
                .into_iter()
                .map(|(class, prob)| Prediction { class, label: labels.and_then(|l| l.get(class).cloned()), prob })
                .collect()
        })
        .collect()
}

/// Uploads a decoded image as an `Rgba8UnormSrgb` texture (usage `TEXTURE_BINDING | COPY_DST`),
/// the way a UI shows a photo: for [`Classifier::classify_textures`], or to draw.
pub fn image_texture(gpu: &Gpu, img: &image::RgbaImage) -> Result<wgpu::Texture> {
    let (w, h) = img.dimensions();
    let max = gpu.limits.max_texture_dimension_2d;
    if w == 0 || h == 0 || w > max || h > max {
        return Err(Error::ExceedsDeviceLimit {
            what: format!("a {w}x{h} texture"),
            needed: w.max(h) as u64,
            limit: max as u64,
            limit_name: "max_texture_dimension_2d",
            hint: "classify the decoded image instead (Classifier::classify), which has no size limit".into(),
        });
    }
    let size = wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 };
    let texture = gpu.scoped("an image texture", 4 * w as u64 * h as u64, || {
        gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("image"),
            size,
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8UnormSrgb,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        })
    })?;
    gpu.queue.write_texture(
        texture.as_image_copy(),
        img.as_raw(),
        wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(4 * w), rows_per_image: Some(h) },
        size,
    );
    Ok(texture)
}

/// Whether `texture` can be classified (an error naming what is wrong if not), and whether its
/// format is sRGB.
fn check_texture(texture: &wgpu::Texture) -> Result<bool> {
    use wgpu::TextureFormat as F;
    let srgb = match texture.format() {
        F::Rgba8Unorm | F::Bgra8Unorm | F::Rgba16Float | F::Rgba32Float => false,
        F::Rgba8UnormSrgb | F::Bgra8UnormSrgb => true,
        other => {
            return Err(Error::invalid(format!(
                "a texture of format {other:?} cannot be classified: use Rgba8Unorm(Srgb), Bgra8Unorm(Srgb), \
                 Rgba16Float or Rgba32Float"
            )))
        }
    };
    if !texture.usage().contains(wgpu::TextureUsages::TEXTURE_BINDING) {
        return Err(Error::invalid(format!(
            "the texture's usage {:?} lacks TEXTURE_BINDING, which the classifier reads it through",
            texture.usage()
        )));
    }
    if texture.dimension() != wgpu::TextureDimension::D2 || texture.sample_count() != 1 {
        return Err(Error::invalid("only single-sampled 2-D textures can be classified"));
    }
    Ok(srgb)
}

/// Indices and values of the `k` largest entries, largest first (ties: lower index first).
pub fn top_k(values: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| (i, values[i])).collect()
}
