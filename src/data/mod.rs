//! Data sets and the batch loader: Fashion-MNIST (IDX, `.gz` or plain), CIFAR-10 (binary), image
//! folders (one subfolder per class), augmentation, and a loader thread that keeps the GPU fed.
//! Every random choice derives from one seed, so a run is reproducible.

mod augment;
mod cifar;
mod folder;
mod idx;
mod image;
mod loader;

pub use augment::{Augment, Normalize};
pub use cifar::load_cifar10;
pub use folder::{load_image_folder, FolderSplit};
pub use idx::{load_fashion_mnist, read_idx_images, read_idx_labels, FASHION_MNIST_CLASSES};
pub use image::{
    downscale_factor, image_warnings, load_image, load_image_bounded, ImageWarning, LoadedImage, DEFAULT_MAX_PIXELS,
};
pub use loader::{batch_image_size, Batch, Loader, LoaderMeter, LoaderOptions, LoaderStats, LoaderWarnings};

use crate::error::{Error, Result};

/// Decoded images of one size, in memory: (n, channels, h, w) u8 planes.
#[derive(Clone, Debug)]
pub struct InMemory {
    /// Channels per image: 1 (grayscale, Fashion-MNIST) or 3 (RGB, CIFAR-10).
    pub channels: usize,
    /// Image height in pixels.
    pub h: usize,
    /// Image width in pixels.
    pub w: usize,
    /// All images back to back, (n, channels, h, w) row-major, values 0–255.
    pub pixels: Vec<u8>,
    /// Class index of each image, one per image.
    pub labels: Vec<u32>,
}

impl InMemory {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Pixels of image `i`, (channels, h, w); panics if `i` is out of range.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.channels * self.h * self.w;
        &self.pixels[i * n..(i + 1) * n]
    }
}

/// Where the images of a data set come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Same-sized images decoded up front (Fashion-MNIST, CIFAR-10).
    Memory(InMemory),
    /// Image files decoded by the loader thread, with their class.
    Files {
        /// Image file of each example.
        paths: Vec<std::path::PathBuf>,
        /// Class index of each example, parallel to `paths`.
        labels: Vec<u32>,
    },
}

/// A labelled image set: train or test split of one data set.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Name with its origin, e.g. `fashion-mnist train (<labels file>)`; `validate` errors start with it.
    pub name: String,
    /// Where the images come from: decoded in memory, or files the loader decodes.
    pub source: Source,
    /// Name of each class, indexed by label; its length is the number of classes.
    pub class_names: Vec<String>,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match &self.source {
            Source::Memory(m) => m.len(),
            Source::Files { labels, .. } => labels.len(),
        }
    }
    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of classes (the length of `class_names`).
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }
    /// Class of example `i`; panics if `i` is out of range.
    pub fn label(&self, i: usize) -> u32 {
        match &self.source {
            Source::Memory(m) => m.labels[i],
            Source::Files { labels, .. } => labels[i],
        }
    }

    /// Checks that the source is consistent with itself: in-memory pixels of 1 or 3 channels and
    /// non-empty images, exactly (n, channels, h, w) of them; one file per label. Errors name the
    /// data set. The loader thread relies on this instead of indexing past the end.
    pub fn check_source(&self) -> Result<()> {
        match &self.source {
            Source::Memory(m) => {
                if m.channels != 1 && m.channels != 3 {
                    return Err(Error::invalid(format!(
                        "{}: images of {} channels; expected 1 (grayscale) or 3 (RGB)",
                        self.name, m.channels
                    )));
                }
                if m.h == 0 || m.w == 0 {
                    return Err(Error::invalid(format!("{}: images of {}x{} pixels are empty", self.name, m.h, m.w)));
                }
                let need = [m.labels.len(), m.channels, m.h, m.w].iter().try_fold(1usize, |a, &d| a.checked_mul(d));
                if need != Some(m.pixels.len()) {
                    return Err(Error::invalid(format!(
                        "{}: {} pixels for {} images of {}x{}x{} (need {}); the pixels and labels do not match",
                        self.name,
                        m.pixels.len(),
                        m.labels.len(),
                        m.channels,
                        m.h,
                        m.w,
                        need.map_or("more than memory holds".to_string(), |n| n.to_string())
                    )));
                }
            }
            Source::Files { paths, labels } => {
                if paths.len() != labels.len() {
                    return Err(Error::invalid(format!(
                        "{}: {} image files for {} labels; there must be one file per label",
                        self.name,
                        paths.len(),
                        labels.len()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Checks the source ([`Dataset::check_source`]) and that every label names a class, naming
    /// the data set and the offending index.
    pub fn validate(&self) -> Result<()> {
        self.check_source()?;
        let k = self.num_classes();
        for i in 0..self.len() {
            let l = self.label(i);
            if l as usize >= k {
                return Err(Error::invalid(format!(
                    "{}: label {l} of example {i} is out of range for {k} classes",
                    self.name
                )));
            }
        }
        if self.is_empty() {
            return Err(Error::invalid(format!("{}: the data set is empty", self.name)));
        }
        Ok(())
    }

    /// Leaves out the image files that would decode only with a warning (a truncated JPEG) and
    /// returns their warnings, so a training run can skip them and say which. Reads every file
    /// once, without decoding it; an unreadable file is an error naming it. In-memory data sets
    /// have no files and stay as they are.
    pub fn remove_images_with_warnings(&mut self) -> Result<Vec<ImageWarning>> {
        let Source::Files { paths, labels } = &mut self.source else { return Ok(Vec::new()) };
        let mut all = Vec::new();
        let mut keep = Vec::with_capacity(paths.len());
        for p in paths.iter() {
            let w = image_warnings(p)?;
            keep.push(w.is_empty());
            all.extend(w);
        }
        let mut flags = keep.iter();
        paths.retain(|_| *flags.next().unwrap_or(&true));
        let mut flags = keep.iter();
        labels.retain(|_| *flags.next().unwrap_or(&true));
        Ok(all)
    }

    /// The first `n` examples (for quick runs and tests).
    pub fn truncate(&mut self, n: usize) {
        match &mut self.source {
            Source::Memory(m) => {
                let per = m.channels * m.h * m.w;
                m.labels.truncate(n);
                m.pixels.truncate(n * per);
            }
            Source::Files { paths, labels } => {
                paths.truncate(n);
                labels.truncate(n);
            }
        }
    }
}

/// splitmix64: the loader's and augmentations' deterministic random numbers.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// Next 64 random bits (advances the state).
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A Fisher-Yates shuffle of 0..n.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i + 1));
        }
        p
    }
}
