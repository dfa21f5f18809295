//! Data-parallel training in one process: R replicas of a batch's shards, one per device (here
//! two devices on one adapter), take the step one device takes running the batch as R
//! micro-batches of one shard each. The gradient sum runs the micro-batches' kernel in the same
//! order on every replica, so the comparison is exact.

mod common;
use common::*;

use std::sync::Arc;

use efficientnet_wgpu::data::Batch;
use efficientnet_wgpu::gpu::Gpu;
use efficientnet_wgpu::model::{Config, Weights};
use efficientnet_wgpu::ops::OptimizerKind;
use efficientnet_wgpu::train::{Schedule, TrainConfig, Trainer};

fn config_for(batch: usize) -> TrainConfig {
    let mut c = TrainConfig::default();
    c.epochs = 1;
    c.max_steps = None;
    c.batch_size = batch;
    c.lr = 0.01;
    c.schedule = Schedule::Constant;
    c.warmup_epochs = 0.0;
    c.optimizer = OptimizerKind::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    c.resolution = 16;
    c.seed = 9;
    // Dropout and stochastic depth on: replica r must draw micro-batch r's masks.
    c.dropout = true;
    c.drop_path = true;
    c
}

fn batch(n: usize, seed: u64) -> Batch {
    Batch {
        input: rand_vec(n * 3 * 16 * 16, seed),
        targets: (0..n as u32).map(|i| (i * 3 + seed as u32) % 4).collect(),
        h: 16,
        w: 16,
    }
}

#[test]
fn two_replicas_take_the_step_one_device_takes_as_two_micro_batches() {
    let config = Config::custom(0.25, 0.25, 16, 0.2, 4);
    let weights = Weights::init_random(&config, 21);

    let mut one_tc = config_for(8);
    one_tc.micro_batch = Some(4);
    let mut one = Trainer::new(gpu().clone(), config.clone(), &weights, one_tc, 10).unwrap();
    let gpus: Vec<Arc<Gpu>> = Gpu::open_many(2).unwrap().into_iter().map(Arc::new).collect();
    let mut two = Trainer::new_data_parallel(gpus, config.clone(), &weights, config_for(8), 10).unwrap();
    assert_eq!(two.world_size(), 2);

    for step in 0..3 {
        let b = batch(8, 40 + step);
        one.train_batch(&b).unwrap();
        two.train_batch(&b).unwrap();
        let (l1, a1) = one.last_loss_and_accuracy(&b.targets).unwrap();
        let (l2, a2) = two.last_loss_and_accuracy(&b.targets).unwrap();
        assert_eq!((l1.to_bits(), a1), (l2.to_bits(), a2), "step {step}: loss and accuracy");
    }
    let want = one.gpu.read(&one.graph.params.params).unwrap();
    let got = two.gpu.read(&two.graph.params.params).unwrap();
    assert!(want.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()), "parameters after 3 steps");
    assert!(two.replicas_in_sync().unwrap(), "every replica holds the same parameters");
    assert_eq!(two.step, 3);
}

#[test]
fn a_batch_that_does_not_split_over_the_devices_is_refused() {
    let config = Config::custom(0.25, 0.25, 16, 0.2, 4);
    let weights = Weights::init_random(&config, 22);
    let gpus: Vec<Arc<Gpu>> = Gpu::open_many(2).unwrap().into_iter().map(Arc::new).collect();
    let err = Trainer::new_data_parallel(gpus.clone(), config.clone(), &weights, config_for(7), 10).err().unwrap();
    assert!(err.to_string().contains("multiple of the device count"), "{err}");
    let mut two = Trainer::new_data_parallel(gpus, config, &weights, config_for(8), 10).unwrap();
    let err = two.train_batch(&batch(6 - 1, 1)).unwrap_err();
    assert!(err.to_string().contains("does not split over 2 devices"), "{err}");
}

#[test]
fn train_b0_on_two_devices_ends_where_one_device_with_two_micro_batches_does() {
    let dir = std::env::temp_dir().join(format!("effnet-parallel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write_idx(&dir, 24, 8);
    let run = |name: &str, extra: &[&str]| {
        let mut cmd = train_b0();
        cmd.args(["--data", dir.to_str().unwrap(), "--batch-size", "4", "--resolution", "16", "--epochs", "1"])
            .args(["--max-steps", "3", "--out", dir.join(name).to_str().unwrap()])
            .args(extra)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir());
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        read_safetensors(&dir.join(name).join("final.safetensors"))
    };
    let one = run("one", &["--micro-batch", "2"]);
    let two = run("two", &["--devices", "2"]);
    // Parameters are equal bit for bit; BatchNorm running statistics are each replica's own (as
    // in DDP) and rank 0's are saved, so they differ from one device's two micro-batches.
    let mut compared = 0;
    for (name, (_, want)) in &one {
        if name.contains("running_") || name.contains("num_batches") {
            continue;
        }
        let got = &two[name].1;
        assert!(want.iter().zip(got).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}");
        compared += 1;
    }
    assert!(compared > 100, "{compared} tensors compared");
    std::fs::remove_dir_all(&dir).ok();
}
