//! A loader thread that decodes and augments batches ahead of the GPU. The order of examples and
//! every augmentation are functions of (seed, epoch, position), so a run — and a resumed run — is
//! reproducible whatever the thread timing.

use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use super::augment::file_to_tensor;
use super::{Augment, Dataset, Normalize, Rng, Source};
use crate::data::load_image;
use crate::error::{Error, Result};

/// One batch: images (n, 3, h, w) NCHW f32, normalised, and their classes.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Images back to back, (n, 3, h, w) NCHW f32, normalised.
    pub input: Vec<f32>,
    /// Class index of each image, one per image.
    pub targets: Vec<u32>,
    /// Image height in pixels (the same for every image of the batch).
    pub h: usize,
    /// Image width in pixels (the same for every image of the batch).
    pub w: usize,
}

impl Batch {
    /// Number of images in the batch.
    pub fn len(&self) -> usize {
        self.targets.len()
    }
    /// Whether the batch has no images.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// Batches of one epoch, produced on a background thread.
pub struct Loader {
    rx: Receiver<Result<Batch>>,
    handle: Option<JoinHandle<()>>,
}

/// The order of an epoch's examples: a permutation seeded by (seed, epoch), or 0..n.
fn order(n: usize, seed: u64, epoch: u64, shuffle: bool) -> Vec<usize> {
    if shuffle {
        Rng(seed ^ epoch.wrapping_mul(0xA24B_AED4_963E_E407)).permutation(n)
    } else {
        (0..n).collect()
    }
}

/// Size of the images a data set yields with `augment`: in-memory images keep theirs (the GPU
/// resizes them to the training resolution), files are cropped to `file_size`.
pub fn batch_image_size(ds: &Dataset, file_size: usize) -> (usize, usize) {
    match &ds.source {
        Source::Memory(m) => (m.h, m.w),
        Source::Files { .. } => (file_size, file_size),
    }
}

/// Loads example `i` (its index in the data set) into (3, h, w) f32.
fn example(
    ds: &Dataset,
    i: usize,
    augment: Augment,
    norm: &Normalize,
    rng: &mut Rng,
    file_size: usize,
) -> Result<Vec<f32>> {
    match &ds.source {
        Source::Memory(m) => {
            let mut out = vec![0f32; 3 * m.h * m.w];
            let a = if matches!(augment, Augment::CropFlip { .. }) { augment } else { Augment::None };
            a.apply_small(m.image(i), m.channels, m.h, m.w, rng, norm, &mut out);
            Ok(out)
        }
        Source::Files { paths, .. } => {
            let img = load_image(&paths[i])?;
            let train = matches!(augment, Augment::RandomResizedCrop { .. });
            Ok(file_to_tensor(&img, file_size, train, rng, norm))
        }
    }
}

impl Loader {
    /// Starts producing the batches of `epoch`, from batch `skip` on (for resuming mid-epoch).
    /// With `drop_last` the final partial batch is skipped (training keeps one recorded shape).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        ds: &Dataset,
        batch: usize,
        epoch: u64,
        skip: usize,
        seed: u64,
        shuffle: bool,
        drop_last: bool,
        augment: Augment,
        norm: Normalize,
        file_size: usize,
    ) -> Result<Loader> {
        if batch == 0 {
            return Err(Error::invalid("batch size must be at least 1"));
        }
        let ds = ds.clone();
        let (tx, rx) = sync_channel(4);
        let handle = std::thread::Builder::new()
            .name("effnet-loader".into())
            .spawn(move || {
                let idx = order(ds.len(), seed, epoch, shuffle);
                let (h, w) = batch_image_size(&ds, file_size);
                let chunks: Vec<&[usize]> = idx.chunks(batch).collect();
                for chunk in chunks.into_iter().skip(skip) {
                    if drop_last && chunk.len() < batch {
                        break;
                    }
                    let mut input = Vec::with_capacity(chunk.len() * 3 * h * w);
                    let mut targets = Vec::with_capacity(chunk.len());
                    let mut result = Ok(());
                    for &i in chunk {
                        // Each example's randomness is its own: independent of batch boundaries.
                        let mut rng = Rng(seed ^ (epoch << 40) ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                        match example(&ds, i, augment, &norm, &mut rng, file_size) {
                            Ok(x) => input.extend_from_slice(&x),
                            Err(e) => {
                                result = Err(e);
                                break;
                            }
                        }
                        targets.push(ds.label(i));
                    }
                    let msg = result.map(|()| Batch { input, targets, h, w });
                    let stop = msg.is_err();
                    if tx.send(msg).is_err() || stop {
                        return;
                    }
                }
            })
            .map_err(|e| Error::invalid(format!("could not start the loader thread: {e}")))?;
        Ok(Loader { rx, handle: Some(handle) })
    }

    /// Number of batches an epoch of `n` examples yields.
    pub fn batches_per_epoch(n: usize, batch: usize, drop_last: bool) -> usize {
        if drop_last {
            n / batch.max(1)
        } else {
            n.div_ceil(batch.max(1))
        }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Result<Batch>> {
        self.rx.recv().ok()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Unblock the thread (its sends fail once the receiver is gone), then wait for it.
        let (_, rx) = sync_channel(0);
        let _ = std::mem::replace(&mut self.rx, rx);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
