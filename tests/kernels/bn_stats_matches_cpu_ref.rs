use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::gpu::Kernel;
use efficientnet_wgpu::ops::{bn_stats, BnParams, KernelVariant};

/// Runs bn_stats on the GPU and compares running, stats and scale_shift with the CPU twin.
/// Tolerances (|gpu - ref| <= atol + rtol * |ref|): mean atol 1e-6 rtol 1e-6; invstd, scale,
/// shift and the running statistics atol 1e-6 rtol 1e-5.
fn check(p: &BnParams, z: &[f32], seed: u64) {
    let c = p.c;
    let gamma_beta: Vec<f32> =
        rand_vec(2 * c, seed).iter().enumerate().map(|(i, v)| if i < c { 1.0 + 0.5 * v } else { *v }).collect();
    let running: Vec<f32> =
        rand_vec(2 * c, seed + 1).iter().enumerate().map(|(i, v)| if i < c { *v } else { 1.0 + 0.5 * v }).collect();
    let want = cpu_ref::bn_stats(p, z, &gamma_beta, &running);
    let (zg, part, gb, run, stats, ss) =
        (upload(z), empty(p.stats_partial_len()), upload(&gamma_beta), upload(&running), empty(2 * c), empty(2 * c));
    let d = bn_stats(gpu(), p, &zg, &part, &gb, &run, &stats, &ss).unwrap();
    let kernel = match p.reduce_variant(gpu()) {
        KernelVariant::Texel => Kernel::BnStatsPartialTexel,
        KernelVariant::Tiled => Kernel::BnStatsPartialTiled,
        _ => Kernel::BnStatsPartial,
    };
    assert_eq!(d[0].kernel, kernel);
    assert!(p.variant == KernelVariant::Auto || p.reduce_variant(gpu()) == p.variant, "{p:?}");
    efficientnet_wgpu::gpu::submit(gpu(), &d).unwrap();
    let got = gpu().read_many(&[&run, &stats, &ss]).unwrap();
    let what = format!("m {} c {} chunk {} {:?}", p.m, p.c, p.chunk, p.variant);
    assert_close(&format!("{what}: mean"), &got[1][..c], &want.stats[..c], 1e-6, 1e-6);
    assert_close(&format!("{what}: invstd"), &got[1][c..], &want.stats[c..], 1e-6, 1e-5);
    assert_close(&format!("{what}: scale_shift"), &got[2], &want.scale_shift, 1e-6, 1e-5);
    assert_close(&format!("{what}: running"), &got[0], &want.running, 1e-6, 1e-5);
    if !p.update_running {
        assert_eq!(got[0], running, "{what}: running statistics must be left alone");
    }
}

#[test]
fn several_chunks_last_one_partial_c_not_multiple_of_4() {
    // 3 images of 5x7: 105 rows in chunks of 16 (six full, one of 9).
    let mut p = BnParams::new(105, 7, 35);
    p.chunk = 16;
    p.eps = 1e-3;
    p.momentum = 0.01;
    check(&p, &rand_vec(105 * 7, 60), 61);
}

#[test]
fn large_common_offset_keeps_the_variance() {
    // 1000 + noise in [-1, 1): E[z^2] - E[z]^2 in f32 would lose the variance (~0.33) entirely.
    let (m, c) = (3 * 33 * 31, 5);
    let z: Vec<f32> = rand_vec(m * c, 62).iter().map(|v| 1000.0 + v).collect();
    let p = BnParams::new(m, c, 33 * 31);
    assert!(p.chunks() > 10 && !m.is_multiple_of(p.chunk), "{p:?}");
    check(&p, &z, 63);
}

#[test]
fn one_chunk_one_row_chunks_and_no_running_update() {
    let mut p = BnParams::new(10, 3, 10);
    check(&p, &rand_vec(30, 64), 65);
    p.chunk = 1;
    check(&p, &rand_vec(30, 66), 67);
    p.chunk = 64;
    p.m = 2 * 9 * 9;
    p.c = 13;
    p.update_running = false;
    check(&p, &rand_vec(p.m * p.c, 68), 69);
}

#[test]
fn tiled_row_lanes_on_ragged_chunks_and_channel_blocks() {
    // Chunks shorter than, equal to and not a multiple of the 4 row lanes; channels past the last
    // 16-channel block; a large common offset.
    for (m, c, chunk) in [(105, 7, 16), (105, 20, 13), (10, 3, 1), (10, 3, 3), (2 * 9 * 9, 37, 64)] {
        let mut p = BnParams::new(m, c, m);
        p.chunk = chunk;
        p.variant = KernelVariant::Tiled;
        check(&p, &rand_vec(m * c, 76 + chunk as u64), 77);
    }
    let (m, c) = (2 * 33 * 31, 18);
    let z: Vec<f32> = rand_vec(m * c, 78).iter().map(|v| 1000.0 + v).collect();
    let mut p = BnParams::new(m, c, 33 * 31);
    p.variant = KernelVariant::Tiled;
    check(&p, &z, 79);
}

#[test]
fn texel_and_buffer_kernels_with_c_a_multiple_of_4() {
    for variant in [KernelVariant::Texel, KernelVariant::Scalar] {
        // Several chunks, the last partial.
        let mut p = BnParams::new(105, 8, 35);
        p.chunk = 16;
        p.variant = variant;
        check(&p, &rand_vec(105 * 8, 70), 71);
        // A large common offset.
        let (m, c) = (2 * 33 * 31, 12);
        let z: Vec<f32> = rand_vec(m * c, 72).iter().map(|v| 1000.0 + v).collect();
        let mut p = BnParams::new(m, c, 33 * 31);
        p.variant = variant;
        check(&p, &z, 73);
        // One-row chunks.
        let mut p = BnParams::new(10, 4, 10);
        p.chunk = 1;
        p.variant = variant;
        check(&p, &rand_vec(40, 74), 75);
    }
}
