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
pub use image::load_image;
pub use loader::{batch_image_size, Batch, Loader};

use crate::error::{Error, Result};

/// Decoded images of one size, in memory: (n, channels, h, w) u8 planes.
#[derive(Clone, Debug)]
pub struct InMemory {
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<u32>,
}

impl InMemory {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
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
    Files { paths: Vec<std::path::PathBuf>, labels: Vec<u32> },
}

/// A labelled image set: train or test split of one data set.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    pub source: Source,
    pub class_names: Vec<String>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        match &self.source {
            Source::Memory(m) => m.len(),
            Source::Files { labels, .. } => labels.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }
    pub fn label(&self, i: usize) -> u32 {
        match &self.source {
            Source::Memory(m) => m.labels[i],
            Source::Files { labels, .. } => labels[i],
        }
    }

    /// Checks that every label names a class, naming the data set and the offending index.
    pub fn validate(&self) -> Result<()> {
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
