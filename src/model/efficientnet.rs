//! Config + weights → a static forward graph on the GPU. The network reads like the paper's table:
//! stem, MBConv blocks (expand → depthwise → squeeze-excite → project [+ identity]), head, pool,
//! classifier. Inference folds every BatchNorm into the conv before it, so each conv is one
//! kernel with a bias + activation (+ residual) epilogue, and the SE gate is applied while the
//! project conv reads its input. Weights and activations are stored as f32, or as f16
//! (`new_with_store`) where the adapter has SHADER_F16: half the memory traffic, f32 arithmetic.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Dtype, Gpu, GpuBuffer, Readback, Staged};
use crate::graph::{record_planned, Recorder};
use crate::model::layout::oihw_to_hwio;
use crate::model::network::{ConvKind, FeatureLevel, Network, Op, ValueId};
use crate::model::{BlockPart, Config, Field, HostTensor, Layer, Weights};
use crate::ops::{
    bilinear_resize_fwd, cast, conv2d_fwd, depthwise_conv_fwd, gemm_fwd, global_avg_pool_fwd, softmax_fwd, Activation,
    BilinearResizeParams, Conv2dParams, DepthwiseConvParams, GemmParams, GlobalAvgPoolParams, SoftmaxParams,
};

/// A conv (or linear) layer as the kernels want it: weights in the GPU layout with any BatchNorm
/// folded in, and the matching bias.
struct GpuLayer {
    weight: GpuBuffer,
    bias: GpuBuffer,
}

impl GpuLayer {
    fn bytes(&self) -> u64 {
        self.weight.bytes() + self.bias.bytes()
    }
}

/// EfficientNet with its weights resident on one GPU, ready for inference. It owns (a share of)
/// that GPU, so no call can mix devices.
///
/// Any number of threads may share one model. Forward plans are cached per (batch, h, w) and
/// shared, and every execution is one self-contained command buffer: the input copied in from a
/// buffer of the call's own, the forward, and the outputs copied out to buffers of the call's own.
/// The queue runs command buffers one after another, so executions never interleave and no lock
/// is held while the GPU works.
pub struct EfficientNet {
    gpu: Arc<Gpu>,
    /// The network's configuration (variant, classes, padding, BN eps), validated at construction.
    pub config: Config,
    /// How weights and activations are stored (inputs, logits and probabilities are f32 always).
    pub store: Dtype,
    /// Every conv and linear layer, BN folded in, in network order.
    layers: HashMap<Layer, GpuLayer>,
    /// Resize inputs to this (h, w) first (see `with_input_size`).
    input_size: Option<(usize, usize)>,
    /// Return non-finite inputs and logits as they are instead of an error (`allow_non_finite`).
    allow_non_finite: bool,
    plans: Mutex<PlanCache>,
}

/// What a forward pass returns, row-major.
#[derive(Clone, Debug)]
pub struct ForwardOutput {
    /// (batch, num_classes)
    pub logits: Vec<f32>,
    /// (batch, head channels): the pooled features the classifier sees.
    pub features: Vec<f32>,
}

fn tensor(w: &Weights, layer: Layer, field: Field) -> Result<&HostTensor> {
    w.get(layer, field).ok_or_else(|| Error::invalid(format!("weights have no {field:?} for {layer:?}")))
}

/// Per-output-channel BN scale and shift, `gamma / sqrt(var + eps)` and `beta - mean * scale`,
/// computed in f64 so folding adds no error beyond the final rounding.
fn bn_fold(w: &Weights, layer: Layer, eps: f32) -> Result<(Vec<f32>, Vec<f32>)> {
    let g = &tensor(w, layer, Field::BnWeight)?.data;
    let b = &tensor(w, layer, Field::BnBias)?.data;
    let m = &tensor(w, layer, Field::RunningMean)?.data;
    let v = &tensor(w, layer, Field::RunningVar)?.data;
    let scale: Vec<f64> = g.iter().zip(v).map(|(&g, &v)| g as f64 / (v as f64 + eps as f64).sqrt()).collect();
    let shift = b.iter().zip(m).zip(&scale).map(|((&b, &m), &s)| (b as f64 - m as f64 * s) as f32).collect();
    Ok((scale.iter().map(|&s| s as f32).collect(), shift))
}

impl GpuLayer {
    fn upload(gpu: &Gpu, store: Dtype, weight: Vec<f32>, bias: Vec<f32>, name: &str) -> Result<GpuLayer> {
        Ok(GpuLayer { weight: gpu.upload_typed(&weight, store, name)?, bias: gpu.upload_typed(&bias, store, name)? })
    }

    /// A conv followed by BN: HWIO weights (for 1x1 convs this is the (cin, cout) GEMM operand;
    /// for depthwise convs (kh, kw, c)) with the BN folded in.
    fn conv_bn(gpu: &Gpu, store: Dtype, w: &Weights, layer: Layer, eps: f32) -> Result<GpuLayer> {
        let (scale, shift) = bn_fold(w, layer, eps)?;
        let t = tensor(w, layer, Field::Weight)?;
        let mut weight = oihw_to_hwio(&t.data, &t.shape);
        // HWIO keeps the output channel innermost: fold BN's per-channel scale in place.
        for (v, s) in weight.iter_mut().zip(scale.iter().cycle()) {
            *v *= s;
        }
        Self::upload(gpu, store, weight, shift, &format!("{layer:?}"))
    }

    /// A linear-like layer with its own bias: SE convs (out, in, 1, 1) and the classifier (out, in),
    /// stored as the (in, out) GEMM operand.
    fn linear(gpu: &Gpu, store: Dtype, w: &Weights, layer: Layer) -> Result<GpuLayer> {
        let t = tensor(w, layer, Field::Weight)?;
        Self::upload(
            gpu,
            store,
            oihw_to_hwio(&t.data, &t.shape),
            tensor(w, layer, Field::Bias)?.data.clone(),
            &format!("{layer:?}"),
        )
    }
}

impl EfficientNet {
    /// Uploads `weights` (which must match `config`, as `Weights::load` guarantees) to the GPU,
    /// folding every BatchNorm into its conv.
    pub fn new(gpu: Arc<Gpu>, config: Config, weights: &Weights) -> Result<EfficientNet> {
        Self::new_with_store(gpu, config, weights, Dtype::F32)
    }

    /// A model over weights already on the GPU, in the kernels' layout with every BatchNorm
    /// folded in: for each layer of `config`'s network (`Network::learnable_layers`), its weight
    /// and bias. The buffers may be ranges of larger ones and are read in place, so whoever wrote
    /// them can update them between forwards (the trainer evaluates its parameters this way).
    pub fn from_gpu_layers(
        gpu: Arc<Gpu>,
        config: Config,
        layers: Vec<(Layer, GpuBuffer, GpuBuffer)>,
    ) -> Result<EfficientNet> {
        config.validate()?;
        let net = Network::new(&config, config.resolution as usize, config.resolution as usize);
        let wanted: Vec<Layer> = net.learnable_layers().into_iter().map(|(l, _, _)| l).collect();
        let by_layer: HashMap<Layer, GpuLayer> = layers
            .into_iter()
            .filter(|(l, _, _)| wanted.contains(l))
            .map(|(l, weight, bias)| (l, GpuLayer { weight, bias }))
            .collect();
        if let Some(layer) = wanted.iter().find(|l| !by_layer.contains_key(l)) {
            return Err(Error::invalid(format!("from_gpu_layers: no weights for {layer:?}")));
        }
        Ok(EfficientNet {
            gpu,
            layers: by_layer,
            config,
            store: Dtype::F32,
            input_size: None,
            allow_non_finite: false,
            plans: Mutex::new(PlanCache::default()),
        })
    }

    /// `new` with weights and activations stored as `store`. F16 needs an adapter with
    /// SHADER_F16 (`effnet devices` lists it); the BN fold is done in f64 and rounded once.
    pub fn new_with_store(gpu: Arc<Gpu>, config: Config, weights: &Weights, store: Dtype) -> Result<EfficientNet> {
        if store == Dtype::F16 && !gpu.caps.shader_f16 {
            return Err(Error::Unsupported {
                what: "f16 inference".into(),
                adapter: gpu.info.name.clone(),
                hint: "the adapter lacks the SHADER_F16 feature; run in f32".into(),
            });
        }
        config.validate()?;
        let eps = config.bn_eps;
        let net = Network::new(&config, config.resolution as usize, config.resolution as usize);
        let mut layers = HashMap::new();
        for (layer, has_bn, _) in net.learnable_layers() {
            let l = match has_bn {
                true => GpuLayer::conv_bn(&gpu, store, weights, layer, eps)?,
                false => GpuLayer::linear(&gpu, store, weights, layer)?,
            };
            layers.insert(layer, l);
            // Uploads are staged until a submit: flush per layer to bound staging memory.
            gpu.submit("uploading weights", [])?;
        }
        Ok(EfficientNet {
            gpu,
            layers,
            config,
            store,
            input_size: None,
            allow_non_finite: false,
            plans: Mutex::new(PlanCache::default()),
        })
    }

    /// The GPU the model lives on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Runs `input` (batch, 3, h, w), NCHW f32, through the network as is (no preprocessing; with
    /// `config.scale` set, bilinearly resized by that factor first). Any batch ≥ 1 and any h, w:
    /// batches larger than the device's binding limit allows run in slices.
    pub fn forward(&self, input: &[f32], batch: usize, h: usize, w: usize) -> Result<ForwardOutput> {
        self.forward_with_progress(input, batch, h, w, |_, _| {})
    }

    /// `forward`, calling `progress(done, batch)` after each slice the device runs (a long batch
    /// on a CPU adapter can take minutes).
    pub fn forward_with_progress(
        &self,
        input: &[f32],
        batch: usize,
        h: usize,
        w: usize,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<ForwardOutput> {
        self.check_input(input, batch, h, w)?;
        let (mut logits, mut features) = (Vec::new(), Vec::new());
        let mut done = 0;
        for (start, n) in self.slices(batch, h, w)? {
            let mut out = self.submit_slice(input, start, n, h, w)?.wait()?;
            features.extend(out.pop().unwrap_or_default());
            logits.extend(out.pop().unwrap_or_default());
            done += n;
            progress(done, batch);
        }
        self.forward_output(logits, features)
    }

    /// `forward` without blocking: the work is submitted now, and the future resolves through
    /// `map_async` when the GPU has run it (see [`Readback`]: something must poll the device, as
    /// a host's frame loop does). No thread is started and no lock is held while it is pending.
    pub fn forward_async(
        &self,
        input: &[f32],
        batch: usize,
        h: usize,
        w: usize,
    ) -> impl Future<Output = Result<ForwardOutput>> + Send + 'static {
        let submitted: Result<Vec<Readback>> = self.check_input(input, batch, h, w).and_then(|()| {
            self.slices(batch, h, w)?.into_iter().map(|(start, n)| self.submit_slice(input, start, n, h, w)).collect()
        });
        let (classes, allow) = (self.config.num_classes, self.allow_non_finite);
        async move {
            let (mut logits, mut features) = (Vec::new(), Vec::new());
            for readback in submitted? {
                let mut out: Vec<Vec<f32>> = readback.await?;
                features.extend(out.pop().unwrap_or_default());
                logits.extend(out.pop().unwrap_or_default());
            }
            if !allow {
                check_finite("logits", &logits, classes)?;
            }
            Ok(ForwardOutput { logits, features })
        }
    }

    /// Records the forward of `input` (batch, 3, h, w), NCHW f32, into the host's `encoder`:
    /// the input copy, the network and the copies of the outputs into buffers of this call's own.
    /// After the host submits the encoder, [`EncodedForward::read`] with the submission's index
    /// gives the outputs. `batch` must fit one slice (`max_batch`).
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        input: &[f32],
        batch: usize,
        h: usize,
        w: usize,
    ) -> Result<EncodedForward> {
        self.check_input(input, batch, h, w)?;
        let max = self.max_batch(h, w)?;
        if batch > max {
            return Err(Error::invalid(format!(
                "encode: a batch of {batch} {h}x{w} images exceeds the {max} one slice holds on this device; \
                 split it, or use forward"
            )));
        }
        let plan = self.plan(batch, h, w, &[])?;
        plan.encode(&self.gpu, Some(input), encoder, false)?;
        let staged = self.gpu.stage(encoder, &[plan.logits(), plan.features()])?;
        Ok(EncodedForward {
            gpu: self.gpu.clone(),
            staged,
            classes: self.config.num_classes,
            allow_non_finite: self.allow_non_finite,
        })
    }

    /// (first image, images) of each slice a batch runs in.
    fn slices(&self, batch: usize, h: usize, w: usize) -> Result<Vec<(usize, usize)>> {
        let slice = self.max_batch(h, w)?.min(batch).max(1);
        Ok((0..batch).step_by(slice).map(|start| (start, slice.min(batch - start))).collect())
    }

    /// Submits images `start..start + n` of `input` through the cached plan for `n`; the readback
    /// holds logits, then pooled features.
    fn submit_slice(&self, input: &[f32], start: usize, n: usize, h: usize, w: usize) -> Result<Readback> {
        let per_image = 3 * h * w;
        let plan = self.plan(n, h, w, &[])?;
        plan.submit(&self.gpu, &input[start * per_image..(start + n) * per_image], &[plan.logits(), plan.features()])
    }

    fn forward_output(&self, logits: Vec<f32>, features: Vec<f32>) -> Result<ForwardOutput> {
        if !self.allow_non_finite {
            check_finite("logits", &logits, self.config.num_classes)?;
        }
        Ok(ForwardOutput { logits, features })
    }

    /// The multi-scale feature maps of `input` (batch, 3, h, w), NCHW f32: the last map at each
    /// resolution, 1/2 to 1/32 of the input (`Network::feature_levels`), as timm's
    /// `features_only` models return them, each NCHW. For detection and segmentation heads.
    pub fn features(&self, input: &[f32], batch: usize, h: usize, w: usize) -> Result<Vec<FeatureMap>> {
        self.check_input(input, batch, h, w)?;
        let (rh, rw) = self.input_resize(1, h, w).map_or((h, w), |p| (p.oh, p.ow));
        let levels = Network::new(&self.config, rh, rw).feature_levels();
        let names: Vec<&str> = levels.iter().map(|l| l.tap.as_str()).collect();
        let mut maps: Vec<FeatureMap> = levels
            .iter()
            .map(|l| FeatureMap { level: l.clone(), shape: [0, l.channels, 0, 0], data: Vec::new() })
            .collect();
        let per_image = 3 * h * w;
        for (start, n) in self.slices(batch, h, w)? {
            // A plan of its own (not cached): its taps keep intermediate maps alive.
            let plan = self.build_plan(n, h, w, &names)?;
            let taps: Vec<&GpuBuffer> = plan.taps.iter().map(|t| &t.1).collect();
            let data = plan.submit(&self.gpu, &input[start * per_image..(start + n) * per_image], &taps)?.wait()?;
            for ((nhwc, (_, _, shape)), map) in data.into_iter().zip(&plan.taps).zip(&mut maps) {
                let [n, fh, fw, c] = *shape;
                map.shape = [map.shape[0] + n, c, fh, fw];
                map.data.extend(nhwc_to_nchw(&nhwc, [n, fh, fw, c]));
            }
        }
        Ok(maps)
    }

    fn check_input(&self, input: &[f32], batch: usize, h: usize, w: usize) -> Result<()> {
        self.check_shape(input, batch, h, w)?;
        if !self.allow_non_finite {
            check_finite("input", input, 3 * h * w)?;
        }
        Ok(())
    }

    fn check_shape(&self, input: &[f32], batch: usize, h: usize, w: usize) -> Result<()> {
        if batch == 0 || h == 0 || w == 0 {
            return Err(Error::invalid(format!(
                "input must have batch, height and width ≥ 1, got [{batch}, 3, {h}, {w}]"
            )));
        }
        if input.len() != batch * 3 * h * w {
            return Err(Error::Shape { what: "input".into(), expected: vec![batch, 3, h, w], got: vec![input.len()] });
        }
        Ok(())
    }

    /// The largest batch whose every tensor fits one storage binding on this device.
    pub fn max_batch(&self, h: usize, w: usize) -> Result<usize> {
        // The f32 input (and its resized copy), or the largest stored activation.
        let (rh, rw) = self.input_resize(1, h, w).map_or((h, w), |p| (p.oh, p.ow));
        let largest = self.config.largest_activation(rh, rw) * self.store.size();
        let per_image = largest.max(3 * h.max(rh) * w.max(rw) * 4) as u64;
        let what = format!("one {h}x{w} image through {} (largest activation)", self.config.name);
        self.gpu.images_per_binding(per_image, what, h, w)
    }

    /// The bilinear resize applied to inputs first: to `input_size` when set, else by the
    /// config's `scale` (the blog's option), else none.
    fn input_resize(&self, n: usize, h: usize, w: usize) -> Option<BilinearResizeParams> {
        match self.input_size {
            Some((oh, ow)) if (oh, ow) != (h, w) => Some(BilinearResizeParams::to_size(n, 3, h, w, oh, ow)),
            Some(_) => None,
            None => self.config.scale.map(|s| BilinearResizeParams::by_scale(n, 3, h, w, s)),
        }
    }

    /// Return NaN or infinite inputs and logits as they are. By default `forward`, `features` and
    /// `Classifier` refuse them with an error naming the batch item: a non-finite answer is never
    /// a prediction.
    pub fn allow_non_finite(mut self, allow: bool) -> Self {
        self.allow_non_finite = allow;
        self
    }

    /// Whether non-finite inputs and logits are returned as they are (`allow_non_finite`).
    pub fn allows_non_finite(&self) -> bool {
        self.allow_non_finite
    }

    /// Resize every input to `size` (h, w) on the GPU before the stem (bilinear), e.g. 28x28
    /// Fashion-MNIST images to a 32x32 training resolution.
    pub fn with_input_size(mut self, size: Option<(usize, usize)>) -> Self {
        self.input_size = size;
        self.plans.lock().unwrap_or_else(|e| e.into_inner()).entries.clear();
        self
    }

    /// Bytes of the weights resident on the GPU (BN folded in; f16 where `store` is).
    pub fn weight_bytes(&self) -> u64 {
        self.layers.values().map(GpuLayer::bytes).sum()
    }

    fn layer(&self, layer: Layer) -> Result<&GpuLayer> {
        self.layers.get(&layer).ok_or_else(|| Error::invalid(format!("the model has no weights for {layer:?}")))
    }

    /// The recorded forward graph for this input shape, built on first use and cached. `taps`
    /// names intermediate outputs to keep readable ("stem", "stage1".."stage7", "head").
    pub fn plan(&self, batch: usize, h: usize, w: usize, taps: &[&str]) -> Result<Arc<ForwardPlan>> {
        let key = (batch, h, w);
        if taps.is_empty() {
            if let Some(p) = self.plans.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
                return Ok(p);
            }
        }
        let plan = Arc::new(self.build_plan(batch, h, w, taps)?);
        if taps.is_empty() {
            self.plans.lock().unwrap_or_else(|e| e.into_inner()).insert(key, plan.clone());
        }
        self.keep_pipelines();
        Ok(plan)
    }

    /// Builds the plan for `batch` images of `h` x `w` and runs it once on zeros, so that the
    /// first real call finds every pipeline compiled (drivers such as lavapipe compile at the
    /// first dispatch) and the persistent pipeline cache written. Safe to run on a background
    /// thread while the app starts (the model is `Sync`).
    pub fn warm_up(&self, batch: usize, h: usize, w: usize) -> Result<()> {
        let plan = self.plan(batch, h, w, &[])?;
        plan.submit(&self.gpu, &vec![0.0; batch * 3 * h * w], &[plan.logits()])?.wait()?;
        self.keep_pipelines();
        Ok(())
    }

    /// Writes the persistent pipeline cache after new pipelines. A cache that cannot be written
    /// costs only start-up time, so its error is not the caller's.
    fn keep_pipelines(&self) {
        let _ = self.gpu.save_pipeline_cache();
    }

    /// Bounds the cached plans to `bytes` of device memory (`ForwardPlan::activation_bytes`),
    /// dropping the least recently used first; the plan in use is always kept. Default 1 GiB.
    pub fn with_plan_budget(self, bytes: u64) -> Self {
        let mut cache = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        cache.budget = Some(bytes);
        cache.evict();
        drop(cache);
        self
    }

    /// The cached plans, most recently used first: (batch, height, width) and their bytes.
    pub fn cached_plans(&self) -> Vec<((usize, usize, usize), u64)> {
        let cache = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = cache.entries.iter().map(|e| (e.last_use, e.key, e.plan.activation_bytes)).collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.0));
        out.into_iter().map(|(_, k, b)| (k, b)).collect()
    }

    /// Records the forward twice, the second time with its tensors placed by the first's
    /// `MemoryPlan` (see `graph::recorder`) where that takes less memory than greedy reuse.
    fn build_plan(&self, n: usize, h: usize, w: usize, taps: &[&str]) -> Result<ForwardPlan> {
        record_planned(&self.gpu, |r| self.build_plan_with(r, n, h, w, taps))
    }

    fn build_plan_with<'a>(
        &self,
        mut r: Recorder<'a>,
        n: usize,
        h: usize,
        w: usize,
        taps: &[&str],
    ) -> Result<(ForwardPlan, Recorder<'a>)> {
        let gpu = r.gpu;
        let cfg = &self.config;
        let store = self.store;
        let input = gpu.empty(n * 3 * h * w, "input")?;

        // Optional resize of the input (the blog's `scale`, or a fixed input size), NCHW → NCHW.
        let resize = self.input_resize(n, h, w);
        let (mut x, h, w) = match &resize {
            Some(p) => {
                let identity = gpu.upload(&[1.0, 1.0, 1.0, 0.0, 0.0, 0.0], "identity affine")?;
                let y = r.alloc(p.output_len())?;
                r.push(bilinear_resize_fwd(gpu, p, &input, &identity, &y)?, "input resize")?;
                (y, p.oh, p.ow)
            }
            None => (input.clone(), h, w),
        };
        // The f16 path stores the (possibly resized) input as f16 before the stem.
        if store != Dtype::F32 {
            let y = r.alloc_typed(x.len, store)?;
            r.push(cast(gpu, &x, &y)?, "input cast")?;
            if resize.is_some() {
                r.release(x);
            }
            x = y;
        }
        let owns_input = resize.is_some() || store != Dtype::F32;

        let net = Network::new(cfg, h, w);
        let last_reads = net.last_reads();
        let mut values: Vec<Option<GpuBuffer>> = vec![None; net.units.len() + 1];
        values[0] = Some(x);
        let mut tapped: Vec<(String, ValueId, [usize; 4])> = Vec::new();
        let (mut features, mut stored_logits) = (None, None);
        for (i, u) in net.units.iter().enumerate() {
            let x = values[u.input.0].clone().ok_or_else(|| Error::invalid(format!("{}: input released", u.label)))?;
            let value = |v: Option<ValueId>| v.and_then(|v| values[v.0].clone());
            let [ih, iw, ic] = u.in_shape;
            let [oh, ow, oc] = u.out_shape;
            let y = match &u.op {
                Op::ConvBn { layer, kind, kernel, stride, act, gate, residual, .. } => {
                    let l = self.layer(*layer)?;
                    match kind {
                        ConvKind::Stem => {
                            let mut p = Conv2dParams::new(n, ih, iw, ic, oc, *kernel, *stride, cfg.padding);
                            p.input_nchw = true;
                            p.act = *act;
                            let y = r.alloc_typed(p.output_len(), store)?;
                            r.push(conv2d_fwd(gpu, &p, &x, &l.weight, Some(&l.bias), &y)?, &u.label)?;
                            y
                        }
                        ConvKind::Pointwise => {
                            // The SE gate scales the input rows as the GEMM reads them; the
                            // shortcut is added in its epilogue.
                            let mut p = GemmParams::new(n * ih * iw, oc, ic);
                            p.act = *act;
                            p.a_scale_rows = if gate.is_some() { ih * iw } else { 0 };
                            let y = r.alloc_typed(p.m * p.n, store)?;
                            let (res, g) = (value(*residual), value(*gate));
                            let d = gemm_fwd(gpu, &p, &x, &l.weight, Some(&l.bias), res.as_ref(), g.as_ref(), &y)?;
                            r.push(d, &u.label)?;
                            y
                        }
                        ConvKind::Depthwise => {
                            let mut p = DepthwiseConvParams::new(n, ih, iw, ic, *kernel, *stride, cfg.padding);
                            p.act = *act;
                            let y = r.alloc_typed(p.output_len(), store)?;
                            r.push(depthwise_conv_fwd(gpu, &p, &x, &l.weight, Some(&l.bias), &y)?, &u.label)?;
                            y
                        }
                    }
                }
                // Mean over H,W → FC + activation → FC + sigmoid = the channel gate.
                Op::SqueezeExcite { block, hidden, act } => {
                    let part = |part| Layer::Block { index: *block, part };
                    let (reduce, expand) =
                        (self.layer(part(BlockPart::SeReduce))?, self.layer(part(BlockPart::SeExpand))?);
                    let pp = GlobalAvgPoolParams::new(n, ih * iw, ic);
                    let (partial, pooled) = (r.alloc(pp.partial_len())?, r.alloc_typed(n * ic, store)?);
                    r.push_all(global_avg_pool_fwd(gpu, &pp, &x, &partial, &pooled)?, &format!("{} pool", u.label))?;
                    r.release(partial);
                    let mut p1 = GemmParams::new(n, *hidden, ic);
                    p1.act = *act;
                    let hid = r.alloc_typed(n * hidden, store)?;
                    r.push(
                        gemm_fwd(gpu, &p1, &pooled, &reduce.weight, Some(&reduce.bias), None, None, &hid)?,
                        &format!("{} reduce", u.label),
                    )?;
                    r.release(pooled);
                    let mut p2 = GemmParams::new(n, ic, *hidden);
                    p2.act = Activation::Sigmoid;
                    let gate = r.alloc_typed(n * ic, store)?;
                    r.push(
                        gemm_fwd(gpu, &p2, &hid, &expand.weight, Some(&expand.bias), None, None, &gate)?,
                        &format!("{} expand", u.label),
                    )?;
                    r.release(hid);
                    gate
                }
                // The pooled features are an output of the plan.
                Op::Pool => {
                    let pp = GlobalAvgPoolParams::new(n, ih * iw, ic);
                    let partial = r.alloc(pp.partial_len())?;
                    let f = gpu.empty_typed(n * ic, store, "features")?;
                    for d in global_avg_pool_fwd(gpu, &pp, &x, &partial, &f)? {
                        r.push(d, &u.label)?;
                    }
                    r.release(partial);
                    features = Some(f.clone());
                    f
                }
                // Dropout is the identity in inference.
                Op::Classifier { .. } => {
                    let l = self.layer(Layer::Classifier)?;
                    let p = GemmParams::new(n, oc, ic);
                    let y = gpu.empty_typed(n * oc, store, "stored logits")?;
                    r.push(gemm_fwd(gpu, &p, &x, &l.weight, Some(&l.bias), None, None, &y)?, &u.label)?;
                    stored_logits = Some(y.clone());
                    y
                }
            };
            values[i + 1] = Some(y);
            if let Some(name) = u.tap.as_deref().filter(|t| taps.contains(t)) {
                tapped.push((name.to_string(), ValueId(i + 1), [n, oh, ow, oc]));
            }
            // A value is released after its last reader, unless a tap or the caller keeps it.
            for v in u.reads() {
                let kept = tapped.iter().any(|t| t.1 == v) || (v == ValueId::INPUT && !owns_input);
                if last_reads[v.0] == Some(i) && !kept && v.producer().is_none_or(|p| !is_output(&net.units[p].op)) {
                    if let Some(b) = values[v.0].take() {
                        r.release(b);
                    }
                }
            }
        }
        let missing = || Error::invalid("the network has no pool or classifier");
        let (features, stored_logits) = (features.ok_or_else(missing)?, stored_logits.ok_or_else(missing)?);
        let logits = match store {
            Dtype::F32 => stored_logits.clone(),
            _ => {
                let l = gpu.empty(stored_logits.len, "logits")?;
                r.push(cast(gpu, &stored_logits, &l)?, "logits cast")?;
                l
            }
        };
        let probs = gpu.empty(logits.len, "probabilities")?;
        let sp = SoftmaxParams { rows: n, cols: cfg.num_classes };
        let softmax = softmax_fwd(gpu, &sp, &logits, &probs)?;

        let mut activation_bytes = r.allocated_bytes;
        for b in [&input, &features, &logits, &probs] {
            activation_bytes += b.buffer.size();
        }
        if store != Dtype::F32 {
            activation_bytes += stored_logits.buffer.size();
        }
        let taps = tapped
            .into_iter()
            .map(|(name, v, shape)| Ok((name, values[v.0].clone().ok_or_else(missing)?, shape)))
            .collect::<Result<Vec<_>>>()?;
        let plan = ForwardPlan {
            batch: n,
            input,
            dispatches: std::mem::take(&mut r.dispatches),
            softmax,
            logits,
            features,
            probs,
            taps,
            activation_bytes,
        };
        Ok((plan, r))
    }
}

/// Whether a unit writes one of the plan's outputs (made outside the recorder, never released).
fn is_output(op: &Op) -> bool {
    matches!(op, Op::Pool | Op::Classifier { .. })
}

/// One map of `EfficientNet::features`.
#[derive(Clone, Debug)]
pub struct FeatureMap {
    /// Which level it is: its tap, channels and reduction.
    pub level: FeatureLevel,
    /// (batch, channels, h, w)
    pub shape: [usize; 4],
    /// NCHW values.
    pub data: Vec<f32>,
}

/// An error naming the first batch item of `values` (rows of `per_item`) that holds a NaN or an
/// infinity.
pub(crate) fn check_finite(what: &str, values: &[f32], per_item: usize) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::invalid(format!(
            "{what} of batch item {} hold {} (at {}): not finite. The weights or the input hold numbers the \
             network cannot use; allow_non_finite(true) returns them as they are",
            i / per_item.max(1),
            values[i],
            i % per_item.max(1)
        ))),
    }
}

/// (n, h, w, c) → (n, c, h, w).
fn nhwc_to_nchw(x: &[f32], [n, h, w, c]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for b in 0..n {
        for p in 0..h * w {
            for ch in 0..c {
                out[(b * c + ch) * h * w + p] = x[(b * h * w + p) * c + ch];
            }
        }
    }
    out
}

/// The recorded plans of a model by (batch, height, width), least recently used dropped first
/// beyond the budget.
#[derive(Default)]
struct PlanCache {
    entries: Vec<CachedPlan>,
    /// Bytes of plans kept at most; `None`: `DEFAULT_PLAN_BUDGET`.
    budget: Option<u64>,
    /// Uses so far: the clock of `last_use`.
    clock: u64,
}

struct CachedPlan {
    key: (usize, usize, usize),
    plan: Arc<ForwardPlan>,
    last_use: u64,
}

/// Device memory the cached plans of one model may hold by default.
const DEFAULT_PLAN_BUDGET: u64 = 1 << 30;

impl PlanCache {
    fn get(&mut self, key: (usize, usize, usize)) -> Option<Arc<ForwardPlan>> {
        self.clock += 1;
        let now = self.clock;
        self.entries.iter_mut().find(|e| e.key == key).map(|e| {
            e.last_use = now;
            e.plan.clone()
        })
    }

    fn insert(&mut self, key: (usize, usize, usize), plan: Arc<ForwardPlan>) {
        self.clock += 1;
        self.entries.retain(|e| e.key != key);
        self.entries.push(CachedPlan { key, plan, last_use: self.clock });
        self.evict();
    }

    /// Drops the least recently used plans until the rest fit the budget (the newest always stays;
    /// a caller still running a dropped plan keeps it alive until done).
    fn evict(&mut self) {
        let budget = self.budget.unwrap_or(DEFAULT_PLAN_BUDGET);
        while self.entries.len() > 1 && self.entries.iter().map(|e| e.plan.activation_bytes).sum::<u64>() > budget {
            if let Some(oldest) = self.entries.iter().enumerate().min_by_key(|(_, e)| e.last_use).map(|(i, _)| i) {
                self.entries.remove(oldest);
            }
        }
    }
}

/// A tapped intermediate output: (name, NHWC data, [n, h, w, c]).
pub type Tap = (String, Vec<f32>, [usize; 4]);

/// A forward pass recorded once for one (batch, h, w): replaying it is one upload, one compute
/// pass and one readback.
pub struct ForwardPlan {
    /// Images per run: the input must hold exactly this many.
    pub batch: usize,
    input: GpuBuffer,
    /// The recorded compute dispatches of the forward, in execution order; softmax not included.
    pub dispatches: Vec<Dispatch>,
    softmax: Dispatch,
    logits: GpuBuffer,
    features: GpuBuffer,
    probs: GpuBuffer,
    taps: Vec<(String, GpuBuffer, [usize; 4])>,
    /// Bytes of the plan's own buffers: input, activations (reused by liveness), features,
    /// logits and probabilities. The weights (`EfficientNet::weight_bytes`) and the texel scratch
    /// textures (`Gpu::scratch_texture_bytes`) are shared by every plan of the model.
    pub activation_bytes: u64,
}

impl ForwardPlan {
    /// The input buffer, (batch, 3, h, w) NCHW: callers may fill it on the GPU (preprocessing)
    /// earlier in the same encoder and then `encode(gpu, None, ..)`.
    pub fn input(&self) -> &GpuBuffer {
        &self.input
    }

    /// The logits buffer, (batch, num_classes) f32, written by `encode`.
    pub fn logits(&self) -> &GpuBuffer {
        &self.logits
    }

    /// The pooled-features buffer, (batch, head channels), stored in the model's `store` dtype.
    pub fn features(&self) -> &GpuBuffer {
        &self.features
    }

    /// The probabilities buffer, (batch, num_classes) f32; written only by `encode` with `softmax`.
    pub fn probabilities(&self) -> &GpuBuffer {
        &self.probs
    }

    /// Records into `encoder` the copy of `input` (this plan's batch, NCHW; `None` when earlier
    /// commands of the same encoder filled the input buffer) and the whole forward, softmax
    /// included when asked. The plan is shared: whoever reads its outputs copies them out in the
    /// same encoder (`Gpu::stage`), so that the encoder's command buffer is self-contained.
    pub fn encode(
        &self,
        gpu: &Gpu,
        input: Option<&[f32]>,
        encoder: &mut wgpu::CommandEncoder,
        softmax: bool,
    ) -> Result<()> {
        if let Some(input) = input {
            if input.len() != self.input.len {
                return Err(Error::Shape {
                    what: "plan input".into(),
                    expected: vec![self.input.len],
                    got: vec![input.len()],
                });
            }
            gpu.upload_in(encoder, &self.input, input)?;
        }
        let tail = softmax.then_some(&self.softmax);
        crate::gpu::encode_dispatches(encoder, "forward", self.dispatches.iter().chain(tail));
        Ok(())
    }

    /// Submits the plan on `input` ((batch, 3, h, w) NCHW f32) with copies of `outputs` (the
    /// plan's buffers: `logits`, `features`, `probabilities`, which adds the softmax), in one
    /// command buffer.
    pub fn submit(&self, gpu: &Gpu, input: &[f32], outputs: &[&GpuBuffer]) -> Result<Readback> {
        let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        let softmax = outputs.iter().any(|b| b.same_buffer(&self.probs));
        self.encode(gpu, Some(input), &mut encoder, softmax)?;
        let staged = gpu.stage(&mut encoder, outputs)?;
        let index = gpu.submit("running the forward pass", [encoder.finish()])?;
        Ok(staged.read(gpu, index))
    }

    /// Runs the plan on `input` ((batch, 3, h, w) NCHW f32), returning logits and pooled features.
    pub fn run(&self, gpu: &Gpu, input: &[f32]) -> Result<ForwardOutput> {
        let mut out = self.submit(gpu, input, &[&self.logits, &self.features])?.wait()?;
        let features = out.pop().unwrap_or_default();
        let logits = out.pop().unwrap_or_default();
        Ok(ForwardOutput { logits, features })
    }

    /// Runs the plan and returns softmax probabilities (batch, classes).
    pub fn run_probabilities(&self, gpu: &Gpu, input: &[f32]) -> Result<Vec<f32>> {
        Ok(self.submit(gpu, input, &[&self.probs])?.wait()?.remove(0))
    }

    /// Reads the tapped intermediate outputs of the last run. Plans with taps are never cached
    /// (`EfficientNet::plan`), so whoever made one is the only one running it.
    pub fn read_taps(&self, gpu: &Gpu) -> Result<Vec<Tap>> {
        let bufs: Vec<&GpuBuffer> = self.taps.iter().map(|t| &t.1).collect();
        let data = gpu.read_many(&bufs)?;
        Ok(self.taps.iter().zip(data).map(|(t, d)| (t.0.clone(), d, t.2)).collect())
    }
}

/// A forward recorded into a host's encoder (`EfficientNet::encode`), waiting for the host to
/// submit it.
#[must_use = "the outputs are read only through EncodedForward::read after the host's submit"]
pub struct EncodedForward {
    gpu: Arc<Gpu>,
    staged: Staged,
    classes: usize,
    allow_non_finite: bool,
}

impl EncodedForward {
    /// The outputs, once `submission` (the host's submit of the encoder) has run: await the
    /// future (it resolves through `map_async`; the host's frame loop polls the device).
    pub fn read(
        self,
        submission: wgpu::SubmissionIndex,
    ) -> impl Future<Output = Result<ForwardOutput>> + Send + 'static {
        let readback = self.staged.read(&self.gpu, submission);
        let (classes, allow) = (self.classes, self.allow_non_finite);
        async move {
            let mut out = readback.await?;
            let features = out.pop().unwrap_or_default();
            let logits = out.pop().unwrap_or_default();
            if !allow {
                check_finite("logits", &logits, classes)?;
            }
            Ok(ForwardOutput { logits, features })
        }
    }
}
