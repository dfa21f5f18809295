//! One training step against PyTorch: loss, logits, the gradient of every parameter and of the
//! input, and the BN running statistics after the step.
//! Tolerances (issue #3): loss, logits, running statistics within 1e-5 + 1e-4 * max|ref|; every
//! gradient tensor within 2e-6 + 1e-3 * max|ref| (some BN-bias gradients are exactly zero in real
//! arithmetic: the absolute term covers f32 noise there).
//! The committed small fixtures hold float64 PyTorch references and, per tensor, how far PyTorch's
//! own float32 step lands from them (`torch_f32_err`). On the Lite fixture that exceeds the
//! absolute term above (7.6e-6 on an exactly-zero BN-bias gradient), so there a gradient may also
//! be within 4x PyTorch's own f32 error. Rounding in those structurally-zero sums is a random walk
//! whose size depends on summation order; PyTorch's error is one sample of it (ours measured up to
//! 2.1x PyTorch's on one tensor, better than PyTorch on most).

mod common;
use common::*;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use efficientnet_wgpu::model::{Config, Variant, WeightFormat, Weights};
use efficientnet_wgpu::train::{TrainGraph, TrainOptions};
use efficientnet_wgpu::Gpu;

fn targets(path: &Path, key: &str) -> Vec<u32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(key).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::I64);
    bytemuck::pod_collect_to_vec::<u8, i64>(t.data()).into_iter().map(|v| v as u32).collect()
}

#[allow(clippy::too_many_arguments)]
fn check_step(
    gpu: &Gpu,
    what: &str,
    config: Config,
    weights: &Weights,
    format: WeightFormat,
    momentum: f32,
    io: &Path,
    prefix: &str,
    torch_f32_err: &HashMap<String, f64>,
    fused_bn_stats: bool,
) {
    let refs = read_safetensors(io);
    let (shape, input) = &refs[&format!("{prefix}input")];
    let t = targets(io, &format!("{prefix}target"));
    let graph = TrainGraph::new(gpu, config, weights).unwrap();
    let opts = {
        let mut o = TrainOptions::default();
        o.bn_momentum = momentum;
        o.update_running_stats = true;
        o.dropout = false;
        o.drop_path = false;
        o.label_smoothing = 0.0;
        o.grad_input = true;
        o.resize_to = None;
        o.recompute = true;
        o.fused_bn_stats = fused_bn_stats;
        o
    };
    let shape = [shape[0], shape[1], shape[2], shape[3]];
    let report = graph.step_once(gpu, input, &t, shape, 0, &opts).unwrap();
    let loss_ref = refs[&format!("{prefix}loss")].1[0];
    assert!(
        (report.loss - loss_ref).abs() <= 1e-5 + 1e-4 * loss_ref.abs(),
        "{what} loss {} vs {loss_ref}",
        report.loss
    );
    let logits = &refs[&format!("{prefix}logits")].1;
    assert_close(&format!("{what} logits"), &report.logits, logits, 1e-5 + 1e-4 * max_abs(logits), 0.0);
    let gi = &refs["grad.input"].1;
    let tol = (2e-6 + 1e-3 * max_abs(gi)).max(4.0 * torch_f32_err.get("grad.input").copied().unwrap_or(0.0) as f32);
    assert_close(&format!("{what} grad.input"), report.grad_input.as_ref().unwrap(), gi, tol, 0.0);

    let ours: HashMap<String, Vec<f32>> =
        graph.named_gradients_and_running(gpu, format).unwrap().into_iter().map(|(k, t)| (k, t.data)).collect();
    let mut checked = 0;
    for (key, (_, want)) in &refs {
        let f32_floor = 4.0 * torch_f32_err.get(key).copied().unwrap_or(0.0) as f32;
        let tol = if key.starts_with("grad.") && key != "grad.input" {
            (2e-6 + 1e-3 * max_abs(want)).max(f32_floor)
        } else if key.starts_with("bn_after.") {
            1e-5 + 1e-4 * max_abs(want)
        } else {
            continue;
        };
        let got = ours.get(key).unwrap_or_else(|| panic!("{what}: we produced no {key}"));
        assert_close(&format!("{what} {key}"), got, want, tol, 0.0);
        checked += 1;
    }
    assert_eq!(checked, ours.len(), "{what}: every tensor we produce has a reference");
}

/// One training step of torchvision's B0 on the shared fixture against PyTorch's.
fn torchvision_b0_step(gpu: &Gpu, what: &str, fused_bn_stats: bool) {
    let config = Config::b0(1000);
    let (weights, format) = Weights::load(fixture("torchvision-b0/tv_b0.safetensors"), &config, None).unwrap();
    let io = fixture("torchvision-b0/tv_b0_grad.safetensors");
    check_step(gpu, what, config, &weights, format, 0.1, &io, "", &HashMap::new(), fused_bn_stats);
}

#[test]
#[ignore = "needs the full-size PyTorch fixtures ($EFFNET_FIXTURES, default ../shared/fixtures); scripts/test.sh includes it when they exist"]
fn torchvision_b0_training_step_matches_pytorch() {
    torchvision_b0_step(gpu(), "torchvision b0", true);
}

#[test]
#[ignore = "needs the full-size PyTorch fixtures ($EFFNET_FIXTURES, default ../shared/fixtures); scripts/test.sh includes it when they exist"]
fn torchvision_b0_training_step_matches_pytorch_with_bn_statistics_in_their_own_pass() {
    // TrainOptions::fused_bn_stats off: the 1x1 convs' BN statistics take their own pass over the
    // tensor instead of the GEMM's epilogue, one dispatch more per 1x1 conv + BN (32 in B0). The
    // same step, the same tolerances.
    let config = Config::b0(1000);
    let graph = TrainGraph::new(gpu(), config.clone(), &Weights::zeros(&config)).unwrap();
    let dispatches = [true, false].map(|fused_bn_stats| {
        let opts = {
            let mut o = TrainOptions::default();
            o.fused_bn_stats = fused_bn_stats;
            o
        };
        graph.record_step(gpu(), 2, 64, 64, &opts).unwrap().dispatches.len()
    });
    assert_eq!(dispatches[0] + 32, dispatches[1], "dispatches fused, separate: {dispatches:?}");
    torchvision_b0_step(gpu(), "torchvision b0, BN statistics in their own pass", false);
}

#[test]
#[ignore = "needs the full-size PyTorch fixtures ($EFFNET_FIXTURES, default ../shared/fixtures); scripts/test.sh includes it when they exist"]
fn torchvision_b0_training_step_matches_pytorch_with_the_gpu_kernel_families() {
    // The kernels GPU adapters pick (tiled GEMMs and BN reductions, buffer kernels), run here on
    // whatever adapter the tests have: the same step, the same tolerances.
    torchvision_b0_step(gpu_family(), "torchvision b0, GPU kernels", true);
}

fn local(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn small_fixture(tag: &str) {
    let io = local(&format!("{tag}_io.safetensors"));
    let bytes = std::fs::read(&io).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let format: WeightFormat = meta["format"].parse().unwrap();
    let mut config = Config::new(Variant::parse(&meta["variant"]).unwrap(), meta["num_classes"].parse().unwrap());
    config.width = meta["width"].parse().unwrap();
    config.depth = meta["depth"].parse().unwrap();
    format.adjust_config(&mut config);
    let (weights, _) = Weights::load(local(&format!("{tag}_weights.safetensors")), &config, Some(format)).unwrap();
    let momentum: f32 = meta["bn_momentum"].parse().unwrap();
    let err: HashMap<String, f64> = serde_json::from_str(&meta["torch_f32_err"]).unwrap();
    check_step(gpu(), tag, config, &weights, format, momentum, &io, "train.", &err, true);
}

#[test]
fn timm_tf_b_training_step_matches_pytorch() {
    small_fixture("timm_tf_b");
}

#[test]
fn timm_tf_lite_training_step_matches_pytorch() {
    small_fixture("timm_tf_lite");
}

#[test]
fn lukemelas_b_training_step_matches_pytorch() {
    small_fixture("lukemelas_b");
}

#[test]
fn two_identical_steps_give_bit_identical_gradients() {
    let gpu = gpu();
    let config = Config::b0(10);
    let weights = Weights::init_random(&config, 3);
    let graph = TrainGraph::new(gpu, config, &weights).unwrap();
    let opts = {
        let mut o = TrainOptions::default();
        o.dropout = true;
        o.drop_path = true;
        o.grad_input = true;
        o
    };
    let input = rand_vec(2 * 3 * 32 * 32, 5);
    let step = graph.record_step(gpu, 2, 32, 32, &opts).unwrap();
    let mut runs = Vec::new();
    for _ in 0..2 {
        step.run(gpu, &input, &[3, 7], 42).unwrap();
        runs.push(gpu.read_many(&[&graph.params.grads, step.grad_input().unwrap(), step.loss()]).unwrap());
    }
    assert!(runs[0][0].iter().any(|&g| g != 0.0));
    assert_eq!(runs[0], runs[1], "same inputs and seed must give bit-identical gradients");
    // A different seed draws other dropout / stochastic-depth masks.
    step.run(gpu, &input, &[3, 7], 43).unwrap();
    let other = gpu.read(&graph.params.grads).unwrap();
    assert_ne!(other, runs[0][0]);
}

#[test]
fn recomputed_activations_give_the_same_bits_in_less_memory() {
    // Recomputing the depthwise and project convs' inputs in the backward re-runs the forward's
    // kernel on the same values: gradients, loss and BN running statistics must be bit-identical
    // to keeping them, with dropout and stochastic depth on. With recomputation the forward's
    // depthwise conv applies the expand's BN and swish as it reads: the same expression as
    // bn_act_fwd, so the same bits where the compiler fuses neither multiply-add (lavapipe).
    let gpu = gpu();
    let config = Config::b0(10);
    let weights = Weights::init_random(&config, 4);
    let input = rand_vec(2 * 3 * 112 * 96, 6);
    let mut runs = Vec::new();
    let mut memory = Vec::new();
    for recompute in [false, true] {
        let graph = TrainGraph::new(gpu, config.clone(), &weights).unwrap();
        let opts = {
            let mut o = TrainOptions::default();
            o.grad_input = true;
            o.recompute = recompute;
            o
        };
        let step = graph.record_step(gpu, 2, 112, 96, &opts).unwrap();
        step.run(gpu, &input, &[1, 8], 9).unwrap();
        let read = [&graph.params.grads, &graph.params.running, step.grad_input().unwrap(), step.loss()];
        runs.push(gpu.read_many(&read).unwrap());
        memory.push(step.activation_bytes);
    }
    assert!(runs[0][0].iter().any(|&g| g != 0.0));
    assert_eq!(runs[0], runs[1], "recomputation must not change a bit");
    // The two recomputed tensors are the largest a block saves: at least a fifth less memory
    // (23% measured at this size, 26% at 224 px; fixed-size scratch weighs more at small sizes).
    assert!(memory[1] * 5 <= memory[0] * 4, "activation bytes: kept {} recomputed {}", memory[0], memory[1]);
}

#[test]
fn timm_b_training_step_matches_pytorch() {
    small_fixture("timm_b");
}
