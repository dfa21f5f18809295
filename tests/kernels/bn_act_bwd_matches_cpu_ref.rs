use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::gpu::Kernel;
use efficientnet_wgpu::ops::rng::uniform01;
use efficientnet_wgpu::ops::{bn_act_bwd, Activation, BnParams, DropPath, KernelVariant};

/// Tolerances (|gpu - ref| <= atol + rtol * |ref|), atol relative to the tensor's magnitude
/// because both outputs are sums with cancellation: d_gamma_beta atol 1e-5 * max|ref| rtol 1e-5;
/// dz atol 1e-5 * max|ref| rtol 1e-4.
/// Each check runs the storage-buffer kernels on the shape (the reduce one invocation per chunk
/// and channel, and tiled: row lanes per channel) and the texel kernels on it with C rounded up to
/// a multiple of 4 (their requirement).
fn check(p: &BnParams, with_dy: bool, with_pool: bool, seed: u32, data: u64) {
    let buffer = BnParams { variant: KernelVariant::Scalar, ..p.clone() };
    let tiled = BnParams { variant: KernelVariant::Tiled, ..p.clone() };
    let texel = BnParams { variant: KernelVariant::Texel, c: p.c.next_multiple_of(4), ..p.clone() };
    for p in [buffer, tiled, texel] {
        check_one(&p, with_dy, with_pool, seed, data);
    }
}

fn check_one(p: &BnParams, with_dy: bool, with_pool: bool, seed: u32, data: u64) {
    let (m, c) = (p.m, p.c);
    let samples = m / p.rows_per_sample;
    let z: Vec<f32> = rand_vec(m * c, data).iter().map(|v| 2.0 * v + 0.5).collect();
    let gamma_beta: Vec<f32> =
        rand_vec(2 * c, data + 1).iter().enumerate().map(|(i, v)| if i < c { 1.0 + 0.5 * v } else { *v }).collect();
    let stats = cpu_ref::bn_stats(p, &z, &gamma_beta, &vec![0.0; 2 * c]).stats;
    let dy = rand_vec(m * c, data + 2);
    let dy_pool: Vec<f32> = rand_vec(samples * c, data + 3).iter().map(|v| v * 20.0).collect();
    let prior = rand_vec(m * c, data + 4);
    let want = cpu_ref::bn_act_bwd(
        p,
        with_dy.then_some(&dy[..]),
        with_pool.then_some(&dy_pool[..]),
        &z,
        &stats,
        &gamma_beta,
        seed,
    );

    let (dyg, poolg, zg, sg, gbg) = (upload(&dy), upload(&dy_pool), upload(&z), upload(&stats), upload(&gamma_beta));
    let seedg = gpu().upload_u32(&[seed], "seed").unwrap();
    let (part, dgb, dz) = (empty(p.bwd_partial_len()), empty(2 * c), upload(&prior));
    let d = bn_act_bwd(
        gpu(),
        p,
        with_dy.then_some(&dyg),
        with_pool.then_some(&poolg),
        &zg,
        &sg,
        &gbg,
        &seedg,
        &part,
        &dgb,
        &dz,
    )
    .unwrap();
    let texel = p.variant == KernelVariant::Texel;
    let reduce = match p.variant {
        KernelVariant::Texel => Kernel::BnActBwdReduceTexel,
        KernelVariant::Tiled => Kernel::BnActBwdReduceTiled,
        _ => Kernel::BnActBwdReduce,
    };
    assert_eq!(d[0].kernel, reduce);
    assert_eq!(d[2].kernel, if texel { Kernel::BnActBwdApplyTexel } else { Kernel::BnActBwdApply });
    efficientnet_wgpu::gpu::submit(gpu(), &d).unwrap();
    let got = gpu().read_many(&[&dgb, &dz]).unwrap();
    let what = format!(
        "{:?} m {m} c {c} chunk {} dy {with_dy} pool {with_pool} drop {:?} acc {} {:?}",
        p.act, p.chunk, p.drop_path, p.accumulate, p.variant
    );
    let want_dz: Vec<f32> =
        if p.accumulate { want.dz.iter().zip(&prior).map(|(a, b)| a + b).collect() } else { want.dz.clone() };
    assert_close(
        &format!("{what}: d_gamma_beta"),
        &got[0],
        &want.d_gamma_beta,
        1e-5 * max_abs(&want.d_gamma_beta),
        1e-5,
    );
    assert_close(&format!("{what}: dz"), &got[1], &want_dz, 1e-5 * max_abs(&want_dz), 1e-4);
}

fn params(act: Activation) -> BnParams {
    // 3 images of 7x7 (odd rows per sample): 147 rows in chunks of 32 (four full, one of 19).
    let mut p = BnParams::new(3 * 49, 7, 49);
    p.chunk = 32;
    p.act = act;
    p
}

#[test]
fn every_activation_dy_only() {
    for act in [Activation::None, Activation::Swish, Activation::Relu6, Activation::Sigmoid] {
        check(&params(act), true, false, 0, 70);
    }
}

#[test]
fn fused_pool_gradient_with_and_without_dy() {
    check(&params(Activation::Swish), false, true, 0, 71);
    check(&params(Activation::Swish), true, true, 0, 72);
}

#[test]
fn drop_path_and_accumulate() {
    let mut p = params(Activation::Swish);
    p.c = 13;
    p.rows_per_sample = 9;
    p.m = 5 * 9;
    p.chunk = 8;
    let drop = DropPath { survival: 0.6, salt: 5 };
    p.drop_path = Some(drop);
    let seed = (0..1000u32)
        .find(|&s| {
            let kept = (0..5).filter(|&n| uniform01(s, drop.salt, n) < drop.survival).count();
            kept > 0 && kept < 5
        })
        .unwrap();
    check(&p, true, false, seed, 73);
    check(&p, true, true, seed, 74);
    p.accumulate = true;
    check(&p, true, false, seed, 75);
}

#[test]
fn many_chunks_default_chunking() {
    // 2 images of 33x31 with 19 channels: default chunk of 64 rows, last chunk partial.
    let mut p = BnParams::new(2 * 33 * 31, 19, 33 * 31);
    p.act = Activation::Swish;
    assert!(p.chunks() > 10 && !p.m.is_multiple_of(p.chunk));
    check(&p, true, true, 0, 76);
}
