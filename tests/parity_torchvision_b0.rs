//! The whole B0 forward against PyTorch: torchvision's `efficientnet_b0` with the shared fixture's
//! weights, its logits and every stage output (`../shared/fixtures/torchvision-b0`).
//! Tolerance (issue #2): |ours - torch| <= 1e-5 + 1e-4 * max|torch| per tensor.

mod common;
use common::*;

use efficientnet_wgpu::gpu::{Dtype, Kernel};
use efficientnet_wgpu::model::{Config, EfficientNet, WeightFormat, Weights};

#[test]
#[ignore = "needs the full-size PyTorch fixtures ($EFFNET_FIXTURES, default ../shared/fixtures); scripts/test.sh includes it when they exist"]
fn b0_logits_and_stage_outputs_match_torchvision() {
    let gpu = gpu();
    let config = Config::b0(1000);
    let (weights, format) = Weights::load(fixture("torchvision-b0/tv_b0.safetensors"), &config, None).unwrap();
    assert_eq!(format, WeightFormat::Torchvision);
    let model = EfficientNet::new(gpu.clone(), config, &weights).unwrap();
    let io = read_safetensors(&fixture("torchvision-b0/tv_b0_io.safetensors"));
    let (shape, input) = &io["input"];
    assert_eq!(shape, &[1, 3, 224, 224]);

    let taps = ["stem", "stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "stage7", "head"];
    let plan = model.plan(1, 224, 224, &taps).unwrap();
    let out = plan.run(gpu, input).unwrap();
    for (name, data, shape) in plan.read_taps(gpu).unwrap() {
        let (ref_shape, want) = &io[&format!("act.{name}")];
        assert_eq!(ref_shape, &[shape[0], shape[3], shape[1], shape[2]], "act.{name} shape");
        let got = nhwc_to_nchw(&data, shape);
        assert_close(&format!("act.{name}"), &got, want, 1e-5 + 1e-4 * max_abs(want), 0.0);
    }
    let (_, pooled) = &io["act.pooled"];
    assert_close("act.pooled", &out.features, pooled, 1e-5 + 1e-4 * max_abs(pooled), 0.0);
    let (_, want) = &io["logits"];
    assert_close("logits", &out.logits, want, 1e-5 + 1e-4 * max_abs(want), 0.0);

    // The plain forward (no taps, the cached plan) gives the same logits bit for bit.
    let again = model.forward(input, 1, 224, 224).unwrap();
    assert_eq!(again.logits, out.logits);
}

#[test]
#[ignore = "needs the full-size PyTorch fixtures ($EFFNET_FIXTURES, default ../shared/fixtures); scripts/test.sh includes it when they exist"]
fn b0_logits_match_torchvision_with_the_gpu_kernel_families() {
    // The kernels GPU adapters pick (tiled GEMMs, buffer kernels) on this adapter, f32 and f16.
    let gpu = gpu_family();
    let config = Config::b0(1000);
    let (weights, _) = Weights::load(fixture("torchvision-b0/tv_b0.safetensors"), &config, None).unwrap();
    let io = read_safetensors(&fixture("torchvision-b0/tv_b0_io.safetensors"));
    let (_, input) = &io["input"];
    let (_, want) = &io["logits"];
    let model = EfficientNet::new(gpu.clone(), config.clone(), &weights).unwrap();
    let plan = model.plan(1, 224, 224, &[]).unwrap();
    assert!(plan.dispatches.iter().any(|d| d.kernel == Kernel::GemmFwdTiled), "tiled GEMMs must run");
    let out = plan.run(gpu, input).unwrap();
    assert_close("logits", &out.logits, want, 1e-5 + 1e-4 * max_abs(want), 0.0);
    let model = EfficientNet::new_with_store(gpu.clone(), config, &weights, Dtype::F16).unwrap();
    let out = model.forward(input, 1, 224, 224).unwrap();
    // The f16 tolerance of the test below.
    assert_close("f16 logits", &out.logits, want, 16.0 / 2048.0 * max_abs(want), 0.0);
}

#[test]
#[ignore = "needs the full-size PyTorch fixtures ($EFFNET_FIXTURES, default ../shared/fixtures); scripts/test.sh includes it when they exist"]
fn b0_f16_storage_stays_close_to_torchvision() {
    // Weights and activations stored as f16, arithmetic in f32 (the f16 inference path).
    let gpu = gpu();
    let config = Config::b0(1000);
    let (weights, _) = Weights::load(fixture("torchvision-b0/tv_b0.safetensors"), &config, None).unwrap();
    let model = EfficientNet::new_with_store(gpu.clone(), config, &weights, Dtype::F16).unwrap();
    let io = read_safetensors(&fixture("torchvision-b0/tv_b0_io.safetensors"));
    let (_, input) = &io["input"];
    let out = model.forward(input, 1, 224, 224).unwrap();
    let (_, want) = &io["logits"];
    // Tolerance: each of the ~50 stored tensors adds a rounding of 2^-11 relative; they grow
    // like a random walk (sqrt(50) ~ 7 of them), so 16 half-ulps of the logit scale (2x margin).
    let tol = 16.0 / 2048.0 * max_abs(want);
    assert_close("f16 logits", &out.logits, want, tol, 0.0);
    // The top-1 class is torch's: its lead over the runner-up exceeds twice the tolerance.
    let top = efficientnet_wgpu::train::argmax(want);
    let runner_up = want.iter().enumerate().filter(|(i, _)| *i != top).map(|(_, v)| *v).fold(f32::MIN, f32::max);
    assert!(want[top] - runner_up > 2.0 * tol, "the fixture's top-1 lead is too small to test");
    assert_eq!(efficientnet_wgpu::train::argmax(&out.logits), top);
}
