//! Per-example preprocessing: augmentation, grayscale → RGB, normalisation to f32 (3, h, w).

use super::Rng;

/// Per-channel normalisation `(x / 255 - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    /// Per-channel mean (R, G, B) on the 0–1 scale, subtracted after dividing by 255.
    pub mean: [f32; 3],
    /// Per-channel standard deviation (R, G, B) on the 0–1 scale, divided by after the mean is subtracted.
    pub std: [f32; 3],
}

impl Normalize {
    /// ImageNet's per-channel mean and std (torchvision's), for pretrained weights and image folders.
    pub const IMAGENET: Normalize = Normalize { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    /// Fashion-MNIST's pixel mean and std (0.286, 0.353), on every channel.
    pub const FASHION_MNIST: Normalize = Normalize { mean: [0.2860; 3], std: [0.3530; 3] };
    /// CIFAR-10's per-channel pixel mean and std (R, G, B).
    pub const CIFAR10: Normalize = Normalize { mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616] };
}

/// What the training loader does to each image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Augment {
    /// Nothing (evaluation).
    None,
    /// Random crop of the original size from the image padded by `pad` zeros, then a horizontal
    /// flip with probability 1/2 (small images: Fashion-MNIST, CIFAR).
    CropFlip {
        /// Zeros added on each side before the crop, in pixels.
        pad: usize,
    },
    /// Random-resized crop (area 8–100%, aspect 3/4–4/3) to `size` x `size`, then a flip (folders).
    RandomResizedCrop {
        /// Intended output side in pixels; `Loader::start` ignores it and crops to its `file_size`.
        size: usize,
    },
}

/// Writes `src` ((channels, h, w) u8, 1 or 3 channels) into `dst` ((3, h, w) f32), cropped with
/// padding at offset (dy, dx) in the padded image, optionally flipped, and normalised.
#[allow(clippy::too_many_arguments)]
pub fn crop_flip_normalize(
    src: &[u8],
    channels: usize,
    h: usize,
    w: usize,
    pad: usize,
    (dy, dx): (usize, usize),
    flip: bool,
    norm: &Normalize,
    dst: &mut [f32],
) {
    for c in 0..3 {
        let sc = if channels == 1 { 0 } else { c };
        let (m, s) = (norm.mean[c], norm.std[c]);
        for y in 0..h {
            for x in 0..w {
                let xx = if flip { w - 1 - x } else { x };
                // Position in the padded image → in the source.
                let (py, px) = ((y + dy) as isize - pad as isize, (xx + dx) as isize - pad as isize);
                let v = if py >= 0 && px >= 0 && (py as usize) < h && (px as usize) < w {
                    src[(sc * h + py as usize) * w + px as usize] as f32 / 255.0
                } else {
                    0.0
                };
                dst[(c * h + y) * w + x] = (v - m) / s;
            }
        }
    }
}

impl Augment {
    /// Augments one in-memory image into `dst` (3, h, w).
    #[allow(clippy::too_many_arguments)]
    pub fn apply_small(
        &self,
        src: &[u8],
        channels: usize,
        h: usize,
        w: usize,
        rng: &mut Rng,
        norm: &Normalize,
        dst: &mut [f32],
    ) {
        match *self {
            Augment::CropFlip { pad } => {
                let (dy, dx) = (rng.below(2 * pad + 1), rng.below(2 * pad + 1));
                let flip = rng.below(2) == 1;
                crop_flip_normalize(src, channels, h, w, pad, (dy, dx), flip, norm, dst);
            }
            _ => crop_flip_normalize(src, channels, h, w, 0, (0, 0), false, norm, dst),
        }
    }
}

/// Decoded image → (3, size, size) f32: a random-resized crop + flip for training, or the
/// center crop of 87.5% of the short side for evaluation. Resampling by the `image` crate
/// (triangle filter = bilinear).
pub fn file_to_tensor(
    img: &image::DynamicImage,
    size: usize,
    train: bool,
    rng: &mut Rng,
    norm: &Normalize,
) -> Vec<f32> {
    let rgb = img.to_rgb8();
    let (w, h) = (rgb.width() as f64, rgb.height() as f64);
    let (mut cx, mut cy, mut cw, mut ch) = {
        let side = w.min(h) * 0.875;
        ((w - side) / 2.0, (h - side) / 2.0, side, side)
    };
    let mut flip = false;
    if train {
        for _ in 0..10 {
            let area = w * h * (0.08 + 0.92 * rng.unit());
            let ratio = ((3.0f64 / 4.0).ln() + rng.unit() * ((4.0f64 / 3.0).ln() - (3.0f64 / 4.0).ln())).exp();
            let (tw, th) = ((area * ratio).sqrt(), (area / ratio).sqrt());
            if tw <= w && th <= h {
                (cw, ch) = (tw, th);
                cx = rng.unit() * (w - tw);
                cy = rng.unit() * (h - th);
                break;
            }
        }
        flip = rng.below(2) == 1;
    }
    let crop = image::imageops::crop_imm(&rgb, cx as u32, cy as u32, (cw as u32).max(1), (ch as u32).max(1)).to_image();
    let resized = image::imageops::resize(&crop, size as u32, size as u32, image::imageops::FilterType::Triangle);
    let mut out = vec![0f32; 3 * size * size];
    for (i, p) in resized.pixels().enumerate() {
        let (y, x) = (i / size, i % size);
        let x = if flip { size - 1 - x } else { x };
        for c in 0..3 {
            out[(c * size + y) * size + x] = (p.0[c] as f32 / 255.0 - norm.mean[c]) / norm.std[c];
        }
    }
    out
}
