//! The host-device contract: the library on a device a desktop app made itself (eframe and bevy
//! ask for `Limits::default()` and no optional features), what a lost device and a host's own
//! invalid call do, and a device with too little.
//! Parity tolerance as everywhere: |ours - torch| <= 1e-5 + 1e-4 * max|torch| per tensor.

mod common;
use common::*;

use std::sync::Arc;

use efficientnet_wgpu::gpu::{Dtype, Gpu, KernelClass};
use efficientnet_wgpu::model::{Config, EfficientNet, Weights};
use efficientnet_wgpu::Error;

fn adapter() -> wgpu::Adapter {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())).expect("an adapter")
}

/// A device as a UI framework makes it by default: `Limits::default()`, no optional features.
fn plain_device(limits: wgpu::Limits) -> (wgpu::Device, wgpu::Queue) {
    pollster::block_on(adapter().request_device(&wgpu::DeviceDescriptor {
        label: Some("host app device"),
        required_features: wgpu::Features::empty(),
        required_limits: limits,
        ..Default::default()
    }))
    .expect("a device with default limits")
}

fn plain_gpu() -> Gpu {
    let (device, queue) = plain_device(wgpu::Limits::default());
    Gpu::from_device(device, queue).expect("the library accepts a default device")
}

/// Logits and pooled features of a committed PyTorch fixture on `gpu`, against PyTorch's.
fn check_parity(gpu: &Arc<Gpu>, tag: &str) {
    let (config, format) = fixture_config(tag);
    let (weights, _) = Weights::load(local(&format!("{tag}_weights.safetensors")), &config, Some(format)).unwrap();
    let model = EfficientNet::new(gpu.clone(), config, &weights).unwrap();
    let io = read_safetensors(&local(&format!("{tag}_io.safetensors")));
    let (shape, input) = &io["input"];
    let out = model.forward(input, shape[0], shape[2], shape[3]).unwrap();
    let (_, pooled) = &io["act.pooled"];
    assert_close(&format!("{tag} pooled"), &out.features, pooled, 1e-5 + 1e-4 * max_abs(pooled), 0.0);
    let (_, want) = &io["logits"];
    assert_close(&format!("{tag} logits"), &out.logits, want, 1e-5 + 1e-4 * max_abs(want), 0.0);
}

#[test]
fn a_default_device_without_optional_features_passes_pytorch_parity() {
    let plain = plain_gpu();
    assert!(!plain.caps.subgroups && !plain.caps.shader_f16 && !plain.caps.timestamps, "{:?}", plain.caps);
    assert!(!plain.caps.texel_kernels(), "texel GEMMs need subgroups");
    // Both kernel families: the adapter's own (CPU: register-blocked, no texels without
    // subgroups) and the GPU family's workgroup-memory tiles, within 16 KiB of workgroup memory.
    let own = Arc::new(plain);
    let tiled = {
        let (device, queue) = plain_device(wgpu::Limits::default());
        Arc::new(Gpu::from_device(device, queue).unwrap().with_kernel_class(KernelClass::Gpu))
    };
    for gpu in [&own, &tiled] {
        for tag in ["timm_b", "timm_tf_b", "timm_tf_lite", "lukemelas_b"] {
            check_parity(gpu, tag);
        }
    }
    // What the device lacks is an error naming it, not a wgpu panic.
    let config = Config::b0(10);
    match EfficientNet::new_with_store(own.clone(), config.clone(), &Weights::init_random(&config, 1), Dtype::F16) {
        Err(e @ Error::Unsupported { .. }) => assert!(e.to_string().contains("SHADER_F16"), "{e}"),
        other => panic!("f16 on a device without SHADER_F16: {:?}", other.err()),
    }
}

#[test]
fn the_contract_asks_for_what_the_adapter_offers_and_refuses_a_device_with_too_little() {
    let adapter = adapter();
    let desc = Gpu::device_descriptor(&adapter);
    assert!(desc.required_features.contains(Gpu::REQUIRED_FEATURES));
    assert_eq!(desc.required_features, adapter.features() & Gpu::OPTIONAL_FEATURES);
    assert!(Gpu::required_limits().check_limits(&desc.required_limits), "the descriptor covers the requirements");

    // Fewer storage buffers than the kernels bind (8) is refused with the limit named.
    let limits = wgpu::Limits { max_storage_buffers_per_shader_stage: 4, ..wgpu::Limits::default() };
    let (device, queue) = plain_device(limits);
    match Gpu::from_device(device, queue) {
        Err(e @ Error::Unsupported { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("max_storage_buffers_per_shader_stage 4 (needs 8)"), "{msg}");
        }
        other => panic!("expected Unsupported, got {:?}", other.err()),
    }
}

#[test]
fn a_lost_device_is_an_error_for_every_later_call_and_host_errors_are_recorded_not_panics() {
    let gpu = Arc::new(plain_gpu());
    let config = Config::b0(10);
    let model = EfficientNet::new(gpu.clone(), config.clone(), &Weights::init_random(&config, 2)).unwrap();
    let input = rand_vec(2 * 3 * 32 * 32, 3);
    let want = model.forward(&input, 2, 32, 32).unwrap();

    // The host misuses the shared device outside any of the library's calls: MAP_READ with
    // STORAGE is invalid. wgpu's default handler would panic; the library's records it.
    let _bad = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host's invalid buffer"),
        size: 64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let recorded = gpu.uncaptured_errors();
    assert!(recorded.iter().any(|e| e.contains("host's invalid buffer")), "{recorded:?}");
    // ... and the library keeps working, bit for bit.
    assert_eq!(model.forward(&input, 2, 32, 32).unwrap().logits, want.logits);

    gpu.device.destroy();
    for attempt in 0..2 {
        match model.forward(&input, 2, 32, 32) {
            Err(e @ Error::DeviceLost { .. }) => {
                assert!(e.to_string().contains(&gpu.info.name), "{e}");
            }
            other => panic!("call {attempt} after destroy: expected DeviceLost, got {:?}", other.map(|o| o.logits)),
        }
    }
    assert!(matches!(gpu.upload(&[1.0], "after loss"), Err(Error::DeviceLost { .. })));
}
