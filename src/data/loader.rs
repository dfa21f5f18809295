//! The loader: worker threads that decode and augment the images of an epoch ahead of the GPU and
//! hand the batches out in order.
//!
//! Reproducible whatever the threads do: the order of the examples is a function of (seed,
//! epoch), every augmentation of (seed, epoch, example index), and each image lands at its place
//! in its batch. So the batches are bit-identical for any number of workers, any prefetch depth
//! and any thread timing — and a resumed run sees the batches an uninterrupted one would have.
//!
//! How the work is shared: the positions of the epoch are claimed one image at a time, in order,
//! by whichever worker is free (so a batch of slow JPEGs is decoded by every worker at once); a
//! worker claims an image only while its batch is one of the `prefetch` batches after those the
//! consumer took, which bounds the memory to about `prefetch` batches.
//!
//! A loader that fails fails the run: the consumer receives every batch before the first example
//! that failed (in epoch order, not in the order the workers met failures), then that example's
//! error as an `Err`, then the end. A panic while loading an example becomes that example's `Err`;
//! a worker thread that dies otherwise is reported as an `Err` too, never taken for the end of the
//! epoch.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

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

/// How a [`Loader`] runs. Neither option changes a batch (see the module's documentation); they
/// trade CPU threads and memory for throughput.
///
/// ```ignore
/// let options = LoaderOptions::default().with_workers(4).with_prefetch(3);
/// let loader = Loader::start_with(&ds, 64, epoch, 0, seed, true, true, augment, norm, 224, options)?;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoaderOptions {
    /// Threads that decode and augment images, at least 1. Default: the machine's available
    /// parallelism ([`std::thread::available_parallelism`], 1 where unknown). A trainer on a CPU
    /// adapter (lavapipe) shares the cores with the GPU's work, and may want fewer.
    pub workers: usize,
    /// Batches in flight, at least 1: being decoded, or ready and not yet taken. Memory stays
    /// near `prefetch` batches besides the one the consumer holds. With 1 every worker still
    /// helps with the one batch, but all wait at each batch boundary until the consumer takes the
    /// batch; 2 (the default) lets them start the next one meanwhile.
    pub prefetch: usize,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions { workers: LoaderOptions::available_workers(), prefetch: LoaderOptions::DEFAULT_PREFETCH }
    }
}

impl LoaderOptions {
    /// The default `prefetch`: one batch ready while the next is decoded.
    pub const DEFAULT_PREFETCH: usize = 2;

    /// The default `workers`: the machine's available parallelism, 1 where it is not known.
    pub fn available_workers() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
    /// These options with `workers` decoding threads.
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }
    /// These options with `prefetch` batches in flight.
    pub fn with_prefetch(mut self, prefetch: usize) -> Self {
        self.prefetch = prefetch;
        self
    }
    /// Errors name the option, its value and the range.
    pub fn validate(&self) -> Result<()> {
        if self.workers == 0 {
            return Err(Error::invalid("LoaderOptions::workers is 0; the loader needs at least 1 worker thread"));
        }
        if self.prefetch == 0 {
            return Err(Error::invalid("LoaderOptions::prefetch is 0; at least 1 batch must be in flight"));
        }
        Ok(())
    }
}

/// What a loader has done so far: a snapshot from [`Loader::stats`] or [`LoaderMeter::stats`].
///
/// To show the loader's throughput next to the training step's, compare
/// [`LoaderStats::capacity_images_per_s`] with the step's images/s: below it, the GPU will wait.
/// Whether it does wait is `wait_seconds` (or [`LoaderStats::wait_fraction`]): the time the
/// consumer — the training loop — spent blocked in [`Loader::next`] for a batch not ready yet.
/// A trainer that warns when the GPU waits for data warns when that grows step after step; the
/// first batch of an epoch is always waited for, so skip it (or compare with its time).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct LoaderStats {
    /// Worker threads the loader runs (fewer than asked where the epoch has fewer images).
    pub workers: usize,
    /// Images decoded and augmented so far, by all workers: those in batches handed out and those
    /// in batches in flight.
    pub images: u64,
    /// Batches handed to the consumer so far.
    pub batches: u64,
    /// Seconds the workers spent decoding and augmenting, summed over the workers (wall time of
    /// each image's work, so a core shared with other work counts at its slower pace).
    pub worker_seconds: f64,
    /// Seconds the consumer spent blocked in [`Loader::next`], waiting for the next batch: the
    /// time a training loop — the GPU — waited for data.
    pub wait_seconds: f64,
    /// Seconds since the loader started.
    pub elapsed_seconds: f64,
}

impl LoaderStats {
    /// Images per second the workers sustain when none waits (for room or for a core): images
    /// per worker-second times the number of workers. 0 before the first image.
    pub fn capacity_images_per_s(&self) -> f64 {
        if self.worker_seconds > 0.0 {
            self.images as f64 / self.worker_seconds * self.workers as f64
        } else {
            0.0
        }
    }
    /// Images decoded per second of wall clock since the loader started.
    pub fn images_per_s(&self) -> f64 {
        if self.elapsed_seconds > 0.0 {
            self.images as f64 / self.elapsed_seconds
        } else {
            0.0
        }
    }
    /// Share of the time since the start that the consumer waited for batches, in [0, 1]: near
    /// 0 when the loader keeps ahead of the GPU.
    pub fn wait_fraction(&self) -> f64 {
        if self.elapsed_seconds > 0.0 {
            (self.wait_seconds / self.elapsed_seconds).min(1.0)
        } else {
            0.0
        }
    }
}

/// The counters behind [`LoaderStats`], shared by the workers, the consumer and whoever reads
/// them: take the handle from [`Loader::meter`] before a `for` loop consumes the loader.
#[derive(Clone, Debug)]
pub struct LoaderMeter(Arc<MeterCounts>);

#[derive(Debug)]
struct MeterCounts {
    started: Instant,
    workers: AtomicU64,
    images: AtomicU64,
    batches: AtomicU64,
    worker_nanos: AtomicU64,
    wait_nanos: AtomicU64,
}

impl LoaderMeter {
    fn new() -> Self {
        LoaderMeter(Arc::new(MeterCounts {
            started: Instant::now(),
            workers: AtomicU64::new(0),
            images: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            worker_nanos: AtomicU64::new(0),
            wait_nanos: AtomicU64::new(0),
        }))
    }
    /// The figures so far.
    pub fn stats(&self) -> LoaderStats {
        let c = &self.0;
        let secs = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 * 1e-9;
        LoaderStats {
            workers: c.workers.load(Ordering::Relaxed) as usize,
            images: c.images.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            worker_seconds: secs(&c.worker_nanos),
            wait_seconds: secs(&c.wait_nanos),
            elapsed_seconds: c.started.elapsed().as_secs_f64(),
        }
    }
    fn add_nanos(counter: &AtomicU64, since: Instant) {
        counter.fetch_add(since.elapsed().as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }
}

/// Warnings about the images a loader decoded anyway (a truncated JPEG, its missing part gray),
/// shared between the loader and the caller, who prints or counts them while iterating. They
/// arrive with the batch that holds their image, in epoch order, whatever worker met them.
/// A file decoded every epoch warns every epoch; to leave such files out instead, see
/// [`Dataset::remove_images_with_warnings`].
#[derive(Clone, Debug, Default)]
pub struct LoaderWarnings(Arc<Mutex<(Vec<ImageWarning>, usize)>>);

impl LoaderWarnings {
    /// The warnings not taken yet, in the order of the images they are about.
    pub fn take(&self) -> Vec<ImageWarning> {
        std::mem::take(&mut self.lock().0)
    }
    /// How many warnings there were in all, taken or not.
    pub fn total(&self) -> usize {
        self.lock().1
    }
    fn push(&self, warnings: Vec<ImageWarning>) {
        if warnings.is_empty() {
            return;
        }
        let mut w = self.lock();
        w.1 += warnings.len();
        w.0.extend(warnings);
    }
    fn lock(&self) -> MutexGuard<'_, (Vec<ImageWarning>, usize)> {
        lock(&self.0)
    }
}

/// A lock whose holder panicked is still usable: every state behind the loader's locks is
/// updated in steps that leave it consistent (and a panicking worker is reported anyway).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

/// One example, decoded and augmented.
struct Example {
    /// (3, h, w) f32, normalised.
    pixels: Vec<f32>,
    /// Its class.
    label: u32,
    /// What its decoder let pass.
    warnings: Vec<ImageWarning>,
}

/// Loads example `i` (its index in the data set) into (3, h, w) f32, its randomness drawn from
/// (seed, epoch, i) alone: independent of batch boundaries, workers and timing.
fn example(
    ds: &Dataset,
    i: usize,
    augment: Augment,
    norm: &Normalize,
    seed: u64,
    epoch: u64,
    file_size: usize,
) -> Result<Example> {
    let mut rng = Rng(seed ^ (epoch << 40) ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let label = ds.label(i);
    match &ds.source {
        Source::Memory(m) => {
            let mut pixels = vec![0f32; 3 * m.h * m.w];
            let a = if matches!(augment, Augment::CropFlip { .. }) { augment } else { Augment::None };
            a.apply_small(m.image(i), m.channels, m.h, m.w, &mut rng, norm, &mut pixels);
            Ok(Example { pixels, label, warnings: Vec::new() })
        }
        Source::Files { paths, .. } => {
            // Full size: the crop below resamples the region it keeps, so a smaller decode gains nothing.
            let loaded = load_image_bounded(&paths[i], u64::MAX)?;
            let train = matches!(augment, Augment::RandomResizedCrop { .. });
            let pixels = file_to_tensor(&loaded.image, file_size, train, &mut rng, norm);
            Ok(Example { pixels, label, warnings: loaded.warnings })
        }
    }
}

/// Makes example `i` (its index in the data set); called by any worker, in any order.
type ExampleFn = dyn Fn(usize) -> Result<Example> + Send + Sync;

/// The batch being filled: images land at their place whichever worker decodes them.
#[derive(Default)]
struct Assembly {
    /// (n, 3, h, w) f32.
    input: Vec<f32>,
    /// One per image.
    targets: Vec<u32>,
    /// One list per image.
    warnings: Vec<Vec<ImageWarning>>,
}

/// What workers and consumer share, under `Shared::work`.
struct Work {
    /// Next position of `Shared::order` to claim.
    next: usize,
    /// Batches the consumer took (the next one it wants has this number).
    taken: usize,
    /// Batches in flight, by number.
    assembling: HashMap<usize, Arc<Mutex<Assembly>>>,
    /// Positions of each batch in flight that are done (loaded or failed).
    resolved: HashMap<usize, usize>,
    /// The first position (in epoch order) whose example failed so far, and its error. No
    /// position after it is claimed, so every position before it is loaded in the end.
    failed: Option<(usize, Error)>,
    /// The consumer is gone or finished: workers stop.
    closed: bool,
    /// A worker thread died outside an example (a bug): the consumer stops with an `Err`.
    died: bool,
}

/// An epoch's plan, the work state and the signals between workers and consumer.
struct Shared {
    /// Data set index of each position, from the first batch produced (`skip` and `drop_last`
    /// applied); batch b is positions [b·batch, (b+1)·batch).
    order: Vec<usize>,
    batch: usize,
    /// Batches of the epoch produced before this loader's first (its `skip`), for messages.
    skip: usize,
    h: usize,
    w: usize,
    prefetch: usize,
    example: Box<ExampleFn>,
    work: Mutex<Work>,
    /// Workers wait here for room (a batch taken) or the close.
    room: Condvar,
    /// The consumer waits here for a batch, a failure or a dead worker.
    ready: Condvar,
    meter: LoaderMeter,
}

impl Shared {
    fn batches(&self) -> usize {
        self.order.len().div_ceil(self.batch)
    }
    /// Positions [start, end) of batch `b`.
    fn span(&self, b: usize) -> (usize, usize) {
        (b * self.batch, ((b + 1) * self.batch).min(self.order.len()))
    }

    /// The next position to load and the batch it goes into, once there is room for it; `None`
    /// when there is nothing left to do.
    fn claim(&self) -> Option<(usize, Arc<Mutex<Assembly>>)> {
        let mut w = lock(&self.work);
        loop {
            let end = w.failed.as_ref().map_or(self.order.len(), |f| f.0);
            if w.closed || w.next >= end {
                return None;
            }
            if w.next / self.batch < w.taken + self.prefetch {
                break;
            }
            w = self.room.wait(w).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let pos = w.next;
        w.next += 1;
        let b = pos / self.batch;
        let (start, end) = self.span(b);
        let floats = 3 * self.h * self.w;
        let slot = w.assembling.entry(b).or_insert_with(|| {
            Arc::new(Mutex::new(Assembly {
                input: vec![0.0; (end - start) * floats],
                targets: vec![0; end - start],
                warnings: vec![Vec::new(); end - start],
            }))
        });
        Some((pos, slot.clone()))
    }

    /// Position `pos` is done, loaded (`None`) or failed.
    fn resolve(&self, pos: usize, error: Option<Error>) {
        let b = pos / self.batch;
        let mut w = lock(&self.work);
        *w.resolved.entry(b).or_default() += 1;
        if let Some(e) = error {
            if w.failed.as_ref().is_none_or(|f| pos < f.0) {
                w.failed = Some((pos, e));
            }
        }
        let (start, end) = self.span(b);
        let signal = w.failed.is_some() || w.resolved[&b] == end - start;
        drop(w);
        if signal {
            self.ready.notify_all();
        }
    }

    /// Stops the workers (they finish the image in hand).
    fn close(&self) {
        lock(&self.work).closed = true;
        self.room.notify_all();
    }
}

/// A worker: claims positions in order and loads them until there are none left.
fn work(shared: &Shared) {
    let _exit = ExitGuard(shared);
    let floats = 3 * shared.h * shared.w;
    while let Some((pos, slot)) = shared.claim() {
        let i = shared.order[pos];
        let t = Instant::now();
        let loaded = catch_unwind(AssertUnwindSafe(|| (shared.example)(i))).unwrap_or_else(|panic| {
            Err(Error::invalid(format!(
                "the data loader (effnet-loader) panicked on example {i} (batch {} of the epoch): {}; the epoch is \
                 incomplete, so the run stops. This is a bug in the loader: please report it with the data set that \
                 caused it",
                shared.skip + pos / shared.batch,
                panic_message(&*panic)
            )))
        });
        LoaderMeter::add_nanos(&shared.meter.0.worker_nanos, t);
        let loaded = loaded.and_then(|x| match x.pixels.len() == floats {
            true => Ok(x),
            false => Err(Error::invalid(format!(
                "the data loader made {} values for example {i}, not 3x{}x{}; this is a bug in the loader",
                x.pixels.len(),
                shared.h,
                shared.w
            ))),
        });
        match loaded {
            Ok(x) => {
                shared.meter.0.images.fetch_add(1, Ordering::Relaxed);
                let k = pos % shared.batch;
                let mut a = lock(&slot);
                a.input[k * floats..(k + 1) * floats].copy_from_slice(&x.pixels);
                a.targets[k] = x.label;
                a.warnings[k] = x.warnings;
                drop(a);
                // Before `resolve`: the consumer takes the batch out of its `Arc` once it is complete.
                drop(slot);
                shared.resolve(pos, None);
            }
            Err(e) => {
                drop(slot);
                shared.resolve(pos, Some(e));
            }
        }
    }
}

/// Tells the consumer when a worker dies outside an example, so it does not wait for an image
/// that will never come.
struct ExitGuard<'a>(&'a Shared);

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(&self.0.work).died = true;
            self.0.ready.notify_all();
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Batches of one epoch, decoded and augmented by worker threads ([`LoaderOptions`]) and handed
/// out in order: iterate it. Dropping it stops the workers.
pub struct Loader {
    shared: Arc<Shared>,
    /// Worker threads and their names, joined at the end of the epoch, at an error, or on drop.
    workers: Vec<(String, JoinHandle<()>)>,
    /// The epoch ended or failed: `next` yields `None`.
    finished: bool,
    warnings: LoaderWarnings,
}

impl Loader {
    /// Starts producing the batches of `epoch`, from batch `skip` on (for resuming mid-epoch),
    /// with the default [`LoaderOptions`] (a worker per core, 2 batches in flight).
    /// With `drop_last` the final partial batch is skipped (training keeps one recorded shape).
    /// A data set whose source is inconsistent ([`Dataset::check_source`]), or image files with
    /// `file_size` 0, is an error here, before the workers start.
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
        Self::start_with(ds, batch, epoch, skip, seed, shuffle, drop_last, augment, norm, file_size, Default::default())
    }

    /// [`Loader::start`] with `options`: how many workers, how many batches in flight. The
    /// batches are the same whatever the options.
    #[allow(clippy::too_many_arguments)]
    pub fn start_with(
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
        options: LoaderOptions,
    ) -> Result<Loader> {
        options.validate()?;
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
        let mut positions = order(ds.len(), seed, epoch, shuffle);
        positions.drain(..skip.saturating_mul(batch).min(positions.len()));
        if drop_last {
            positions.truncate(positions.len() / batch * batch);
        }
        let ds = ds.clone();
        let make = move |i: usize| example(&ds, i, augment, &norm, seed, epoch, file_size);
        Self::spawn(positions, batch, skip, (h, w), options, Box::new(make), work)
    }

    /// Starts `options.workers` threads (no more than there are positions) running `worker`.
    fn spawn(
        order: Vec<usize>,
        batch: usize,
        skip: usize,
        (h, w): (usize, usize),
        options: LoaderOptions,
        example: Box<ExampleFn>,
        worker: fn(&Shared),
    ) -> Result<Loader> {
        let workers = options.workers.min(order.len());
        let meter = LoaderMeter::new();
        meter.0.workers.store(workers as u64, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            order,
            batch,
            skip,
            h,
            w,
            prefetch: options.prefetch,
            example,
            work: Mutex::new(Work {
                next: 0,
                taken: 0,
                assembling: HashMap::new(),
                resolved: HashMap::new(),
                failed: None,
                closed: false,
                died: false,
            }),
            room: Condvar::new(),
            ready: Condvar::new(),
            meter,
        });
        let mut loader = Loader { shared, workers: Vec::new(), finished: false, warnings: LoaderWarnings::default() };
        for k in 0..workers {
            let name = format!("effnet-loader-{k}");
            let shared = loader.shared.clone();
            let handle = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || worker(&shared))
                .map_err(|e| Error::invalid(format!("could not start the loader thread {name}: {e}")))?;
            loader.workers.push((name, handle));
        }
        Ok(loader)
    }

    /// The warnings of the images this loader decodes (truncated JPEGs), to print or count while
    /// iterating: take the handle before the loop, which consumes the loader.
    pub fn warnings(&self) -> LoaderWarnings {
        self.warnings.clone()
    }

    /// The loader's figures so far: images decoded, worker and consumer-wait seconds
    /// ([`LoaderStats`]). A `for` loop consumes the loader: take [`Loader::meter`] before it, or
    /// iterate with `while let Some(batch) = loader.next()`.
    pub fn stats(&self) -> LoaderStats {
        self.shared.meter.stats()
    }

    /// A handle on the figures that outlives the loader, to read while a `for` loop consumes it.
    pub fn meter(&self) -> LoaderMeter {
        self.shared.meter.clone()
    }

    /// Number of batches an epoch of `n` examples yields.
    pub fn batches_per_epoch(n: usize, batch: usize, drop_last: bool) -> usize {
        if drop_last {
            n / batch.max(1)
        } else {
            n.div_ceil(batch.max(1))
        }
    }

    /// The next batch, or the first failure, or the end; waits for it. The wait is counted.
    fn next_item(&mut self) -> Option<Result<Batch>> {
        let shared = self.shared.clone();
        let mut w = lock(&shared.work);
        loop {
            let b = w.taken;
            if b == shared.batches() {
                drop(w);
                return self.finish(None, true);
            }
            let (start, end) = shared.span(b);
            let resolved = w.resolved.get(&b).copied().unwrap_or(0);
            let failed_here = w.failed.as_ref().is_some_and(|f| f.0 < end);
            if failed_here && resolved == w.next.min(end) - start {
                // Every position of this batch before the failed one is loaded: none can fail first.
                let (pos, error) = w.failed.take().expect("checked above");
                let slot = w.assembling.remove(&b);
                drop(w);
                if let Some(slot) = slot {
                    let a = lock(&slot);
                    self.warnings.push(a.warnings[..pos - start].iter().flatten().cloned().collect());
                }
                return self.finish(Some(error), false);
            }
            if !failed_here && resolved == end - start {
                w.taken += 1;
                w.resolved.remove(&b);
                let slot = w.assembling.remove(&b);
                shared.meter.0.batches.fetch_add(1, Ordering::Relaxed);
                drop(w);
                shared.room.notify_all();
                let a = match slot.map(Arc::try_unwrap) {
                    Some(Ok(a)) => a.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()),
                    Some(Err(shared_slot)) => std::mem::take(&mut *lock(&shared_slot)),
                    None => Assembly::default(),
                };
                self.warnings.push(a.warnings.into_iter().flatten().collect());
                return Some(Ok(Batch { input: a.input, targets: a.targets, h: shared.h, w: shared.w }));
            }
            if w.died {
                drop(w);
                return self.finish(None, false);
            }
            w = shared.ready.wait(w).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Ends the epoch: stops and joins the workers. Yields `error`, else a worker's panic, else
    /// (`complete` false) an `Err` for an epoch cut short, else the end.
    fn finish(&mut self, error: Option<Error>, complete: bool) -> Option<Result<Batch>> {
        self.finished = true;
        let panic = self.stop_workers();
        let received = self.shared.meter.0.batches.load(Ordering::Relaxed);
        if let Some(e) = error {
            return Some(Err(e));
        }
        if let Some((name, message)) = panic {
            return Some(Err(Error::invalid(format!(
                "the data loader thread ({name}) panicked after {received} batches: {message}; the epoch is \
                 incomplete, so the run stops. This is a bug in the loader: please report it with the data set that \
                 caused it"
            ))));
        }
        if !complete {
            return Some(Err(Error::invalid(format!(
                "the data loader stopped after {received} batches, before the end of the epoch; this is a bug in \
                 the loader"
            ))));
        }
        None
    }

    /// Closes the work and joins every worker; the first that panicked, with its message.
    fn stop_workers(&mut self) -> Option<(String, String)> {
        self.shared.close();
        let mut first = None;
        for (name, handle) in self.workers.drain(..) {
            if let Err(panic) = handle.join() {
                first.get_or_insert((name, panic_message(&*panic)));
            }
        }
        first
    }
}

impl Iterator for Loader {
    type Item = Result<Batch>;
    /// The next batch, in epoch order; after the last one (or an `Err`) `None`. An example that
    /// fails, or a worker that panics, yields one `Err` after the batches before it, so an epoch
    /// cut short by a failed loader stops the run instead of passing for a complete one. The
    /// time spent here waiting is [`LoaderStats::wait_seconds`].
    fn next(&mut self) -> Option<Result<Batch>> {
        if self.finished {
            return None;
        }
        let t = Instant::now();
        let item = self.next_item();
        LoaderMeter::add_nanos(&self.shared.meter.0.wait_nanos, t);
        item
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Workers finish the image in hand, see the close and return.
        let _ = self.stop_workers();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loader over positions 0..n whose example `i` is `i` everywhere, made by `make`.
    fn engine(
        n: usize,
        batch: usize,
        workers: usize,
        prefetch: usize,
        make: impl Fn(usize) -> Result<Example> + Send + Sync + 'static,
        worker: fn(&Shared),
    ) -> Loader {
        let options = LoaderOptions { workers, prefetch };
        Loader::spawn((0..n).collect(), batch, 0, (1, 1), options, Box::new(make), worker).unwrap()
    }

    fn plain(i: usize) -> Result<Example> {
        Ok(Example { pixels: vec![i as f32; 3], label: i as u32, warnings: Vec::new() })
    }

    #[test]
    fn batches_come_in_order_whatever_the_workers_and_prefetch() {
        for (workers, prefetch) in [(1, 1), (3, 1), (4, 2), (7, 5)] {
            let slow = |i: usize| {
                // Later images finish first: the assembly, not the timing, decides the order.
                std::thread::sleep(std::time::Duration::from_micros(((13 - i % 13) * 50) as u64));
                plain(i)
            };
            let got: Vec<Vec<u32>> = engine(26, 4, workers, prefetch, slow, work).map(|b| b.unwrap().targets).collect();
            let want: Vec<Vec<u32>> = (0..26u32).collect::<Vec<_>>().chunks(4).map(|c| c.to_vec()).collect();
            assert_eq!(got, want, "{workers} workers, prefetch {prefetch}");
        }
    }

    #[test]
    fn a_panic_in_one_of_several_workers_yields_the_batches_before_it_then_an_error() {
        for workers in [1, 4] {
            let make = |i: usize| if i == 9 || i == 14 { panic!("example {i} blew up") } else { plain(i) };
            let items: Vec<Result<Batch>> = engine(20, 4, workers, 2, make, work).collect();
            assert_eq!(items.len(), 3, "{workers} workers");
            assert!(items[..2].iter().all(|b| b.is_ok()));
            let e = items[2].as_ref().unwrap_err().to_string();
            assert!(e.contains("effnet-loader") && e.contains("example 9 blew up") && e.contains("batch 2"), "{e}");
        }
    }

    #[test]
    fn a_worker_thread_that_dies_yields_an_error_not_a_short_epoch() {
        // A worker that claims an image and dies holding it: the consumer must not wait forever.
        fn dies(shared: &Shared) {
            let _exit = ExitGuard(shared);
            if let Some((pos, _slot)) = shared.claim() {
                panic!("worker blew up at {pos}");
            }
        }
        let items: Vec<Result<Batch>> = engine(8, 2, 2, 1, plain, dies).collect();
        assert_eq!(items.len(), 1);
        let e = items[0].as_ref().unwrap_err().to_string();
        assert!(e.contains("effnet-loader-") && e.contains("worker blew up") && e.contains("after 0 batches"), "{e}");
    }

    #[test]
    fn a_wrong_sized_example_is_an_error_not_a_panic() {
        let make = |i: usize| Ok(Example { pixels: vec![0.0; 2], label: i as u32, warnings: Vec::new() });
        let items: Vec<Result<Batch>> = engine(3, 2, 2, 1, make, work).collect();
        assert_eq!(items.len(), 1);
        assert!(items[0].as_ref().unwrap_err().to_string().contains("not 3x1x1"));
    }

    #[test]
    fn dropping_a_loader_mid_epoch_stops_its_workers() {
        let mut loader = engine(1000, 2, 4, 2, plain, work);
        assert!(loader.next().unwrap().is_ok());
        let meter = loader.meter();
        drop(loader);
        // Workers never ran past the prefetch bound: 1 batch taken + 2 in flight.
        assert!(meter.stats().images <= 6, "{:?}", meter.stats());
    }
}
