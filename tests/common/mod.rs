//! Shared test helpers: one GPU for the whole test binary, seeded data, and the tolerance check.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use efficientnet_wgpu::gpu::{Gpu, GpuBuffer};
use efficientnet_wgpu::model::{Config, Variant, WeightFormat};

/// The test GPU. Never skips: without an adapter the test fails with the install hint.
pub fn gpu() -> &'static Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new() {
        Ok(g) => {
            eprintln!("test adapter: {}", g.describe());
            Arc::new(g)
        }
        Err(e) => panic!(
            "{e}\n(tests run on any wgpu adapter; on Debian `apt-get install -y mesa-vulkan-drivers` gives lavapipe)"
        ),
    })
}

/// A second test GPU on the same adapter that picks the kernel families for GPUs (tiled GEMMs and
/// BN reductions, buffer kernels), so that lavapipe runs them through whole networks too.
pub fn gpu_family() -> &'static Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        Arc::new(Gpu::new().expect("a wgpu adapter").with_kernel_class(efficientnet_wgpu::gpu::KernelClass::Gpu))
    })
}

/// A device whose storage bindings hold at most `max_binding` bytes, made the way a desktop app
/// would share its own device, with the library's features (so that it picks the same kernels).
pub fn small_binding_gpu(max_binding: u64) -> Gpu {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())).expect("adapter");
    let mut limits = adapter.limits();
    limits.max_storage_buffer_binding_size = max_binding;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("host app device"),
        required_features: adapter.features(),
        required_limits: limits,
        ..Default::default()
    }))
    .expect("device");
    Gpu::from_device(device, queue).expect("a device")
}

/// Deterministic values in [-1, 1) (xorshift), so failures reproduce.
pub fn rand_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn upload(data: &[f32]) -> GpuBuffer {
    gpu().upload(data, "test input").expect("upload")
}

pub fn empty(len: usize) -> GpuBuffer {
    gpu().empty(len, "test output").expect("alloc")
}

/// `data` rounded to f16 (round to nearest even), kept as f32: what an f16 upload of it holds.
pub fn round_f16(data: &[f32]) -> Vec<f32> {
    data.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
}

/// An f16 buffer holding `data` rounded to f16. The f16 tests need SHADER_F16, which lavapipe
/// (CI's adapter) has; elsewhere they fail here rather than pass without running.
pub fn upload_f16(data: &[f32]) -> GpuBuffer {
    assert!(gpu().caps.shader_f16, "the f16 kernel tests need an adapter with SHADER_F16 ({})", gpu().describe());
    gpu().upload_f16(data, "test input").expect("upload")
}

pub fn empty_f16(len: usize) -> GpuBuffer {
    gpu().empty_typed(len, efficientnet_wgpu::gpu::Dtype::F16, "test output").expect("alloc")
}

/// Tolerance of an f16 kernel against its twin on the same f16 inputs: f32 arithmetic, then one
/// rounding to f16, which WGSL lets go to either neighbour: one f16 ulp, 2^-10 relative.
pub const F16_RTOL: f32 = 1.0 / 1024.0;

/// Runs the dispatches in one pass and reads `out` back.
pub fn run_and_read(dispatches: &[efficientnet_wgpu::gpu::Dispatch], out: &GpuBuffer) -> Vec<f32> {
    efficientnet_wgpu::gpu::submit(gpu(), dispatches).unwrap();
    gpu().read(out).expect("readback")
}

/// Asserts |got - want| <= atol + rtol * |want| elementwise, naming the first offender.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0usize, 0f32);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{what}: element {i} is {g}");
        let excess = (g - w).abs() - (atol + rtol * w.abs());
        if excess > worst.1 {
            worst = (i, excess);
        }
    }
    let i = worst.0;
    assert!(
        worst.1 <= 0.0,
        "{what}: element {i}: got {} want {} (|diff| {} > atol {atol} + rtol {rtol} * |want|)",
        got[i],
        want[i],
        (got[i] - want[i]).abs()
    );
}

/// Max |x|, for tolerances relative to a tensor's magnitude.
pub fn max_abs(x: &[f32]) -> f32 {
    x.iter().fold(0f32, |m, v| m.max(v.abs()))
}

/// The parity fixtures: `EFFNET_FIXTURES`, or `../shared/fixtures` beside the checkout.
pub fn fixtures_dir() -> std::path::PathBuf {
    match std::env::var_os("EFFNET_FIXTURES") {
        Some(d) => d.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"),
    }
}

/// A fixture file; fails (never skips) with a hint when it is missing.
pub fn fixture(rel: &str) -> std::path::PathBuf {
    let p = fixtures_dir().join(rel);
    assert!(p.exists(), "fixture {} not found: set EFFNET_FIXTURES to the folder holding it", p.display());
    p
}

/// Every f32 tensor of a safetensors file: name → (shape, values).
pub fn read_safetensors(path: &std::path::Path) -> std::collections::HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .filter(|(_, v)| v.dtype() == safetensors::Dtype::F32)
        .map(|(k, v)| (k, (v.shape().to_vec(), bytemuck::pod_collect_to_vec::<u8, f32>(v.data()))))
        .collect()
}

/// NHWC (n, h, w, c) → NCHW.
pub fn nhwc_to_nchw(x: &[f32], [n, h, w, c]: [usize; 4]) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    for b in 0..n {
        for i in 0..h * w {
            for ch in 0..c {
                y[(b * c + ch) * h * w + i] = x[(b * h * w + i) * c + ch];
            }
        }
    }
    y
}

/// The example `train_b0`, which `cargo test` builds beside the test binaries (run the whole
/// suite, or `cargo build --examples` first, so that it is the current code's).
pub fn train_b0() -> std::process::Command {
    std::process::Command::new(example("train_b0"))
}

/// The path of the example `name`, built by `cargo test` beside the test binaries.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = debug.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} not built (cargo test builds the examples)", path.display());
    path
}

/// A file under tests/fixtures (committed, small).
pub fn local(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn metadata(path: &std::path::Path) -> HashMap<String, String> {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    meta.metadata().clone().unwrap_or_default()
}

/// The config a committed fixture (tests/fixtures/{tag}_io.safetensors) was made with, from its
/// metadata.
pub fn fixture_config(tag: &str) -> (Config, WeightFormat) {
    let meta = metadata(&local(&format!("{tag}_io.safetensors")));
    let format: WeightFormat = meta["format"].parse().unwrap();
    let mut config = Config::new(Variant::parse(&meta["variant"]).unwrap(), meta["num_classes"].parse().unwrap());
    config.width = meta["width"].parse().unwrap();
    config.depth = meta["depth"].parse().unwrap();
    format.adjust_config(&mut config);
    assert_eq!(config.bn_eps, meta["bn_eps"].parse::<f32>().unwrap(), "{tag}: eps");
    (config, format)
}

/// A tiny Fashion-MNIST-shaped data set in `dir` (IDX files): `train` and `test` 28x28 images
/// with deterministic pixels and labels 0-9, for runs of train_b0.
pub fn write_idx(dir: &std::path::Path, train: usize, test: usize) {
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let mut img = vec![0, 0, 8, 3];
        for d in [n as u32, 28, 28] {
            img.extend(d.to_be_bytes());
        }
        img.extend((0..n * 784).map(|i| ((i * 31 + n) % 256) as u8));
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), img).unwrap();
        let mut lbl = vec![0, 0, 8, 1];
        lbl.extend((n as u32).to_be_bytes());
        lbl.extend((0..n).map(|i| (i % 10) as u8));
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), lbl).unwrap();
    }
}
