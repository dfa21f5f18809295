//! Train EfficientNet from scratch on real images, on whatever GPU wgpu finds.
//!
//!     cargo run --release --example train_b0                # B0, 10 classes, Fashion-MNIST at 32x32
//!     cargo run --release --example train_b0 -- --epochs 5 --out runs/b0
//!     cargo run --release --example train_b0 -- --resume runs/b0/checkpoint.safetensors
//!
//! Writes to --out: metrics.csv, plot.png (+ plot.svg), checkpoint.safetensors (each epoch and on
//! Ctrl-C; atomic), final.safetensors (weights in torchvision names) and final.json.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use efficientnet_wgpu::data::{self, Augment, Dataset, FolderSplit, Loader, LoaderOptions, Normalize};
use efficientnet_wgpu::model::{metadata_with_class_names, Config, InitOptions, Variant, Weights};
use efficientnet_wgpu::ops::OptimizerKind;
use efficientnet_wgpu::train::report::{append_metrics, read_metrics, write_plot, MetricsRow};
use efficientnet_wgpu::train::{load_checkpoint, Schedule, TrainConfig, Trainer};
use efficientnet_wgpu::{fsio, Error, Gpu, Result};

#[derive(Parser)]
#[command(about = "Train EfficientNet on Fashion-MNIST, CIFAR-10 or an image folder")]
struct Args {
    #[arg(long, default_value = "b0")]
    model: String,
    #[arg(long, default_value_t = 2)]
    epochs: u64,
    /// Stop after this many optimisation steps.
    #[arg(long)]
    max_steps: Option<u64>,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Peak learning rate (after warm-up).
    #[arg(long, default_value_t = 0.003)]
    lr: f32,
    /// adamw | rmsprop-tf (the paper's) | sgd | sgd-nesterov
    #[arg(long, default_value = "adamw")]
    optimizer: String,
    /// cosine | paper (x0.97 every 2.4 epochs) | constant
    #[arg(long, default_value = "cosine")]
    schedule: String,
    #[arg(long, default_value_t = 0.1)]
    warmup_epochs: f32,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f32,
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// Clip gradients to this global norm (0 = off).
    #[arg(long, default_value_t = 0.0)]
    clip_norm: f32,
    /// BatchNorm momentum (PyTorch semantics). The paper's 0.01 suits long runs; in a run of a
    /// few hundred steps its running statistics still lag the weights, so the default is 0.1.
    #[arg(long, default_value_t = 0.1)]
    bn_momentum: f32,
    /// Evaluate an exponential moving average of the weights with this decay.
    #[arg(long)]
    ema: Option<f32>,
    /// Training resolution (images are resized to it on the GPU).
    #[arg(long, default_value_t = 32)]
    resolution: usize,
    /// fashion-mnist | cifar10 | folder
    #[arg(long, default_value = "fashion-mnist")]
    dataset: String,
    /// Data folder (default for Fashion-MNIST: /usr/share/datasets/fashion-mnist).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Use only the first N training images.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Run each batch as micro-batches of at most this many images, accumulating gradients:
    /// less memory per step. Batches larger than the device's binding limit allows are split
    /// this way anyway.
    #[arg(long)]
    micro_batch: Option<usize>,
    #[arg(long, default_value = "runs/train_b0")]
    out: PathBuf,
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start from these weights (any supported format) instead of the paper's random init:
    /// fine-tuning, or another initialisation. Where their classifier has another number of
    /// classes than the data set, it is re-initialised (said on stderr) and the rest loads.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Train the classifier alone: the other layers keep their weights (from --init) and run
    /// BatchNorm on their running statistics.
    #[arg(long)]
    freeze_backbone: bool,
    /// Learning rate of every layer but the classifier as a multiple of --lr (e.g. 0.1 when
    /// fine-tuning from --init).
    #[arg(long, default_value_t = 1.0)]
    backbone_lr_mult: f32,
    /// The paper's initialisation as is. By default residual blocks start as the identity (their
    /// last BN scale zeroed) and the classifier starts near zero: on Fashion-MNIST this takes test
    /// accuracy after 300 steps from 53% to 79%.
    #[arg(long)]
    paper_init: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads that decode and augment images (default: the machine's cores). Batches are the
    /// same whatever the number.
    #[arg(long)]
    workers: Option<usize>,
    /// Train on N devices at once, one replica each, the batch split evenly between them (one
    /// per adapter where there are N GPUs, else N devices on one): each step equals one device
    /// running the batch as N micro-batches.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    devices: u64,
    /// Train across processes: `mpi` under `mpirun -np K` (one rank per device, the batch split
    /// between them; needs the `mpi` cargo feature). Rank 0 writes the outputs.
    #[arg(long)]
    distributed: Option<String>,
    /// Read the loss back for the progress bar every N steps (each read waits for the GPU).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    log_every: u64,
}

/// The other processes of a `--distributed` run.
fn distributed(args: &Args) -> Result<Option<Box<dyn efficientnet_wgpu::train::dist::Collective>>> {
    match args.distributed.as_deref() {
        None => Ok(None),
        #[cfg(feature = "mpi")]
        Some("mpi") => Ok(Some(Box::new(efficientnet_wgpu::train::dist::Mpi::init()?))),
        #[cfg(not(feature = "mpi"))]
        Some("mpi") => Err(Error::invalid(
            "train_b0 was built without MPI: build it with `--features mpi` (OpenMPI: apt-get install -y \
             libopenmpi-dev openmpi-bin clang libclang-dev)",
        )),
        Some(other) => Err(Error::invalid(format!("--distributed {other}: the one transport is mpi"))),
    }
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("train_b0: {e}");
        std::process::exit(1);
    }
}

fn optimizer(name: &str) -> Result<OptimizerKind> {
    Ok(match name {
        "adamw" => OptimizerKind::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
        "rmsprop-tf" | "rmsprop" => OptimizerKind::RmspropTf { decay: 0.9, momentum: 0.9, eps: 1e-3 },
        "sgd" => OptimizerKind::Sgd { momentum: 0.9, nesterov: false },
        "sgd-nesterov" => OptimizerKind::Sgd { momentum: 0.9, nesterov: true },
        _ => return Err(Error::invalid(format!("unknown optimizer {name:?}: adamw, rmsprop-tf, sgd, sgd-nesterov"))),
    })
}

fn schedule(name: &str) -> Result<Schedule> {
    Ok(match name {
        "cosine" => Schedule::Cosine,
        "paper" => Schedule::ExponentialStaircase { rate: 0.97, every_epochs: 2.4 },
        "constant" => Schedule::Constant,
        _ => return Err(Error::invalid(format!("unknown schedule {name:?}: cosine, paper, constant"))),
    })
}

fn datasets(args: &Args) -> Result<(Dataset, Dataset, Augment, Normalize)> {
    Ok(match args.dataset.as_str() {
        "fashion-mnist" => {
            let dir = args.data.clone().unwrap_or_else(|| PathBuf::from("/usr/share/datasets/fashion-mnist"));
            let (tr, te) = data::load_fashion_mnist(&dir)?;
            (tr, te, Augment::CropFlip { pad: 2 }, Normalize::FASHION_MNIST)
        }
        "cifar10" => {
            let dir = args.data.clone().ok_or_else(|| Error::invalid("--dataset cifar10 needs --data DIR"))?;
            let (tr, te) = data::load_cifar10(&dir)?;
            (tr, te, Augment::CropFlip { pad: 4 }, Normalize::CIFAR10)
        }
        "folder" => {
            let dir = args.data.clone().ok_or_else(|| Error::invalid("--dataset folder needs --data DIR"))?;
            let (tr, te) = data::load_image_folder(&dir, FolderSplit { held_out: 0.1 })?;
            (tr, te, Augment::RandomResizedCrop { size: args.resolution }, Normalize::IMAGENET)
        }
        d => return Err(Error::invalid(format!("unknown dataset {d:?}: fashion-mnist, cifar10, folder"))),
    })
}

fn run(args: Args) -> Result<()> {
    let process_start = Instant::now();
    let (mut train, test, augment, norm) = datasets(&args)?;
    if let Some(n) = args.train_limit {
        train.truncate(n);
    }
    train.validate()?;
    let classes = train.num_classes();
    if classes < 2 {
        return Err(Error::invalid(format!(
            "{}: {classes} class; a classifier needs at least two (for a folder: one subfolder per class)",
            train.name
        )));
    }
    let mut config = Config::new(Variant::parse(&args.model)?, classes);
    let steps_per_epoch = Loader::batches_per_epoch(train.len(), args.batch_size, true) as u64;
    if steps_per_epoch == 0 {
        return Err(Error::invalid(format!("{} training images make no batch of {}", train.len(), args.batch_size)));
    }
    let tc = {
        let mut c = TrainConfig::default();
        c.epochs = args.epochs;
        c.max_steps = args.max_steps;
        c.batch_size = args.batch_size;
        c.lr = args.lr;
        c.schedule = schedule(&args.schedule)?;
        c.warmup_epochs = args.warmup_epochs;
        c.optimizer = optimizer(&args.optimizer)?;
        c.weight_decay = args.weight_decay;
        c.max_norm = args.clip_norm;
        c.ema = args.ema;
        c.label_smoothing = args.label_smoothing;
        c.bn_momentum = args.bn_momentum;
        c.dropout = true;
        c.drop_path = true;
        c.resolution = args.resolution;
        c.seed = args.seed;
        c.micro_batch = args.micro_batch;
        c.freeze_backbone = args.freeze_backbone;
        c.backbone_lr_mult = args.backbone_lr_mult;
        c
    };
    if args.freeze_backbone && args.init.is_none() {
        return Err(Error::invalid("--freeze-backbone needs --init WEIGHTS: a random backbone would stay random"));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let collective = distributed(&args)?;
    let rank = collective.as_ref().map_or(0, |c| c.rank());
    let gpus: Vec<Arc<Gpu>> = match (args.devices, &collective) {
        (1, None) => vec![Arc::new(Gpu::new()?)],
        (1, Some(c)) => vec![Arc::new(Gpu::open_nth(c.rank())?)],
        (_, Some(_)) => return Err(Error::invalid("--devices and --distributed: a rank trains on one device")),
        (n, None) => Gpu::open_many(n as usize)?.into_iter().map(Arc::new).collect(),
    };
    for (rank, gpu) in gpus.iter().enumerate() {
        eprintln!("adapter{}: {}", if gpus.len() > 1 { format!(" {rank}") } else { String::new() }, gpu.describe());
        if let Some(why) = &gpu.pipeline_cache_status().ignored {
            eprintln!("note: pipeline cache {why}");
        }
    }
    let gpu = gpus[0].clone();
    eprintln!(
        "{}: {} parameters, {classes} classes, {} training / {} test images at {}x{}, batch {}, {} steps per epoch",
        config.name,
        config.param_count(),
        train.len(),
        test.len(),
        args.resolution,
        args.resolution,
        args.batch_size,
        steps_per_epoch
    );
    let fresh = if args.paper_init {
        Weights::init_random(&config, args.seed)
    } else {
        Weights::init_random_with(&config, args.seed, InitOptions { zero_init_last: true, small_classifier: true })
    };
    let weights = match &args.init {
        Some(path) => {
            let (weights, format, reset) = Weights::load_backbone(path, &config, None, &fresh)?;
            // TF-trained weights want TF padding and BN eps: the network trains as it was trained.
            format.adjust_config(&mut config);
            if let Some(r) = reset {
                let hc = config.head_channels();
                eprintln!(
                    "{}: classifier [{}, {hc}] re-initialised as [{}, {hc}] for the data set's {} classes; the rest loaded",
                    path.display(),
                    r.file_classes,
                    r.classes,
                    r.classes
                );
            }
            weights
        }
        None => fresh,
    };
    let mut trainer = match (gpus.len(), collective) {
        (_, Some(c)) => {
            Trainer::new_distributed(gpu.clone(), config.clone(), &weights, tc.clone(), steps_per_epoch, c)?
        }
        (1, None) => Trainer::new(gpu.clone(), config.clone(), &weights, tc.clone(), steps_per_epoch)?,
        _ => Trainer::new_data_parallel(gpus.clone(), config.clone(), &weights, tc.clone(), steps_per_epoch)?,
    };
    // Rank 0 of a distributed run writes every output and evaluates; the others train.
    let root = rank == 0;
    let metrics_path = args.out.join("metrics.csv");
    if let Some(ck) = &args.resume {
        let meta = load_checkpoint(ck)?;
        if meta.train_config.seed != args.seed || meta.train_config.batch_size != args.batch_size {
            eprintln!("note: resuming with the checkpoint's seed and batch size is needed for identical results");
        }
        trainer.resume(ck)?;
        eprintln!("resumed from {} at step {} (epoch {})", ck.display(), trainer.step, trainer.epoch);
    } else if root {
        let _ = std::fs::remove_file(&metrics_path);
    }

    let loader_options =
        LoaderOptions::default().with_workers(args.workers.unwrap_or_else(LoaderOptions::available_workers));
    loader_options.validate()?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let total = trainer.total_steps();
    let bar = indicatif::ProgressBar::new(total);
    if !root {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} epoch {prefix} [{bar:30}] {pos}/{len} steps | {msg} | {elapsed_precise} ETA {eta_precise}",
        )
        .map_err(|e| Error::invalid(e.to_string()))?
        .progress_chars("=> "),
    );
    bar.set_position(trainer.step);
    let checkpoint = args.out.join("checkpoint.safetensors");
    // What a killed run left half-written beside its outputs.
    for path in [&checkpoint, &args.out.join("final.safetensors")] {
        for stale in fsio::remove_stale_temporaries(path)? {
            eprintln!("removed {}, left by an interrupted write", stale.display());
        }
    }
    let started = Instant::now();
    let (mut images, mut window_start, mut window_images) = (0u64, Instant::now(), 0u64);
    let mut last_ips = 0.0;
    let mut interrupted = false;
    let mut images_with_warnings = 0usize;
    'epochs: while trainer.epoch < args.epochs && trainer.step < total {
        bar.set_prefix(format!("{}/{}", trainer.epoch + 1, args.epochs));
        let loader = Loader::start_with(
            &train,
            args.batch_size,
            trainer.epoch,
            trainer.batch_in_epoch,
            args.seed,
            true,
            true,
            augment,
            norm,
            args.resolution,
            loader_options,
        )?;
        let meter = loader.meter();
        let warnings = loader.warnings();
        // The loader's figures over the last logging window: (wait, elapsed) seconds at its start.
        let (mut last_wait, mut last_elapsed, mut first_window) = (0.0, 0.0, true);
        let mut epoch_done = true;
        let mut first_of_run = images == 0;
        for batch in loader {
            let batch = batch?;
            trainer.train_batch(&batch)?;
            if first_of_run {
                // Start-up, as scripts/startup.sh measures it: the step's results read back.
                trainer.last_loss_and_accuracy(&batch.targets)?;
                bar.println(format!(
                    "first training step done {:.2} s after start",
                    process_start.elapsed().as_secs_f64()
                ));
                first_of_run = false;
                // The step's pipelines are compiled now: keep them for the next run (a cache
                // that cannot be written only costs start-up time).
                for g in &gpus {
                    let _ = g.save_pipeline_cache();
                }
            }
            images += batch.len() as u64;
            window_images += batch.len() as u64;
            bar.set_position(trainer.step);
            if trainer.step % args.log_every == 0 || trainer.step == total {
                let (loss, acc) = trainer.last_loss_and_accuracy(&batch.targets)?;
                if !loss.is_finite() {
                    return Err(Error::invalid(format!(
                        "the loss diverged to {loss} at step {}: lower --lr",
                        trainer.step
                    )));
                }
                last_ips = window_images as f64 / window_start.elapsed().as_secs_f64();
                (window_start, window_images) = (Instant::now(), 0);
                let stats = meter.stats();
                let loader_ips = stats.capacity_images_per_s();
                let window = stats.elapsed_seconds - last_elapsed;
                let wait = if window > 0.0 { (stats.wait_seconds - last_wait) / window } else { 0.0 };
                (last_wait, last_elapsed) = (stats.wait_seconds, stats.elapsed_seconds);
                bar.set_message(format!(
                    "loss {loss:.4} acc {:.1}% | {last_ips:.1} img/s | loader {loader_ips:.0} img/s",
                    100.0 * acc
                ));
                // An epoch's first batch is always waited for: judge the windows after it.
                if !first_window && wait > 0.2 {
                    bar.println(format!(
                        "warning: the GPU waited for data {:.0}% of the last {} steps (the loader's {} workers decode \
                         {loader_ips:.0} images/s): use more --workers, smaller images or a lower --resolution",
                        100.0 * wait,
                        args.log_every,
                        stats.workers
                    ));
                }
                first_window = false;
                let row = MetricsRow {
                    step: trainer.step,
                    epoch: trainer.step as f64 / steps_per_epoch as f64,
                    lr: trainer.schedule.lr(trainer.step - 1),
                    train_loss: loss,
                    train_accuracy: acc,
                    test_accuracy: None,
                    images_per_second: last_ips,
                    loader_images_per_second: loader_ips,
                    data_wait: wait,
                };
                if root {
                    append_metrics(&metrics_path, &row)?;
                }
            }
            if stop.load(Ordering::SeqCst) {
                interrupted = true;
                break 'epochs;
            }
            if trainer.step >= total {
                // Stopped inside the epoch (--max-steps): the checkpoint records where, so that
                // --resume takes the epoch's remaining batches.
                epoch_done = trainer.batch_in_epoch as u64 >= steps_per_epoch;
                break;
            }
        }
        // Images that decoded with a warning (a truncated JPEG: its missing part gray) trained;
        // each is named here and counted in final.json.
        for w in warnings.take() {
            bar.println(format!("warning: {w}"));
            images_with_warnings += 1;
        }
        if epoch_done {
            trainer.next_epoch();
        }
        if !root {
            // The loss check is collective: every rank makes it where rank 0 does.
            trainer.check_finite()?;
            continue;
        }
        let eval = trainer.evaluate_until(&test, norm, 256, &stop)?;
        let Some(eval) = eval else {
            interrupted = true;
            break 'epochs;
        };
        bar.println(format!(
            "epoch {}: test accuracy {:.2}% ({} images)",
            trainer.epoch,
            100.0 * eval.accuracy,
            eval.examples
        ));
        append_metrics(
            &metrics_path,
            &MetricsRow {
                step: trainer.step,
                epoch: trainer.step as f64 / steps_per_epoch as f64,
                lr: trainer.schedule.lr(trainer.step.saturating_sub(1)),
                train_loss: f32::NAN,
                train_accuracy: f64::NAN,
                test_accuracy: Some(eval.accuracy),
                images_per_second: last_ips,
                loader_images_per_second: meter.stats().capacity_images_per_s(),
                data_wait: meter.stats().wait_fraction(),
            },
        )?;
        // A run that diverged since the last logged step stops here, before it overwrites the
        // last good checkpoint.
        trainer.check_finite()?;
        trainer.save_checkpoint(&checkpoint)?;
        write_plot(&args.out.join("plot.png"), &read_metrics(&metrics_path)?, &config.name)?;
    }
    bar.finish_and_clear();
    if interrupted {
        trainer.check_finite()?;
        if !root {
            return Ok(());
        }
        trainer.save_checkpoint(&checkpoint)?;
        eprintln!("interrupted at step {}: saved {} (resume with --resume)", trainer.step, checkpoint.display());
        return Ok(());
    }
    let train_seconds = started.elapsed().as_secs_f64();
    trainer.check_finite()?;
    if !root {
        return Ok(());
    }
    let eval = trainer.evaluate(&test, norm, 256)?;
    // The data set's class names travel with the weights (PyTorch ignores the metadata).
    let meta = metadata_with_class_names(Default::default(), &train.class_names);
    trainer.weights()?.save(args.out.join("final.safetensors"), &config, meta)?;
    write_plot(&args.out.join("plot.png"), &read_metrics(&metrics_path)?, &config.name)?;
    println!(
        "test accuracy {:.2}% after {} steps ({:.0} s, {:.1} images/s)",
        100.0 * eval.accuracy,
        trainer.step,
        train_seconds,
        images as f64 / train_seconds
    );
    for (name, acc) in test.class_names.iter().zip(&eval.per_class) {
        println!("  {name:<14} {:.1}%", 100.0 * acc);
    }
    let final_json = serde_json::json!({
        "model": config.name,
        "test_accuracy": eval.accuracy,
        "per_class_accuracy": test.class_names.iter().zip(&eval.per_class).map(|(n, a)| (n.clone(), *a)).collect::<std::collections::BTreeMap<_, _>>(),
        "steps": trainer.step,
        "epochs": trainer.epoch,
        "images_per_second": images as f64 / train_seconds,
        "seconds": train_seconds,
        "adapter": gpu.describe(),
        "devices": trainer.world_size(),
        "last_exchange": trainer.last_exchange(),
        "images_with_warnings": images_with_warnings,
        "train_config": tc,
    });
    let path = args.out.join("final.json");
    fsio::write_atomic(&path, serde_json::to_string_pretty(&final_json).map_err(|e| Error::invalid(e.to_string()))?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
