//! Fine-tuning pretrained weights on new classes: the backbone loads from weights of another class
//! count and the classifier is re-initialised; a frozen backbone stays bit-identical, keeps no
//! gradient or optimizer state and still lets the loss fall; the backbone's learning-rate
//! multiplier applies to the backbone alone.

mod common;
use common::*;

use std::sync::Arc;

use efficientnet_wgpu::data::Batch;
use efficientnet_wgpu::model::{Config, Field, HeadReset, Layer, Weights};
use efficientnet_wgpu::train::{TrainConfig, Trainer};
use efficientnet_wgpu::Gpu;

fn shared_gpu() -> Arc<Gpu> {
    static GPU: std::sync::OnceLock<Arc<Gpu>> = std::sync::OnceLock::new();
    GPU.get_or_init(|| Arc::new(Gpu::new().expect("a wgpu adapter (apt-get install -y mesa-vulkan-drivers)"))).clone()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("effnet-finetune-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every tensor but the classifier's, by key.
fn backbone(w: &Weights) -> Vec<(String, Vec<f32>)> {
    w.iter().filter(|(s, _)| s.layer != Layer::Classifier).map(|(s, t)| (s.key.clone(), t.data.clone())).collect()
}

/// Learnable backbone tensors only (running statistics move in training mode whatever the rate).
fn learnable_backbone(w: &Weights) -> Vec<(String, Vec<f32>)> {
    w.iter()
        .filter(|(s, _)| s.layer != Layer::Classifier && s.field.is_learnable())
        .map(|(s, t)| (s.key.clone(), t.data.clone()))
        .collect()
}

/// `n` images whose class is their brightness (plus noise), so that even a random backbone's
/// features tell the classes apart.
fn batch(n: usize, classes: u32, seed: u64) -> Batch {
    let per = 3 * 16 * 16;
    let targets: Vec<u32> = (0..n as u32).map(|i| i % classes).collect();
    let noise = rand_vec(n * per, seed);
    let input = (0..n * per).map(|i| 1.5 * targets[i / per] as f32 - 2.0 + 0.1 * noise[i]).collect();
    Batch { input, targets, h: 16, w: 16 }
}

fn tc(edit: impl FnOnce(&mut TrainConfig)) -> TrainConfig {
    let mut c = TrainConfig::default();
    c.resolution = 16;
    c.batch_size = 4;
    c.warmup_epochs = 0.0;
    c.dropout = false;
    c.drop_path = false;
    edit(&mut c);
    c
}

#[test]
fn weights_of_another_class_count_load_their_backbone_and_a_fresh_head() {
    let dir = tmp("load");
    let pretrained = Weights::init_random(&Config::b0(7), 1);
    let path = dir.join("pretrained.safetensors");
    pretrained.save(&path, &Config::b0(7), Default::default()).unwrap();
    let config = Config::b0(3);
    let fresh = Weights::init_random(&config, 2);
    let (w, _, reset) = Weights::load_backbone(&path, &config, None, &fresh).unwrap();
    assert_eq!(reset, Some(HeadReset { file_classes: 7, classes: 3 }));
    assert_eq!(backbone(&w), backbone(&pretrained), "the backbone is the file's");
    for field in [Field::Weight, Field::Bias] {
        assert_eq!(w.get(Layer::Classifier, field), fresh.get(Layer::Classifier, field), "the head is fresh");
    }
    // The same class count loads as it is.
    let (same, _, reset) = Weights::load_backbone(&path, &Config::b0(7), None, &fresh).unwrap();
    assert_eq!((reset, same), (None, pretrained));
    // Weights of another variant are still an error naming the file and the fix.
    let err = Weights::load_backbone(&path, &Config::b1(3), None, &Weights::init_random(&Config::b1(3), 2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("pretrained.safetensors") && err.contains("--model b0"), "{err}");
    // A folder of one class is no classification task: an error naming the folder.
    let one = dir.join("one");
    std::fs::create_dir_all(one.join("cat")).unwrap();
    image::RgbImage::new(8, 8).save(one.join("cat").join("0.png")).unwrap();
    let out = train_b0().args(["--dataset", "folder", "--data", one.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("one") && err.contains("at least two"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_frozen_backbone_stays_bit_identical_keeps_no_state_and_the_loss_falls() {
    let gpu = shared_gpu();
    let config = Config::b0(4);
    // A "pretrained" backbone: random weights whose BatchNorm running statistics are calibrated
    // by two steps at learning rate 0 (uncalibrated, an eval-mode random network's features are
    // ~1e-6 and no head could learn from them).
    let calibrate = tc(|c| {
        c.lr = 0.0;
        c.bn_momentum = 0.5;
    });
    let mut warm =
        Trainer::new(gpu.clone(), config.clone(), &Weights::init_random(&config, 3), calibrate, 100).unwrap();
    for seed in [8, 9] {
        warm.train_batch(&batch(4, 4, seed)).unwrap();
    }
    let weights = warm.weights().unwrap();
    let frozen = tc(|c| {
        c.freeze_backbone = true;
        c.lr = 0.001;
    });
    let mut trainer = Trainer::new(gpu.clone(), config.clone(), &weights, frozen, 100).unwrap();
    // No gradient or optimizer state for the frozen parameters: exactly the classifier's
    // (weight 1280 x 4 and bias 4, each padded to the offset alignment).
    let p = &trainer.graph.params;
    let head: usize = p.entries.iter().filter(|e| e.layer == Layer::Classifier).map(|e| e.len).sum();
    assert!(p.trainable_len >= head && p.trainable_len < head + 2 * 64, "{} for {head}", p.trainable_len);
    assert_eq!(p.grads.len, p.trainable_len);
    assert!(trainer.optimizer.state.iter().all(|s| s.len == p.trainable_len));
    let full = Trainer::new(gpu.clone(), config.clone(), &weights, tc(|_| {}), 100).unwrap();
    assert!(full.graph.params.grads.len > 100 * p.grads.len, "unfrozen: every parameter has a gradient");

    let b = batch(4, 4, 5);
    let mut losses = Vec::new();
    for _ in 0..12 {
        trainer.train_batch(&b).unwrap();
        losses.push(trainer.last_loss_and_accuracy(&b.targets).unwrap().0);
    }
    assert!(losses[11] < 0.8 * losses[0], "the head alone learns the batch: {losses:?}");
    let after = trainer.weights().unwrap();
    assert_eq!(backbone(&after), backbone(&weights), "frozen: parameters and running statistics unchanged");
    assert_ne!(after.get(Layer::Classifier, Field::Weight), weights.get(Layer::Classifier, Field::Weight));
}

#[test]
fn the_backbone_learning_rate_multiplier_applies_to_the_backbone_alone() {
    let gpu = shared_gpu();
    let config = Config::b0(4);
    let weights = Weights::init_random(&config, 6);
    let mut trainer = Trainer::new(gpu, config, &weights, tc(|c| c.backbone_lr_mult = 0.0), 100).unwrap();
    let b = batch(4, 4, 7);
    for _ in 0..3 {
        trainer.train_batch(&b).unwrap();
    }
    let after = trainer.weights().unwrap();
    assert_eq!(learnable_backbone(&after), learnable_backbone(&weights), "a zero multiplier: the backbone stays");
    assert_ne!(after.get(Layer::Classifier, Field::Weight), weights.get(Layer::Classifier, Field::Weight));
    let err = tc(|c| c.backbone_lr_mult = f32::NAN).validate().unwrap_err().to_string();
    assert!(err.contains("backbone_lr_mult is NaN"), "{err}");
}

#[test]
fn weights_trained_on_a_folder_carry_its_class_names_to_effnet_classify() {
    let dir = tmp("folder");
    let data = dir.join("photos");
    for (c, name) in ["bird", "cat", "dog"].iter().enumerate() {
        std::fs::create_dir_all(data.join(name)).unwrap();
        for i in 0..6u32 {
            let img = image::RgbImage::from_fn(40, 36, |x, y| {
                image::Rgb([(80 * c as u32 + x + i) as u8, (y * 5) as u8, (200 - 60 * c as u32) as u8])
            });
            img.save(data.join(name).join(format!("{i}.png"))).unwrap();
        }
    }
    let out = dir.join("run");
    let status = train_b0()
        .args(["--dataset", "folder", "--data", data.to_str().unwrap(), "--epochs", "1", "--batch-size", "4"])
        .args(["--resolution", "32", "--out", out.to_str().unwrap()])
        .env("XDG_RUNTIME_DIR", "/tmp")
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let weights = out.join("final.safetensors");
    assert_eq!(
        Weights::class_names_in_file(&weights).unwrap(),
        Some(vec!["bird".to_string(), "cat".into(), "dog".into()])
    );
    let classify = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_effnet"))
            .args(["classify", "--weights", weights.to_str().unwrap(), "--top", "3"])
            .args(extra)
            .arg(data.join("cat/0.png"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let printed = classify(&[]);
    assert!(["bird", "cat", "dog"].iter().all(|n| printed.contains(n)), "{printed}");
    // --labels names classes for weights that carry none, or renames them; a wrong count is refused.
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, "sparrow\ntabby\nterrier\n").unwrap();
    let printed = classify(&["--labels", labels.to_str().unwrap()]);
    assert!(printed.contains("tabby") && !printed.contains("cat\n"), "{printed}");
    std::fs::write(&labels, "one\ntwo\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_effnet"))
        .args(["classify", "--weights", weights.to_str().unwrap(), "--labels", labels.to_str().unwrap()])
        .arg(data.join("cat/0.png"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("labels.txt") && err.contains("2 names"), "{err}");
    // A folder of one class is no classification task: an error naming the folder.
    let one = dir.join("one");
    std::fs::create_dir_all(one.join("cat")).unwrap();
    image::RgbImage::new(8, 8).save(one.join("cat").join("0.png")).unwrap();
    let out = train_b0().args(["--dataset", "folder", "--data", one.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("one") && err.contains("at least two"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
