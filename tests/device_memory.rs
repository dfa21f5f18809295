//! An allocation the device cannot satisfy is a typed error, and the same `Gpu` goes on working.
//! lavapipe takes device memory from the process's heap, and Linux overcommits, so the test
//! bounds the process's address space (RLIMIT_AS) to make the device run out for real. It is the
//! only test in this binary: the limit holds for the whole process.

mod common;
use common::*;

use std::sync::Arc;

use efficientnet_wgpu::gpu::Gpu;
use efficientnet_wgpu::model::{Config, EfficientNet, Weights};
use efficientnet_wgpu::Error;

/// The process's virtual memory size now, in bytes (/proc/self/status, VmSize).
fn virtual_size() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize in /proc/self/status");
    kb * 1024
}

#[test]
fn an_allocation_the_device_cannot_satisfy_is_a_typed_error_and_the_gpu_keeps_working() {
    let gpu = Arc::new(Gpu::new().expect("a wgpu adapter (apt-get install -y mesa-vulkan-drivers)"));
    let config = Config::b0(10);
    let model = EfficientNet::new(gpu.clone(), config.clone(), &Weights::init_random(&config, 5)).unwrap();
    let input = rand_vec(2 * 3 * 32 * 32, 6);
    // Warm: the plan and its pipelines exist before the limit.
    let want = model.forward(&input, 2, 32, 32).unwrap();

    // 512 MiB of address space to spare, then ask for 1.5 GiB (within max_buffer_size).
    let headroom = 512 << 20;
    let limit = libc::rlimit { rlim_cur: virtual_size() + headroom, rlim_max: libc::RLIM_INFINITY };
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0, "setrlimit");
    let asked = 3u64 << 29;
    assert!(asked <= gpu.limits.max_buffer_size, "the request must be one the device may make");
    match gpu.empty_flat((asked / 4) as usize, "too large") {
        Err(e @ Error::OutOfMemory { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&asked.to_string()) && msg.contains(&gpu.info.name), "{msg}");
            assert!(msg.contains("\"too large\""), "names what was asked: {msg}");
        }
        other => panic!("expected OutOfMemory, got {:?}", other.map(|b| b.len)),
    }
    // The next ordinary call on the same Gpu, under the same limit, succeeds bit for bit.
    let got = model.forward(&input, 2, 32, 32).unwrap();
    assert_eq!(got.logits, want.logits);
    assert!(gpu.uncaptured_errors().is_empty(), "{:?}", gpu.uncaptured_errors());
}
