//! The training loop's engine: one recorded training step and one optimizer update per batch, in
//! one submit, with evaluation through the inference graph (BatchNorm folded).

use std::sync::Arc;

use crate::data::{Augment, Batch, Dataset, Loader, Normalize};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer, KeptReadback, UploadBuffer};
use crate::model::{Config, EfficientNet, Network, Weights};
use crate::ops::rng::hash_u32;
use crate::ops::{sum_partials, OptimizerKind, SumPartialsParams};
use crate::train::dist::{check_agreement, Collective};
use crate::train::graph::{TrainGraph, TrainOptions, TrainStep};
use crate::train::params::ParamKind;
use crate::train::{LrSchedule, Optimizer};

/// Everything about a run that is not the model or the data. `Default` is `train_b0`'s recipe;
/// set the fields that differ.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct TrainConfig {
    /// Epochs the run lasts (or fewer when `max_steps` ends it first).
    pub epochs: u64,
    /// Stop after this many steps (all epochs otherwise). The learning-rate schedule still spans
    /// every epoch, so a run stopped here and resumed takes the same steps as one that was not.
    pub max_steps: Option<u64>,
    /// Images per optimizer step (at least 2, for BatchNorm).
    pub batch_size: usize,
    /// Peak learning rate, reached at the end of the warm-up.
    pub lr: f32,
    /// The learning-rate shape after the warm-up.
    pub schedule: crate::train::Schedule,
    /// Epochs of linear learning-rate warm-up (may be fractional).
    pub warmup_epochs: f32,
    /// The update rule and its hyper-parameters.
    pub optimizer: OptimizerKind,
    /// L2 (RMSProp, SGD) or decoupled (AdamW) weight decay on conv and linear weights.
    pub weight_decay: f32,
    /// Clip gradients to this global norm (0 = off).
    pub max_norm: f32,
    /// Evaluate with an exponential moving average of the weights (decay), when set.
    pub ema: Option<f32>,
    /// Label-smoothing epsilon of the cross-entropy loss (0 = off).
    pub label_smoothing: f32,
    /// PyTorch-semantics BatchNorm momentum: running = (1 - m) * running + m * batch statistic.
    pub bn_momentum: f32,
    /// Dropout before the classifier, at the model config's `dropout` rate.
    pub dropout: bool,
    /// Stochastic depth on residual blocks, at the model config's `drop_connect` rate.
    pub drop_path: bool,
    /// Training resolution: inputs are resized to it on the GPU.
    pub resolution: usize,
    /// Seed of the dropout and stochastic-depth masks (training loops also seed data order and augmentation).
    pub seed: u64,
    /// Run each batch as micro-batches of at most this many images, accumulating their gradients
    /// into one update (BatchNorm then normalises each micro-batch on its own, and running
    /// statistics move once per micro-batch). Batches whose activations exceed the device's
    /// binding limit are split this way whatever this says.
    #[serde(default)]
    pub micro_batch: Option<usize>,
    /// Train the classifier alone: every other layer keeps its weights and runs BatchNorm on its
    /// running statistics, and keeps no gradient or optimizer state (fine-tuning a head).
    #[serde(default)]
    pub freeze_backbone: bool,
    /// The learning rate of every layer but the classifier, as a multiple of `lr` (discriminative
    /// fine-tuning, e.g. 0.1); 1 trains all layers alike.
    #[serde(default = "one")]
    pub backbone_lr_mult: f32,
}

fn one() -> f32 {
    1.0
}

impl TrainConfig {
    /// Rejects values no run can use, naming the option, the value and the range, so that nothing
    /// unchecked reaches a kernel as an override constant.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::invalid("epochs is 0; a run needs at least 1 epoch"));
        }
        if self.max_steps == Some(0) {
            return Err(Error::invalid("max_steps is 0; a run needs at least 1 step"));
        }
        if self.batch_size < 2 {
            return Err(Error::invalid(format!(
                "batch_size is {}; training needs at least 2 images per batch (BatchNorm statistics)",
                self.batch_size
            )));
        }
        if self.micro_batch == Some(0) {
            return Err(Error::invalid("micro_batch is 0; it must be at least 1 image"));
        }
        if self.resolution == 0 {
            return Err(Error::invalid("resolution is 0; it must be at least 1 pixel"));
        }
        Error::check_number("lr", self.lr as f64, 0.0..)?;
        Error::check_number("warmup_epochs", self.warmup_epochs as f64, 0.0..)?;
        Error::check_number("weight_decay", self.weight_decay as f64, 0.0..)?;
        Error::check_number("max_norm (--clip-norm)", self.max_norm as f64, 0.0..)?;
        Error::check_number("label_smoothing", self.label_smoothing as f64, 0.0..1.0)?;
        Error::check_number("bn_momentum", self.bn_momentum as f64, 0.0..=1.0)?;
        Error::check_number("backbone_lr_mult", self.backbone_lr_mult as f64, 0.0..)?;
        if let Some(d) = self.ema {
            Error::check_number("ema (decay)", d as f64, 0.0..1.0)?;
        }
        self.optimizer.validate()?;
        if let crate::train::Schedule::ExponentialStaircase { rate, every_epochs } = self.schedule {
            Error::check_number(
                "schedule rate",
                rate as f64,
                (std::ops::Bound::Excluded(0.0), std::ops::Bound::Unbounded),
            )?;
            Error::check_number(
                "schedule every_epochs",
                every_epochs as f64,
                (std::ops::Bound::Excluded(0.0), std::ops::Bound::Unbounded),
            )?;
        }
        Ok(())
    }
}

impl Default for TrainConfig {
    /// `train_b0`'s defaults: 2 epochs of AdamW (lr 0.003, weight decay 0.01) at batch 64 with a
    /// 0.1-epoch warm-up and cosine decay, BN momentum 0.1, dropout and stochastic depth on, 32 px.
    fn default() -> TrainConfig {
        TrainConfig {
            epochs: 2,
            max_steps: None,
            batch_size: 64,
            lr: 0.003,
            schedule: crate::train::Schedule::Cosine,
            warmup_epochs: 0.1,
            optimizer: OptimizerKind::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
            weight_decay: 0.01,
            max_norm: 0.0,
            ema: None,
            label_smoothing: 0.0,
            bn_momentum: 0.1,
            dropout: true,
            drop_path: true,
            resolution: 32,
            seed: 0,
            micro_batch: None,
            freeze_backbone: false,
            backbone_lr_mult: 1.0,
        }
    }
}

/// Accuracy on a data set.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Evaluation {
    /// Fraction of all examples classified right, 0..1.
    pub accuracy: f64,
    /// Accuracy of each class, indexed by label (0 for a class with no examples).
    pub per_class: Vec<f64>,
    /// Examples evaluated.
    pub examples: usize,
}

/// Where the micro-batches of one batch meet: the gradient and loss averages (each micro-batch
/// weighted by its share of the batch) and the batch's logits.
struct Accumulators {
    grads: GpuBuffer,
    loss: GpuBuffer,
    logits: GpuBuffer,
    /// The recorded adds, by (micro-batch size, first of its batch): built once, replayed.
    adds: Vec<((usize, bool), Vec<Dispatch>)>,
}

impl Accumulators {
    /// Records `grads (+)= len / n * step's gradients` and the same for the loss (overwriting on
    /// the batch's first micro-batch), and copies the step's logits to rows `start..`.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        gpu: &Gpu,
        step: &TrainStep,
        grads: &GpuBuffer,
        start: usize,
        len: usize,
        n: usize,
        encoder: &mut wgpu::CommandEncoder,
    ) -> Result<()> {
        let key = (len, start == 0);
        if !self.adds.iter().any(|a| a.0 == key) {
            let share =
                |total| SumPartialsParams { parts: 1, len: total, scale: len as f32 / n as f32, accumulate: start > 0 };
            // The flat gradients may exceed one storage binding (B6, B7): one add per range.
            let mut d = Vec::new();
            for (start, len) in gpu.binding_ranges(grads.len, 1) {
                d.push(sum_partials(gpu, &share(len), &grads.slice(start, len), &self.grads.slice(start, len))?);
            }
            d.push(sum_partials(gpu, &share(1), step.loss(), &self.loss)?);
            self.adds.push((key, d));
        }
        let adds = self.adds.iter().find(|a| a.0 == key).map(|a| &a.1).ok_or_else(|| Error::invalid("no adds"))?;
        crate::gpu::encode_dispatches(encoder, "micro-batch accumulate", adds.iter());
        let row = (step.logits().len / len) as u64 * 4;
        encoder.copy_buffer_to_buffer(
            &step.logits().buffer,
            step.logits().offset,
            &self.logits.buffer,
            start as u64 * row,
            len as u64 * row,
        );
        Ok(())
    }
}

/// Runs training on one GPU: parameters, optimizer, schedule, recorded steps, and the step and epoch counters.
pub struct Trainer {
    /// The device everything runs on.
    pub gpu: Arc<Gpu>,
    /// The model configuration.
    pub config: Config,
    /// The run's training configuration.
    pub tc: TrainConfig,
    /// The parameters, gradients and BN statistics, and the recorder of training steps.
    pub graph: TrainGraph,
    /// The optimizer state (and EMA) with its recorded update.
    pub optimizer: Optimizer,
    /// The learning-rate schedule, built from `tc` and the steps per epoch.
    pub schedule: LrSchedule,
    /// Recorded steps by batch size: one, or two when a batch runs as micro-batches of two sizes.
    steps: Vec<TrainStep>,
    /// Where micro-batches accumulate (created on first use).
    accum: Option<Accumulators>,
    /// Whether the last batch ran as micro-batches (its loss and logits are in `accum`).
    last_micro: bool,
    /// The step in `steps` that ran the last batch (or its last micro-batch).
    last_step: Option<usize>,
    /// Steps taken so far (the next step's index).
    pub step: u64,
    /// Use this learning rate instead of the schedule's (e.g. 0 to only refresh BN statistics).
    pub lr_override: Option<f32>,
    /// The epoch in progress (0-based); `next_epoch` advances it.
    pub epoch: u64,
    /// Batches of `epoch` already consumed (for resuming mid-epoch).
    pub batch_in_epoch: usize,
    /// Recorded evaluations by (batch, h, w), replayed by every `evaluate`.
    eval_model: std::sync::Mutex<Option<EvalModel>>,
    /// The other replicas of a data-parallel run (`new_data_parallel`), one per device, in rank
    /// order after this one (rank 0); empty on one device.
    peers: Vec<Trainer>,
    /// Where a data-parallel step sums the replicas' gradients on this device.
    reduction: Option<Reduction>,
    /// The other processes of a distributed run (`new_distributed`): this one is a rank.
    collective: Option<Box<dyn Collective>>,
    /// What the last data-parallel step's gradient exchange cost.
    last_exchange: Option<Exchange>,
}

/// The cost of one data-parallel step's gradient exchange (`Trainer::last_exchange`), on this
/// process: the gradients go device → host, between replicas (all-gather), host → every device.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Exchange {
    /// Replicas in the run.
    pub world: usize,
    /// Bytes of one replica's gradients.
    pub gradient_bytes: u64,
    /// Bytes read back from this process's devices.
    pub read_bytes: u64,
    /// Bytes received from other processes (all-gather; 0 in one process).
    pub received_bytes: u64,
    /// Bytes uploaded to this process's devices (every other replica's gradients to each).
    pub uploaded_bytes: u64,
    /// Seconds from the submit of the shards to the end of their forward and backward.
    pub compute_seconds: f64,
    /// Seconds reading the gradients back.
    pub read_seconds: f64,
    /// Seconds in the all-gather between processes.
    pub gather_seconds: f64,
    /// Seconds uploading the other replicas' gradients to every device and summing them there.
    pub sum_seconds: f64,
}

impl Exchange {
    /// Share of the step (forward, backward and exchange; the optimizer's update, which one
    /// device runs too, is left out) spent exchanging gradients.
    pub fn share(&self) -> f64 {
        let exchange = self.read_seconds + self.gather_seconds + self.sum_seconds;
        exchange / (exchange + self.compute_seconds).max(f64::MIN_POSITIVE)
    }
}

/// A data-parallel step's gradient sum on one replica: every replica's gradients uploaded in
/// turn and added in rank order by the kernel micro-batches accumulate with, so that R replicas
/// of b images compute the bits one device computes for R micro-batches of b.
struct Reduction {
    /// One replica's gradients at a time.
    incoming: GpuBuffer,
    /// Staging for the other replicas' gradients, one per upload of a step, kept between steps.
    staging: Vec<UploadBuffer>,
    /// Where this replica's gradients come back to the host.
    outgoing: KeptReadback,
    /// The weighted sum.
    sum: GpuBuffer,
    /// The recorded adds, by (shard size, first rank, own rank): built once, replayed.
    adds: Vec<((usize, bool, bool), Vec<Dispatch>)>,
}

impl Trainer {
    /// Uploads `weights` and builds the optimizer and schedule (`steps_per_epoch` steps an epoch); needs batch ≥ 2.
    pub fn new(
        gpu: Arc<Gpu>,
        config: Config,
        weights: &Weights,
        tc: TrainConfig,
        steps_per_epoch: u64,
    ) -> Result<Trainer> {
        tc.validate()?;
        if steps_per_epoch == 0 {
            return Err(Error::invalid("steps_per_epoch is 0: the data set makes no batch"));
        }
        let graph = TrainGraph::new_with(&gpu, config.clone(), weights, tc.freeze_backbone)?;
        let optimizer = Optimizer::new(&gpu, &graph.params, tc.optimizer, tc.weight_decay, tc.max_norm, tc.ema)?
            .with_backbone_lr_mult(tc.backbone_lr_mult)?;
        // The schedule spans every epoch whatever `max_steps` says, so that a run stopped early
        // and resumed takes the steps an uninterrupted one takes.
        let total = tc.epochs.saturating_mul(steps_per_epoch);
        let warmup = (tc.warmup_epochs as f64 * steps_per_epoch as f64) as u64;
        let schedule = LrSchedule {
            base_lr: tc.lr,
            warmup_steps: warmup,
            total_steps: total,
            steps_per_epoch,
            schedule: tc.schedule,
        };
        Ok(Trainer {
            gpu,
            config,
            tc,
            graph,
            optimizer,
            schedule,
            steps: Vec::new(),
            accum: None,
            last_micro: false,
            last_step: None,
            step: 0,
            lr_override: None,
            epoch: 0,
            batch_in_epoch: 0,
            eval_model: std::sync::Mutex::new(None),
            peers: Vec::new(),
            reduction: None,
            collective: None,
            last_exchange: None,
        })
    }

    /// What the last data-parallel step's gradient exchange moved and took (none on one device).
    pub fn last_exchange(&self) -> Option<&Exchange> {
        self.last_exchange.as_ref()
    }

    /// One rank of a data-parallel run across processes (`collective`: MPI under `mpirun`, one
    /// rank per device): as `new_data_parallel`, with the ranks as replicas. Every rank gives
    /// `train_batch` the same whole batch (same data, same seed) and trains on its shard; the
    /// ranks exchange gradients every step. An error when the ranks' configurations, weights or
    /// world sizes differ.
    pub fn new_distributed(
        gpu: Arc<Gpu>,
        config: Config,
        weights: &Weights,
        tc: TrainConfig,
        steps_per_epoch: u64,
        collective: Box<dyn Collective>,
    ) -> Result<Trainer> {
        let mut trainer = Trainer::new(gpu, config, weights, tc, steps_per_epoch)?;
        let text = format!("{:?} {:?} {steps_per_epoch} world {}", trainer.config, trainer.tc, collective.size());
        check_agreement(&*collective, "configuration", &text)?;
        let flat = trainer.gpu.read(&trainer.graph.params.params)?;
        let bits: String = flat.iter().map(|v| format!("{:08x}", v.to_bits())).collect();
        check_agreement(&*collective, "set of starting weights", &bits)?;
        if trainer.tc.batch_size % collective.size() != 0 {
            return Err(Error::invalid(format!(
                "batch size {} does not split over {} ranks: use a multiple of the world size",
                trainer.tc.batch_size,
                collective.size()
            )));
        }
        trainer.collective = Some(collective);
        Ok(trainer)
    }

    /// This process's rank and the ranks in the run: (0, 1) unless distributed.
    pub fn rank_and_world(&self) -> (usize, usize) {
        self.collective.as_ref().map_or((0, 1), |c| (c.rank(), c.size()))
    }

    /// A data-parallel trainer: one replica per GPU in `gpus` (rank 0 first), each holding the
    /// same parameters. Each step splits the batch into equal shards, one per replica; every
    /// replica computes its shard's gradients on its own device (all at once), the gradients are
    /// summed on every replica in rank order, and every replica applies the same update, so the
    /// parameters stay identical, bit for bit. A step equals one device running the whole batch
    /// as micro-batches of one shard each (`TrainConfig::micro_batch`). BatchNorm normalises per
    /// replica, as PyTorch's DDP does; running statistics, evaluation and checkpoints are rank
    /// 0's.
    pub fn new_data_parallel(
        gpus: Vec<Arc<Gpu>>,
        config: Config,
        weights: &Weights,
        tc: TrainConfig,
        steps_per_epoch: u64,
    ) -> Result<Trainer> {
        let mut gpus = gpus.into_iter();
        let first = gpus.next().ok_or_else(|| Error::invalid("a data-parallel trainer needs at least one GPU"))?;
        let mut trainer = Trainer::new(first, config.clone(), weights, tc.clone(), steps_per_epoch)?;
        for gpu in gpus {
            trainer.peers.push(Trainer::new(gpu, config.clone(), weights, tc.clone(), steps_per_epoch)?);
        }
        if trainer.tc.batch_size % trainer.world_size() != 0 {
            return Err(Error::invalid(format!(
                "batch size {} does not split over {} devices: use a multiple of the device count",
                trainer.tc.batch_size,
                trainer.world_size()
            )));
        }
        Ok(trainer)
    }

    /// Whether every replica holds the same parameters, bit for bit (reads them all back): what
    /// a data-parallel step guarantees. True on one device.
    pub fn replicas_in_sync(&self) -> Result<bool> {
        let mine = self.gpu.read(&self.graph.params.params)?;
        for peer in &self.peers {
            let theirs = peer.gpu.read(&peer.graph.params.params)?;
            if theirs.iter().zip(&mine).any(|(a, b)| a.to_bits() != b.to_bits()) || theirs.len() != mine.len() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The replicas after rank 0.
    pub(crate) fn peers_mut(&mut self) -> &mut [Trainer] {
        &mut self.peers
    }

    /// Replicas training together: the devices of this process, times the processes.
    pub fn world_size(&self) -> usize {
        (1 + self.peers.len()) * self.collective.as_ref().map_or(1, |c| c.size())
    }

    /// Steps the run takes: every epoch's, or `max_steps` where that is fewer.
    pub fn total_steps(&self) -> u64 {
        self.tc.max_steps.map_or(self.schedule.total_steps, |m| m.min(self.schedule.total_steps))
    }

    fn options(&self) -> TrainOptions {
        TrainOptions {
            bn_momentum: self.tc.bn_momentum,
            update_running_stats: true,
            dropout: self.tc.dropout,
            drop_path: self.tc.drop_path,
            label_smoothing: self.tc.label_smoothing,
            grad_input: false,
            resize_to: Some((self.tc.resolution, self.tc.resolution)),
            recompute: true,
            ..TrainOptions::default()
        }
    }

    /// One optimisation step on `batch`: forward, loss, backward and update, one submit, no
    /// readback. The step is recorded on first use (and again if the batch shape changes). A batch
    /// larger than `micro_batch` or than the device's binding limit allows runs as micro-batches
    /// (one submit each) whose gradients are averaged into one update.
    pub fn train_batch(&mut self, batch: &Batch) -> Result<()> {
        let n = batch.len();
        let k = self.config.num_classes;
        if let Some(t) = batch.targets.iter().find(|&&t| t as usize >= k) {
            return Err(Error::invalid(format!("target class {t} is out of range for a {k}-class model")));
        }
        let (h, w) = (batch.h, batch.w);
        if batch.input.len() != n * 3 * h * w {
            return Err(Error::Shape {
                what: "training batch input".into(),
                expected: vec![n, 3, h, w],
                got: vec![batch.input.len()],
            });
        }
        if self.world_size() > 1 {
            return self.train_batch_parallel(batch);
        }
        let sizes = self.graph.micro_batches(&self.gpu, n, h, w, &self.options(), self.tc.micro_batch)?;
        let parts = sizes.len();
        let lr = self.lr_override.unwrap_or_else(|| self.schedule.lr(self.step));
        self.optimizer.set_step(&self.gpu, lr, self.step + 1);
        // The dropout / stochastic-depth masks of step k are a function of (seed, k) alone.
        let seed = hash_u32(self.tc.seed as u32 ^ hash_u32(self.step as u32));
        let per_image = 3 * h * w;
        let mut start = 0;
        for (part, &len) in sizes.iter().enumerate() {
            // At most two distinct sizes, so at most two recorded steps.
            let step = self.step_for(len, h, w)?;
            let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
            let input = &batch.input[start * per_image..(start + len) * per_image];
            let seed = if parts == 1 { seed } else { hash_u32(seed ^ part as u32) };
            self.steps[step].encode(&self.gpu, input, &batch.targets[start..start + len], seed, &mut encoder)?;
            if parts > 1 {
                self.ensure_accumulators(n)?;
                let accum = self.accum.as_mut().ok_or_else(|| Error::invalid("no accumulators"))?;
                accum.add(&self.gpu, &self.steps[step], &self.graph.params.grads, start, len, n, &mut encoder)?;
                if part == parts - 1 {
                    let g = &self.graph.params.grads;
                    encoder.copy_buffer_to_buffer(&accum.grads.buffer, 0, &g.buffer, g.offset, g.bytes());
                }
            }
            if part == parts - 1 {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                self.optimizer.encode(&mut pass);
            }
            // One submit per micro-batch: each one's input upload must land before it runs.
            self.gpu.submit("evaluating", [encoder.finish()])?;
            self.last_step = Some(step);
            start += len;
        }
        self.last_micro = parts > 1;
        self.step += 1;
        self.batch_in_epoch += 1;
        Ok(())
    }

    /// `train_batch` over the replicas: shards computed on every device at once, gradients read
    /// back and summed on every replica in rank order, the same update everywhere.
    fn train_batch_parallel(&mut self, batch: &Batch) -> Result<()> {
        let (n, world, (h, w)) = (batch.len(), self.world_size(), (batch.h, batch.w));
        if n % world != 0 {
            return Err(Error::invalid(format!(
                "a batch of {n} does not split over {world} devices: use a multiple of the device count"
            )));
        }
        let shard = n / world;
        let lr = self.lr_override.unwrap_or_else(|| self.schedule.lr(self.step));
        // Replica r runs micro-batch r of the step: its dropout seed is that micro-batch's.
        let seed = hash_u32(self.tc.seed as u32 ^ hash_u32(self.step as u32));
        let per_image = 3 * h * w;
        let mut peers = std::mem::take(&mut self.peers);
        let collective = self.collective.take();
        // A rank holds one replica: its shard is the rank's.
        let first_rank = collective.as_ref().map_or(0, |c| c.rank());
        let result = (|| {
            if collective.is_some() && !peers.is_empty() {
                return Err(Error::invalid("a distributed rank trains on one device"));
            }
            let mut replicas: Vec<&mut Trainer> = std::iter::once(&mut *self).chain(peers.iter_mut()).collect();
            for (local, r) in replicas.iter_mut().enumerate() {
                let rank = first_rank + local;
                let sizes = r.graph.micro_batches(&r.gpu, shard, h, w, &r.options(), None)?;
                if sizes.len() != 1 {
                    return Err(Error::invalid(format!(
                        "a shard of {shard} images does not fit one step on {}: use a smaller batch per device",
                        r.gpu.describe()
                    )));
                }
                r.optimizer.set_step(&r.gpu, lr, r.step + 1);
                let step = r.step_for(shard, h, w)?;
                let (from, to) = (rank * shard, (rank + 1) * shard);
                let mut encoder = r.gpu.device.create_command_encoder(&Default::default());
                let part_seed = hash_u32(seed ^ rank as u32);
                r.steps[step].encode(
                    &r.gpu,
                    &batch.input[from * per_image..to * per_image],
                    &batch.targets[from..to],
                    part_seed,
                    &mut encoder,
                )?;
                r.gpu.submit("a data-parallel step", [encoder.finish()])?;
                r.last_step = Some(step);
            }
            // Every device computes at once; the wait is for each device's own work.
            let clock = std::time::Instant::now();
            for r in replicas.iter() {
                r.gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| r.gpu.failure("a step", e))?;
            }
            let compute_seconds = clock.elapsed().as_secs_f64();
            let mut grads: Vec<Vec<f32>> = replicas.iter_mut().map(|r| r.read_gradients()).collect::<Result<_>>()?;
            let read_seconds = clock.elapsed().as_secs_f64() - compute_seconds;
            if let Some(c) = &collective {
                // One replica per rank: every rank's gradients, in rank order.
                grads = c.all_gather(&grads[0])?;
            }
            let gather_seconds = clock.elapsed().as_secs_f64() - compute_seconds - read_seconds;
            for (local, r) in replicas.iter_mut().enumerate() {
                r.sum_gradients(&grads, first_rank + local, shard, n)?;
            }
            for r in replicas.iter() {
                r.gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| r.gpu.failure("a sum", e))?;
            }
            let sum_seconds = clock.elapsed().as_secs_f64() - compute_seconds - read_seconds - gather_seconds;
            for r in replicas.iter_mut() {
                let mut encoder = r.gpu.device.create_command_encoder(&Default::default());
                r.optimizer.encode(&mut encoder.begin_compute_pass(&Default::default()));
                r.gpu.submit("a data-parallel update", [encoder.finish()])?;
                r.last_micro = false;
                r.step += 1;
                r.batch_in_epoch += 1;
            }
            let bytes = 4 * grads[0].len() as u64;
            let local = replicas.len() as u64;
            replicas[0].last_exchange = Some(Exchange {
                world,
                gradient_bytes: bytes,
                read_bytes: local * bytes,
                received_bytes: if collective.is_some() { (world as u64 - 1) * bytes } else { 0 },
                uploaded_bytes: local * (world as u64 - 1) * bytes,
                compute_seconds,
                read_seconds,
                gather_seconds,
                sum_seconds,
            });
            Ok(())
        })();
        self.peers = peers;
        self.collective = collective;
        result
    }

    /// Sums `grads` (every replica's, in rank order, `shard` images each of `n`) into this
    /// replica's gradients as micro-batches accumulate. This replica's own (rank `own`) are read
    /// where they are, the others uploaded in turn.
    fn sum_gradients(&mut self, grads: &[Vec<f32>], own: usize, shard: usize, n: usize) -> Result<()> {
        self.ensure_reduction()?;
        let g = &self.graph.params.grads;
        let red = self.reduction.as_mut().ok_or_else(|| Error::invalid("no reduction"))?;
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        let mut uploads = 0;
        for (rank, values) in grads.iter().enumerate() {
            let key = (shard, rank == 0, rank == own);
            let source = if rank == own { g } else { &red.incoming };
            if !red.adds.iter().any(|a| a.0 == key) {
                let share = |total| SumPartialsParams {
                    parts: 1,
                    len: total,
                    scale: shard as f32 / n as f32,
                    accumulate: rank > 0,
                };
                let mut d = Vec::new();
                for (start, len) in self.gpu.binding_ranges(g.len, 1) {
                    d.push(sum_partials(
                        &self.gpu,
                        &share(len),
                        &source.slice(start, len),
                        &red.sum.slice(start, len),
                    )?);
                }
                red.adds.push((key, d));
            }
            if rank != own {
                if red.staging.len() == uploads {
                    red.staging.push(self.gpu.upload_buffer(g.len, "a replica's gradients, staged")?);
                }
                red.staging[uploads].write(&self.gpu, &mut encoder, &red.incoming, values)?;
                uploads += 1;
            }
            let adds = red.adds.iter().find(|a| a.0 == key).map(|a| &a.1).ok_or_else(|| Error::invalid("no adds"))?;
            crate::gpu::encode_dispatches(&mut encoder, "gradient sum", adds.iter());
        }
        encoder.copy_buffer_to_buffer(&red.sum.buffer, 0, &g.buffer, g.offset, g.bytes());
        self.gpu.submit("a data-parallel gradient sum", [encoder.finish()])?;
        red.staging[..uploads].iter().for_each(UploadBuffer::remap);
        Ok(())
    }

    /// The buffers of a data-parallel step's gradient exchange on this replica, made on first use.
    fn ensure_reduction(&mut self) -> Result<()> {
        let len = self.graph.params.grads.len;
        if self.reduction.as_ref().is_none_or(|red| red.sum.len != len) {
            self.reduction = Some(Reduction {
                incoming: self.gpu.empty_flat(len, "a replica's gradients")?,
                staging: Vec::new(),
                outgoing: self.gpu.kept_readback(len, "this replica's gradients")?,
                sum: self.gpu.empty_flat(len, "summed gradients")?,
                adds: Vec::new(),
            });
        }
        Ok(())
    }

    /// This replica's gradients, on the host.
    fn read_gradients(&mut self) -> Result<Vec<f32>> {
        self.ensure_reduction()?;
        let red = self.reduction.as_ref().ok_or_else(|| Error::invalid("no reduction"))?;
        red.outgoing.read(&self.gpu, &self.graph.params.grads)
    }

    /// The index in `steps` of the step recorded for `len` images of `h` x `w`, recorded now if
    /// needed (steps for other image sizes are dropped).
    fn step_for(&mut self, len: usize, h: usize, w: usize) -> Result<usize> {
        self.steps.retain(|s| (s.h, s.w) == (h, w));
        if let Some(i) = self.steps.iter().position(|s| s.batch == len) {
            return Ok(i);
        }
        if self.steps.len() >= 2 {
            self.steps.remove(0);
        }
        self.steps.push(self.graph.record_step(&self.gpu, len, h, w, &self.options())?);
        Ok(self.steps.len() - 1)
    }

    fn ensure_accumulators(&mut self, n: usize) -> Result<()> {
        let k = self.config.num_classes;
        if self.accum.as_ref().is_none_or(|a| a.logits.len != n * k) {
            self.accum = Some(Accumulators {
                grads: self.gpu.empty_flat(self.graph.params.grads.len, "accumulated gradients")?,
                loss: self.gpu.empty(1, "batch loss")?,
                logits: self.gpu.empty(n * k, "batch logits")?,
                adds: Vec::new(),
            });
        }
        Ok(())
    }

    /// The last step's loss and the fraction of its batch classified right (waits for the GPU).
    pub fn last_loss_and_accuracy(&self, targets: &[u32]) -> Result<(f32, f64)> {
        if let Some(c) = &self.collective {
            // Every rank's shard (a collective call: every rank makes it).
            let (world, rank) = (c.size(), c.rank());
            let shard = targets.len() / world;
            let (l, acc) = self.own_loss_and_accuracy(&targets[rank * shard..(rank + 1) * shard])?;
            let all = c.all_gather(&[l, (acc * shard as f64) as f32])?;
            let mut loss = 0f32;
            for (r, v) in all.iter().enumerate() {
                let share = v[0] * (1.0 / world as f32);
                loss = if r == 0 { share } else { loss + share };
            }
            let right: f32 = all.iter().map(|v| v[1]).sum();
            return Ok((loss, right as f64 / targets.len().max(1) as f64));
        }
        if !self.peers.is_empty() {
            // Each replica's shard, combined as micro-batches combine their losses.
            let (world, mut loss, mut right) = (self.world_size(), 0f32, 0f64);
            let shard = targets.len() / world;
            for (rank, r) in std::iter::once(self).chain(&self.peers).enumerate() {
                let (l, acc) = r.own_loss_and_accuracy(&targets[rank * shard..(rank + 1) * shard])?;
                let share = l * (1.0 / world as f32);
                loss = if rank == 0 { share } else { loss + share };
                right += acc * shard as f64;
            }
            return Ok((loss, right / targets.len().max(1) as f64));
        }
        self.own_loss_and_accuracy(targets)
    }

    /// `last_loss_and_accuracy` of this replica's own last step.
    fn own_loss_and_accuracy(&self, targets: &[u32]) -> Result<(f32, f64)> {
        let (loss, logits) = match (&self.accum, self.last_step.and_then(|i| self.steps.get(i))) {
            (Some(a), _) if self.last_micro => (&a.loss, &a.logits),
            (_, Some(s)) => (s.loss(), s.logits()),
            _ => return Err(Error::invalid("no step has run yet")),
        };
        let v = self.gpu.read_many(&[loss, logits])?;
        let k = self.config.num_classes;
        let right = v[1].chunks(k).zip(targets).filter(|(row, &t)| argmax(row) == t as usize).count();
        Ok((v[0][0], right as f64 / targets.len().max(1) as f64))
    }

    /// An error naming the step where the last step's loss is NaN or infinite (training diverged),
    /// so that a loop stops before it saves such weights over a good checkpoint. Waits for the GPU.
    pub fn check_finite(&self) -> Result<()> {
        for peer in &self.peers {
            peer.check_finite()?;
        }
        if let Some(c) = &self.collective {
            // Every rank decides on every rank's loss (a collective call), so that all stop together.
            let own = self.own_loss()?;
            if let Some((rank, l)) =
                c.all_gather(&[own])?.iter().map(|v| v[0]).enumerate().find(|(_, l)| !l.is_finite())
            {
                return Err(Error::invalid(format!(
                    "the loss is {l} on rank {rank} at step {}: training diverged (lower the learning rate); the \
                     last checkpoint saved before this step is kept",
                    self.step
                )));
            }
            return Ok(());
        }
        let loss = self.own_loss()?;
        if loss.is_finite() {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "the loss is {loss} at step {}: training diverged (lower the learning rate); the last checkpoint saved \
             before this step is kept",
            self.step
        )))
    }

    /// This replica's last step's loss (0 before any step).
    fn own_loss(&self) -> Result<f32> {
        let loss = match (&self.accum, self.last_step.and_then(|i| self.steps.get(i))) {
            (Some(a), _) if self.last_micro => &a.loss,
            (_, Some(s)) => s.loss(),
            _ => return Ok(0.0),
        };
        Ok(self.gpu.read(loss)?.first().copied().unwrap_or(f32::NAN))
    }

    /// Marks the start of the next epoch.
    pub fn next_epoch(&mut self) {
        self.epoch += 1;
        self.batch_in_epoch = 0;
        self.peers.iter_mut().for_each(Trainer::next_epoch);
    }

    /// The current weights (the EMA when on) with BN running statistics, in PyTorch layout.
    pub fn weights(&self) -> Result<Weights> {
        let mut w = self.graph.weights(&self.gpu)?;
        if let Some((_, ema)) = &self.optimizer.ema {
            let flat = self.gpu.read(ema)?;
            self.graph.params.unflatten_into(&flat, &mut w)?;
        }
        Ok(w)
    }

    /// Accuracy on `ds`, evaluated on the GPU from the training parameters (the EMA's when on)
    /// as they are now: BatchNorm folded on the GPU from the running statistics into the
    /// inference model's weights, dropout off, images resized on the GPU to the training
    /// resolution. Nothing is read back but the logits.
    pub fn evaluate(&self, ds: &Dataset, norm: Normalize, batch: usize) -> Result<Evaluation> {
        let never = std::sync::atomic::AtomicBool::new(false);
        self.evaluate_until(ds, norm, batch, &never)?.ok_or_else(|| Error::invalid("evaluation stopped"))
    }

    /// `evaluate`, checking `stop` between batches: `None` as soon as it is set (Ctrl-C), so an
    /// interrupted run stops within one batch instead of finishing the evaluation.
    pub fn evaluate_until(
        &self,
        ds: &Dataset,
        norm: Normalize,
        batch: usize,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<Option<Evaluation>> {
        let r = self.tc.resolution;
        let k = self.config.num_classes;
        if ds.num_classes() > k {
            return Err(Error::invalid(format!("{} has {} classes but the model has {k}", ds.name, ds.num_classes())));
        }
        let mut eval = self.eval_model.lock().unwrap_or_else(|e| e.into_inner());
        if eval.is_none() {
            *eval = Some(self.build_eval_model()?);
        }
        let eval = eval.as_ref().ok_or_else(|| Error::invalid("no evaluation model"))?;
        // Fold the parameters as they are now.
        crate::gpu::submit(&self.gpu, &eval.fold)?;
        let (mut right, mut seen) = (vec![0usize; k], vec![0usize; k]);
        for b in Loader::start(ds, batch, 0, 0, self.tc.seed, false, false, Augment::None, norm, r)? {
            let b = b?;
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(None);
            }
            let logits = eval.model.forward(&b.input, b.len(), b.h, b.w)?.logits;
            for (row, &t) in logits.chunks(k).zip(&b.targets) {
                if t as usize >= k {
                    return Err(Error::invalid(format!("{}: label {t} is out of range for {k} classes", ds.name)));
                }
                seen[t as usize] += 1;
                right[t as usize] += (argmax(row) == t as usize) as usize;
            }
        }
        let examples: usize = seen.iter().sum();
        Ok(Some(Evaluation {
            accuracy: right.iter().sum::<usize>() as f64 / examples.max(1) as f64,
            per_class: right.iter().zip(&seen).map(|(&r, &s)| r as f64 / s.max(1) as f64).collect(),
            examples,
        }))
    }
}

/// The inference model an evaluation runs: the inference lowering over weights with each
/// BatchNorm folded in on the GPU (`bn_fold_weights`) from the parameters where they live (the
/// EMA's when on), so nothing is read back and the model is built once.
struct EvalModel {
    /// Refolds the current parameters into the model's weights: run before each evaluation.
    fold: Vec<crate::gpu::Dispatch>,
    model: EfficientNet,
}

impl Trainer {
    fn build_eval_model(&self) -> Result<EvalModel> {
        let p = &self.graph.params;
        let flat = self.optimizer.ema.as_ref().map_or(&p.params, |(_, e)| e);
        let r = self.tc.resolution;
        let mut layers = Vec::new();
        let mut fold = Vec::new();
        for (layer, bn, _) in Network::new(&self.config, r, r).learnable_layers() {
            let w = p.param_in(flat, layer, ParamKind::Weight)?;
            if bn {
                let gamma_beta = p.param_in(flat, layer, ParamKind::GammaBeta)?;
                let mut bp = crate::ops::BnParams::new(1, gamma_beta.len / 2, 1);
                bp.eps = self.config.bn_eps;
                let folded = self.gpu.empty(w.len, "folded weight")?;
                let bias = self.gpu.empty(bp.c, "folded bias")?;
                let running = p.running(layer)?;
                fold.push(crate::ops::bn_fold_weights(&self.gpu, &bp, &w, &gamma_beta, &running, &folded, &bias)?);
                layers.push((layer, folded, bias));
            } else {
                layers.push((layer, w, p.param_in(flat, layer, ParamKind::Bias)?));
            }
        }
        let model =
            EfficientNet::from_gpu_layers(self.gpu.clone(), self.config.clone(), layers)?.with_input_size(Some((r, r)));
        Ok(EvalModel { fold, model })
    }
}

/// Index of the largest value in `row`: the first on ties, never a NaN, 0 for an empty row.
pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0
}
