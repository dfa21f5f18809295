//! Config + weights → a static forward graph on the GPU. The network reads like the paper's table:
//! stem, MBConv blocks (expand → depthwise → squeeze-excite → project [+ identity]), head, pool,
//! classifier. Inference folds every BatchNorm into the conv before it, so each conv is one
//! kernel with a bias + activation (+ residual) epilogue, and the SE gate is applied while the
//! project conv reads its input. Weights and activations are stored as f32, or as f16
//! (`new_with_store`) where the adapter has SHADER_F16: half the memory traffic, f32 arithmetic.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Dtype, Gpu, GpuBuffer};
use crate::graph::params::oihw_to_hwio;
use crate::graph::{record_planned, Recorder};
use crate::model::{BlockPart, BlockSpec, Config, Field, HostTensor, Layer, Weights};
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
        self.weight.buffer.size() + self.bias.buffer.size()
    }
}

struct GpuBlock {
    spec: BlockSpec,
    expand: Option<GpuLayer>,
    depthwise: GpuLayer,
    se: Option<(GpuLayer, GpuLayer)>,
    project: GpuLayer,
}

/// EfficientNet with its weights resident on one GPU, ready for inference.
pub struct EfficientNet {
    pub config: Config,
    /// How weights and activations are stored (inputs, logits and probabilities are f32 always).
    pub store: Dtype,
    stem: GpuLayer,
    blocks: Vec<GpuBlock>,
    head: GpuLayer,
    classifier: GpuLayer,
    /// Resize inputs to this (h, w) first (see `with_input_size`).
    input_size: Option<(usize, usize)>,
    plans: Mutex<HashMap<(usize, usize, usize), std::sync::Arc<ForwardPlan>>>,
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
    pub fn new(gpu: &Gpu, config: Config, weights: &Weights) -> Result<EfficientNet> {
        Self::new_with_store(gpu, config, weights, Dtype::F32)
    }

    /// `new` with weights and activations stored as `store`. F16 needs an adapter with
    /// SHADER_F16 (`effnet devices` lists it); the BN fold is done in f64 and rounded once.
    pub fn new_with_store(gpu: &Gpu, config: Config, weights: &Weights, store: Dtype) -> Result<EfficientNet> {
        if store == Dtype::F16 && !gpu.caps.shader_f16 {
            return Err(Error::Unsupported {
                what: "f16 inference".into(),
                adapter: gpu.info.name.clone(),
                hint: "the adapter lacks the SHADER_F16 feature; run in f32".into(),
            });
        }
        config.validate()?;
        let eps = config.bn_eps;
        let mut blocks = Vec::new();
        for spec in config.blocks() {
            let part = |part| Layer::Block { index: spec.index, part };
            let expand = spec
                .has_expand()
                .then(|| GpuLayer::conv_bn(gpu, store, weights, part(BlockPart::Expand), eps))
                .transpose()?;
            let depthwise = GpuLayer::conv_bn(gpu, store, weights, part(BlockPart::Depthwise), eps)?;
            let se = if spec.has_se() {
                Some((
                    GpuLayer::linear(gpu, store, weights, part(BlockPart::SeReduce))?,
                    GpuLayer::linear(gpu, store, weights, part(BlockPart::SeExpand))?,
                ))
            } else {
                None
            };
            let project = GpuLayer::conv_bn(gpu, store, weights, part(BlockPart::Project), eps)?;
            blocks.push(GpuBlock { spec, expand, depthwise, se, project });
            // Uploads are staged until a submit: flush per block to bound staging memory.
            gpu.queue.submit([]);
        }
        Ok(EfficientNet {
            stem: GpuLayer::conv_bn(gpu, store, weights, Layer::Stem, eps)?,
            head: GpuLayer::conv_bn(gpu, store, weights, Layer::Head, eps)?,
            classifier: GpuLayer::linear(gpu, store, weights, Layer::Classifier)?,
            blocks,
            config,
            store,
            input_size: None,
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// Runs `input` (batch, 3, h, w), NCHW f32, through the network as is (no preprocessing; with
    /// `config.scale` set, bilinearly resized by that factor first). Any batch ≥ 1 and any h, w:
    /// batches larger than the device's binding limit allows run in slices.
    pub fn forward(&self, gpu: &Gpu, input: &[f32], batch: usize, h: usize, w: usize) -> Result<ForwardOutput> {
        if batch == 0 || h == 0 || w == 0 {
            return Err(Error::invalid(format!(
                "input must have batch, height and width ≥ 1, got [{batch}, 3, {h}, {w}]"
            )));
        }
        if input.len() != batch * 3 * h * w {
            return Err(Error::Shape { what: "input".into(), expected: vec![batch, 3, h, w], got: vec![input.len()] });
        }
        let slice = self.max_batch(gpu, h, w)?.min(batch);
        let per_image = 3 * h * w;
        let (mut logits, mut features) = (Vec::new(), Vec::new());
        let mut start = 0;
        while start < batch {
            let n = slice.min(batch - start);
            let plan = self.plan(gpu, n, h, w, &[])?;
            let out = plan.run(gpu, &input[start * per_image..(start + n) * per_image])?;
            logits.extend(out.logits);
            features.extend(out.features);
            start += n;
        }
        Ok(ForwardOutput { logits, features })
    }

    /// The largest batch whose every tensor fits one storage binding on this device.
    pub fn max_batch(&self, gpu: &Gpu, h: usize, w: usize) -> Result<usize> {
        // The f32 input (and its resized copy), or the largest stored activation.
        let (rh, rw) = self.input_resize(1, h, w).map_or((h, w), |p| (p.oh, p.ow));
        let largest = self.config.largest_activation(rh, rw) * self.store.size();
        let per_image = largest.max(3 * h.max(rh) * w.max(rw) * 4) as u64;
        let what = format!("one {h}x{w} image through {} (largest activation)", self.config.name);
        gpu.images_per_binding(per_image, what, h, w)
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

    /// Resize every input to `size` (h, w) on the GPU before the stem (bilinear), e.g. 28x28
    /// Fashion-MNIST images to a 32x32 training resolution.
    pub fn with_input_size(mut self, size: Option<(usize, usize)>) -> Self {
        self.input_size = size;
        self.plans.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self
    }

    /// Bytes of the weights resident on the GPU (BN folded in; f16 where `store` is).
    pub fn weight_bytes(&self) -> u64 {
        let mut total = self.stem.bytes() + self.head.bytes() + self.classifier.bytes();
        for b in &self.blocks {
            total += b.depthwise.bytes() + b.project.bytes() + b.expand.as_ref().map_or(0, GpuLayer::bytes);
            total += b.se.as_ref().map_or(0, |(r, e)| r.bytes() + e.bytes());
        }
        total
    }

    /// The recorded forward graph for this input shape, built on first use and cached. `taps`
    /// names intermediate outputs to keep readable ("stem", "stage1".."stage7", "head").
    pub fn plan(
        &self,
        gpu: &Gpu,
        batch: usize,
        h: usize,
        w: usize,
        taps: &[&str],
    ) -> Result<std::sync::Arc<ForwardPlan>> {
        let key = (batch, h, w);
        if taps.is_empty() {
            if let Some(p) = self.plans.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
                return Ok(p.clone());
            }
        }
        let plan = std::sync::Arc::new(self.build_plan(gpu, batch, h, w, taps)?);
        if taps.is_empty() {
            self.plans.lock().unwrap_or_else(|e| e.into_inner()).insert(key, plan.clone());
        }
        Ok(plan)
    }

    /// Records the forward twice, the second time with its tensors placed by the first's
    /// `MemoryPlan` (see `graph::recorder`) where that takes less memory than greedy reuse.
    fn build_plan(&self, gpu: &Gpu, n: usize, h: usize, w: usize, taps: &[&str]) -> Result<ForwardPlan> {
        record_planned(gpu, |r| self.build_plan_with(r, n, h, w, taps))
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
        let mut tapped = Vec::new();
        let wants = |name: &str| taps.contains(&name);

        // Optional resize of the input (the blog's `scale`, or a fixed input size), NCHW → NCHW.
        let resize = self.input_resize(n, h, w);
        let (mut x, mut h, mut w, nchw) = match &resize {
            Some(p) => {
                let identity = gpu.upload(&[1.0, 1.0, 1.0, 0.0, 0.0, 0.0], "identity affine")?;
                let y = r.alloc(p.output_len())?;
                r.push(bilinear_resize_fwd(gpu, p, &input, &identity, &y)?, "input resize");
                (y, p.oh, p.ow, true)
            }
            None => (input.clone(), h, w, true),
        };
        // The f16 path stores the (possibly resized) input as f16 before the stem.
        if store != Dtype::F32 {
            let y = r.alloc_typed(x.len, store)?;
            r.push(cast(gpu, &x, &y)?, "input cast");
            if resize.is_some() {
                r.release(x);
            }
            x = y;
        }
        let owns_input = resize.is_some() || store != Dtype::F32;

        // Stem: 3x3 stride-2 conv + BN + activation, reading the NCHW input directly.
        let mut p = Conv2dParams::new(n, h, w, 3, cfg.stem_channels(), 3, 2, cfg.padding);
        p.input_nchw = nchw;
        p.has_bias = true;
        p.act = cfg.activation;
        let y = r.alloc_typed(p.output_len(), store)?;
        r.push(conv2d_fwd(gpu, &p, &x, &self.stem.weight, Some(&self.stem.bias), &y)?, "stem");
        if owns_input {
            r.release(x);
        }
        (x, h, w) = (y, p.oh, p.ow);
        if wants("stem") {
            tapped.push(("stem".to_string(), x.clone(), [n, h, w, cfg.stem_channels()]));
        }

        for (i, b) in self.blocks.iter().enumerate() {
            let s = &b.spec;
            let label = format!("stage{}.{}", s.stage, s.index_in_stage);
            let hw_in = h * w;
            // Expand: 1x1 conv + BN + activation.
            let expanded = match &b.expand {
                Some(l) => {
                    let mut p = GemmParams::new(n * hw_in, s.expanded_ch, s.in_ch);
                    p.has_bias = true;
                    p.act = cfg.activation;
                    let y = r.alloc_typed(p.m * p.n, store)?;
                    r.push(
                        gemm_fwd(gpu, &p, &x, &l.weight, Some(&l.bias), None, None, &y)?,
                        &format!("{label} expand"),
                    );
                    Some(y)
                }
                None => None,
            };
            // Depthwise conv (carrying the block's stride) + BN + activation.
            let mut dp = DepthwiseConvParams::new(n, h, w, s.expanded_ch, s.kernel, s.stride, cfg.padding);
            dp.has_bias = true;
            dp.act = cfg.activation;
            let d = r.alloc_typed(dp.output_len(), store)?;
            let dw_in = expanded.as_ref().unwrap_or(&x);
            r.push(
                depthwise_conv_fwd(gpu, &dp, dw_in, &b.depthwise.weight, Some(&b.depthwise.bias), &d)?,
                &format!("{label} depthwise"),
            );
            if let Some(e) = expanded {
                r.release(e);
            }
            let (oh, ow) = (dp.oh, dp.ow);
            let hw = oh * ow;
            // Squeeze-excite: mean over H,W → FC + activation → FC + sigmoid = the channel gate.
            let gate = match &b.se {
                Some((reduce, expand)) => {
                    let pp = GlobalAvgPoolParams::new(n, hw, s.expanded_ch);
                    let (partial, pooled) = (r.alloc(pp.partial_len())?, r.alloc_typed(n * s.expanded_ch, store)?);
                    for d in global_avg_pool_fwd(gpu, &pp, &d, &partial, &pooled)? {
                        r.push(d, &format!("{label} se pool"));
                    }
                    r.release(partial);
                    let mut p1 = GemmParams::new(n, s.se_ch, s.expanded_ch);
                    p1.has_bias = true;
                    p1.act = cfg.activation;
                    let hidden = r.alloc_typed(n * s.se_ch, store)?;
                    r.push(
                        gemm_fwd(gpu, &p1, &pooled, &reduce.weight, Some(&reduce.bias), None, None, &hidden)?,
                        &format!("{label} se reduce"),
                    );
                    r.release(pooled);
                    let mut p2 = GemmParams::new(n, s.expanded_ch, s.se_ch);
                    p2.has_bias = true;
                    p2.act = Activation::Sigmoid;
                    let gate = r.alloc_typed(n * s.expanded_ch, store)?;
                    r.push(
                        gemm_fwd(gpu, &p2, &hidden, &expand.weight, Some(&expand.bias), None, None, &gate)?,
                        &format!("{label} se expand"),
                    );
                    r.release(hidden);
                    Some(gate)
                }
                None => None,
            };
            // Project: 1x1 conv + BN, the gate applied to its input rows, + identity shortcut.
            let mut pp = GemmParams::new(n * hw, s.out_ch, s.expanded_ch);
            pp.has_bias = true;
            pp.has_residual = s.residual;
            pp.a_scale_rows = if gate.is_some() { hw } else { 0 };
            let y = r.alloc_typed(pp.m * pp.n, store)?;
            let residual = s.residual.then_some(&x);
            r.push(
                gemm_fwd(gpu, &pp, &d, &b.project.weight, Some(&b.project.bias), residual, gate.as_ref(), &y)?,
                &format!("{label} project"),
            );
            r.release(d);
            if let Some(g) = gate {
                r.release(g);
            }
            if !tapped.iter().any(|t| std::sync::Arc::ptr_eq(&t.1.buffer, &x.buffer)) {
                r.release(x);
            }
            (x, h, w) = (y, oh, ow);
            let last_of_stage = self.blocks.get(i + 1).is_none_or(|nb| nb.spec.stage != s.stage);
            let name = format!("stage{}", s.stage);
            if last_of_stage && wants(&name) {
                tapped.push((name, x.clone(), [n, h, w, s.out_ch]));
            }
        }

        // Head: 1x1 conv + BN + activation, global average pool, (dropout: identity), classifier.
        let hc = cfg.head_channels();
        let last_ch = self.blocks.last().map_or(cfg.stem_channels(), |b| b.spec.out_ch);
        let mut p = GemmParams::new(n * h * w, hc, last_ch);
        p.has_bias = true;
        p.act = cfg.activation;
        let head = r.alloc_typed(p.m * p.n, store)?;
        r.push(gemm_fwd(gpu, &p, &x, &self.head.weight, Some(&self.head.bias), None, None, &head)?, "head");
        if wants("head") {
            tapped.push(("head".to_string(), head.clone(), [n, h, w, hc]));
        }
        let pp = GlobalAvgPoolParams::new(n, h * w, hc);
        let partial = r.alloc(pp.partial_len())?;
        let features = gpu.empty_typed(n * hc, store, "features")?;
        for d in global_avg_pool_fwd(gpu, &pp, &head, &partial, &features)? {
            r.push(d, "pool");
        }
        let mut p = GemmParams::new(n, cfg.num_classes, hc);
        p.has_bias = true;
        let logits = gpu.empty(n * cfg.num_classes, "logits")?;
        let stored_logits = match store {
            Dtype::F32 => logits.clone(),
            _ => gpu.empty_typed(n * cfg.num_classes, store, "stored logits")?,
        };
        r.push(
            gemm_fwd(
                gpu,
                &p,
                &features,
                &self.classifier.weight,
                Some(&self.classifier.bias),
                None,
                None,
                &stored_logits,
            )?,
            "classifier",
        );
        if store != Dtype::F32 {
            r.push(cast(gpu, &stored_logits, &logits)?, "logits cast");
        }
        let probs = gpu.empty(n * cfg.num_classes, "probabilities")?;
        let sp = SoftmaxParams { rows: n, cols: cfg.num_classes };
        let softmax = softmax_fwd(gpu, &sp, &logits, &probs)?;

        let mut activation_bytes = r.allocated_bytes;
        for b in [&input, &features, &logits, &probs] {
            activation_bytes += b.buffer.size();
        }
        if store != Dtype::F32 {
            activation_bytes += stored_logits.buffer.size();
        }
        let plan = ForwardPlan {
            batch: n,
            input,
            dispatches: std::mem::take(&mut r.dispatches),
            softmax,
            logits,
            features,
            probs,
            taps: tapped,
            activation_bytes,
        };
        Ok((plan, r))
    }
}

/// A tapped intermediate output: (name, NHWC data, [n, h, w, c]).
pub type Tap = (String, Vec<f32>, [usize; 4]);

/// A forward pass recorded once for one (batch, h, w): replaying it is one upload, one compute
/// pass and one readback.
pub struct ForwardPlan {
    pub batch: usize,
    input: GpuBuffer,
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
    /// and then `encode(gpu, None, ..)`.
    pub fn input(&self) -> &GpuBuffer {
        &self.input
    }

    pub fn logits(&self) -> &GpuBuffer {
        &self.logits
    }

    pub fn features(&self) -> &GpuBuffer {
        &self.features
    }

    pub fn probabilities(&self) -> &GpuBuffer {
        &self.probs
    }

    /// Uploads `input` (this plan's batch, NCHW; `None` when the input buffer was filled on the
    /// GPU) and records the whole forward into `encoder`, softmax included when asked.
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
            gpu.queue.write_buffer(&self.input.buffer, 0, bytemuck::cast_slice(input));
        }
        let tail = softmax.then_some(&self.softmax);
        crate::gpu::encode_dispatches(encoder, "forward", self.dispatches.iter().chain(tail));
        Ok(())
    }

    pub fn run(&self, gpu: &Gpu, input: &[f32]) -> Result<ForwardOutput> {
        let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        self.encode(gpu, Some(input), &mut encoder, false)?;
        gpu.queue.submit([encoder.finish()]);
        let mut out = gpu.read_many(&[&self.logits, &self.features])?;
        let features = out.pop().unwrap_or_default();
        let logits = out.pop().unwrap_or_default();
        Ok(ForwardOutput { logits, features })
    }

    /// Runs the plan and returns softmax probabilities (batch, classes).
    pub fn run_probabilities(&self, gpu: &Gpu, input: &[f32]) -> Result<Vec<f32>> {
        let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        self.encode(gpu, Some(input), &mut encoder, true)?;
        gpu.queue.submit([encoder.finish()]);
        gpu.read(&self.probs)
    }

    /// Reads the tapped intermediate outputs.
    pub fn read_taps(&self, gpu: &Gpu) -> Result<Vec<Tap>> {
        let bufs: Vec<&GpuBuffer> = self.taps.iter().map(|t| &t.1).collect();
        let data = gpu.read_many(&bufs)?;
        Ok(self.taps.iter().zip(data).map(|(t, d)| (t.0.clone(), d, t.2)).collect())
    }
}
