//! Forward benchmark: images/s of a recorded forward pass, and a per-kernel table from GPU
//! timestamps.
//!
//!     cargo run --release --example bench -- --model b0 --batch 8 [--resolution 224] [--iters 5] [--json]
//!
//! With `--loader`, the data loader alone (no GPU): images/s of one epoch over an image folder,
//! decoded, random-resized-cropped and flipped as for training.
//!
//!     cargo run --release --example bench -- --loader --data DIR [--resolution 224] [--workers N] [--batch 64] [--json]

use std::collections::BTreeMap;
use std::time::Instant;

use clap::Parser;
use efficientnet_wgpu::gpu::{encode_dispatches, encoded_copies, profile_dispatches, Dispatch, Dtype};
use efficientnet_wgpu::model::{conv_padding, Config, EfficientNet, ForwardPlan, Variant, Weights};
use efficientnet_wgpu::ops::{
    add_inplace, gemm_bwd_data, gemm_bwd_weight, gemm_fwd, Activation, GemmParams, KernelVariant,
};
use efficientnet_wgpu::train::{TrainGraph, TrainMemory, TrainOptions, TrainStep};
use efficientnet_wgpu::{Gpu, Result};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "b0")]
    model: String,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Input side (default: the variant's resolution).
    #[arg(long)]
    resolution: Option<usize>,
    #[arg(long, default_value_t = 1000)]
    classes: usize,
    /// Timed forward passes (after one warm-up).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Skip the per-kernel profile.
    #[arg(long)]
    no_profile: bool,
    /// One JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Forward with weights and activations stored as f16 (adapters with SHADER_F16).
    #[arg(long)]
    f16: bool,
    /// Time a training step (forward, loss, backward; dropout and stochastic depth on) instead.
    #[arg(long)]
    train: bool,
    /// With --train: run each batch as micro-batches of at most this many images (as `Trainer`
    /// does, and does by itself when a batch exceeds the device's binding limit).
    #[arg(long)]
    micro_batch: Option<usize>,
    /// With --train: take the BN statistics of the 1x1 convs in their own pass over the tensor
    /// instead of the GEMM's epilogue (`TrainOptions::fused_bn_stats` off), to compare.
    #[arg(long)]
    separate_bn_stats: bool,
    /// Measure the performance targets for this adapter class (B0; CPU adapters: forward at batch
    /// 8 and 224 px, a training step at batch 32 and 32 px with 10 classes, every 1x1 conv of both
    /// against the best GEMM variant; GPUs: batch-1 latency and training at batch 64, 224 px) and print
    /// them next to the `--baseline` figures (PyTorch's and burn's).
    #[arg(long)]
    targets: bool,
    /// With --targets: the JSON lines `baselines/pytorch.sh` (PyTorch) and
    /// `baselines/burn.sh` (burn) printed on this machine, in one file.
    #[arg(long)]
    baseline: Option<std::path::PathBuf>,
    /// Also time every GEMM variant on each 1x1-conv shape of the forward pass (with --train: the
    /// input and weight gradients of the step's), and compare the variant the library picks with
    /// the best one.
    #[arg(long)]
    gemm_sweep: bool,
    /// Time the data loader alone over the image folder `--data` (DIR/<class>/<image>.jpg): one
    /// epoch of random-resized crops at `--resolution` (default 224) in batches of `--batch`.
    #[arg(long)]
    loader: bool,
    /// With --loader: the image folder.
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// With --loader: decoding threads (default: the machine's available parallelism).
    #[arg(long)]
    workers: Option<usize>,
    /// With --loader: batches in flight (default: `LoaderOptions`' default).
    #[arg(long)]
    prefetch: Option<usize>,
    /// Time data-parallel training steps on --devices devices (the whole --batch split between
    /// them): the compute, and the gradient exchange's bytes and seconds.
    #[arg(long)]
    exchange: bool,
    /// With --exchange: devices (one per adapter where there are that many, else on one adapter).
    #[arg(long, default_value_t = 2)]
    devices: usize,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

/// The texel copies a replay of `dispatches` encodes (buffer ranges copied into scratch textures
/// before the texel kernels that read them, unless the texture still holds the range; outside the
/// per-kernel timestamps): their count, bytes and the median seconds of all of them alone, one
/// submit each time.
fn time_copies(gpu: &Gpu, dispatches: &[&Dispatch], iters: usize) -> Result<(usize, u64, f64)> {
    let copies = encoded_copies(dispatches.iter().copied());
    let bytes = copies.iter().map(|c| 4 * c.src.len as u64).sum();
    let s = time_submits(gpu, iters, "the texel copies", |encoder| copies.iter().for_each(|c| c.encode(encoder)))?;
    Ok((copies.len(), bytes, s))
}

/// Seconds a dispatch costs beyond its work on this adapter: 256 dependent dispatches of a
/// 64-element add in one submit, the median of 5, per dispatch. On lavapipe this is mostly waking
/// its thread pool (~40 us; 3 us with LP_NUM_THREADS=0, which runs every kernel on one thread).
fn launch_cost(gpu: &Gpu) -> Result<f64> {
    const COUNT: usize = 256;
    let (x, y) = (gpu.upload(&[1.0; 64], "launch x")?, gpu.upload(&[0.0; 64], "launch y")?);
    let adds = (0..COUNT).map(|_| add_inplace(gpu, 64, &x, &y)).collect::<Result<Vec<_>>>()?;
    let s =
        time_submits(gpu, 5, "the launch-cost dispatches", |encoder| encode_dispatches(encoder, "launch cost", &adds))?;
    Ok(s / COUNT as f64)
}

/// Median seconds of `runs` submits of what `encode` records (after one warm-up), each waited for.
fn time_submits(gpu: &Gpu, runs: usize, what: &str, encode: impl Fn(&mut wgpu::CommandEncoder)) -> Result<f64> {
    let mut times = Vec::new();
    for _ in 0..runs.max(1) + 1 {
        let t = Instant::now();
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        encode(&mut encoder);
        gpu.queue.submit([encoder.finish()]);
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| efficientnet_wgpu::Error::gpu(format!("waiting for {what}"), e))?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.remove(0); // warm-up
    Ok(median(times))
}

/// The launch cost per dispatch and what the pass's `dispatches` add up to at that rate: part of
/// each kernel's timestamps (a timestamped 64-element add reads 30-150 us on lavapipe).
fn print_launch(launch_s: f64, dispatches: usize) {
    println!(
        "launch cost: {:.0} us per dispatch (a 64-element add's), ~{:.1} ms of the {dispatches} dispatches' timestamps",
        launch_s * 1e6,
        launch_s * 1e3 * dispatches as f64
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Per-dispatch GPU times of a recorded pass (one timestamped pass per dispatch), and their sums
/// per kernel.
#[derive(Default)]
struct Profile {
    /// Label, nanoseconds, FLOPs, bytes; in recording order.
    dispatches: Vec<(String, f64, u64, u64)>,
    /// Kernel name: nanoseconds, dispatches, FLOPs, bytes.
    kernels: BTreeMap<&'static str, (f64, usize, u64, u64)>,
    total_ns: f64,
}

impl Profile {
    fn measure(gpu: &Gpu, dispatches: &[&Dispatch]) -> Result<Self> {
        let mut p = Profile::default();
        for (d, t) in dispatches.iter().zip(profile_dispatches(gpu, dispatches)?) {
            let e = p.kernels.entry(d.kernel.name()).or_default();
            e.0 += t;
            e.1 += 1;
            e.2 += d.flops;
            e.3 += d.bytes;
            p.total_ns += t;
            p.dispatches.push((d.label.clone(), t, d.flops, d.bytes));
        }
        Ok(p)
    }

    fn kernels_json(&self) -> Vec<serde_json::Value> {
        self.kernels
            .iter()
            .map(|(k, (t, c, f, b))| {
                serde_json::json!({"kernel": k, "dispatches": c, "ms": t / 1e6, "gflops": *f as f64 / t,
                    "gbps": *b as f64 / t, "share": t / self.total_ns})
            })
            .collect()
    }

    /// In recording order, so runs of two builds line up dispatch by dispatch.
    fn dispatches_json(&self) -> Vec<serde_json::Value> {
        self.dispatches
            .iter()
            .map(|(label, t, f, b)| {
                serde_json::json!({"label": label, "ms": t / 1e6, "gflops": *f as f64 / t, "gbps": *b as f64 / t})
            })
            .collect()
    }

    /// The per-kernel table, slowest first, then the `slowest` slowest dispatches.
    fn print(&self, slowest: usize) {
        let width = self.kernels.keys().map(|k| k.len()).max().unwrap_or(0).max(6);
        println!("{:<width$} {:>6} {:>10} {:>9} {:>9} {:>7}", "kernel", "count", "ms", "GFLOP/s", "GB/s", "share");
        let mut kernels: Vec<_> = self.kernels.iter().collect();
        kernels.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
        for (k, (t, c, f, b)) in kernels {
            println!(
                "{:<width$} {:>6} {:>10.2} {:>9.2} {:>9.2} {:>6.1}%",
                k,
                c,
                t / 1e6,
                *f as f64 / t,
                *b as f64 / t,
                100.0 * t / self.total_ns
            );
        }
        let mut rows: Vec<_> = self.dispatches.iter().collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        rows.truncate(slowest);
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        println!("\nslowest dispatches:");
        for (label, t, f, _) in rows {
            println!("  {:<width$} {:>8.2} ms {:>8.2} GFLOP/s", label, t / 1e6, *f as f64 / t);
        }
    }
}

fn run(args: Args) -> Result<()> {
    if args.loader {
        return run_loader(args);
    }
    if args.targets {
        return run_targets(args);
    }
    if args.train {
        return run_train(args);
    }
    if args.exchange {
        return run_exchange(args);
    }
    let gpu = std::sync::Arc::new(Gpu::new()?);
    let config = Config::new(Variant::parse(&args.model)?, args.classes);
    let res = args.resolution.unwrap_or(config.resolution as usize);
    let weights = Weights::init_random(&config, 0);
    let t = Instant::now();
    let store = if args.f16 { Dtype::F16 } else { Dtype::F32 };
    let model = EfficientNet::new_with_store(gpu.clone(), config.clone(), &weights, store)?;
    let upload_s = t.elapsed().as_secs_f64();
    let n = args.batch.max(1);
    let t = Instant::now();
    let plan = model.plan(n, res, res, &[])?;
    let build_s = t.elapsed().as_secs_f64();
    let (step, encode_s) = time_forward(&gpu, &plan, res, args.iters)?;
    let images_per_s = n as f64 / step;
    // Device memory: what the plan holds, the model's weights, the scratch textures (texel family).
    let (activation_bytes, weight_bytes, scratch_bytes) =
        (plan.activation_bytes, model.weight_bytes(), gpu.scratch_texture_bytes());

    let profile = if !args.no_profile && gpu.caps.timestamps {
        Some(Profile::measure(&gpu, &plan.dispatches.iter().collect::<Vec<_>>())?)
    } else {
        None
    };
    let gflop = config.macs(res, res) as f64 * 2.0 * n as f64 / 1e9;
    let (copies, copy_bytes, copy_s) = time_copies(&gpu, &plan.dispatches.iter().collect::<Vec<_>>(), args.iters)?;
    let launch_s = launch_cost(&gpu)?;

    let sweep = if args.gemm_sweep && gpu.caps.timestamps {
        gemm_sweep(&gpu, &config, n, res, &[GemmOp::Fwd])?
    } else {
        Vec::new()
    };

    if args.json {
        let sweep_json = sweep_json(&sweep);
        let profile = profile.unwrap_or_default();
        println!(
            "{}",
            serde_json::json!({
                "adapter": gpu.describe(), "model": config.name, "batch": n, "resolution": res,
                "store": format!("{store:?}"), "forward_s": step, "images_per_s": images_per_s, "gflops_per_s": gflop / step,
                "encode_ms": encode_s * 1e3, "dispatches": plan.dispatches.len(),
                "pipelines": gpu.pipeline_count(), "plan_build_s": build_s, "weights_upload_s": upload_s,
                "kernels": profile.kernels_json(), "per_dispatch": profile.dispatches_json(), "gemm_sweep": sweep_json,
                "texel_copies": copies, "texel_copy_bytes": copy_bytes, "texel_copies_s": copy_s,
                "activation_bytes": activation_bytes, "weight_bytes": weight_bytes,
                "texel_scratch_bytes": scratch_bytes, "launch_us": launch_s * 1e6,
            })
        );
        return Ok(());
    }

    println!("adapter: {}", gpu.describe());
    println!(
        "{} ({store:?}) batch {n} at {res}x{res}: {} dispatches, {} pipelines",
        config.name,
        plan.dispatches.len(),
        gpu.pipeline_count()
    );
    println!("weights upload {:.2} s, plan build {:.2} s (pipelines, bind groups, buffers: once)", upload_s, build_s);
    println!(
        "forward: {:.1} ms per batch, {:.2} images/s, {:.2} GFLOP/s (model FLOPs), CPU encode {:.2} ms",
        step * 1e3,
        images_per_s,
        gflop / step,
        encode_s * 1e3
    );
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "device memory: {:.1} MiB = activations {:.1} + weights {:.1} + texel scratch {:.1}",
        mib(activation_bytes + weight_bytes + scratch_bytes),
        mib(activation_bytes),
        mib(weight_bytes),
        mib(scratch_bytes)
    );
    if copies > 0 {
        println!(
            "texel copies (outside the kernel timestamps): {copies} per pass, {:.1} MiB, {:.1} ms alone",
            copy_bytes as f64 / (1 << 20) as f64,
            copy_s * 1e3
        );
    }
    print_launch(launch_s, plan.dispatches.len());
    let Some(profile) = profile else {
        println!(
            "(no per-kernel profile: {})",
            if args.no_profile { "--no-profile" } else { "adapter has no timestamps" }
        );
        return Ok(());
    };
    print_sweep(&sweep);
    println!("\nper kernel (GPU timestamps, one pass per dispatch; total {:.1} ms):", profile.total_ns / 1e6);
    profile.print(12);
    Ok(())
}

/// `--loader`: one epoch of the loader over the folder `--data`, timed from start to the last
/// batch. The files are read once before, so the figure is decoding and augmentation, not the disk.
/// `--exchange`: data-parallel steps of random batches; the median of each exchange figure over
/// `--iters` steps after one warm-up step.
fn run_exchange(args: Args) -> Result<()> {
    use efficientnet_wgpu::data::Batch;
    use efficientnet_wgpu::train::{Exchange, TrainConfig, Trainer};
    let config = Config::new(Variant::parse(&args.model)?, args.classes);
    let res = args.resolution.unwrap_or(config.resolution as usize);
    let mut tc = TrainConfig::default();
    tc.batch_size = args.batch;
    tc.resolution = res;
    tc.micro_batch = None;
    let gpus: Vec<std::sync::Arc<Gpu>> = Gpu::open_many(args.devices)?.into_iter().map(std::sync::Arc::new).collect();
    let adapter = gpus[0].describe();
    let weights = Weights::init_random(&config, 0);
    let mut trainer = Trainer::new_data_parallel(gpus, config.clone(), &weights, tc, 1000)?;
    let mut figures: Vec<Exchange> = Vec::new();
    for i in 0..=args.iters {
        let batch = Batch {
            input: (0..args.batch * 3 * res * res).map(|j| ((j * 7 + i) % 255) as f32 / 255.0 - 0.5).collect(),
            targets: (0..args.batch as u32).map(|j| j % args.classes as u32).collect(),
            h: res,
            w: res,
        };
        trainer.train_batch(&batch)?;
        if i > 0 {
            figures.extend(trainer.last_exchange().cloned());
        }
    }
    let median = |f: fn(&Exchange) -> f64| {
        let mut v: Vec<f64> = figures.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let e = figures.first().cloned().unwrap_or_default();
    let (compute, read, gather, update) = (
        median(|e| e.compute_seconds),
        median(|e| e.read_seconds),
        median(|e| e.gather_seconds),
        median(|e| e.sum_seconds),
    );
    let share = (read + gather + update) / (compute + read + gather + update);
    let out = serde_json::json!({
        "model": config.name, "resolution": res, "batch": args.batch, "devices": args.devices, "adapter": adapter,
        "gradient_bytes": e.gradient_bytes, "read_bytes": e.read_bytes, "uploaded_bytes": e.uploaded_bytes,
        "compute_s": compute, "read_s": read, "gather_s": gather, "sum_s": update, "exchange_share": share,
    });
    if args.json {
        println!("{out}");
    } else {
        println!(
            "{} at {res} px, batch {} on {} devices ({adapter}): gradients {:.1} MB per replica; step: compute {:.3} s, \
             read back {:.3} s, gather {:.3} s, upload + sum {:.3} s; exchange {:.0}% of the step (update not counted)",
            config.name,
            args.batch,
            args.devices,
            e.gradient_bytes as f64 / 1e6,
            compute,
            read,
            gather,
            update,
            100.0 * share
        );
    }
    Ok(())
}

fn run_loader(args: Args) -> Result<()> {
    use efficientnet_wgpu::data::{load_image_folder, Augment, FolderSplit, Loader, LoaderOptions, Normalize, Source};
    let dir = args.data.as_deref().ok_or_else(|| {
        efficientnet_wgpu::Error::invalid("--loader needs --data DIR, an image folder (DIR/<class>/<image>.jpg)")
    })?;
    let res = args.resolution.unwrap_or(224);
    let batch = args.batch.max(1);
    let mut options = LoaderOptions::default();
    options.workers = args.workers.unwrap_or(options.workers);
    options.prefetch = args.prefetch.unwrap_or(options.prefetch);
    let (ds, _) = load_image_folder(dir, FolderSplit { held_out: 0.0 })?;
    let Source::Files { paths, .. } = &ds.source else { unreachable!("an image folder is files") };
    let t = Instant::now();
    let (mut bytes, mut pixels) = (0u64, 0u64);
    for p in paths {
        bytes += std::fs::read(p).map_err(|e| efficientnet_wgpu::Error::io(p, e))?.len() as u64;
        pixels += image::image_dimensions(p).map_or(0, |(w, h)| w as u64 * h as u64);
    }
    let read_s = t.elapsed().as_secs_f64();
    let augment = Augment::RandomResizedCrop { size: res };
    let t = Instant::now();
    let loader = Loader::start_with(&ds, batch, 0, 0, 0, true, false, augment, Normalize::IMAGENET, res, options)?;
    let meter = loader.meter();
    let mut images = 0;
    for b in loader {
        images += b?.len();
    }
    let seconds = t.elapsed().as_secs_f64();
    let stats = meter.stats();
    let images_per_s = images as f64 / seconds;
    let mean_mp = pixels as f64 / paths.len().max(1) as f64 / 1e6;
    let cores = LoaderOptions::available_workers();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "mode": "loader", "data": dir.display().to_string(), "images": images,
                "mean_megapixels": mean_mp, "file_bytes": bytes, "resolution": res, "batch": batch,
                "workers": stats.workers, "prefetch": options.prefetch, "available_parallelism": cores,
                "seconds": seconds, "images_per_s": images_per_s,
                "worker_seconds": stats.worker_seconds, "capacity_images_per_s": stats.capacity_images_per_s(),
                "consumer_wait_seconds": stats.wait_seconds, "files_read_s": read_s,
            })
        );
        return Ok(());
    }
    println!(
        "{images} images of {} ({mean_mp:.1} MP on average, {:.0} MB; read once first in {read_s:.1} s)",
        dir.display(),
        bytes as f64 / 1e6
    );
    println!(
        "loader at {res}x{res}, batch {batch}, {} workers, prefetch {} ({cores} cores available):",
        stats.workers, options.prefetch
    );
    println!(
        "  {images_per_s:.2} images/s ({seconds:.2} s); {:.2} images/s per worker-second; consumer waited {:.2} s",
        stats.images as f64 / stats.worker_seconds.max(1e-9),
        stats.wait_seconds
    );
    Ok(())
}

/// Median seconds per forward pass of `plan` (upload, one submit, logits readback) over `iters`
/// runs after a warm-up, and the median CPU encode time.
fn time_forward(gpu: &Gpu, plan: &ForwardPlan, res: usize, iters: usize) -> Result<(f64, f64)> {
    let input: Vec<f32> = (0..plan.batch * 3 * res * res).map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0).collect();
    plan.run(gpu, &input)?; // warm-up: first-use JIT and allocations
    let (mut step_s, mut encode_s) = (Vec::new(), Vec::new());
    for _ in 0..iters.max(1) {
        let t = Instant::now();
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        plan.encode(gpu, Some(&input), &mut encoder, false)?;
        let cmd = encoder.finish();
        encode_s.push(t.elapsed().as_secs_f64());
        gpu.queue.submit([cmd]);
        gpu.read(plan.logits())?;
        step_s.push(t.elapsed().as_secs_f64());
    }
    Ok((median(step_s), median(encode_s)))
}

/// A recorded training step for a batch, in micro-batches as `Trainer` makes them where the batch
/// exceeds the binding limit (or `micro`): near-equal parts, timed together.
struct TrainTiming {
    step: TrainStep,
    parts: usize,
    input: Vec<f32>,
    targets: Vec<u32>,
}

impl TrainTiming {
    fn record(
        gpu: &Gpu,
        graph: &TrainGraph,
        n: usize,
        res: usize,
        classes: usize,
        micro: Option<usize>,
        opts: &TrainOptions,
    ) -> Result<Self> {
        let sizes = graph.micro_batches(gpu, n, res, res, opts, micro)?;
        let (parts, len) = (sizes.len(), sizes[0]);
        let step = graph.record_step(gpu, len, res, res, opts)?;
        let input = (0..len * 3 * res * res).map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0).collect();
        let targets = (0..len as u32).map(|i| i % classes as u32).collect();
        Ok(TrainTiming { step, parts, input, targets })
    }

    /// Images per timed step (the batch, rounded up to whole micro-batches).
    fn images(&self) -> usize {
        self.step.batch * self.parts
    }

    /// Median seconds per step (every micro-batch, one submit each, then the loss readback) over
    /// `iters` steps after a warm-up, and the median CPU encode time. The gradient averaging of
    /// micro-batches (one small add each) is not included.
    fn time(&self, gpu: &Gpu, iters: usize) -> Result<(f64, f64)> {
        self.step.run(gpu, &self.input, &self.targets, 0)?;
        gpu.read(self.step.loss())?;
        let (mut times, mut encode_s) = (Vec::new(), Vec::new());
        for i in 0..iters.max(1) {
            let t = Instant::now();
            let mut encode = 0.0;
            for part in 0..self.parts {
                let e = Instant::now();
                let mut encoder = gpu.device.create_command_encoder(&Default::default());
                let seed = (i * self.parts + part) as u32 + 1;
                self.step.encode(gpu, &self.input, &self.targets, seed, &mut encoder)?;
                let cmd = encoder.finish();
                encode += e.elapsed().as_secs_f64();
                gpu.queue.submit([cmd]);
            }
            gpu.read(self.step.loss())?;
            encode_s.push(encode);
            times.push(t.elapsed().as_secs_f64());
        }
        Ok((median(times), median(encode_s)))
    }
}

/// One line of the targets table: what, ours, the goal and whether it is met, and PyTorch's and
/// burn's figures on this machine (from --baseline).
struct TargetRow {
    what: String,
    ours: f64,
    unit: &'static str,
    goal: String,
    /// None where the goal needs a baseline that is missing.
    met: Option<bool>,
    pytorch: Option<f64>,
    burn: Option<f64>,
}

/// PyTorch's images/s for one measurement in the JSON lines of baselines/pytorch.py.
fn baseline(lines: &[serde_json::Value], what: &str, device: &str, batch: usize, res: usize) -> Option<f64> {
    baseline_field(lines, "pytorch", what, device, batch, res, "images_per_s")
}

/// burn's images/s for one measurement in the JSON lines of baselines/burn.sh (burn's wgpu
/// backend on this machine's adapter).
fn burn_baseline(lines: &[serde_json::Value], what: &str, batch: usize, res: usize) -> Option<f64> {
    baseline_field(lines, "burn", what, "wgpu", batch, res, "images_per_s")
}

/// One field of one measurement in the baselines' JSON lines: PyTorch's strict fp32 figure on
/// CUDA (see `baseline_line`).
fn baseline_field(
    lines: &[serde_json::Value],
    framework: &str,
    what: &str,
    device: &str,
    batch: usize,
    res: usize,
    field: &str,
) -> Option<f64> {
    baseline_line(lines, framework, what, device, batch, res, false).and_then(|l| l[field].as_f64())
}

/// PyTorch's images/s on CUDA with its default TF32 convolutions, for the note under the table.
fn pytorch_tf32(lines: &[serde_json::Value], what: &str, batch: usize, res: usize) -> Option<f64> {
    baseline_line(lines, "pytorch", what, "cuda", batch, res, true).and_then(|l| l["images_per_s"].as_f64())
}

/// The line of one measurement. A line without "framework" is PyTorch's (pytorch.py wrote none
/// before burn's baseline existed). On CUDA each PyTorch figure comes twice: strict fp32 and its
/// default, which runs fp32 convolutions on TF32 tensor cores ("tf32": true) that our kernels,
/// like any WGSL, cannot reach; a line without "tf32" is strict.
fn baseline_line<'a>(
    lines: &'a [serde_json::Value],
    framework: &str,
    what: &str,
    device: &str,
    batch: usize,
    res: usize,
    tf32: bool,
) -> Option<&'a serde_json::Value> {
    lines.iter().find(|l| {
        l["framework"].as_str().unwrap_or("pytorch") == framework
            && l["what"] == what
            && l["device"] == device
            && l["batch"] == batch as u64
            && l["resolution"] == res as u64
            && l["tf32"].as_bool().unwrap_or(false) == tf32
    })
}

fn run_targets(args: Args) -> Result<()> {
    let gpu = std::sync::Arc::new(Gpu::new()?);
    let lines: Vec<serde_json::Value> = match &args.baseline {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| efficientnet_wgpu::Error::io(p, e))?
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        None => Vec::new(),
    };
    let cpu = gpu.caps.kernel_class == efficientnet_wgpu::gpu::KernelClass::Cpu;
    let config = Config::new(Variant::B0, 1000);
    let model = EfficientNet::new(gpu.clone(), config.clone(), &Weights::init_random(&config, 0))?;
    let mut rows = Vec::new();
    // Figures beside the table's (PyTorch's default TF32 convolutions on CUDA).
    let mut notes = Vec::new();
    if cpu {
        let (s, _) = time_forward(&gpu, &*model.plan(8, 224, 224, &[])?, 224, args.iters)?;
        let ours = 8.0 / s;
        let pytorch = baseline(&lines, "forward", "cpu", 8, 224);
        let (what, unit, goal, met) = ("forward, batch 8, 224 px".into(), "images/s", ">= 20".into(), ours >= 20.0);
        let burn = burn_baseline(&lines, "forward", 8, 224);
        rows.push(TargetRow { what, ours, unit, goal, met: Some(met), pytorch, burn });
        let c10 = Config::new(Variant::B0, 10);
        let graph = TrainGraph::new(&gpu, c10.clone(), &Weights::init_random(&c10, 0))?;
        let (s, _) =
            TrainTiming::record(&gpu, &graph, 32, 32, 10, None, &TrainOptions::default())?.time(&gpu, args.iters)?;
        let ours = 32.0 / s;
        let pytorch = baseline(&lines, "train", "cpu", 32, 32);
        let (what, unit, goal, met) =
            ("training step, batch 32, 32 px".into(), "images/s", ">= 100".into(), ours >= 100.0);
        let burn = burn_baseline(&lines, "train", 32, 32);
        rows.push(TargetRow { what, ours, unit, goal, met: Some(met), pytorch, burn });
        if gpu.caps.timestamps {
            // The forward's 1x1 convs at batch 8 and 224 px, the backward's at the training step's
            // batch 32 and 32 px.
            let mut sweep = gemm_sweep(&gpu, &config, 8, 224, &[GemmOp::Fwd])?;
            sweep.extend(gemm_sweep(&gpu, &c10, 32, 32, &[GemmOp::BwdData, GemmOp::BwdWeight])?);
            let worst = sweep.iter().map(SweepRow::ratio).fold(1.0, f64::min);
            let (what, unit, goal, met) =
                ("1x1 convs (fwd, bwd) vs the best GEMM variant".into(), "%", ">= 70".into(), worst >= 0.7);
            rows.push(TargetRow { what, ours: 100.0 * worst, unit, goal, met: Some(met), pytorch: None, burn: None });
        }
    } else {
        let (s, _) = time_forward(&gpu, &*model.plan(1, 224, 224, &[])?, 224, args.iters)?;
        let pytorch = baseline(&lines, "forward", "cuda", 1, 224);
        let goal = pytorch.map_or("<= PyTorch".into(), |p| format!("<= {:.2}", 1e3 / p));
        let met = pytorch.map(|p| s * 1e3 <= 1e3 / p);
        let pytorch = pytorch.map(|p| 1e3 / p);
        let (what, unit) = ("forward latency, batch 1, 224 px".into(), "ms");
        if let Some(p) = pytorch_tf32(&lines, "forward", 1, 224) {
            notes.push(format!("PyTorch with TF32 convolutions (its default): batch-1 latency {:.2} ms", 1e3 / p));
        }
        let burn = burn_baseline(&lines, "forward", 1, 224).map(|b| 1e3 / b);
        rows.push(TargetRow { what, ours: s * 1e3, unit, goal, met, pytorch, burn });
        let graph = TrainGraph::new(&gpu, config.clone(), &Weights::init_random(&config, 0))?;
        let (s, _) =
            TrainTiming::record(&gpu, &graph, 64, 224, 1000, None, &TrainOptions::default())?.time(&gpu, args.iters)?;
        let ours = 64.0 / s;
        let pytorch = baseline(&lines, "train", "cuda", 64, 224);
        let goal = pytorch.map_or(">= PyTorch".into(), |p| format!(">= {p:.0}"));
        let met = pytorch.map(|p| ours >= p);
        let what = "training step, batch 64, 224 px".into();
        if let Some(p) = pytorch_tf32(&lines, "train", 64, 224) {
            notes.push(format!("PyTorch with TF32 convolutions (its default): training {p:.0} images/s"));
        }
        let burn = burn_baseline(&lines, "train", 64, 224);
        rows.push(TargetRow { what, ours, unit: "images/s", goal, met, pytorch, burn });
    }
    // Memory, on every adapter class: each planned on a fresh device, so that its scratch
    // textures are the step's own.
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let b0 = TrainMemory::plan(&Gpu::new()?, &Config::new(Variant::B0, 1000), 32, 224)?;
    let device = if cpu { "cpu" } else { "cuda" };
    let pytorch = baseline_field(&lines, "pytorch", "train", device, 32, 224, "peak_memory_gib");
    let ours = gib(b0.total_bytes());
    let parts =
        if b0.micro_batch < b0.batch { format!(" (micro-batches of {})", b0.micro_batch) } else { String::new() };
    rows.push(TargetRow {
        what: format!("training memory, batch 32, 224 px{parts}"),
        ours,
        unit: "GiB",
        goal: pytorch.map_or("<= 60% PyTorch".into(), |p| format!("<= {:.2}", 0.6 * p)),
        met: pytorch.map(|p| ours <= 0.6 * p),
        pytorch,
        burn: None,
    });
    let b7 = TrainMemory::plan(&Gpu::new()?, &Config::new(Variant::B7, 1000), 1, 600)?;
    let ours = gib(b7.total_bytes());
    let what = "B7 training memory, batch 1, 600 px".into();
    rows.push(TargetRow {
        what,
        ours,
        unit: "GiB",
        goal: "<= 8".into(),
        met: Some(ours <= 8.0),
        pytorch: None,
        burn: None,
    });
    if args.json {
        let j: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({"target": r.what, "ours": r.ours, "unit": r.unit, "goal": r.goal, "met": r.met,
                    "pytorch": r.pytorch, "burn": r.burn})
            })
            .collect();
        println!("{}", serde_json::json!({"adapter": gpu.describe(), "targets": j, "notes": notes}));
        return Ok(());
    }
    println!("adapter: {}", gpu.describe());
    println!(
        "{:<55} {:>8} {:>9} {:>11} {:>5} {:>8} {:>10} {:>6} {:>8}",
        "target (B0 unless named)", "ours", "unit", "goal", "met", "PyTorch", "vs PyTorch", "burn", "vs burn"
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    for r in &rows {
        // A ratio above 1 is ours ahead: our rate over theirs, their time or memory over ours.
        let ratio = |theirs: Option<f64>| {
            theirs.map_or("-".to_string(), |t| {
                format!("{:.2}x", if r.unit == "images/s" { r.ours / t } else { t / r.ours })
            })
        };
        println!(
            "{:<55} {:>8.2} {:>9} {:>11} {:>5} {:>8} {:>10} {:>6} {:>8}",
            r.what,
            r.ours,
            r.unit,
            r.goal,
            match r.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            },
            opt(r.pytorch),
            ratio(r.pytorch),
            opt(r.burn),
            ratio(r.burn)
        );
    }
    for n in &notes {
        println!("{n}");
    }
    if args.baseline.is_none() {
        println!(
            "(no --baseline: run `bash baselines/pytorch.sh > base.jsonl; bash baselines/burn.sh >> base.jsonl` \
             on this machine for PyTorch's and burn's figures)"
        );
    }
    Ok(())
}

/// Training-step throughput: a recorded step replayed, one submit and one loss readback per step.
fn run_train(args: Args) -> Result<()> {
    let gpu = Gpu::new()?;
    let config = Config::new(Variant::parse(&args.model)?, args.classes);
    let res = args.resolution.unwrap_or(config.resolution as usize);
    let graph = TrainGraph::new(&gpu, config.clone(), &Weights::init_random(&config, 0))?;
    let n = args.batch.max(1);
    let t = Instant::now();
    let opts = {
        let mut o = TrainOptions::default();
        o.fused_bn_stats = !args.separate_bn_stats;
        o
    };
    let step = TrainTiming::record(&gpu, &graph, n, res, args.classes, args.micro_batch, &opts)?;
    let build_s = t.elapsed().as_secs_f64();
    let (s, encode_s) = step.time(&gpu, args.iters)?;
    let (parts, len, n, step) = (step.parts, step.step.batch, step.images(), step.step);
    let encode_ms = encode_s * 1e3;
    let scratch = gpu.scratch_texture_bytes();
    let profile = if !args.no_profile && gpu.caps.timestamps {
        Some(Profile::measure(&gpu, &step.dispatches.iter().collect::<Vec<_>>())?)
    } else {
        None
    };
    let (copies, copy_bytes, copy_s) = time_copies(&gpu, &step.dispatches.iter().collect::<Vec<_>>(), args.iters)?;
    let launch_s = launch_cost(&gpu)?;
    // The backward's 1x1 convs at the step's own shapes (the forward's: `bench --gemm-sweep`).
    let sweep = if args.gemm_sweep && gpu.caps.timestamps {
        gemm_sweep(&gpu, &config, len, res, &[GemmOp::BwdData, GemmOp::BwdWeight])?
    } else {
        Vec::new()
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({"adapter": gpu.describe(), "model": config.name, "batch": n, "resolution": res,
                "texel_copies": copies, "texel_copy_bytes": copy_bytes, "texel_copies_s": copy_s,
                "micro_batches": parts, "train_step_s": s, "images_per_s": n as f64 / s, "dispatches": step.dispatches.len(),
                "activation_bytes": step.activation_bytes, "texel_scratch_bytes": scratch, "encode_ms": encode_ms,
                "record_s": build_s, "gemm_sweep": sweep_json(&sweep), "launch_us": launch_s * 1e6,
                "kernels": profile.as_ref().map(Profile::kernels_json).unwrap_or_default(),
                "per_dispatch": profile.as_ref().map(Profile::dispatches_json).unwrap_or_default()})
        );
        return Ok(());
    }
    println!("adapter: {}", gpu.describe());
    println!(
        "{} training step, batch {n} at {res}x{res}{}: {:.1} ms, {:.1} images/s; {} dispatches, CPU encode {:.2} ms; \
         activations {:.1} MiB (+ {:.1} MiB of texel scratch textures); recorded in {:.2} s",
        config.name,
        if parts > 1 { format!(" ({parts} micro-batches of {len})") } else { String::new() },
        s * 1e3,
        n as f64 / s,
        step.dispatches.len(),
        encode_ms,
        step.activation_bytes as f64 / (1 << 20) as f64,
        scratch as f64 / (1 << 20) as f64,
        build_s
    );
    if copies > 0 {
        println!(
            "texel copies (outside the kernel timestamps): {copies} per step, {:.1} MiB, {:.1} ms alone",
            copy_bytes as f64 / (1 << 20) as f64,
            copy_s * 1e3
        );
    }
    print_launch(launch_s, step.dispatches.len());
    if let Some(profile) = &profile {
        println!("\nper kernel (GPU timestamps, one pass per dispatch; total {:.1} ms):", profile.total_ns / 1e6);
        profile.print(12);
    }
    print_sweep(&sweep);
    Ok(())
}

/// Which product of a 1x1 conv a sweep row times.
#[derive(Clone, Copy, Debug, PartialEq)]
enum GemmOp {
    /// `out = act(a x b + bias)`, the forward (inference: BN folded into b and bias).
    Fwd,
    /// `da = dc x b^T`, the input gradient.
    BwdData,
    /// `db = a^T x dc`, the weight gradient: split-K partials and their sum, timed together.
    BwdWeight,
}

/// One 1x1-conv shape and product, and what each GEMM variant achieves on it.
struct SweepRow {
    op: GemmOp,
    m: usize,
    n: usize,
    k: usize,
    auto: KernelVariant,
    gflops: Vec<(KernelVariant, f64)>,
}

impl GemmOp {
    fn label(self) -> &'static str {
        match self {
            GemmOp::Fwd => "fwd",
            GemmOp::BwdData => "data",
            GemmOp::BwdWeight => "weight",
        }
    }
}

impl SweepRow {
    /// GFLOP/s of the variant the library picks over the best variant's.
    fn ratio(&self) -> f64 {
        let best = self.gflops.iter().map(|g| g.1).fold(0.0, f64::max);
        let auto = self.gflops.iter().find(|g| g.0 == self.auto).map_or(0.0, |g| g.1);
        auto / best
    }
}

/// Times every applicable GEMM variant (best of 3 timestamped runs) of each of `ops` on each
/// distinct expand, project and head shape of the network at `batch` and `res`; the forward with
/// the network's epilogue (bias + swish for expand and head, bias for project).
fn gemm_sweep(gpu: &Gpu, config: &Config, batch: usize, res: usize, ops: &[GemmOp]) -> Result<Vec<SweepRow>> {
    let (mut h, _) = conv_padding(config.padding, res, 3, 2);
    let mut shapes = Vec::new();
    for b in config.blocks() {
        if b.has_expand() {
            shapes.push((batch * h * h, b.expanded_ch, b.in_ch, true));
        }
        h = conv_padding(config.padding, h, b.kernel, b.stride).0;
        shapes.push((batch * h * h, b.out_ch, b.expanded_ch, false));
    }
    shapes.push((batch * h * h, config.head_channels(), config.blocks().last().map_or(0, |b| b.out_ch), true));
    let mut rows = Vec::new();
    for &op in ops {
        for &(m, n, k, act) in &shapes {
            if rows.iter().any(|r: &SweepRow| (r.op, r.m, r.n, r.k) == (op, m, n, k)) {
                continue;
            }
            let a = gpu.upload(&vec![0.5; m * k], "a")?;
            let b = gpu.upload(&vec![0.01; k * n], "b")?;
            let bias = gpu.upload(&vec![0.1; n], "bias")?;
            let c = gpu.upload(&vec![0.02; m * n], "c")?;
            let mut p = GemmParams::new(m, n, k);
            p.act = if act && op == GemmOp::Fwd { Activation::Swish } else { Activation::None };
            let auto = p.kernel_variant(gpu);
            let mut gflops = Vec::new();
            for v in [KernelVariant::Scalar, KernelVariant::Vec4, KernelVariant::Tiled, KernelVariant::Texel] {
                p.variant = v;
                if p.kernel_variant(gpu) != v {
                    continue;
                }
                let ds = match op {
                    GemmOp::Fwd => vec![gemm_fwd(gpu, &p, &a, &b, Some(&bias), None, None, &c)?],
                    GemmOp::BwdData => vec![gemm_bwd_data(gpu, &p, &c, &b, &a, false)?],
                    GemmOp::BwdWeight => {
                        let partial = gpu.empty(p.weight_partial_len(gpu).max(1), "partial")?;
                        gemm_bwd_weight(gpu, &p, &a, None, &c, &partial, &b)?
                    }
                };
                let refs: Vec<&Dispatch> = ds.iter().collect();
                let ns = (0..3)
                    .map(|_| profile_dispatches(gpu, &refs).map(|t| t.iter().sum::<f64>()))
                    .collect::<Result<Vec<_>>>()?;
                let best = ns.into_iter().fold(f64::INFINITY, f64::min);
                gflops.push((v, 2.0 * p.macs() as f64 / best));
            }
            rows.push(SweepRow { op, m, n, k, auto, gflops });
        }
    }
    Ok(rows)
}

fn sweep_json(rows: &[SweepRow]) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|r| {
            serde_json::json!({"op": r.op.label(), "m": r.m, "n": r.n, "k": r.k, "auto": format!("{:?}", r.auto),
                "gflops": r.gflops.iter().map(|(v, g)| (format!("{v:?}"), *g)).collect::<BTreeMap<_, _>>(),
                "auto_over_best": r.ratio()})
        })
        .collect()
}

fn print_sweep(rows: &[SweepRow]) {
    if rows.is_empty() {
        return;
    }
    println!("\n1x1-conv GEMM sweep (GFLOP/s, best of 3; auto = the variant the library picks; texel times");
    println!("exclude the buffer-to-texture copies, which run before the timed pass at ~40 GB/s;");
    println!("the conv is M x K times K x N: fwd = its forward, data = the input gradient, weight = the");
    println!("weight gradient with its partial sums):");
    println!(
        "{:>6} {:>8} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>10}",
        "op", "M", "N", "K", "scalar", "vec4", "tiled", "texel", "auto", "auto/best"
    );
    let mut worst: f64 = 1.0;
    for r in rows {
        let g = |v| r.gflops.iter().find(|g| g.0 == v).map_or("-".to_string(), |g| format!("{:.2}", g.1));
        println!(
            "{:>6} {:>8} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9.0}%",
            r.op.label(),
            r.m,
            r.n,
            r.k,
            g(KernelVariant::Scalar),
            g(KernelVariant::Vec4),
            g(KernelVariant::Tiled),
            g(KernelVariant::Texel),
            format!("{:?}", r.auto).to_lowercase(),
            100.0 * r.ratio()
        );
        worst = worst.min(r.ratio());
    }
    println!("worst auto/best: {:.0}% (target >= 70%)", 100.0 * worst);
}
