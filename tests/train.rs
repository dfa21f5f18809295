//! Training end to end on lavapipe: a batch overfits, a resumed run reproduces an uninterrupted
//! one exactly, checkpoints of another model are refused with a clear error, and the report files
//! are written.

mod common;
use common::*;

use std::sync::Arc;

use efficientnet_wgpu::data::{Augment, Batch, Dataset, InMemory, Loader, Normalize, Source};
use efficientnet_wgpu::model::{Config, Weights};
use efficientnet_wgpu::ops::OptimizerKind;
use efficientnet_wgpu::train::report::{append_metrics, read_metrics, write_plot, MetricsRow};
use efficientnet_wgpu::train::{Schedule, TrainConfig, Trainer};
use efficientnet_wgpu::train::{TrainGraph, TrainOptions};
use efficientnet_wgpu::Gpu;

fn shared_gpu() -> Arc<Gpu> {
    static GPU: std::sync::OnceLock<Arc<Gpu>> = std::sync::OnceLock::new();
    GPU.get_or_init(|| Arc::new(Gpu::new().expect("a wgpu adapter (apt-get install -y mesa-vulkan-drivers)"))).clone()
}

fn tc(optimizer: OptimizerKind, batch: usize, lr: f32) -> TrainConfig {
    {
        let mut c = TrainConfig::default();
        c.epochs = 100;
        c.max_steps = None;
        c.batch_size = batch;
        c.lr = lr;
        c.schedule = Schedule::Constant;
        c.warmup_epochs = 0.0;
        c.optimizer = optimizer;
        c.weight_decay = 0.0;
        c.max_norm = 0.0;
        c.ema = None;
        c.label_smoothing = 0.0;
        c.bn_momentum = 0.1;
        c.dropout = false;
        c.drop_path = false;
        c.resolution = 16;
        c.seed = 5;
        c.micro_batch = None;
        c
    }
}

/// Grayscale 12x12 images with random pixels and labels.
fn synthetic(n: usize, classes: u32, seed: u64) -> Dataset {
    let pixels: Vec<u8> = rand_vec(n * 144, seed).iter().map(|v| ((v + 1.0) * 127.0) as u8).collect();
    let labels = (0..n as u32).map(|i| (i * 7 + seed as u32) % classes).collect();
    Dataset {
        name: "synthetic".into(),
        source: Source::Memory(InMemory { channels: 1, h: 12, w: 12, pixels, labels }),
        class_names: (0..classes).map(|c| format!("class {c}")).collect(),
    }
}

#[test]
fn a_batch_of_8_overfits_to_100_percent() {
    let gpu = shared_gpu();
    let config = Config::b0(8);
    let weights = Weights::init_random(&config, 1);
    let adam = OptimizerKind::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    let mut t = Trainer::new(gpu, config, &weights, tc(adam, 8, 3e-3), 1).unwrap();
    let ds = synthetic(8, 8, 3);
    let batch: Batch = Loader::start(&ds, 8, 0, 0, 1, false, true, Augment::None, Normalize::FASHION_MNIST, 16)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let mut history = Vec::new();
    for _ in 0..40 {
        t.train_batch(&batch).unwrap();
        history.push(t.last_loss_and_accuracy(&batch.targets).unwrap());
    }
    let (first, last) = (history[0], history[history.len() - 1]);
    assert!(last.0 < 0.1 * first.0, "loss {} -> {}", first.0, last.0);
    assert_eq!(last.1, 1.0, "training accuracy on the batch: {history:?}");
    // With lr 0 a step changes nothing but the BN running statistics.
    let before = t.weights().unwrap();
    t.lr_override = Some(0.0);
    t.train_batch(&batch).unwrap();
    let after = t.weights().unwrap();
    assert_eq!(before.get_by_key("features.0.0.weight"), after.get_by_key("features.0.0.weight"));
    assert_ne!(before.get_by_key("features.0.1.running_mean"), after.get_by_key("features.0.1.running_mean"));
}

fn run_steps(t: &mut Trainer, ds: &Dataset, steps: u64) -> Vec<f32> {
    let mut losses = Vec::new();
    while (losses.len() as u64) < steps {
        let loader = Loader::start(
            ds,
            4,
            t.epoch,
            t.batch_in_epoch,
            9,
            true,
            true,
            Augment::CropFlip { pad: 2 },
            Normalize::FASHION_MNIST,
            16,
        )
        .unwrap();
        for b in loader {
            let b = b.unwrap();
            t.train_batch(&b).unwrap();
            losses.push(t.last_loss_and_accuracy(&b.targets).unwrap().0);
            if losses.len() as u64 == steps {
                return losses;
            }
        }
        t.next_epoch();
    }
    losses
}

#[test]
fn parameters_beyond_one_storage_binding_train_in_ranges_bit_identically() {
    // B0's 4.0M parameters (16 MiB) on a device whose storage bindings hold 4 MiB: the flat
    // parameters, gradients, optimizer state and EMA are updated range by range, as B6 and B7
    // (172 and 265 MiB) are on 128 MiB bindings (lavapipe's, wgpu's default). AdamW with weight decay,
    // clipping (the global norm over all ranges) and EMA, in micro-batches (whose gradient sums go
    // range by range too): losses, parameters and EMA bit-identical to the one-binding device.
    let config = Config::b0(4);
    let weights = Weights::init_random(&config, 3);
    let ds = synthetic(8, 4, 11);
    let mut opts = tc(OptimizerKind::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, 4, 1e-3);
    opts.weight_decay = 0.01;
    opts.max_norm = 1.0;
    opts.ema = Some(0.9);
    opts.micro_batch = Some(2);
    let small = Arc::new(small_binding_gpu(4 << 20));
    let mut runs = Vec::new();
    for gpu in [shared_gpu(), small.clone()] {
        let mut t = Trainer::new(gpu.clone(), config.clone(), &weights, opts.clone(), 3).unwrap();
        let losses = run_steps(&mut t, &ds, 2);
        let ema = &t.optimizer.ema.as_ref().unwrap().1;
        let params = gpu.read_many(&[&t.graph.params.params, ema]).unwrap();
        runs.push((losses, params));
    }
    let total = runs[0].1[0].len();
    assert!(small.binding_ranges(total, 256).len() >= 4, "{total} parameters must span several bindings");
    assert!(runs[0].1[0] != weights_flat(&config, &weights), "the steps must change the parameters");
    assert_eq!(runs[0], runs[1], "ranges must not change a bit");
}

/// The parameters as the flat store lays them out before training.
fn weights_flat(config: &Config, weights: &Weights) -> Vec<f32> {
    let graph = TrainGraph::new(&shared_gpu(), config.clone(), weights).unwrap();
    shared_gpu().read(&graph.params.params).unwrap()
}

#[test]
fn resume_reproduces_the_uninterrupted_losses_exactly() {
    let gpu = shared_gpu();
    let config = Config::custom(0.25, 0.25, 16, 0.2, 4);
    let weights = Weights::init_random(&config, 2);
    let ds = synthetic(12, 4, 8); // 3 batches of 4 per epoch: the resume point is mid-epoch
    let mut opts = tc(OptimizerKind::RmspropTf { decay: 0.9, momentum: 0.9, eps: 1e-3 }, 4, 1e-3);
    opts.dropout = true;
    opts.drop_path = true;
    opts.ema = Some(0.9);
    opts.max_norm = 1.0;
    let mut full = Trainer::new(gpu.clone(), config.clone(), &weights, opts.clone(), 3).unwrap();
    let all = run_steps(&mut full, &ds, 8);

    let dir = std::env::temp_dir().join(format!("effnet-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = dir.join("checkpoint.safetensors");
    let mut first = Trainer::new(gpu.clone(), config.clone(), &weights, opts.clone(), 3).unwrap();
    let head = run_steps(&mut first, &ds, 4);
    first.save_checkpoint(&ck).unwrap();
    drop(first);
    let mut resumed =
        Trainer::new(gpu.clone(), config.clone(), &Weights::init_random(&config, 99), opts.clone(), 3).unwrap();
    resumed.resume(&ck).unwrap();
    assert_eq!((resumed.step, resumed.epoch, resumed.batch_in_epoch), (4, 1, 1));
    let tail = run_steps(&mut resumed, &ds, 4);
    assert_eq!([head, tail].concat(), all, "losses after a resume equal the uninterrupted run's");
    assert_eq!(
        resumed.weights().unwrap().get_by_key("classifier.1.bias"),
        full.weights().unwrap().get_by_key("classifier.1.bias")
    );

    // A checkpoint of another model is refused, naming both.
    let other = Config::custom(0.5, 0.25, 16, 0.2, 4);
    let mut wrong = Trainer::new(gpu, other.clone(), &Weights::init_random(&other, 1), opts, 3).unwrap();
    let e = wrong.resume(&ck).unwrap_err().to_string();
    assert!(e.contains("checkpoint.safetensors") && e.contains("width 0.25") && e.contains("width 0.5"), "{e}");
    // The checkpoint is also a weights file in torchvision names.
    assert!(Weights::load(&ck, &config, None).is_ok());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn micro_batches_average_their_gradients_into_one_update() {
    // A batch of 8 as two micro-batches of 4: the update's gradients, loss and logits are those
    // of two separate steps on the halves, averaged (each half weighs 4/8). Scaling by 1/2 is
    // exact, so the comparison is exact.
    let gpu = shared_gpu();
    let config = Config::custom(0.25, 0.25, 16, 0.2, 4);
    let weights = Weights::init_random(&config, 4);
    let ds = synthetic(8, 4, 11);
    let batch: Batch = Loader::start(&ds, 8, 0, 0, 1, false, true, Augment::None, Normalize::FASHION_MNIST, 16)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let mut opts = tc(OptimizerKind::Sgd { momentum: 0.0, nesterov: false }, 8, 0.0);
    opts.micro_batch = Some(4);
    let mut t = Trainer::new(gpu.clone(), config.clone(), &weights, opts, 1).unwrap();
    t.train_batch(&batch).unwrap();
    let (loss, _) = t.last_loss_and_accuracy(&batch.targets).unwrap();
    let got = t.graph.gradients(&gpu).unwrap();

    let graph = TrainGraph::new(&gpu, config.clone(), &weights).unwrap();
    let step_opts = {
        let mut o = TrainOptions::default();
        o.bn_momentum = 0.1;
        o.dropout = false;
        o.drop_path = false;
        o.resize_to = Some((16, 16));
        o
    };
    let per = 3 * batch.h * batch.w;
    let mut halves = Vec::new();
    for i in 0..2 {
        let input = &batch.input[i * 4 * per..(i + 1) * 4 * per];
        let r =
            graph.step_once(&gpu, input, &batch.targets[i * 4..(i + 1) * 4], [4, 3, batch.h, batch.w], 0, &step_opts);
        halves.push((r.unwrap(), graph.gradients(&gpu).unwrap()));
    }
    assert_eq!(loss, 0.5 * halves[0].0.loss + 0.5 * halves[1].0.loss);
    let mut compared = 0;
    for ((spec, g), ((_, a), (_, b))) in got.iter().zip(halves[0].1.iter().zip(halves[1].1.iter())) {
        if !spec.field.is_learnable() {
            continue;
        }
        let want: Vec<f32> = a.data.iter().zip(&b.data).map(|(x, y)| 0.5 * x + 0.5 * y).collect();
        assert_eq!(g.data, want, "{}", spec.key);
        compared += 1;
    }
    assert!(compared > 50, "compared {compared} gradients");

    // 3 images in micro-batches of at most 2 would leave one alone: a clear error, no step.
    let mut opts = tc(OptimizerKind::Sgd { momentum: 0.0, nesterov: false }, 3, 0.0);
    opts.micro_batch = Some(2);
    let mut t = Trainer::new(gpu.clone(), config, &weights, opts, 1).unwrap();
    let three = Batch { input: batch.input[..3 * per].to_vec(), targets: batch.targets[..3].to_vec(), ..batch };
    let e = t.train_batch(&three).unwrap_err().to_string();
    assert!(e.contains("single image") && e.contains("at least 2"), "{e}");
    // That is for the 1x1 head of 16 px; at 64 px the head is 2x2 and one image per part is fine.
    let plan = |px| graph.micro_batches(&gpu, 3, px, px, &TrainOptions::default(), Some(2));
    assert!(plan(16).is_err());
    assert_eq!(plan(64).unwrap(), vec![2, 1]);
    // Input that does not match the batch's shape, and an empty batch: errors, not panics.
    let short = Batch { input: three.input[..10].to_vec(), ..three.clone() };
    assert!(t.train_batch(&short).unwrap_err().to_string().contains("shape mismatch"));
    let empty = Batch { input: Vec::new(), targets: Vec::new(), ..three };
    assert!(t.train_batch(&empty).is_err());
    assert_eq!(t.step, 0);
}

#[test]
fn batches_over_the_binding_limit_train_in_micro_batches() {
    // B0's widest activation at 224 px is 112 x 112 x 96 f32 per image; a batch with more images
    // than one binding holds runs as micro-batches instead of failing.
    let gpu = shared_gpu();
    let config = Config::b0(10);
    let graph = TrainGraph::new(&gpu, config.clone(), &Weights::init_random(&config, 0)).unwrap();
    let opts = {
        let mut o = TrainOptions::default();
        o.resize_to = Some((224, 224));
        o
    };
    let fits = graph.max_batch(&gpu, 224, 224, &opts).unwrap();
    assert_eq!(fits as u64, gpu.max_binding_bytes() / (112 * 112 * 96 * 4));
    assert!(graph.record_step(&gpu, fits + 1, 224, 224, &opts).is_err(), "one more image exceeds the limit");
    drop(graph);
    // Where that batch is small (lavapipe's 128 MiB bindings: 27 images), the trainer takes it.
    if fits + 1 > 32 {
        eprintln!("this adapter binds {fits} images at 224 px: the end-to-end part runs on small limits only");
        return;
    }
    let n = fits + 1;
    let mut opts = tc(OptimizerKind::Sgd { momentum: 0.9, nesterov: false }, n, 0.01);
    opts.resolution = 224;
    let mut t = Trainer::new(gpu, config, &Weights::init_random(&Config::b0(10), 0), opts, 1).unwrap();
    let targets: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();
    let batch = Batch { input: rand_vec(n * 3 * 224 * 224, 12), targets, h: 224, w: 224 };
    t.train_batch(&batch).unwrap();
    let (loss, acc) = t.last_loss_and_accuracy(&batch.targets).unwrap();
    assert!(loss.is_finite() && loss > 0.0 && (0.0..=1.0).contains(&acc), "loss {loss}, accuracy {acc}");
}

#[test]
fn metrics_csv_round_trips_and_the_plot_is_a_png() {
    let dir = std::env::temp_dir().join(format!("effnet-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("metrics.csv");
    let rows: Vec<MetricsRow> = (1..=5)
        .map(|i| MetricsRow {
            step: i * 10,
            epoch: i as f64 / 5.0,
            lr: 0.01,
            train_loss: 2.0 / i as f32,
            train_accuracy: 0.1 * i as f64,
            test_accuracy: (i == 5).then_some(0.8),
            images_per_second: 50.0,
            loader_images_per_second: 0.0,
            data_wait: 0.0,
        })
        .collect();
    for r in &rows {
        append_metrics(&csv, r).unwrap();
    }
    let back = read_metrics(&csv).unwrap();
    assert_eq!(back.len(), 5);
    assert_eq!(back[4].test_accuracy, Some(0.8));
    assert_eq!(back[2].step, 30);
    let png = dir.join("plot.png");
    write_plot(&png, &back, "test").unwrap();
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (900, 700));
    std::fs::remove_dir_all(&dir).ok();
}

/// Five SGD steps (momentum 0.9, lr 0.01) on two alternating batches of 8 at 64x64 against
/// PyTorch (float64,
/// `tests/fixtures/timm_b_multistep.safetensors`, made by baselines/make_fixtures.py): every
/// step's loss and the final parameters and BN running statistics. Tolerance: 1e-4 * max|ref|
/// + 1e-5 per tensor (five steps of f32 rounding through the optimizer state).
#[test]
fn five_sgd_steps_match_pytorch() {
    use efficientnet_wgpu::model::{Variant, WeightFormat};
    let gpu = shared_gpu();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut config = Config::new(Variant::B0, 10);
    config.width = 0.25;
    config.depth = 0.5;
    let (weights, _) =
        Weights::load(dir.join("timm_b_weights.safetensors"), &config, Some(WeightFormat::Timm)).unwrap();
    let refs = read_safetensors(&dir.join("timm_b_multistep.safetensors"));
    let bytes = std::fs::read(dir.join("timm_b_multistep.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let target = |i: usize| -> Vec<u32> {
        bytemuck::pod_collect_to_vec::<u8, i64>(st.tensor(&format!("multi.target{i}")).unwrap().data())
            .iter()
            .map(|&v| v as u32)
            .collect()
    };
    let batches: Vec<Batch> = (0..2)
        .map(|i| Batch { input: refs[&format!("multi.input{i}")].1.clone(), targets: target(i), h: 64, w: 64 })
        .collect();
    let mut opts = tc(OptimizerKind::Sgd { momentum: 0.9, nesterov: false }, 8, 0.01);
    opts.resolution = 64;
    let mut t = Trainer::new(gpu.clone(), config.clone(), &weights, opts, 1).unwrap();
    let want_loss = &refs["multi.loss"].1;
    for (s, want) in want_loss.iter().enumerate() {
        let b = &batches[s % 2];
        t.train_batch(b).unwrap();
        let (loss, _) = t.last_loss_and_accuracy(&b.targets).unwrap();
        assert!((loss - want).abs() <= 1e-4 * want.abs() + 1e-5, "step {s}: loss {loss} vs PyTorch {want}");
    }
    let ours = t.weights().unwrap();
    let spec = config.state_dict_spec(WeightFormat::Timm);
    let mut checked = 0;
    for s in &spec {
        let Some((_, want)) = refs.get(&format!("multi.final.{}", s.key)) else { continue };
        let got = &ours.get(s.layer, s.field).unwrap().data;
        assert_close(&s.key, got, want, 1e-4 * max_abs(want) + 1e-5, 0.0);
        checked += 1;
    }
    assert!(checked > 100, "compared {checked} tensors");
}

#[test]
fn evaluation_from_the_training_parameters_matches_the_inference_model() {
    // Trainer::evaluate folds BatchNorm into the weights on the GPU from the live parameters and
    // runs the inference lowering; here against an inference model built from the parameters
    // read back (BN folded on the CPU in f64). The logits agree to f32 rounding, so every
    // prediction, and with it the accuracy of each class, is the same. Running statistics are
    // calibrated by two steps first, so the network's outputs differ from image to image.
    let gpu = shared_gpu();
    let config = Config::b0(10);
    let mut c = tc(OptimizerKind::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, 8, 0.001);
    c.resolution = 24;
    c.bn_momentum = 0.5;
    let mut trainer = Trainer::new(gpu.clone(), config.clone(), &Weights::init_random(&config, 11), c, 10).unwrap();
    let ds = synthetic(40, 10, 12);
    let norm = Normalize::FASHION_MNIST;
    for b in Loader::start(&ds, 8, 0, 0, 1, true, true, Augment::None, norm, 24).unwrap().take(2) {
        trainer.train_batch(&b.unwrap()).unwrap();
    }
    let got = trainer.evaluate(&ds, norm, 16).unwrap();
    let model = efficientnet_wgpu::EfficientNet::new(gpu.clone(), config.clone(), &trainer.weights().unwrap())
        .unwrap()
        .with_input_size(Some((24, 24)));
    let (mut right, mut seen) = (vec![0usize; 10], vec![0usize; 10]);
    for b in Loader::start(&ds, 16, 0, 0, 5, false, false, Augment::None, norm, 24).unwrap() {
        let b = b.unwrap();
        let logits = model.forward(&b.input, b.len(), b.h, b.w).unwrap().logits;
        for (row, &t) in logits.chunks(10).zip(&b.targets) {
            seen[t as usize] += 1;
            right[t as usize] += (efficientnet_wgpu::train::argmax(row) == t as usize) as usize;
        }
    }
    assert_eq!(got.examples, 40);
    let want: Vec<f64> = right.iter().zip(&seen).map(|(&r, &s)| r as f64 / s.max(1) as f64).collect();
    assert_eq!(got.per_class, want);
    // A second evaluation refolds the parameters as they are then.
    trainer
        .train_batch(
            &Loader::start(&ds, 8, 1, 0, 1, true, true, Augment::None, norm, 24).unwrap().next().unwrap().unwrap(),
        )
        .unwrap();
    assert_eq!(trainer.evaluate(&ds, norm, 16).unwrap().examples, 40);
}
