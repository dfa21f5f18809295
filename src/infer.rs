//! Image classification: decoded images → preprocessing on the GPU (resize + center crop +
//! normalisation in one kernel) → the network → probabilities → top-k.

use std::path::Path;
use std::sync::Arc;

pub use crate::data::load_image;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::{imagenet_label, EfficientNet};
use crate::ops::{bilinear_resize_fwd, BilinearResizeParams};

/// How images are turned into network input. The defaults are ImageNet's (REFERENCE.md): the
/// center crop covers 87.5% of the short side, resized to the variant's resolution, normalised
/// with ImageNet's mean and std.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Preprocess {
    /// Output side in pixels (the network's resolution).
    pub resolution: usize,
    /// Fraction of the short side the center crop covers (0.875 = torchvision's 224 of 256).
    pub crop_fraction: f32,
    /// Per-channel mean (R, G, B) on the 0–1 scale, subtracted before dividing by `std`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation (R, G, B) on the 0–1 scale.
    pub std: [f32; 3],
    /// Widen the filter when shrinking, as torchvision and PIL do; off aliases on large photos.
    pub antialias: bool,
}

impl Preprocess {
    /// ImageNet preprocessing at `resolution`: 87.5% center crop, ImageNet mean and std, antialiasing on.
    pub fn imagenet(resolution: usize) -> Self {
        Preprocess {
            resolution,
            crop_fraction: 0.875,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            antialias: true,
        }
    }

    /// The resize of a `h` x `w` image: a centered square window of `crop_fraction` of the short
    /// side, mapped onto `resolution` x `resolution`.
    pub fn params(&self, h: usize, w: usize) -> BilinearResizeParams {
        let side = h.min(w) as f32 * self.crop_fraction;
        let ratio = side / self.resolution as f32;
        BilinearResizeParams {
            n: 1,
            c: 3,
            ih: h,
            iw: w,
            oh: self.resolution,
            ow: self.resolution,
            y0: (h as f32 - side) / 2.0,
            x0: (w as f32 - side) / 2.0,
            ratio_h: ratio,
            ratio_w: ratio,
            antialias: self.antialias,
        }
    }

    /// The kernel's per-channel affine: `(x - mean) / std` as `x * (1/std) + (-mean/std)`.
    fn affine(&self) -> [f32; 6] {
        let [m0, m1, m2] = self.mean;
        let [s0, s1, s2] = self.std;
        [1.0 / s0, 1.0 / s1, 1.0 / s2, -m0 / s0, -m1 / s1, -m2 / s2]
    }
}

/// One class of a top-k answer.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// Class index: the column of the model's output.
    pub class: usize,
    /// The ImageNet name for 1000-class models; `None` for other class counts.
    pub label: Option<&'static str>,
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
    /// This image box-filtered down by the smallest whole factor that leaves at most `max_values`
    /// values (3 per pixel), or `None` when it already fits. Each output pixel averages a factor x
    /// factor block, so nothing aliases; edge blocks average the pixels they have.
    pub fn downscaled_to_fit(&self, max_values: usize) -> Option<RgbPlanes> {
        if self.data.len() <= max_values {
            return None;
        }
        let mut k = 2;
        while 3 * self.h.div_ceil(k) * self.w.div_ceil(k) > max_values.max(3) {
            k += 1;
        }
        let (h, w) = (self.h.div_ceil(k), self.w.div_ceil(k));
        let mut data = vec![0f32; 3 * h * w];
        for c in 0..3 {
            let plane = &self.data[c * self.h * self.w..(c + 1) * self.h * self.w];
            for y in 0..h {
                for x in 0..w {
                    let (y1, x1) = ((y * k + k).min(self.h), (x * k + k).min(self.w));
                    let mut sum = 0f64;
                    for sy in y * k..y1 {
                        sum += plane[sy * self.w + x * k..sy * self.w + x1].iter().map(|&v| v as f64).sum::<f64>();
                    }
                    data[(c * h + y) * w + x] = (sum / ((y1 - y * k) * (x1 - x * k)) as f64) as f32;
                }
            }
        }
        Some(RgbPlanes { h, w, data })
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

/// EfficientNet as an image classifier on one GPU. Usable from any thread; desktop apps can build
/// the `Gpu` from their own device with `Gpu::from_device`.
pub struct Classifier {
    /// The GPU the model lives on; preprocessing runs there too.
    pub gpu: Arc<Gpu>,
    /// The network with its weights on `gpu`; `config.num_classes` is the width of each output row.
    pub model: EfficientNet,
    /// How images become network input; ImageNet's at the model's resolution unless changed.
    pub preprocess: Preprocess,
    /// Images per GPU batch.
    pub batch_size: usize,
}

impl Classifier {
    /// A classifier with ImageNet preprocessing at the model's `config.resolution` and batches of 8.
    pub fn new(gpu: Arc<Gpu>, model: EfficientNet) -> Classifier {
        let preprocess = Preprocess::imagenet(model.config.resolution as usize);
        Classifier { gpu, model, preprocess, batch_size: 8 }
    }

    /// Class probabilities (one row of `num_classes` per image).
    pub fn probabilities(&self, images: &[RgbPlanes]) -> Result<Vec<Vec<f32>>> {
        let res = self.preprocess.resolution;
        let classes = self.model.config.num_classes;
        let slice = self.batch_size.max(1).min(self.model.max_batch(&self.gpu, res, res)?.max(1));
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(slice) {
            let plan = self.model.plan(&self.gpu, chunk.len(), res, res, &[])?;
            let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
            // Each image is resized into its slot of the plan's input on the GPU; the buffers and
            // dispatches live until the submit below.
            let affine = self.gpu.upload(&self.preprocess.affine(), "normalisation")?;
            let mut keep = Vec::new();
            let mut pre = Vec::new();
            for img in chunk {
                if img.data.len() != 3 * img.h * img.w || img.h == 0 || img.w == 0 {
                    return Err(Error::Shape {
                        what: "image planes".into(),
                        expected: vec![3, img.h, img.w],
                        got: vec![img.data.len()],
                    });
                }
                if !self.model.allows_non_finite() {
                    crate::model::efficientnet::check_finite("image values", &img.data, img.data.len())?;
                }
                // A photo larger than one storage binding is box-filtered down on the CPU first:
                // the GPU resize then samples a picture that still has all its detail.
                let fitted;
                let img = match img.downscaled_to_fit(self.gpu.max_binding_bytes() as usize / 4) {
                    Some(small) => {
                        fitted = small;
                        &fitted
                    }
                    None => img,
                };
                let p = self.preprocess.params(img.h, img.w);
                let src = self.gpu.upload(&img.data, "image")?;
                let dst = self.gpu.empty(p.output_len(), "preprocessed")?;
                pre.push(bilinear_resize_fwd(&self.gpu, &p, &src, &affine, &dst)?);
                keep.push((src, dst));
            }
            crate::gpu::encode_dispatches(&mut encoder, "preprocess", &pre);
            let per_image = 3 * res * res * 4;
            for (i, (_, dst)) in keep.iter().enumerate() {
                encoder.copy_buffer_to_buffer(
                    &dst.buffer,
                    0,
                    &plan.input().buffer,
                    (i * per_image) as u64,
                    per_image as u64,
                );
            }
            plan.encode(&self.gpu, None, &mut encoder, true)?;
            self.gpu.queue.submit([encoder.finish()]);
            let probs = self.gpu.read(plan.probabilities())?;
            if !self.model.allows_non_finite() {
                crate::model::efficientnet::check_finite("probabilities", &probs, classes)?;
            }
            out.extend(probs.chunks(classes).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// The `k` most probable classes of each image, most probable first.
    pub fn classify(&self, images: &[RgbPlanes], k: usize) -> Result<Vec<Vec<Prediction>>> {
        let with_labels = self.model.config.num_classes == 1000;
        Ok(self
            .probabilities(images)?
            .into_iter()
            .map(|p| {
                top_k(&p, k)
                    .into_iter()
                    .map(|(class, prob)| Prediction {
                        class,
                        label: with_labels.then(|| imagenet_label(class)).flatten(),
                        prob,
                    })
                    .collect()
            })
            .collect())
    }

    /// Decodes and classifies image files.
    pub fn classify_files<P: AsRef<Path>>(&self, paths: &[P], k: usize) -> Result<Vec<Vec<Prediction>>> {
        let planes =
            paths.iter().map(|p| load_image(p).map(|i| RgbPlanes::from_image(&i))).collect::<Result<Vec<_>>>()?;
        self.classify(&planes, k)
    }

    /// `classify` without blocking the caller's thread (runs on a worker thread), for async apps.
    pub async fn classify_async(self: Arc<Self>, images: Vec<RgbPlanes>, k: usize) -> Result<Vec<Vec<Prediction>>> {
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        std::thread::spawn(move || {
            tx.send(self.classify(&images, k)).ok();
        });
        rx.receive().await.unwrap_or_else(|| Err(Error::invalid("classification worker stopped")))
    }
}

/// Indices and values of the `k` largest entries, largest first (ties: lower index first).
pub fn top_k(values: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| (i, values[i])).collect()
}
