//! The differentiable network: a training step — forward with BatchNorm in training mode, softmax
//! cross-entropy, and the backward pass to every parameter (and optionally the input) — recorded
//! once for a (batch, height, width) and replayed with no CPU round trip.
//!
//! Autodiff works at the granularity of the paper's units (conv + BN + activation, squeeze-excite,
//! MBConv block, head): each forward unit returns an explicit saved state holding exactly what its
//! backward reads, and the backward units are recorded in reverse order. Buffers are reused as soon
//! as their last reader is recorded; saved tensors live until their backward unit.

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};
use crate::graph::recorder::{record_planned, Recorder};
use crate::model::{
    BlockPart, BlockSpec, Config, ConvKind, Field, HostTensor, Layer, Network, Op, Unit, ValueId, WeightFormat, Weights,
};
use crate::ops::{self, Activation};
use crate::train::params::{ParamKind, ParamStore};

/// What a training step does besides forward + backward. Start from `Default` and set the fields
/// that differ.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TrainOptions {
    /// PyTorch-semantics BN momentum: running = (1 - m) * running + m * batch statistic.
    pub bn_momentum: f32,
    /// Update BN running statistics (off for pure gradient checks).
    pub update_running_stats: bool,
    /// Dropout before the classifier, at `config.dropout`.
    pub dropout: bool,
    /// Stochastic depth on residual blocks, at `config.drop_connect`.
    pub drop_path: bool,
    /// Label-smoothing epsilon: the loss's target is (1 - eps) * one-hot + eps / classes.
    pub label_smoothing: f32,
    /// Also compute the gradient of the loss with respect to the input images.
    pub grad_input: bool,
    /// Resize the input images to this (h, w) on the GPU first (bilinear), e.g. 28x28
    /// Fashion-MNIST to a 32x32 training resolution. Overrides `config.scale`.
    pub resize_to: Option<(usize, usize)>,
    /// Recompute each block's two activated expanded-width tensors (the depthwise and project
    /// convs' inputs) from their saved BN inputs during the backward instead of keeping them:
    /// one elementwise pass each, bit-identical results, and the largest saved tensors halved.
    pub recompute: bool,
    /// Take the BN statistics of each 1x1 conv's output in the GEMM's epilogue, from the
    /// registers that hold it, where the GEMM variant has one (`GemmParams::bn_stats_rows`),
    /// instead of a separate pass that reads the whole tensor again. The same statistics up to
    /// f32 rounding (chunks of 16 or 64 rows instead of `BnParams::chunk`).
    pub fused_bn_stats: bool,
}

impl TrainOptions {
    /// Rejects values a step cannot use, naming the option, the value and the range.
    pub fn validate(&self) -> Result<()> {
        Error::check_number("bn_momentum", self.bn_momentum as f64, 0.0..=1.0)?;
        Error::check_number("label_smoothing", self.label_smoothing as f64, 0.0..1.0)?;
        if let Some((h, w)) = self.resize_to {
            if h == 0 || w == 0 {
                return Err(Error::invalid(format!("resize_to is {h}x{w}; both sides must be at least 1 pixel")));
            }
        }
        Ok(())
    }
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            bn_momentum: 0.01,
            update_running_stats: true,
            dropout: true,
            drop_path: true,
            label_smoothing: 0.0,
            grad_input: false,
            resize_to: None,
            recompute: true,
            fused_bn_stats: true,
        }
    }
}

/// GPU memory of one training step as the trainer records it (the activation figure is what
/// `bench --train` reports, from the same kind of recording).
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainMemory {
    /// The GPU it was measured on (`Gpu::describe`).
    pub adapter: String,
    /// Images per training batch.
    pub batch: usize,
    /// Images per recorded step: the batch, or the micro-batch it is split into where it exceeds
    /// the device's binding limit (the trainer does the same).
    pub micro_batch: usize,
    /// Activation and scratch buffers of one recorded step (after memory planning).
    pub activation_bytes: u64,
    /// Scratch textures made for the texel kernels (`Gpu::scratch_texture_bytes`).
    pub texel_scratch_bytes: u64,
    /// Parameters, gradients (twice with micro-batches, which accumulate) and BN statistics.
    pub parameter_bytes: u64,
    /// Two slots per parameter (AdamW, RMSProp; SGD with momentum needs half).
    pub optimizer_bytes: u64,
}

impl TrainMemory {
    /// Records a step of `cfg` (zero weights) at `batch` and `res` x `res` on `gpu` and sums its
    /// buffers. The scratch textures counted are all `gpu` has made, so pass a fresh `Gpu`.
    pub fn plan(gpu: &Gpu, cfg: &Config, batch: usize, res: usize) -> Result<TrainMemory> {
        let graph = TrainGraph::new(gpu, cfg.clone(), &Weights::zeros(cfg))?;
        let opts = TrainOptions::default();
        let sizes = graph.micro_batches(gpu, batch, res, res, &opts, None)?;
        let (parts, micro_batch) = (sizes.len(), sizes[0]);
        let step = graph.record_step(gpu, micro_batch, res, res, &opts)?;
        let p = &graph.params;
        Ok(TrainMemory {
            adapter: gpu.describe(),
            batch,
            micro_batch,
            activation_bytes: step.activation_bytes,
            texel_scratch_bytes: gpu.scratch_texture_bytes(),
            parameter_bytes: p.params.bytes() + p.grads.bytes() * (1 + (parts > 1) as u64) + p.running.bytes(),
            optimizer_bytes: 2 * p.params.bytes(),
        })
    }

    /// The step's whole footprint: activations, texel scratch, parameters and optimizer state.
    pub fn total_bytes(&self) -> u64 {
        self.activation_bytes + self.texel_scratch_bytes + self.parameter_bytes + self.optimizer_bytes
    }
}

/// EfficientNet's parameters on the GPU, ready to record training steps.
pub struct TrainGraph {
    /// The model configuration.
    pub config: Config,
    /// Parameters, gradients and BN running statistics in flat GPU buffers.
    pub params: ParamStore,
}

/// One recorded training step for a fixed (batch, h, w).
pub struct TrainStep {
    /// Images per step.
    pub batch: usize,
    /// Height of the input images as uploaded, before any resize.
    pub h: usize,
    /// Width of the input images as uploaded, before any resize.
    pub w: usize,
    input: GpuBuffer,
    targets: GpuBuffer,
    seed: GpuBuffer,
    /// The forward, loss and backward dispatches, replayed in order (the optimizer update is not among them).
    pub dispatches: Vec<Dispatch>,
    loss: GpuBuffer,
    logits: GpuBuffer,
    grad_input: Option<GpuBuffer>,
    /// Bytes of activation and scratch buffers this step allocated.
    pub activation_bytes: u64,
}

/// The BN state of one conv + BN unit: batch statistics and the folded scale/shift.
struct BnSaved {
    p: ops::BnParams,
    layer: Layer,
    z: GpuBuffer,
    stats: GpuBuffer,
    scale_shift: GpuBuffer,
}

/// How a conv unit convolves, with the shapes.
#[derive(Clone)]
enum Conv {
    Stem(ops::Conv2dParams),
    /// A 1x1 conv as a GEMM, with the pixels per image (BN's rows per sample).
    Pointwise(ops::GemmParams, usize),
    Depthwise(ops::DepthwiseConvParams),
}

/// Saved state of conv → BN (→ activation): the conv's input, the BN's input and statistics.
struct ConvBnSaved {
    conv: Conv,
    x: GpuBuffer,
    /// The SE gate applied to `x` as the project conv reads it.
    gate: Option<GpuBuffer>,
    bn: BnSaved,
}

/// Saved state of squeeze-excite: pooled input, the FC pre-activations, the hidden and the gate.
struct SeSaved {
    index: usize,
    se_ch: usize,
    pool: ops::GlobalAvgPoolParams,
    pooled: GpuBuffer,
    s1: GpuBuffer,
    hidden: GpuBuffer,
    s2: GpuBuffer,
    gate: GpuBuffer,
    /// The activation between the FCs.
    act: Activation,
}

/// What a unit's forward keeps for its backward.
enum Saved {
    Conv(ConvBnSaved),
    Se(SeSaved),
    /// The pool's backward is fused into the BN backward of the conv before it (`dy_pool`).
    Pool,
    /// Nothing: a unit run as in evaluation (a frozen backbone's) keeps no state.
    Nothing,
    Classifier {
        features: GpuBuffer,
        dropped: GpuBuffer,
        p: ops::GemmParams,
    },
}

/// A value of the network during the recording.
#[derive(Clone)]
enum Val {
    Ready(GpuBuffer),
    /// Never written: `act(z · scale + shift)` of unit `.0`'s saved BN input. The depthwise conv
    /// that reads it applies the BN as it reads; the backward recomputes it.
    Pending(usize),
    /// Released after its forward readers; recomputed from unit `.0`'s saved BN input when the
    /// backward reads it.
    Recompute(usize),
}

/// The gradient of one value: dense, and of its global average pool (which the BN backward of
/// the conv that wrote the value takes directly).
#[derive(Default)]
struct Grad {
    dense: Option<GpuBuffer>,
    pooled: Option<GpuBuffer>,
}

/// Whether a unit's backward reads `v`: a conv's or the classifier's input (weight gradients)
/// and a conv's gate.
fn backward_reads(u: &Unit) -> Vec<ValueId> {
    match &u.op {
        Op::ConvBn { gate, .. } => std::iter::once(u.input).chain(*gate).collect(),
        Op::Classifier { .. } => vec![u.input],
        _ => Vec::new(),
    }
}

/// The activated outputs that recomputation rebuilds instead of keeping: each block's two
/// expanded-width tensors, the depthwise and project convs' inputs.
fn recomputed(layer: Layer) -> bool {
    matches!(layer, Layer::Block { part: BlockPart::Expand | BlockPart::Depthwise, .. })
}

/// Stochastic depth's RNG stream of a block's project conv.
fn drop_path_salt(layer: Layer) -> u32 {
    match layer {
        Layer::Block { index, .. } => 1000 + index as u32,
        _ => 999,
    }
}
const DROPOUT_SALT: u32 = 7;

impl TrainGraph {
    /// Validates `config` and uploads `weights` (PyTorch layout) into a fresh `ParamStore`.
    pub fn new(gpu: &Gpu, config: Config, weights: &Weights) -> Result<TrainGraph> {
        Self::new_with(gpu, config, weights, false)
    }

    /// `new`, with every layer but the classifier frozen where `freeze_backbone`: its steps run
    /// the backbone as in evaluation (BatchNorm on the running statistics, nothing saved) and the
    /// backward stops at the classifier, whose parameters alone have gradients and optimizer state.
    pub fn new_with(gpu: &Gpu, config: Config, weights: &Weights, freeze_backbone: bool) -> Result<TrainGraph> {
        config.validate()?;
        let params = ParamStore::from_weights_with(gpu, &config, weights, freeze_backbone)?;
        Ok(TrainGraph { config, params })
    }

    /// Reads parameters and BN running statistics back into PyTorch layout and names.
    pub fn weights(&self, gpu: &Gpu) -> Result<Weights> {
        let mut w = Weights::zeros(&self.config);
        self.params.read_into(gpu, &mut w)?;
        Ok(w)
    }

    /// The gradients of the last step, in PyTorch layout, as a `Weights` holding gradients in the
    /// learnable fields (running statistics are left as they are).
    pub fn gradients(&self, gpu: &Gpu) -> Result<Weights> {
        let mut w = Weights::zeros(&self.config);
        let g = gpu.read(&self.params.grads)?;
        self.params.unflatten_into(&g, &mut w)?;
        Ok(w)
    }

    /// The largest batch of `h` x `w` images (before `opts`' resize) whose every activation fits
    /// one storage binding on this device: larger batches train in micro-batches (`Trainer`).
    pub fn max_batch(&self, gpu: &Gpu, h: usize, w: usize, opts: &TrainOptions) -> Result<usize> {
        let (rh, rw) = opts.resize_to.unwrap_or_else(|| self.config.input_size(h, w));
        let per_image = (4 * self.config.largest_activation(rh, rw).max(3 * h.max(rh) * w.max(rw))) as u64;
        let what = format!("training {} on one {rh}x{rw} image (largest activation)", self.config.name);
        gpu.images_per_binding(per_image, what, rh, rw)
    }

    /// The micro-batch sizes a batch of `n` images of `h` x `w` trains in: one part when it fits
    /// `max_batch` and `cap`, else near-equal parts (largest first, at most two distinct sizes)
    /// within both. Where the head's feature map is a single pixel (low resolutions), every part
    /// needs 2 images for BatchNorm, and a split that would leave one alone is an error; at high
    /// resolutions (B7 at 600 px fits one image per 128 MiB binding) parts of one image are fine.
    pub fn micro_batches(
        &self,
        gpu: &Gpu,
        n: usize,
        h: usize,
        w: usize,
        opts: &TrainOptions,
        cap: Option<usize>,
    ) -> Result<Vec<usize>> {
        if n == 0 {
            return Err(Error::invalid("a training batch needs at least one image"));
        }
        let per_binding = self.max_batch(gpu, h, w, opts)?;
        let micro = n.min(per_binding).min(cap.unwrap_or(n)).max(1);
        let parts = n.div_ceil(micro);
        let (rh, rw) = opts.resize_to.unwrap_or_else(|| self.config.input_size(h, w));
        let (fh, fw) = self.config.feature_size(rh, rw);
        if parts > 1 && n / parts < 2 && fh * fw < 2 {
            let why = if micro == per_binding {
                format!(
                    "one storage binding (max_storage_buffer_binding_size, {} MiB) holds {per_binding} image(s) of {rh}x{rw}",
                    gpu.max_binding_bytes() >> 20
                )
            } else {
                format!("the micro-batch cap is {micro}")
            };
            return Err(Error::invalid(format!(
                "a batch of {n} split into micro-batches of at most {micro} ({why}) leaves one with a single \
                 image, and BatchNorm at the {fh}x{fw} head needs at least 2 per micro-batch (use a larger \
                 micro-batch or another batch size)"
            )));
        }
        Ok((0..parts).map(|part| n / parts + (part < n % parts) as usize).collect())
    }

    /// Records a training step for `batch` images of `h` x `w`: twice, the second time with
    /// its tensors placed by the first's `MemoryPlan` (see `graph::recorder`) where that takes
    /// less memory than the first's greedy reuse.
    pub fn record_step(&self, gpu: &Gpu, batch: usize, h: usize, w: usize, opts: &TrainOptions) -> Result<TrainStep> {
        if batch == 0 || h == 0 || w == 0 {
            return Err(Error::invalid(format!(
                "a training step needs batch, height and width ≥ 1, got [{batch}, 3, {h}, {w}]"
            )));
        }
        opts.validate()?;
        record_planned(gpu, |r| self.record_step_with(r, batch, h, w, opts))
    }

    fn record_step_with<'a>(
        &'a self,
        r: Recorder<'a>,
        batch: usize,
        h: usize,
        w: usize,
        opts: &TrainOptions,
    ) -> Result<(TrainStep, Recorder<'a>)> {
        let gpu = r.gpu;
        let mut b = Builder {
            r,
            g: self,
            opts: opts.clone(),
            seed: gpu.upload_u32(&[0], "seed")?,
            blocks: self.config.blocks(),
        };
        let input = gpu.empty(batch * 3 * h * w, "input")?;
        let targets = gpu.upload_u32(&vec![0; batch], "targets")?;

        // ---- forward ----
        let cfg = &self.config;
        let resize = b.resize_params(batch, h, w);
        let (x0, h0, w0) = b.input_resize(&input, batch, h, w)?;
        let net = Network::new(cfg, h0, w0);
        let (saved, values) = b.forward(&net, batch, x0)?;
        let logits = match values.last() {
            Some(Some(Val::Ready(l))) => l.clone(),
            _ => return Err(Error::invalid("the network wrote no logits")),
        };

        // ---- loss ----
        let classes = cfg.num_classes;
        let lp = ops::SoftmaxCrossEntropyParams { rows: batch, classes, smoothing: opts.label_smoothing };
        let losses = b.r.alloc(batch)?;
        let dlogits = b.r.alloc(batch * classes)?;
        let loss = gpu.empty(1, "loss")?;
        b.r.push(ops::softmax_cross_entropy(gpu, &lp, &logits, &targets, &losses, &dlogits)?, "loss")?;
        let mean = ops::SumPartialsParams { parts: batch, len: 1, scale: 1.0 / batch as f32, accumulate: false };
        b.r.push(ops::sum_partials(gpu, &mean, &losses, &loss)?, "loss")?;
        b.r.release(losses);

        // ---- backward ----
        let d_stem_in = b.backward(&net, saved, values, dlogits)?;
        let grad_input = match (&resize, d_stem_in) {
            (Some(p), Some(d_resized)) => {
                // Through the input resize (the blog's `scale`) back to the images as given.
                let identity = gpu.upload(&[1.0, 1.0, 1.0, 0.0, 0.0, 0.0], "identity affine")?;
                let dx = gpu.empty(batch * 3 * h * w, "grad input")?;
                b.r.push(ops::bilinear_resize_bwd(gpu, p, &d_resized, &identity, &dx)?, "input resize backward")?;
                Some(dx)
            }
            (_, g) => g,
        };
        let mut r = b.r;
        let step = TrainStep {
            batch,
            h,
            w,
            input,
            targets,
            seed: b.seed,
            dispatches: std::mem::take(&mut r.dispatches),
            loss,
            logits,
            grad_input,
            activation_bytes: r.allocated_bytes,
        };
        Ok((step, r))
    }
}

/// Records the forward and backward units of one step.
struct Builder<'a> {
    r: Recorder<'a>,
    g: &'a TrainGraph,
    opts: TrainOptions,
    seed: GpuBuffer,
    /// `g.config.blocks()`, for the dispatches' labels.
    blocks: Vec<BlockSpec>,
}

impl Builder<'_> {
    fn param(&self, layer: Layer, kind: ParamKind) -> Result<GpuBuffer> {
        self.g.params.param(layer, kind)
    }
    fn grad(&self, layer: Layer, kind: ParamKind) -> Result<GpuBuffer> {
        self.g.params.grad(layer, kind)
    }

    /// Records a unit's output, `act(z * scale + shift)` [→ drop path → + residual], from its
    /// saved BN input and folded statistics.
    fn bn_act(&mut self, s: &ConvBnSaved, residual: Option<&GpuBuffer>) -> Result<GpuBuffer> {
        let y = self.r.alloc(s.bn.p.m * s.bn.p.c)?;
        let d = ops::bn_act_fwd(self.r.gpu, &s.bn.p, &s.bn.z, &s.bn.scale_shift, residual, &self.seed, &y)?;
        self.r.push(d, &s.bn.layer.describe(&self.blocks))?;
        Ok(y)
    }

    /// The conv and the BN statistics of `conv_bn_fwd`, without applying them (`bn_act` does, or
    /// the next depthwise conv as it reads). `x_bn`: where `x` is itself a BN's input, that BN's
    /// folded scale/shift and activation, which the depthwise conv applies as it reads x.
    #[allow(clippy::too_many_arguments)]
    fn conv_bn_stats(
        &mut self,
        conv: Conv,
        x: &GpuBuffer,
        x_bn: Option<(&GpuBuffer, Activation)>,
        gate: Option<&GpuBuffer>,
        layer: Layer,
        act: Activation,
        has_residual: bool,
        drop_path: Option<(u32, f32)>,
    ) -> Result<ConvBnSaved> {
        let gpu = self.r.gpu;
        let w = self.param(layer, ParamKind::Weight)?;
        let label = layer.describe(&self.blocks);
        // With the statistics in the GEMM's epilogue: its partials and their rows per chunk.
        let mut fused: Option<(GpuBuffer, usize)> = None;
        let (z, rows, rows_per_sample, c) = match &conv {
            Conv::Stem(p) => {
                let z = self.r.alloc(p.output_len())?;
                self.r.push(ops::conv2d_fwd(gpu, p, x, &w, None, &z)?, &label)?;
                (z, p.n * p.oh * p.ow, p.oh * p.ow, p.cout)
            }
            Conv::Pointwise(p, hw) => {
                let z = self.r.alloc(p.m * p.n)?;
                match p.bn_stats_rows(gpu).filter(|_| self.opts.fused_bn_stats) {
                    Some(chunk) => {
                        let partial = self.r.alloc(p.bn_partial_len(gpu))?;
                        self.r.push(ops::gemm_fwd_bn_stats(gpu, p, x, &w, None, None, gate, &z, &partial)?, &label)?;
                        fused = Some((partial, chunk));
                    }
                    None => self.r.push(ops::gemm_fwd(gpu, p, x, &w, None, None, gate, &z)?, &label)?,
                }
                (z, p.m, *hw, p.n)
            }
            Conv::Depthwise(p) => {
                let z = self.r.alloc(p.output_len())?;
                let d = match x_bn {
                    Some((scale_shift, x_act)) => {
                        ops::depthwise_conv_fwd_bn_input(gpu, p, x, scale_shift, x_act, &w, None, &z)?
                    }
                    None => ops::depthwise_conv_fwd(gpu, p, x, &w, None, &z)?,
                };
                self.r.push(d, &label)?;
                (z, p.n * p.oh * p.ow, p.oh * p.ow, p.c)
            }
        };
        let mut bp = ops::BnParams::new(rows, c, rows_per_sample);
        bp.eps = self.g.config.bn_eps;
        bp.momentum = self.opts.bn_momentum;
        bp.update_running = self.opts.update_running_stats;
        bp.act = act;
        bp.has_residual = has_residual;
        if let Some((salt, p)) = drop_path {
            bp.drop_path = Some(ops::DropPath { salt, survival: p });
        }
        let (stats, scale_shift) = (self.r.alloc(2 * c)?, self.r.alloc(2 * c)?);
        let gb = self.param(layer, ParamKind::GammaBeta)?;
        let running = self.g.params.running(layer)?;
        match fused {
            Some((partial, chunk)) => {
                let merged = match bp.merged_partial_len(chunk) {
                    0 => None,
                    len => Some(self.r.alloc(len)?),
                };
                let ds = ops::bn_stats_finish(
                    gpu,
                    &bp,
                    chunk,
                    &partial,
                    merged.as_ref(),
                    &gb,
                    &running,
                    &stats,
                    &scale_shift,
                )?;
                self.r.push_all(ds, &label)?;
                self.r.release(partial);
                if let Some(m) = merged {
                    self.r.release(m);
                }
            }
            None => {
                let partial = self.r.alloc(bp.stats_partial_len())?;
                let ds = ops::bn_stats(gpu, &bp, &z, &partial, &gb, &running, &stats, &scale_shift)?;
                self.r.push_all(ds, &label)?;
                self.r.release(partial);
            }
        }
        Ok(ConvBnSaved { conv, x: x.clone(), gate: gate.cloned(), bn: BnSaved { p: bp, layer, z, stats, scale_shift } })
    }

    /// Backward of `conv_bn_fwd`: BN (+ activation, + stochastic depth) backward from `dy` (the
    /// unit output's gradient) and `dy_pool` (the gradient of a global average pool of the
    /// output), the conv's weight gradient and, when `want_dx`, its input gradient (for a gated
    /// project conv: the gradient of the gated input), accumulated into `dx_into` when given.
    /// Releases the BN's saved tensors; the incoming gradients stay the caller's.
    fn conv_bn_bwd(
        &mut self,
        s: &ConvBnSaved,
        dy: Option<&GpuBuffer>,
        dy_pool: Option<&GpuBuffer>,
        want_dx: bool,
        dx_into: Option<&GpuBuffer>,
    ) -> Result<Option<GpuBuffer>> {
        let gpu = self.r.gpu;
        let layer = s.bn.layer;
        let label = format!("{} backward", layer.describe(&self.blocks));
        let dz = self.r.alloc(s.bn.p.m * s.bn.p.c)?;
        let partial = self.r.alloc(s.bn.p.bwd_partial_len())?;
        let gb = self.param(layer, ParamKind::GammaBeta)?;
        let dgb = self.grad(layer, ParamKind::GammaBeta)?;
        let ds =
            ops::bn_act_bwd(gpu, &s.bn.p, dy, dy_pool, &s.bn.z, &s.bn.stats, &gb, &self.seed, &partial, &dgb, &dz)?;
        self.r.push_all(ds, &label)?;
        self.r.release(partial);
        for t in [&s.bn.z, &s.bn.stats, &s.bn.scale_shift] {
            self.r.release(t.clone());
        }

        let w = self.param(layer, ParamKind::Weight)?;
        let dw = self.grad(layer, ParamKind::Weight)?;
        let accumulate = dx_into.is_some();
        let (dx_len, dx) = match &s.conv {
            Conv::Stem(p) => {
                let partial = self.r.alloc(p.weight_partial_len())?;
                self.r.push_all(ops::conv2d_bwd_weight(gpu, p, &s.x, &dz, &partial, &dw)?, &label)?;
                self.r.release(partial);
                (p.input_len(), None)
            }
            Conv::Pointwise(p, _) => {
                let partial = self.r.alloc(p.weight_partial_len(gpu))?;
                self.r.push_all(ops::gemm_bwd_weight(gpu, p, &s.x, s.gate.as_ref(), &dz, &partial, &dw)?, &label)?;
                self.r.release(partial);
                (p.m * p.k, None)
            }
            Conv::Depthwise(p) => {
                let partial = self.r.alloc(p.weight_partial_len(gpu))?;
                self.r.push_all(ops::depthwise_conv_bwd_weight(gpu, p, &s.x, &dz, &partial, &dw)?, &label)?;
                self.r.release(partial);
                (p.n * p.h * p.w * p.c, None::<GpuBuffer>)
            }
        };
        let dx = match (want_dx, dx) {
            (false, _) => None,
            (true, _) => {
                let dx = match dx_into {
                    Some(d) => d.clone(),
                    // The network input's gradient is an output of the step: never reused.
                    None if matches!(s.conv, Conv::Stem(_)) => gpu.empty(dx_len, "grad input")?,
                    None => self.r.alloc(dx_len)?,
                };
                let d = match &s.conv {
                    Conv::Stem(p) => ops::conv2d_bwd_data(gpu, p, &dz, &w, &dx, accumulate)?,
                    Conv::Pointwise(p, _) => ops::gemm_bwd_data(gpu, p, &dz, &w, &dx, accumulate)?,
                    Conv::Depthwise(p) => ops::depthwise_conv_bwd_data(gpu, p, &dz, &w, &dx, accumulate)?,
                };
                self.r.push(d, &label)?;
                Some(dx)
            }
        };
        self.r.release(dz);
        Ok(dx)
    }

    /// The bilinear resize of the step's input: to `opts.resize_to` where given (and not the
    /// size already), else by the config's `scale`, else none.
    fn resize_params(&self, n: usize, h: usize, w: usize) -> Option<ops::BilinearResizeParams> {
        match (self.opts.resize_to, self.g.config.scale) {
            (Some((oh, ow)), _) if (oh, ow) != (h, w) => Some(ops::BilinearResizeParams::to_size(n, 3, h, w, oh, ow)),
            (Some(_), _) => None,
            (None, s) => s.map(|s| ops::BilinearResizeParams::by_scale(n, 3, h, w, s)),
        }
    }

    /// Records the input resize (`resize_params`) and returns the stem's input and its size.
    fn input_resize(&mut self, input: &GpuBuffer, n: usize, h: usize, w: usize) -> Result<(GpuBuffer, usize, usize)> {
        let gpu = self.r.gpu;
        match self.resize_params(n, h, w) {
            Some(p) => {
                let identity = gpu.upload(&[1.0, 1.0, 1.0, 0.0, 0.0, 0.0], "identity affine")?;
                let y = self.r.alloc(p.output_len())?;
                self.r.push(ops::bilinear_resize_fwd(gpu, &p, input, &identity, &y)?, "input resize")?;
                Ok((y, p.oh, p.ow))
            }
            None => Ok((input.clone(), h, w)),
        }
    }

    /// Records every unit's forward in order. Returns what each unit saved for its backward and
    /// the values still held (the logits last).
    fn forward(&mut self, net: &Network, n: usize, x0: GpuBuffer) -> Result<(Vec<Saved>, Vec<Option<Val>>)> {
        let gpu = self.r.gpu;
        let cfg = &self.g.config;
        let last_reads = net.last_reads();
        // A frozen backbone runs as in evaluation; only the classifier's backward reads anything.
        let frozen = self.g.params.backbone_frozen;
        let as_eval = |u: &Unit| frozen && !matches!(u.op, Op::Classifier { .. });
        let backward_read: Vec<bool> = {
            let mut b = vec![false; net.units.len() + 1];
            net.units.iter().filter(|u| !as_eval(u)).flat_map(backward_reads).for_each(|v| b[v.0] = true);
            b
        };
        let mut values: Vec<Option<Val>> = vec![None; net.units.len() + 1];
        values[0] = Some(Val::Ready(x0));
        let mut saved: Vec<Saved> = Vec::with_capacity(net.units.len());
        for (i, u) in net.units.iter().enumerate() {
            let ready = |v: ValueId| match &values[v.0] {
                Some(Val::Ready(b)) => Ok(b.clone()),
                _ => Err(Error::invalid(format!("{}: value {} is not held", u.label, v.0))),
            };
            let [ih, iw, ic] = u.in_shape;
            let [_, _, oc] = u.out_shape;
            let out = match &u.op {
                Op::ConvBn { layer, kind, kernel, stride, act, gate, residual, drop_path } => {
                    let conv = match kind {
                        ConvKind::Stem => {
                            let mut p = ops::Conv2dParams::new(n, ih, iw, ic, oc, *kernel, *stride, cfg.padding);
                            p.input_nchw = true;
                            Conv::Stem(p)
                        }
                        ConvKind::Pointwise => {
                            let mut p = ops::GemmParams::new(n * ih * iw, oc, ic);
                            p.a_scale_rows = if gate.is_some() { ih * iw } else { 0 };
                            Conv::Pointwise(p, ih * iw)
                        }
                        ConvKind::Depthwise => {
                            Conv::Depthwise(ops::DepthwiseConvParams::new(n, ih, iw, ic, *kernel, *stride, cfg.padding))
                        }
                    };
                    // A pending input is its producer's BN input, normalised as the depthwise
                    // conv reads it.
                    let (x, x_bn) = match &values[u.input.0] {
                        Some(Val::Pending(p)) if *kind == ConvKind::Depthwise => match &saved[*p] {
                            Saved::Conv(s) => (s.bn.z.clone(), Some((s.bn.scale_shift.clone(), s.bn.p.act))),
                            _ => return Err(Error::invalid(format!("{}: pending input from a non-conv", u.label))),
                        },
                        _ => (ready(u.input)?, None),
                    };
                    let gate = gate.map(ready).transpose()?;
                    let residual = residual.map(ready).transpose()?;
                    let drop_path = drop_path.filter(|_| self.opts.drop_path).map(|p| (drop_path_salt(*layer), p));
                    let x_bn = x_bn.as_ref().map(|(b, a)| (b, *a));
                    if as_eval(u) {
                        let y = self.conv_bn_eval(&conv, &x, gate.as_ref(), *layer, *act, residual.as_ref())?;
                        saved.push(Saved::Nothing);
                        values[i + 1] = Some(Val::Ready(y));
                        self.release_after(net, &last_reads, &backward_read, &mut values, i);
                        continue;
                    }
                    let s =
                        self.conv_bn_stats(conv, &x, x_bn, gate.as_ref(), *layer, *act, residual.is_some(), drop_path)?;
                    let pending = self.opts.recompute
                        && recomputed(*layer)
                        && residual.is_none()
                        && net.readers(ValueId(i + 1)).all(|r| {
                            r.input == ValueId(i + 1) && matches!(r.op, Op::ConvBn { kind: ConvKind::Depthwise, .. })
                        });
                    let out = match pending {
                        true => Val::Pending(i),
                        false => Val::Ready(self.bn_act(&s, residual.as_ref())?),
                    };
                    saved.push(Saved::Conv(s));
                    out
                }
                Op::SqueezeExcite { block, hidden, act } => {
                    let se = self.se_fwd(*block, *hidden, *act, &ready(u.input)?, n, ih * iw, &u.label)?;
                    let gate = se.gate.clone();
                    if as_eval(u) {
                        for t in [se.pooled, se.s1, se.hidden, se.s2] {
                            self.r.release(t);
                        }
                        saved.push(Saved::Nothing);
                    } else {
                        saved.push(Saved::Se(se));
                    }
                    Val::Ready(gate)
                }
                Op::Pool => {
                    let pool = ops::GlobalAvgPoolParams::new(n, ih * iw, ic);
                    let (partial, features) = (self.r.alloc(pool.partial_len())?, self.r.alloc(n * ic)?);
                    self.r.push_all(
                        ops::global_avg_pool_fwd(gpu, &pool, &ready(u.input)?, &partial, &features)?,
                        &u.label,
                    )?;
                    self.r.release(partial);
                    saved.push(Saved::Pool);
                    Val::Ready(features)
                }
                Op::Classifier { dropout } => {
                    let features = ready(u.input)?;
                    let dropped = if self.opts.dropout && *dropout > 0.0 {
                        let d = self.r.alloc(n * ic)?;
                        let dp = ops::DropoutParams { total: n * ic, rate: *dropout, salt: DROPOUT_SALT };
                        self.r.push(ops::dropout_fwd(gpu, &dp, &features, &self.seed, &d)?, "dropout")?;
                        d
                    } else {
                        features.clone()
                    };
                    let p = ops::GemmParams::new(n, oc, ic);
                    let logits = gpu.empty(n * oc, "logits")?;
                    let (wc, bc) = (
                        self.param(Layer::Classifier, ParamKind::Weight)?,
                        self.param(Layer::Classifier, ParamKind::Bias)?,
                    );
                    self.r.push(ops::gemm_fwd(gpu, &p, &dropped, &wc, Some(&bc), None, None, &logits)?, &u.label)?;
                    saved.push(Saved::Classifier { features, dropped, p });
                    Val::Ready(logits)
                }
            };
            values[i + 1] = Some(out);
            self.release_after(net, &last_reads, &backward_read, &mut values, i);
        }
        Ok((saved, values))
    }

    /// After unit `i`, the values it was the last forward reader of go, unless a backward reads
    /// them; then they are kept, or released and rebuilt when the backward comes (recomputation).
    fn release_after(
        &mut self,
        net: &Network,
        last_reads: &[Option<usize>],
        backward_read: &[bool],
        values: &mut [Option<Val>],
        i: usize,
    ) {
        for v in net.units[i].reads() {
            if last_reads[v.0] != Some(i) || v == ValueId::INPUT {
                continue;
            }
            let Some(Val::Ready(b)) = values[v.0].clone() else { continue };
            let producer = v.producer().and_then(|p| match &net.units[p].op {
                Op::ConvBn { layer, residual: None, .. } => Some((p, *layer)),
                _ => None,
            });
            if !backward_read[v.0] {
                self.r.release(b);
                values[v.0] = None;
            } else if let Some((p, _)) = producer.filter(|(_, l)| self.opts.recompute && recomputed(*l)) {
                self.r.release(b);
                values[v.0] = Some(Val::Recompute(p));
            }
        }
    }

    /// conv → BatchNorm with the running statistics → activation [→ + residual]: a conv unit in
    /// evaluation. The BN's scale and shift are taken on the GPU from the parameters and running
    /// statistics as they are when the evaluation replays.
    fn conv_bn_eval(
        &mut self,
        conv: &Conv,
        x: &GpuBuffer,
        gate: Option<&GpuBuffer>,
        layer: Layer,
        act: Activation,
        residual: Option<&GpuBuffer>,
    ) -> Result<GpuBuffer> {
        let gpu = self.r.gpu;
        let label = layer.describe(&self.blocks);
        let w = self.param(layer, ParamKind::Weight)?;
        let (z, rows, c) = match conv {
            Conv::Stem(p) => {
                let z = self.r.alloc(p.output_len())?;
                self.r.push(ops::conv2d_fwd(gpu, p, x, &w, None, &z)?, &label)?;
                (z, p.n * p.oh * p.ow, p.cout)
            }
            Conv::Pointwise(p, _) => {
                let z = self.r.alloc(p.m * p.n)?;
                self.r.push(ops::gemm_fwd(gpu, p, x, &w, None, None, gate, &z)?, &label)?;
                (z, p.m, p.n)
            }
            Conv::Depthwise(p) => {
                let z = self.r.alloc(p.output_len())?;
                self.r.push(ops::depthwise_conv_fwd(gpu, p, x, &w, None, &z)?, &label)?;
                (z, p.n * p.oh * p.ow, p.c)
            }
        };
        let mut bp = ops::BnParams::new(rows, c, rows);
        bp.eps = self.g.config.bn_eps;
        bp.act = act;
        bp.has_residual = residual.is_some();
        let scale_shift = self.r.alloc(2 * c)?;
        let gb = self.param(layer, ParamKind::GammaBeta)?;
        let running = self.g.params.running(layer)?;
        self.r.push(ops::bn_eval_scale_shift(gpu, &bp, &gb, &running, &scale_shift)?, &label)?;
        let y = self.r.alloc(rows * c)?;
        self.r.push(ops::bn_act_fwd(gpu, &bp, &z, &scale_shift, residual, &self.seed, &y)?, &label)?;
        self.r.release(z);
        self.r.release(scale_shift);
        Ok(y)
    }

    /// `values[v]` as a buffer, rebuilding it from its producer's saved BN input where the forward
    /// did not keep it.
    fn held(&mut self, values: &mut [Option<Val>], saved: &[Saved], v: ValueId, label: &str) -> Result<GpuBuffer> {
        match values[v.0].clone() {
            Some(Val::Ready(b)) => Ok(b),
            Some(Val::Pending(p) | Val::Recompute(p)) => {
                let Some(Saved::Conv(s)) = saved.get(p) else {
                    return Err(Error::invalid(format!("{label}: value {} has no saved conv to rebuild it from", v.0)));
                };
                let y = self.recompute_output(s, label)?;
                values[v.0] = Some(Val::Ready(y.clone()));
                Ok(y)
            }
            None => Err(Error::invalid(format!("{label}: value {} was released before its backward", v.0))),
        }
    }

    /// Records every unit's backward in reverse order from the logits' gradient. Returns the
    /// gradient of the stem's input when `opts.grad_input`.
    fn backward(
        &mut self,
        net: &Network,
        mut saved: Vec<Saved>,
        mut values: Vec<Option<Val>>,
        dlogits: GpuBuffer,
    ) -> Result<Option<GpuBuffer>> {
        let gpu = self.r.gpu;
        let mut remaining = vec![0usize; values.len()];
        net.units.iter().flat_map(backward_reads).for_each(|v| remaining[v.0] += 1);
        let mut grads: Vec<Grad> = (0..values.len()).map(|_| Grad::default()).collect();
        grads[net.logits().0].dense = Some(dlogits);
        for (i, u) in net.units.iter().enumerate().rev() {
            let g = std::mem::take(&mut grads[i + 1]);
            let s = saved.pop().ok_or_else(|| Error::invalid("fewer saved states than units"))?;
            let label = format!("{} backward", u.label);
            let missing = || Error::invalid(format!("{label}: no gradient reached the output"));
            match (s, &u.op) {
                (Saved::Classifier { features, dropped, p }, _) => {
                    let dl = g.dense.ok_or_else(missing)?;
                    let d_dropped = self.linear_bwd(Layer::Classifier, p, &dropped, &dl, &label)?;
                    self.r.release(dl);
                    let d_features = if dropped.same_buffer(&features) {
                        d_dropped
                    } else {
                        // Dropout is its own backward: the same mask (same seed and salt) and scale.
                        let dp = ops::DropoutParams {
                            total: d_dropped.len,
                            rate: self.g.config.dropout,
                            salt: DROPOUT_SALT,
                        };
                        let d = self.r.alloc(d_dropped.len)?;
                        self.r.push(ops::dropout_fwd(gpu, &dp, &d_dropped, &self.seed, &d)?, "dropout backward")?;
                        self.r.release(d_dropped);
                        self.r.release(dropped);
                        d
                    };
                    if self.g.params.backbone_frozen {
                        // Nothing below the classifier trains: the backward ends here.
                        self.r.release(d_features);
                        self.r.release(features);
                        return Ok(None);
                    }
                    set_once(&mut grads[u.input.0].dense, d_features, &label)?;
                }
                (Saved::Pool, _) => set_once(&mut grads[u.input.0].pooled, g.dense.ok_or_else(missing)?, &label)?,
                (Saved::Se(se), _) => {
                    let dpooled = self.se_bwd(&se, g.dense.ok_or_else(missing)?, &label)?;
                    for t in [se.pooled, se.s1, se.hidden, se.s2] {
                        self.r.release(t);
                    }
                    set_once(&mut grads[u.input.0].pooled, dpooled, &label)?;
                }
                (Saved::Conv(mut s), Op::ConvBn { kind, gate, residual, .. }) => {
                    s.x = self.held(&mut values, &saved, u.input, &label)?;
                    // The identity shortcut passes the output's gradient straight to its value.
                    if let Some(r) = residual {
                        let dy = g.dense.clone().ok_or_else(missing)?;
                        set_once(&mut grads[r.0].dense, dy, &label)?;
                    }
                    match gate {
                        Some(gv) => {
                            let d_gated = self
                                .conv_bn_bwd(&s, g.dense.as_ref(), g.pooled.as_ref(), true, None)?
                                .ok_or_else(|| Error::invalid(format!("{label}: no input gradient")))?;
                            let gate = s.gate.clone().ok_or_else(|| Error::invalid(format!("{label}: no gate")))?;
                            let Conv::Pointwise(p, hw) = &s.conv else {
                                return Err(Error::invalid(format!("{label}: only a 1x1 conv reads a gate")));
                            };
                            let gp = ops::SeGateParams::new(p.m / hw, *hw, p.k);
                            let (dx, partial, dgate) = (
                                self.r.alloc(d_gated.len)?,
                                self.r.alloc(gp.partial_len())?,
                                self.r.alloc(gp.n * gp.c)?,
                            );
                            let ds = ops::se_gate_bwd(gpu, &gp, &d_gated, &s.x, &gate, &dx, &partial, &dgate)?;
                            self.r.push_all(ds, &label)?;
                            self.r.release(partial);
                            self.r.release(d_gated);
                            set_once(&mut grads[gv.0].dense, dgate, &label)?;
                            set_once(&mut grads[u.input.0].dense, dx, &label)?;
                        }
                        None => {
                            let want_dx = *kind != ConvKind::Stem || self.opts.grad_input;
                            let into = grads[u.input.0].dense.clone();
                            let dx =
                                self.conv_bn_bwd(&s, g.dense.as_ref(), g.pooled.as_ref(), want_dx, into.as_ref())?;
                            if into.is_none() {
                                grads[u.input.0].dense = dx;
                            }
                        }
                    }
                    if residual.is_none() {
                        if let Some(dy) = g.dense {
                            self.r.release(dy);
                        }
                    }
                    if let Some(d) = g.pooled {
                        self.r.release(d);
                    }
                }
                (_, op) => return Err(Error::invalid(format!("{label}: saved state does not match {op:?}"))),
            }
            // A value goes after the last backward that reads it (the input is the step's own).
            for v in backward_reads(u) {
                remaining[v.0] -= 1;
                if remaining[v.0] == 0 && v != ValueId::INPUT {
                    if let Some(Val::Ready(b)) = values[v.0].take() {
                        self.r.release(b);
                    }
                }
            }
        }
        Ok(grads[0].dense.take())
    }

    /// Re-runs the forward's `bn_act_fwd` of a unit without residual or drop path from its saved
    /// BN input and folded scale/shift: the same kernel on the same values, so the same bits.
    fn recompute_output(&mut self, s: &ConvBnSaved, label: &str) -> Result<GpuBuffer> {
        let y = self.r.alloc(s.bn.p.m * s.bn.p.c)?;
        let d = ops::bn_act_fwd(self.r.gpu, &s.bn.p, &s.bn.z, &s.bn.scale_shift, None, &self.seed, &y)?;
        self.r.push(d, &format!("{label} recompute"))?;
        Ok(y)
    }

    #[allow(clippy::too_many_arguments)]
    fn se_fwd(
        &mut self,
        index: usize,
        se_ch: usize,
        act: Activation,
        y: &GpuBuffer,
        n: usize,
        hw: usize,
        label: &str,
    ) -> Result<SeSaved> {
        let gpu = self.r.gpu;
        let part = |part| Layer::Block { index, part };
        let (e, s) = (y.len / (n * hw), se_ch);
        let pool = ops::GlobalAvgPoolParams::new(n, hw, e);
        let (partial, pooled) = (self.r.alloc(pool.partial_len())?, self.r.alloc(n * e)?);
        self.r.push_all(ops::global_avg_pool_fwd(gpu, &pool, y, &partial, &pooled)?, label)?;
        self.r.release(partial);
        let p1 = ops::GemmParams::new(n, s, e);
        let s1 = self.r.alloc(n * s)?;
        let reduce = part(BlockPart::SeReduce);
        let (w1, b1) = (self.param(reduce, ParamKind::Weight)?, self.param(reduce, ParamKind::Bias)?);
        self.r.push(ops::gemm_fwd(gpu, &p1, &pooled, &w1, Some(&b1), None, None, &s1)?, label)?;
        let hidden = self.r.alloc(n * s)?;
        let ap = ops::ActivationParams { total: n * s, act, accumulate: false };
        self.r.push(ops::activation_fwd(gpu, &ap, &s1, &hidden)?, label)?;
        let p2 = ops::GemmParams::new(n, e, s);
        let s2 = self.r.alloc(n * e)?;
        let expand = part(BlockPart::SeExpand);
        let (w2, b2) = (self.param(expand, ParamKind::Weight)?, self.param(expand, ParamKind::Bias)?);
        self.r.push(ops::gemm_fwd(gpu, &p2, &hidden, &w2, Some(&b2), None, None, &s2)?, label)?;
        let gate = self.r.alloc(n * e)?;
        let ap = ops::ActivationParams { total: n * e, act: Activation::Sigmoid, accumulate: false };
        self.r.push(ops::activation_fwd(gpu, &ap, &s2, &gate)?, label)?;
        Ok(SeSaved { index, se_ch: s, act, pool, pooled, s1, hidden, s2, gate })
    }

    /// Backward of squeeze-excite from the gate's gradient to the pooled input's gradient (n, c).
    fn se_bwd(&mut self, se: &SeSaved, dgate: GpuBuffer, label: &str) -> Result<GpuBuffer> {
        let gpu = self.r.gpu;
        let (n, e, s) = (se.pool.n, se.pool.c, se.se_ch);
        let part = |part| Layer::Block { index: se.index, part };
        // Through the sigmoid and the expand FC (s -> e).
        let ds2 = self.r.alloc(n * e)?;
        let ap = ops::ActivationParams { total: n * e, act: Activation::Sigmoid, accumulate: false };
        self.r.push(ops::activation_bwd(gpu, &ap, &se.s2, &dgate, &ds2)?, label)?;
        self.r.release(dgate);
        let dhidden =
            self.linear_bwd(part(BlockPart::SeExpand), ops::GemmParams::new(n, e, s), &se.hidden, &ds2, label)?;
        self.r.release(ds2);
        // Through the activation and the reduce FC (e -> s).
        let ds1 = self.r.alloc(n * s)?;
        let ap = ops::ActivationParams { total: n * s, act: se.act, accumulate: false };
        self.r.push(ops::activation_bwd(gpu, &ap, &se.s1, &dhidden, &ds1)?, label)?;
        self.r.release(dhidden);
        let dpooled =
            self.linear_bwd(part(BlockPart::SeReduce), ops::GemmParams::new(n, s, e), &se.pooled, &ds1, label)?;
        self.r.release(ds1);
        Ok(dpooled)
    }

    /// Backward of `out = x W + b` (p: m rows, n outputs, k inputs): weight and bias gradients
    /// into the parameter gradients, and the input gradient (m, k) returned.
    fn linear_bwd(
        &mut self,
        layer: Layer,
        p: ops::GemmParams,
        x: &GpuBuffer,
        dout: &GpuBuffer,
        label: &str,
    ) -> Result<GpuBuffer> {
        let gpu = self.r.gpu;
        let (dw, db) = (self.grad(layer, ParamKind::Weight)?, self.grad(layer, ParamKind::Bias)?);
        let partial = self.r.alloc(p.weight_partial_len(gpu))?;
        self.r.push_all(ops::gemm_bwd_weight(gpu, &p, x, None, dout, &partial, &dw)?, label)?;
        self.r.release(partial);
        let partial = self.r.alloc(p.bias_partial_len())?;
        self.r.push_all(ops::gemm_bwd_bias(gpu, &p, dout, &partial, &db)?, label)?;
        self.r.release(partial);
        let dx = self.r.alloc(p.m * p.k)?;
        let w = self.param(layer, ParamKind::Weight)?;
        self.r.push(ops::gemm_bwd_data(gpu, &p, dout, &w, &dx, false)?, label)?;
        Ok(dx)
    }
}

/// Sets a gradient that must have one source.
fn set_once(slot: &mut Option<GpuBuffer>, g: GpuBuffer, label: &str) -> Result<()> {
    match slot {
        Some(_) => Err(Error::invalid(format!("{label}: a second gradient for one value (no accumulation path)"))),
        None => {
            *slot = Some(g);
            Ok(())
        }
    }
}

impl TrainStep {
    /// Uploads one batch (input NCHW f32, class indices, RNG seed) and records the step.
    pub fn encode(
        &self,
        gpu: &Gpu,
        input: &[f32],
        targets: &[u32],
        seed: u32,
        encoder: &mut wgpu::CommandEncoder,
    ) -> Result<()> {
        if input.len() != self.input.len {
            return Err(Error::Shape {
                what: "training input".into(),
                expected: vec![self.batch, 3, self.h, self.w],
                got: vec![input.len()],
            });
        }
        if targets.len() != self.batch {
            return Err(Error::Shape { what: "targets".into(), expected: vec![self.batch], got: vec![targets.len()] });
        }
        gpu.queue.write_buffer(&self.input.buffer, self.input.offset, bytemuck::cast_slice(input));
        gpu.queue.write_buffer(&self.targets.buffer, self.targets.offset, bytemuck::cast_slice(targets));
        gpu.queue.write_buffer(&self.seed.buffer, self.seed.offset, bytemuck::cast_slice(&[seed]));
        crate::gpu::encode_dispatches(encoder, "train step", &self.dispatches);
        Ok(())
    }

    /// Submits one step (no readback).
    pub fn run(&self, gpu: &Gpu, input: &[f32], targets: &[u32], seed: u32) -> Result<()> {
        let mut encoder =
            gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train step") });
        self.encode(gpu, input, targets, seed, &mut encoder)?;
        gpu.submit("a training step", [encoder.finish()])?;
        Ok(())
    }

    /// The step's loss, 1 value: the mean over the batch.
    pub fn loss(&self) -> &GpuBuffer {
        &self.loss
    }
    /// The step's logits, (batch, classes).
    pub fn logits(&self) -> &GpuBuffer {
        &self.logits
    }
    /// The loss's gradient with respect to the input images, (batch, 3, h, w), when recorded with `grad_input`.
    pub fn grad_input(&self) -> Option<&GpuBuffer> {
        self.grad_input.as_ref()
    }
}

/// What one reported step produced (read back to the host).
#[derive(Clone, Debug)]
pub struct StepReport {
    /// Mean loss over the batch.
    pub loss: f32,
    /// (batch, classes)
    pub logits: Vec<f32>,
    /// (batch, 3, h, w), when asked for.
    pub grad_input: Option<Vec<f32>>,
}

impl TrainGraph {
    /// Records and runs one step on `input` (batch, 3, h, w) NCHW with class `targets`, and reads
    /// back the loss, logits and (if `opts.grad_input`) the input gradient. For checks and tools:
    /// training loops record a step once and replay it.
    pub fn step_once(
        &self,
        gpu: &Gpu,
        input: &[f32],
        targets: &[u32],
        shape: [usize; 4],
        seed: u32,
        opts: &TrainOptions,
    ) -> Result<StepReport> {
        let [n, c, h, w] = shape;
        if c != 3 {
            return Err(Error::Shape { what: "input".into(), expected: vec![n, 3, h, w], got: shape.to_vec() });
        }
        if let Some(&t) = targets.iter().find(|&&t| t as usize >= self.config.num_classes) {
            return Err(Error::invalid(format!(
                "target class {t} is out of range for {} classes",
                self.config.num_classes
            )));
        }
        let step = self.record_step(gpu, n, h, w, opts)?;
        step.run(gpu, input, targets, seed)?;
        let mut bufs = vec![&step.loss, &step.logits];
        if let Some(g) = &step.grad_input {
            bufs.push(g);
        }
        let mut out = gpu.read_many(&bufs)?.into_iter();
        let loss = out.next().and_then(|v| v.first().copied()).unwrap_or(f32::NAN);
        let logits = out.next().unwrap_or_default();
        Ok(StepReport { loss, logits, grad_input: out.next() })
    }

    /// Parameter gradients as `grad.<key>` and BN running statistics as `bn_after.<key>`, with the
    /// keys of `format` (the naming of the weight file the user gave), in PyTorch layout.
    pub fn named_gradients_and_running(&self, gpu: &Gpu, format: WeightFormat) -> Result<Vec<(String, HostTensor)>> {
        let grads = self.gradients(gpu)?;
        let state = self.weights(gpu)?;
        let mut out = Vec::new();
        for spec in self.config.state_dict_spec(format) {
            let (prefix, source) = match spec.field {
                f if f.is_learnable() => ("grad", &grads),
                Field::RunningMean | Field::RunningVar => ("bn_after", &state),
                _ => continue,
            };
            let t = source
                .get(spec.layer, spec.field)
                .ok_or_else(|| Error::invalid(format!("no {:?} for {:?}", spec.field, spec.layer)))?;
            out.push((format!("{prefix}.{}", spec.key), t.clone()));
        }
        Ok(out)
    }
}
