//! `effnet`: list GPUs, describe variants, classify images, and run tensors through EfficientNet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use efficientnet_wgpu::gpu::Dtype;
use efficientnet_wgpu::infer::{Classifier, Preprocess};
use efficientnet_wgpu::model::{Config, EfficientNet, Variant, WeightFormat, Weights};
use efficientnet_wgpu::train::{TrainGraph, TrainMemory, TrainOptions};
use efficientnet_wgpu::{Error, Gpu, Result};

#[derive(Parser)]
#[command(name = "effnet", version, about = "EfficientNet B0-B7 and Lite0-4 on the GPU through wgpu")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// Variant: b0..b7, lite0..lite4.
    #[arg(long, default_value = "b0")]
    model: String,
    /// Number of classes; read from the weights file when not given, else 1000.
    #[arg(long)]
    classes: Option<usize>,
}

#[derive(clap::Args)]
struct WeightArgs {
    /// safetensors file in PyTorch layout (torchvision, timm or lukemelas names; f32/f16/bf16).
    #[arg(long)]
    weights: PathBuf,
    /// Naming and numerics of the weights: torchvision | timm | timm-tf | lukemelas. Detected
    /// from the keys when not given (timm and timm-tf share keys: pass timm-tf for `tf_` models).
    #[arg(long)]
    weights_format: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// List the GPU adapters wgpu can use, with their limits.
    Devices {
        #[arg(long)]
        json: bool,
    },
    /// Describe a variant: resolution, channels and blocks per stage, parameters, MACs.
    Info {
        #[command(flatten)]
        model: ModelArgs,
        /// Input side in pixels (default: the variant's resolution).
        #[arg(long)]
        resolution: Option<usize>,
        #[arg(long)]
        json: bool,
        /// Also record a training step on the GPU adapter (nothing runs) and report the memory
        /// it needs: the same figure `bench --train` measures.
        #[arg(long)]
        train_memory: bool,
        /// Batch size for --train-memory.
        #[arg(long, default_value_t = 32)]
        batch: usize,
    },
    /// Classify JPEG/PNG images: top-K classes with ImageNet names.
    Classify {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        weights: WeightArgs,
        /// How many classes to print per image (at least 1).
        #[arg(long, default_value_t = 5, allow_negative_numbers = true, value_parser = at_least_one)]
        top: usize,
        /// Store weights and activations as f16 (arithmetic stays f32): half the memory traffic,
        /// for adapters with SHADER_F16 (`effnet devices` shows it).
        #[arg(long)]
        f16: bool,

        /// One JSON object per image and line.
        #[arg(long)]
        json: bool,
        /// Class names, one per line in class order, for weights that carry none (weights trained
        /// by train_b0 carry their data set's; 1000-class weights default to ImageNet's).
        #[arg(long)]
        labels: Option<PathBuf>,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Run tensor `input` [N,3,H,W] (NCHW f32, fed as is) and write `logits` and `features`
    /// (with `--feature-maps`, also `feature.0` .. `feature.4`: the multi-scale maps, NCHW).
    Run {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        weights: WeightArgs,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// Store weights and activations as f16 (arithmetic stays f32): half the memory traffic,
        /// for adapters with SHADER_F16 (`effnet devices` shows it).
        #[arg(long)]
        f16: bool,
        /// Also write the last feature map at each resolution (1/2 .. 1/32 of the input) as
        /// `feature.0` .. `feature.4`, NCHW, like timm's `features_only` models.
        #[arg(long)]
        feature_maps: bool,
    },
    /// One training-mode step (dropout and stochastic depth off) on tensors `input` [N,3,H,W]
    /// and `target` [N]: writes loss, logits, grad.input, grad.<param> and bn_after.<bn>.*
    Grad {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        weights: WeightArgs,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// BatchNorm momentum (PyTorch semantics); default 0.1 for torchvision/timm weights,
        /// 0.01 for timm-tf/lukemelas.
        #[arg(long)]
        bn_momentum: Option<f32>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("effnet: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Devices { json } => devices(json),
        Command::Info { model, resolution, json, train_memory, batch } => {
            info(&model, resolution, json, train_memory.then_some(batch))
        }
        Command::Classify { model, weights, top, json, labels, images, f16 } => {
            classify(&model, &weights, store(f16), top, json, labels.as_deref(), &images)
        }
        Command::Run { model, weights, input, output, f16, feature_maps } => {
            run_tensor(&model, &weights, store(f16), &input, &output, feature_maps)
        }
        Command::Grad { model, weights, input, output, bn_momentum } => {
            grad(&model, &weights, &input, &output, bn_momentum)
        }
    }
}

fn devices(json: bool) -> Result<()> {
    let adapters = Gpu::adapters();
    if adapters.is_empty() {
        return Err(Error::NoAdapter { detail: String::new() });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&adapters).map_err(|e| Error::invalid(e.to_string()))?);
        return Ok(());
    }
    for a in adapters {
        println!("{} ({}, {})", a.name, a.backend, a.device_type);
        println!("  driver: {} {}", a.driver, a.driver_info);
        println!(
            "  max storage binding {} MiB, max buffer {} MiB, workgroup memory {} KiB, {} invocations/workgroup",
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20,
            a.max_compute_workgroup_storage_size >> 10,
            a.max_compute_invocations_per_workgroup
        );
        println!(
            "  timestamps {}, f16 {}, subgroups {}, immediates {}",
            a.timestamps, a.shader_f16, a.subgroups, a.immediates
        );
    }
    Ok(())
}

fn config(args: &ModelArgs, classes: usize) -> Result<Config> {
    let cfg = Config::new(Variant::parse(&args.model)?, classes);
    cfg.validate()?;
    Ok(cfg)
}

/// A whole number of at least 1, for counts such as `--top`.
fn at_least_one(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<i128>() {
        Ok(n) if n >= 1 => usize::try_from(n).map_err(|_| format!("{s} is too large")),
        Ok(n) => Err(format!("{n} is not allowed: it must be at least 1")),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

fn info(args: &ModelArgs, resolution: Option<usize>, json: bool, train_batch: Option<usize>) -> Result<()> {
    let cfg = config(args, args.classes.unwrap_or(1000))?;
    let res = resolution.unwrap_or(cfg.resolution as usize);
    if res == 0 {
        return Err(Error::invalid("--resolution is 0; it must be at least 1 pixel"));
    }
    let stages = cfg.stage_summary(res, res);
    let (params, macs) = (cfg.param_count(), cfg.macs(res, res));
    let memory = match train_batch {
        Some(n) => Some(TrainMemory::plan(&Gpu::new()?, &cfg, n, res)?),
        None => None,
    };
    if json {
        let v = serde_json::json!({
            "model": cfg.name,
            "params": params,
            "macs": macs,
            "resolution": res,
            "width": cfg.width,
            "depth": cfg.depth,
            "dropout": cfg.dropout,
            "num_classes": cfg.num_classes,
            "blocks": cfg.blocks().len(),
            "stages": stages,
            "train_memory": memory,
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "{}: width {} depth {} resolution {res} dropout {} classes {}",
        cfg.name, cfg.width, cfg.depth, cfg.dropout, cfg.num_classes
    );
    println!(
        "{:<11} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9} {:>11} {:>9}",
        "stage", "in", "out", "blocks", "expand", "kernel", "stride", "output", "params", "MMACs"
    );
    for s in &stages {
        println!(
            "{:<11} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9} {:>11} {:>9.1}",
            s.name,
            s.in_channels,
            s.out_channels,
            s.blocks,
            s.expand_ratio,
            s.kernel,
            s.stride,
            format!("{}x{}", s.out_h, s.out_w),
            s.params,
            s.macs as f64 / 1e6
        );
    }
    println!("parameters: {params}");
    println!("MACs: {macs} ({:.3} G; {:.3} GFLOP)", macs as f64 / 1e9, 2.0 * macs as f64 / 1e9);
    if let Some(m) = memory {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        println!(
            "training step, batch {}{} at {res}x{res} on {}: activations {:.1} MiB, texel scratch {:.1} MiB, \
             parameters + gradients + BN statistics {:.1} MiB, optimizer state {:.1} MiB (AdamW/RMSProp; SGD half), \
             total {:.1} MiB",
            m.batch,
            if m.micro_batch < m.batch { format!(" (micro-batches of {})", m.micro_batch) } else { String::new() },
            m.adapter,
            mib(m.activation_bytes),
            mib(m.texel_scratch_bytes),
            mib(m.parameter_bytes),
            mib(m.optimizer_bytes),
            mib(m.total_bytes())
        );
    }
    Ok(())
}

/// The classifier's class count as stored in a weights file, when it can be read.
/// Reads only the safetensors header (8-byte length, then JSON), not the tensors.
/// The config and weights a user named, with the format's numerics applied.
fn load_weights(args: &ModelArgs, w: &WeightArgs) -> Result<(Config, Weights, WeightFormat)> {
    let format = w.weights_format.as_deref().map(str::parse::<WeightFormat>).transpose()?;
    let from_file = Weights::classes_in_file(&w.weights);
    let classes = args.classes.or(from_file).unwrap_or(1000);
    let mut cfg = match config(args, classes) {
        // A class count read from the file is the file's fault: name it.
        Err(e) if args.classes.is_none() && from_file.is_some() => {
            return Err(Error::file(&w.weights, format!("its classifier does not fit: {e}")))
        }
        r => r?,
    };
    if let Some(f) = format {
        f.adjust_config(&mut cfg);
    }
    let (weights, detected) = Weights::load(&w.weights, &cfg, format)?;
    if format.is_none() {
        detected.adjust_config(&mut cfg);
        if detected == WeightFormat::Timm {
            eprintln!("effnet: weights detected as timm (PyTorch-trained); pass --weights-format timm-tf for timm's tf_ models");
        }
    }
    Ok((cfg, weights, format.unwrap_or(detected)))
}

/// The GPU, saying so when its pipeline cache on disk could not be used.
fn open_gpu() -> Result<Arc<Gpu>> {
    let gpu = Gpu::new()?;
    if let Some(why) = &gpu.pipeline_cache_status().ignored {
        eprintln!("effnet: note: pipeline cache {why}");
    }
    Ok(Arc::new(gpu))
}

fn store(f16: bool) -> Dtype {
    if f16 {
        Dtype::F16
    } else {
        Dtype::F32
    }
}

fn load_model(gpu: Arc<Gpu>, args: &ModelArgs, w: &WeightArgs, store: Dtype) -> Result<EfficientNet> {
    let (cfg, weights, _) = load_weights(args, w)?;
    EfficientNet::new_with_store(gpu, cfg, &weights, store)
}

fn classify(
    args: &ModelArgs,
    w: &WeightArgs,
    store: Dtype,
    top: usize,
    json: bool,
    labels: Option<&Path>,
    images: &[PathBuf],
) -> Result<()> {
    let gpu = open_gpu()?;
    let (cfg, weights, format) = load_weights(args, w)?;
    let model = EfficientNet::new_with_store(gpu.clone(), cfg, &weights, store)?;
    let mut classifier = Classifier::new(model);
    // Resize, crop and normalisation as the weights' source does it for this variant.
    classifier.preprocess = Preprocess::for_weights(format, &classifier.model.config);
    let names = match labels {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
            let classes = classifier.model.config.num_classes;
            if names.len() != classes {
                return Err(Error::file(path, format!("{} names for a model of {classes} classes", names.len())));
            }
            Some(names)
        }
        None => Weights::class_names_in_file(&w.weights)?,
    };
    if let Some(names) = names {
        classifier = classifier.with_labels(names).map_err(|e| Error::file(&w.weights, e.to_string()))?;
    }
    let mut failed = 0;
    for path in images {
        // A truncated JPEG still decodes (its missing part gray): classified, with a warning.
        for w in efficientnet_wgpu::data::image_warnings(path).unwrap_or_default() {
            eprintln!("warning: {w}");
        }
        // One image at a time so that an undecodable file is reported and the rest still run.
        match classifier.classify_files(std::slice::from_ref(path), top) {
            Ok(mut preds) => {
                let preds = preds.pop().unwrap_or_default();
                if json {
                    let top: Vec<_> = preds
                        .iter()
                        .map(|p| serde_json::json!({"class": p.class, "label": p.label, "prob": p.prob}))
                        .collect();
                    println!("{}", serde_json::json!({"path": path, "top": top}));
                } else {
                    println!("{}", path.display());
                    for p in preds {
                        println!("  {:>6.2}%  {:>4}  {}", 100.0 * p.prob, p.class, p.label.as_deref().unwrap_or("-"));
                    }
                }
            }
            Err(e) => {
                eprintln!("effnet: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(Error::invalid(format!("{failed} of {} images could not be classified", images.len())));
    }
    Ok(())
}

/// `model.forward`, with a progress bar on stderr where the batch runs in more than one slice: a
/// large batch on a CPU adapter can take minutes.
fn forward_with_progress(
    model: &EfficientNet,
    data: &[f32],
    n: usize,
    h: usize,
    w: usize,
) -> Result<efficientnet_wgpu::model::ForwardOutput> {
    let bar = indicatif::ProgressBar::hidden();
    if model.max_batch(h, w)? < n {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_length(n as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} images | {elapsed_precise} ETA {eta_precise}",
            )
            .map_err(|e| Error::invalid(e.to_string()))?
            .progress_chars("=> "),
        );
    }
    let out = model.forward_with_progress(data, n, h, w, |done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    out
}

/// Reads tensor `input` [N, 3, H, W] (NCHW f32) and, when `with_target`, `target` [N] (i64 or i32).
fn read_input(input: &Path, with_target: bool) -> Result<(Vec<usize>, Vec<f32>, Vec<u32>)> {
    let bytes = std::fs::read(input).map_err(|e| Error::io(input, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::safetensors(input, e))?;
    let named = |name: &str| {
        st.tensor(name)
            .map_err(|_| Error::file(input, format!("no tensor named {name:?} (found: {})", st.names().join(", "))))
    };
    let t = named("input")?;
    let shape = t.shape().to_vec();
    if shape.len() != 4 || shape[1] != 3 || shape.contains(&0) {
        return Err(Error::file(
            input,
            format!("tensor \"input\" must be [N, 3, H, W] (NCHW) with N, H and W at least 1, got {shape:?}"),
        ));
    }
    let data: Vec<f32> = match t.dtype() {
        safetensors::Dtype::F32 => bytemuck::pod_collect_to_vec(t.data()),
        safetensors::Dtype::F16 => {
            t.data().chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
        }
        safetensors::Dtype::BF16 => {
            t.data().chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
        }
        d => return Err(Error::file(input, format!("tensor \"input\" has dtype {d:?}; it must be F32, F16 or BF16"))),
    };
    let mut targets = Vec::new();
    if with_target {
        let t = named("target")?;
        if t.shape() != [shape[0]] {
            return Err(Error::file(input, format!("tensor \"target\" must be [{}], got {:?}", shape[0], t.shape())));
        }
        let values: Vec<i64> = match t.dtype() {
            safetensors::Dtype::I64 => bytemuck::pod_collect_to_vec::<u8, i64>(t.data()),
            safetensors::Dtype::I32 => {
                bytemuck::pod_collect_to_vec::<u8, i32>(t.data()).into_iter().map(i64::from).collect()
            }
            d => {
                return Err(Error::DType {
                    path: input.to_path_buf(),
                    name: "target".into(),
                    dtype: format!("{d:?} (expected I64 or I32)"),
                })
            }
        };
        for v in values {
            let class = u32::try_from(v)
                .map_err(|_| Error::file(input, format!("target class {v} is negative or too large")))?;
            targets.push(class);
        }
    }
    Ok((shape, data, targets))
}

fn run_tensor(
    args: &ModelArgs,
    w: &WeightArgs,
    store: Dtype,
    input: &Path,
    output: &Path,
    feature_maps: bool,
) -> Result<()> {
    let (shape, data, _) = read_input(input, false)?;
    let model = load_model(open_gpu()?, args, w, store)?;
    let out = forward_with_progress(&model, &data, shape[0], shape[2], shape[3])?;
    let n = shape[0];
    let mut tensors = vec![
        ("logits".to_string(), (vec![n, model.config.num_classes], out.logits)),
        ("features".to_string(), (vec![n, model.config.head_channels()], out.features)),
    ];
    let mut meta = HashMap::from([("model".to_string(), model.config.name.clone())]);
    if feature_maps {
        let maps = model.features(&data, n, shape[2], shape[3])?;
        let levels: Vec<String> = maps
            .iter()
            .map(|m| format!("{} (1/{}, {} channels)", m.level.tap, m.level.reduction, m.level.channels))
            .collect();
        meta.insert("feature_levels".into(), levels.join(", "));
        for (i, m) in maps.into_iter().enumerate() {
            tensors.push((format!("feature.{i}"), (m.shape.to_vec(), m.data)));
        }
    }
    write_f32_safetensors(output, tensors, meta)
}

/// One training-mode step on the file's `input` and `target`; writes the loss, logits and every
/// gradient and running statistic in the names of the weights' format.
fn grad(args: &ModelArgs, w: &WeightArgs, input: &Path, output: &Path, bn_momentum: Option<f32>) -> Result<()> {
    let (shape, data, targets) = read_input(input, true)?;
    let (cfg, weights, format) = load_weights(args, w)?;
    let gpu = Gpu::new()?;
    let graph = TrainGraph::new(&gpu, cfg, &weights)?;
    let opts = {
        let mut o = TrainOptions::default();
        o.bn_momentum = bn_momentum.unwrap_or(format.default_bn_momentum());
        o.update_running_stats = true;
        o.dropout = false;
        o.drop_path = false;
        o.label_smoothing = 0.0;
        o.grad_input = true;
        o.resize_to = None;
        o.recompute = true;
        o
    };
    let [n, c, h, wd] = [shape[0], shape[1], shape[2], shape[3]];
    let report = graph.step_once(&gpu, &data, &targets, [n, c, h, wd], 0, &opts)?;
    let mut tensors: Vec<NamedTensor> = vec![
        ("loss".into(), (vec![], vec![report.loss])),
        ("logits".into(), (vec![n, graph.config.num_classes], report.logits)),
    ];
    if let Some(g) = report.grad_input {
        tensors.push(("grad.input".into(), (shape.clone(), g)));
    }
    for (name, t) in graph.named_gradients_and_running(&gpu, format)? {
        tensors.push((name, (t.shape, t.data)));
    }
    write_f32_safetensors(output, tensors, HashMap::from([("model".to_string(), graph.config.name.clone())]))
}

/// A named f32 tensor: (name, (shape, values)).
type NamedTensor = (String, (Vec<usize>, Vec<f32>));

/// Writes f32 tensors atomically where `path` is a regular file, through it where it is a device
/// (`efficientnet_wgpu::fsio`).
fn write_f32_safetensors(path: &Path, tensors: Vec<NamedTensor>, meta: HashMap<String, String>) -> Result<()> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(k, (shape, data))| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytemuck::cast_slice(data))
                .map(|v| (k.clone(), v))
                .map_err(|e| Error::invalid(e.to_string()))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::tensor::serialize(views, Some(meta)).map_err(|e| Error::invalid(e.to_string()))?;
    efficientnet_wgpu::fsio::write_atomic(path, bytes)
}
