//! Hostile and careless input: every number is checked where it enters the library, non-finite
//! weights, inputs and losses are errors rather than answers, and the CLI and the trainer say what
//! was wrong. Each test is a case that once panicked, answered with NaN, or said something unclear.

mod common;
use common::*;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use efficientnet_wgpu::data::{Batch, Dataset, InMemory, Normalize, Source};
use efficientnet_wgpu::infer::{Classifier, RgbPlanes};
use efficientnet_wgpu::model::{Config, EfficientNet, Field, Layer, Weights};
use efficientnet_wgpu::ops::OptimizerKind;
use efficientnet_wgpu::train::{Schedule, TrainConfig, TrainGraph, TrainOptions, Trainer};
use efficientnet_wgpu::{Error, Gpu};

fn shared_gpu() -> Arc<Gpu> {
    static GPU: std::sync::OnceLock<Arc<Gpu>> = std::sync::OnceLock::new();
    GPU.get_or_init(|| Arc::new(Gpu::new().expect("a wgpu adapter (apt-get install -y mesa-vulkan-drivers)"))).clone()
}

/// A small network (width 0.25, depth 0.5, 10 classes): weight files of a few hundred KB.
fn tiny() -> Config {
    Config::custom(0.25, 0.5, 32, 0.2, 10)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("effnet-hardening-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn effnet(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_effnet")).args(args).envs(env.iter().copied()).output().expect("run effnet");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

fn tc_with(edit: impl FnOnce(&mut TrainConfig)) -> TrainConfig {
    let mut c = TrainConfig::default();
    edit(&mut c);
    c
}

fn opts_with(edit: impl FnOnce(&mut TrainOptions)) -> TrainOptions {
    let mut c = TrainOptions::default();
    edit(&mut c);
    c
}

fn message<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    r.expect_err("an error").to_string()
}

#[test]
fn every_training_option_is_checked_with_the_option_value_and_range_named() {
    let bad: Vec<(&str, TrainConfig)> = vec![
        (
            "bn_momentum is NaN",
            tc_with(|c| {
                c.bn_momentum = f32::NAN;
            }),
        ),
        (
            "bn_momentum is inf",
            tc_with(|c| {
                c.bn_momentum = f32::INFINITY;
            }),
        ),
        (
            "bn_momentum is -1",
            tc_with(|c| {
                c.bn_momentum = -1.0;
            }),
        ),
        (
            "bn_momentum is 2",
            tc_with(|c| {
                c.bn_momentum = 2.0;
            }),
        ),
        (
            "ema (decay) is NaN",
            tc_with(|c| {
                c.ema = Some(f32::NAN);
            }),
        ),
        (
            "ema (decay) is 2",
            tc_with(|c| {
                c.ema = Some(2.0);
            }),
        ),
        (
            "weight_decay is NaN",
            tc_with(|c| {
                c.weight_decay = f32::NAN;
            }),
        ),
        (
            "warmup_epochs is NaN",
            tc_with(|c| {
                c.warmup_epochs = f32::NAN;
            }),
        ),
        (
            "lr is -0.1",
            tc_with(|c| {
                c.lr = -0.1;
            }),
        ),
        (
            "label_smoothing is 1",
            tc_with(|c| {
                c.label_smoothing = 1.0;
            }),
        ),
        (
            "resolution is 0",
            tc_with(|c| {
                c.resolution = 0;
            }),
        ),
        (
            "epochs is 0",
            tc_with(|c| {
                c.epochs = 0;
            }),
        ),
        (
            "batch_size is 1",
            tc_with(|c| {
                c.batch_size = 1;
            }),
        ),
        (
            "adamw beta2 is 1",
            tc_with(|c| {
                c.optimizer = OptimizerKind::AdamW { beta1: 0.9, beta2: 1.0, eps: 1e-8 };
            }),
        ),
        (
            "schedule rate is 0",
            tc_with(|c| {
                c.schedule = Schedule::ExponentialStaircase { rate: 0.0, every_epochs: 2.4 };
            }),
        ),
    ];
    assert!(TrainConfig::default().validate().is_ok());
    for (want, tc) in bad {
        let err = message(tc.validate());
        assert!(err.contains(want), "{want:?} not in {err:?}");
    }
    // Trainer::new refuses before anything reaches a kernel as an override constant.
    let config = Config::b0(4);
    let tc = tc_with(|c| {
        c.bn_momentum = f32::NAN;
    });
    let err = message(Trainer::new(shared_gpu(), config.clone(), &Weights::zeros(&config), tc, 10).map(|_| ()));
    assert!(err.contains("bn_momentum is NaN"), "{err}");
}

#[test]
fn a_non_finite_step_option_is_an_error_not_a_wgpu_panic() {
    let gpu = shared_gpu();
    let config = Config::b0(4);
    let graph = TrainGraph::new(&gpu, config.clone(), &Weights::zeros(&config)).unwrap();
    for (opts, want) in [
        (
            opts_with(|c| {
                c.bn_momentum = f32::NAN;
            }),
            "bn_momentum is NaN",
        ),
        (
            opts_with(|c| {
                c.label_smoothing = f32::INFINITY;
            }),
            "label_smoothing is inf",
        ),
        (
            opts_with(|c| {
                c.resize_to = Some((0, 32));
            }),
            "resize_to is 0x32",
        ),
    ] {
        let err = message(graph.record_step(&gpu, 2, 32, 32, &opts).map(|_| ()));
        assert!(err.contains(want), "{want:?} not in {err:?}");
    }
    // Below the options, a kernel never receives a non-finite override: Dispatch::new refuses it.
    let x = gpu.upload(&[0.0; 8], "x").unwrap();
    let p = efficientnet_wgpu::ops::DropoutParams { total: 8, rate: f32::NAN, salt: 1 };
    let err = message(efficientnet_wgpu::ops::dropout_fwd(&gpu, &p, &x, &x, &gpu.empty(8, "y").unwrap()).map(|_| ()));
    assert!(err.contains("NaN"), "{err}");
}

#[test]
fn configs_with_absurd_class_counts_or_sizes_are_refused() {
    let err = message(Config::b0(usize::MAX).validate());
    assert!(err.contains("num_classes is 18446744073709551615"), "{err}");
    let (ok, out) = effnet(&["info", "--classes", "18446744073709551615"], &[]);
    assert!(!ok && out.contains("num_classes"), "{out}");
    let (ok, out) = effnet(&["info", "--resolution", "0"], &[]);
    assert!(!ok && out.contains("--resolution is 0"), "{out}");
    let (ok, out) =
        effnet(&["info", "--train-memory", "--batch", "2", "--resolution", "32"], &[("EFFNET_KERNELS", "tpu")]);
    assert!(!ok && out.contains("EFFNET_KERNELS is \"tpu\""), "{out}");
}

#[test]
fn cli_counts_below_one_say_so() {
    for top in ["-1", "0"] {
        let (ok, out) = effnet(&["classify", "--top", top, "--weights", "w.safetensors", "x.png"], &[]);
        assert!(!ok && out.contains("must be at least 1"), "--top {top}: {out}");
    }
}

/// `tiny()`'s random weights saved in torchvision names, with `edit` applied first.
fn weights_file(dir: &std::path::Path, name: &str, edit: impl FnOnce(&mut Weights)) -> PathBuf {
    let config = tiny();
    let mut w = Weights::init_random(&config, 3);
    edit(&mut w);
    let path = dir.join(name);
    w.save(&path, &config, Default::default()).unwrap();
    path
}

#[test]
fn non_finite_weights_and_negative_variances_are_refused_where_they_load() {
    let dir = tmp("weights");
    let config = tiny();
    let stem_var = Layer::Stem;
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "NaN",
            weights_file(&dir, "nan.safetensors", |w| {
                w.get_mut(Layer::Classifier, Field::Weight).unwrap().data[5] = f32::NAN
            }),
            "classifier.1.weight",
        ),
        (
            "inf",
            weights_file(&dir, "inf.safetensors", |w| {
                w.get_mut(Layer::Head, Field::BnBias).unwrap().data[0] = f32::INFINITY
            }),
            "features.",
        ),
        (
            "variances cannot be negative",
            weights_file(&dir, "var.safetensors", |w| w.get_mut(stem_var, Field::RunningVar).unwrap().data[2] = -1.0),
            "features.0.1.running_var",
        ),
    ];
    for (want, path, tensor) in cases {
        let err = message(Weights::load(&path, &config, None));
        assert!(err.contains(want) && err.contains(tensor) && err.contains(&*path.to_string_lossy()), "{err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn non_finite_inputs_and_logits_are_errors_naming_the_batch_item_unless_allowed() {
    let gpu = shared_gpu();
    let config = tiny();
    let model = EfficientNet::new(gpu.clone(), config.clone(), &Weights::init_random(&config, 4)).unwrap();
    let (h, w) = (32, 32);
    let mut input = rand_vec(3 * 3 * h * w, 5);
    input[2 * 3 * h * w + 17] = f32::NAN;
    let err = message(model.forward(&input, 3, h, w));
    assert!(err.contains("input of batch item 2") && err.contains("NaN"), "{err}");
    // Weights that overflow give infinite logits: an error, never "100%" for some class.
    let mut big = Weights::init_random(&config, 4);
    big.get_mut(Layer::Head, Field::BnBias).unwrap().data.fill(1e6);
    big.get_mut(Layer::Classifier, Field::Weight).unwrap().data.fill(3e38);
    let loud = EfficientNet::new(gpu.clone(), config.clone(), &big).unwrap();
    let clean = rand_vec(3 * h * w, 6);
    let err = message(loud.forward(&clean, 1, h, w));
    assert!(err.contains("logits of batch item 0"), "{err}");
    // The opt-out returns them as they are.
    let raw = loud.allow_non_finite(true).forward(&clean, 1, h, w).unwrap();
    assert!(raw.logits.iter().any(|v| !v.is_finite()));
    // The classifier checks its probabilities the same way.
    let classifier = Classifier::new(EfficientNet::new(gpu.clone(), config.clone(), &big).unwrap());
    let img = RgbPlanes { h: 40, w: 40, data: rand_vec(3 * 40 * 40, 7).iter().map(|v| v.abs()).collect() };
    let err = message(classifier.classify(&[img], 3));
    assert!(err.contains("batch item 0"), "{err}");
}

#[test]
fn a_twelve_megapixel_photo_classifies_within_the_binding_limit() {
    // 4032 x 3024 RGB is 146 MB of f32, past a 128 MiB binding: it is resized and cropped on the
    // CPU and only the crop is uploaded. The answer is the network's on that preprocessed input
    // (softmax of its logits; tolerance 1e-6, f32 softmax on GPU and CPU).
    let gpu = Arc::new(small_binding_gpu(128 << 20));
    let config = Config::b0(1000);
    let model = EfficientNet::new(gpu.clone(), config.clone(), &Weights::init_random(&config, 8)).unwrap();
    let classifier = Classifier::new(model);
    let (h, w) = (3024, 4032);
    let data: Vec<f32> = (0..3 * h * w).map(|i| ((i * 7919) % 255) as f32 / 255.0).collect();
    let photo = RgbPlanes { h, w, data };
    let got = classifier.probabilities(std::slice::from_ref(&photo)).unwrap();
    let input = classifier.preprocess.apply(&gpu, &[photo]).unwrap();
    let res = classifier.preprocess.resolution;
    let logits = classifier.model.forward(&input, 1, res, res).unwrap().logits;
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let sum: f64 = logits.iter().map(|&v| ((v - max) as f64).exp()).sum();
    let want: Vec<f32> = logits.iter().map(|&v| (((v - max) as f64).exp() / sum) as f32).collect();
    assert_close("12 MP photo", &got[0], &want, 1e-6, 0.0);
}

fn batch_of(n: usize, value: f32) -> Batch {
    Batch { input: vec![value; n * 3 * 16 * 16], targets: (0..n as u32).map(|i| i % 4).collect(), h: 16, w: 16 }
}

#[test]
fn a_non_finite_loss_stops_training_naming_the_step() {
    let gpu = shared_gpu();
    let config = Config::b0(4);
    let tc = tc_with(|c| {
        c.resolution = 16;
        c.batch_size = 2;
    });
    let mut trainer = Trainer::new(gpu, config.clone(), &Weights::init_random(&config, 9), tc, 10).unwrap();
    trainer.train_batch(&batch_of(2, 0.5)).unwrap();
    trainer.check_finite().unwrap();
    trainer.train_batch(&batch_of(2, f32::NAN)).unwrap();
    let err = message(trainer.check_finite());
    assert!(err.contains("at step 2") && err.contains("diverged"), "{err}");
}

#[test]
fn evaluation_stops_within_a_batch_when_asked() {
    let gpu = shared_gpu();
    let config = Config::b0(4);
    let tc = tc_with(|c| {
        c.resolution = 16;
        c.batch_size = 2;
    });
    let trainer = Trainer::new(gpu, config.clone(), &Weights::init_random(&config, 9), tc, 10).unwrap();
    let ds = Dataset {
        name: "eval".into(),
        source: Source::Memory(InMemory { channels: 1, h: 12, w: 12, pixels: vec![7; 8 * 144], labels: vec![1; 8] }),
        class_names: (0..4).map(|c| c.to_string()).collect(),
    };
    let stop = std::sync::atomic::AtomicBool::new(true);
    assert!(trainer.evaluate_until(&ds, Normalize::FASHION_MNIST, 4, &stop).unwrap().is_none());
}

/// Fashion-MNIST-format IDX files of `n` random 28x28 images in `dir`, for train and test.
#[test]
fn train_b0_resumes_exactly_after_max_steps_and_refuses_nonsense_flags() {
    let dir = tmp("train_b0");
    write_idx(&dir, 24, 8);
    let run = |out: &str, extra: &[&str]| {
        let mut args: Vec<String> =
            ["--data", dir.to_str().unwrap(), "--batch-size", "4"].iter().map(|s| s.to_string()).collect();
        args.extend(["--resolution", "16", "--out", dir.join(out).to_str().unwrap()].iter().map(|s| s.to_string()));
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = train_b0().args(&args).env("XDG_RUNTIME_DIR", "/tmp").output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // 24 images make 6 steps an epoch: stopping at 2 then resuming to 4 equals running to 4.
    let (ok, err) = run("a", &["--epochs", "1", "--max-steps", "4"]);
    assert!(ok, "{err}");
    let (ok, err) = run("b", &["--epochs", "1", "--max-steps", "2"]);
    assert!(ok, "{err}");
    let ck = dir.join("b/checkpoint.safetensors");
    let (ok, err) = run("b", &["--epochs", "1", "--max-steps", "4", "--resume", ck.to_str().unwrap()]);
    assert!(ok, "{err}");
    let a = std::fs::read(dir.join("a/final.safetensors")).unwrap();
    let b = std::fs::read(dir.join("b/final.safetensors")).unwrap();
    assert!(a == b, "the resumed run's weights differ from the uninterrupted run's");
    for (flags, want) in [
        (&["--log-every", "0"][..], "--log-every"),
        (&["--epochs", "0"][..], "epochs is 0"),
        (&["--bn-momentum", "NaN"][..], "bn_momentum is NaN"),
        (&["--ema", "2"][..], "ema (decay) is 2"),
    ] {
        let (ok, err) = run("c", flags);
        assert!(!ok && err.contains(want), "{flags:?}: {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_f16_path_refuses_non_finite_input_too() {
    // f16 storage saturates at ±65504, which turned an all-NaN input into finite logits: the input
    // is checked before it is stored.
    let gpu = shared_gpu();
    let config = tiny();
    let weights = Weights::init_random(&config, 4);
    match EfficientNet::new_with_store(gpu.clone(), config, &weights, efficientnet_wgpu::gpu::Dtype::F16) {
        Ok(model) => {
            let err = message(model.forward(&vec![f32::NAN; 3 * 32 * 32], 1, 32, 32));
            assert!(err.contains("input of batch item 0"), "{err}");
        }
        Err(e) => assert!(matches!(e, Error::Unsupported { .. }), "{e}"),
    }
}

#[test]
fn cli_grad_refuses_a_nan_momentum_and_run_reads_f16_inputs() {
    let dir = tmp("cli-grad");
    let config = Config::b0(10);
    let weights = dir.join("b0.safetensors");
    Weights::init_random(&config, 1).save(&weights, &config, Default::default()).unwrap();
    let (h, w) = (32usize, 32usize);
    let values = rand_vec(3 * h * w, 2);
    let write = |name: &str, dtype: safetensors::Dtype, bytes: Vec<u8>, target: bool| {
        let path = dir.join(name);
        let mut tensors =
            vec![("input".to_string(), safetensors::tensor::TensorView::new(dtype, vec![1, 3, h, w], &bytes).unwrap())];
        let t = 3i64.to_le_bytes();
        if target {
            tensors.push((
                "target".into(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![1], &t).unwrap(),
            ));
        }
        std::fs::write(&path, safetensors::tensor::serialize(tensors, None).unwrap()).unwrap();
        path
    };
    let f32_bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let f16_bytes: Vec<u8> = values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
    let step = write("step.safetensors", safetensors::Dtype::F32, f32_bytes, true);
    let (wp, sp, out) = (weights.to_str().unwrap(), step.to_str().unwrap(), dir.join("out.safetensors"));
    let (ok, text) = effnet(
        &["grad", "--weights", wp, "--input", sp, "--output", out.to_str().unwrap(), "--bn-momentum", "NaN"],
        &[],
    );
    assert!(!ok && text.contains("bn_momentum is NaN") && !text.contains("panicked"), "{text}");
    let half_input = write("half.safetensors", safetensors::Dtype::F16, f16_bytes, false);
    let (ok, text) = effnet(
        &["run", "--weights", wp, "--input", half_input.to_str().unwrap(), "--output", out.to_str().unwrap()],
        &[],
    );
    assert!(ok, "{text}");
    std::fs::remove_dir_all(&dir).ok();
}
