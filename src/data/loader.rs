//! A loader thread that decodes and augments batches ahead of the GPU. The order of examples and
//! every augmentation are functions of (seed, epoch, position), so a run — and a resumed run — is
//! reproducible whatever the thread timing.
//!
//! A loader that fails fails the run: an error the thread meets arrives as an `Err` item, and a
//! thread that panics is reported as an `Err` when its channel closes, never taken for the end of
//! the epoch.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::augment::file_to_tensor;
use super::image::{load_image_bounded, ImageWarning};
use super::{Augment, Dataset, Normalize, Rng, Source};
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
    /// Batches received so far, for the message when the thread dies.
    received: usize,
    warnings: LoaderWarnings,
}

/// Warnings about the images a loader decoded anyway (a truncated JPEG, its missing part gray),
/// shared between the loader thread and the caller, who prints or counts them while iterating.
/// A file decoded every epoch warns every epoch; to leave such files out instead, see
/// [`Dataset::remove_images_with_warnings`].
#[derive(Clone, Debug, Default)]
pub struct LoaderWarnings(Arc<Mutex<(Vec<ImageWarning>, usize)>>);

impl LoaderWarnings {
    /// The warnings not taken yet, in the order the loader met them.
    pub fn take(&self) -> Vec<ImageWarning> {
        std::mem::take(&mut self.lock().0)
    }
    /// How many warnings there were in all, taken or not.
    pub fn total(&self) -> usize {
        self.lock().1
    }
    fn push(&self, warnings: Vec<ImageWarning>) {
        let mut w = self.lock();
        w.1 += warnings.len();
        w.0.extend(warnings);
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<ImageWarning>, usize)> {
        // A panic elsewhere cannot leave a list of messages half-updated in a harmful way.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
#[allow(clippy::too_many_arguments)]
fn example(
    ds: &Dataset,
    i: usize,
    augment: Augment,
    norm: &Normalize,
    rng: &mut Rng,
    file_size: usize,
    warnings: &LoaderWarnings,
) -> Result<Vec<f32>> {
    match &ds.source {
        Source::Memory(m) => {
            let mut out = vec![0f32; 3 * m.h * m.w];
            let a = if matches!(augment, Augment::CropFlip { .. }) { augment } else { Augment::None };
            a.apply_small(m.image(i), m.channels, m.h, m.w, rng, norm, &mut out);
            Ok(out)
        }
        Source::Files { paths, .. } => {
            // Full size: the crop below resamples the region it keeps, so a smaller decode gains nothing.
            let loaded = load_image_bounded(&paths[i], u64::MAX)?;
            if !loaded.warnings.is_empty() {
                warnings.push(loaded.warnings);
            }
            let train = matches!(augment, Augment::RandomResizedCrop { .. });
            Ok(file_to_tensor(&loaded.image, file_size, train, rng, norm))
        }
    }
}

impl Loader {
    /// Starts producing the batches of `epoch`, from batch `skip` on (for resuming mid-epoch).
    /// With `drop_last` the final partial batch is skipped (training keeps one recorded shape).
    /// A data set whose source is inconsistent ([`Dataset::check_source`]), or image files with
    /// `file_size` 0, is an error here, before the thread starts.
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
        ds.check_source()?;
        let (h, w) = batch_image_size(ds, file_size);
        if h == 0 || w == 0 {
            return Err(Error::invalid(format!(
                "{}: images of {h}x{w} pixels; the file size must be at least 1",
                ds.name
            )));
        }
        if [batch.min(ds.len()), 3, h, w].iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none() {
            return Err(Error::invalid(format!("{}: a batch of {batch} images of 3x{h}x{w} is too large", ds.name)));
        }
        let ds = ds.clone();
        let warnings = LoaderWarnings::default();
        let thread_warnings = warnings.clone();
        Self::spawn(warnings, move |tx| {
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
                    match example(&ds, i, augment, &norm, &mut rng, file_size, &thread_warnings) {
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
    }

    /// Runs `work` on the loader thread, which sends the batches (and stops after an `Err`).
    fn spawn(
        warnings: LoaderWarnings,
        work: impl FnOnce(SyncSender<Result<Batch>>) + Send + 'static,
    ) -> Result<Loader> {
        let (tx, rx) = sync_channel(4);
        let handle = std::thread::Builder::new()
            .name("effnet-loader".into())
            .spawn(move || work(tx))
            .map_err(|e| Error::invalid(format!("could not start the loader thread: {e}")))?;
        Ok(Loader { rx, handle: Some(handle), received: 0, warnings })
    }

    /// The warnings of the images this loader decodes (truncated JPEGs), to print or count while
    /// iterating: take the handle before the loop, which consumes the loader.
    pub fn warnings(&self) -> LoaderWarnings {
        self.warnings.clone()
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
    /// The next batch; after the last one (or an `Err`) `None`. When the channel closes, the
    /// thread is joined: if it panicked, one `Err` says so, so an epoch cut short by a failed
    /// loader stops the run instead of passing for a complete one.
    fn next(&mut self) -> Option<Result<Batch>> {
        if let Ok(batch) = self.rx.recv() {
            self.received += 1;
            return Some(batch);
        }
        let panic = self.handle.take()?.join().err()?;
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Some(Err(Error::invalid(format!(
            "the data loader thread (effnet-loader) panicked after {} batches: {message}; the epoch is incomplete, \
             so the run stops. This is a bug in the loader: please report it with the data set that caused it",
            self.received
        ))))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn one_batch() -> Result<Batch> {
        Ok(Batch { input: vec![0.0; 3], targets: vec![0], h: 1, w: 1 })
    }

    #[test]
    fn a_loader_thread_that_panics_yields_an_error_not_a_short_epoch() {
        let loader = Loader::spawn(LoaderWarnings::default(), |tx| {
            tx.send(one_batch()).unwrap();
            panic!("worker blew up");
        })
        .unwrap();
        let items: Vec<Result<Batch>> = loader.collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        let e = items[1].as_ref().unwrap_err().to_string();
        assert!(e.contains("effnet-loader") && e.contains("worker blew up") && e.contains("after 1 batches"), "{e}");
    }

    #[test]
    fn a_loader_thread_that_ends_normally_ends_the_epoch() {
        let loader = Loader::spawn(LoaderWarnings::default(), |tx| {
            tx.send(one_batch()).unwrap();
            tx.send(Err(Error::invalid("sent by the worker"))).unwrap();
        })
        .unwrap();
        let items: Vec<Result<Batch>> = loader.collect();
        assert_eq!(items.len(), 2);
        assert!(items[1].as_ref().unwrap_err().to_string().contains("sent by the worker"));
    }
}
