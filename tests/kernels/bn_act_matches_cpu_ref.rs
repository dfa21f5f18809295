use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::gpu::GpuBuffer;
use efficientnet_wgpu::gpu::Kernel;
use efficientnet_wgpu::ops::rng::uniform01;
use efficientnet_wgpu::ops::{
    bn_act_fwd, bn_eval_scale_shift, bn_fold_weights, Activation, BnParams, DropPath, KernelVariant,
};

const ALL_ACTS: [Activation; 4] = [Activation::None, Activation::Swish, Activation::Relu6, Activation::Sigmoid];

fn seed_buffer(seed: u32) -> GpuBuffer {
    gpu().upload_u32(&[seed], "seed").unwrap()
}

fn scale_shift(c: usize) -> Vec<f32> {
    let gamma = rand_vec(c, 50);
    let beta = rand_vec(c, 51);
    let mean = rand_vec(c, 52);
    let var: Vec<f32> = rand_vec(c, 53).iter().map(|v| v.abs() + 0.1).collect();
    cpu_ref::bn_eval_scale_shift(c, 1e-3, &[gamma, beta].concat(), &[mean, var].concat())
}

#[test]
fn eval_scale_shift_from_running_statistics() {
    // C = 7 and 300 (several workgroups); variances from 0 (the eps alone) to 4.
    // Tolerance: atol 1e-6, rtol 1e-6 (one f32 sqrt and division, then a multiply-add).
    for c in [7, 300] {
        let gamma_beta = rand_vec(2 * c, 60);
        let mut running = rand_vec(2 * c, 61);
        for (i, v) in running[c..].iter_mut().enumerate() {
            *v = if i == 0 { 0.0 } else { 4.0 * v.abs() };
        }
        let mut p = BnParams::new(1, c, 1);
        p.eps = 1e-3;
        let (gb, run, out) = (upload(&gamma_beta), upload(&running), empty(2 * c));
        let d = bn_eval_scale_shift(gpu(), &p, &gb, &run, &out).unwrap();
        let want = cpu_ref::bn_eval_scale_shift(c, 1e-3, &gamma_beta, &running);
        assert_close(&format!("bn_eval_scale_shift C={c}"), &run_and_read(&[d], &out), &want, 1e-6, 1e-6);
    }
    let mut p = BnParams::new(1, 4, 1);
    p.eps = 0.0;
    let b = upload(&[1.0; 8]);
    let err = bn_eval_scale_shift(gpu(), &p, &b, &b, &empty(8)).err().expect("eps 0");
    assert!(err.to_string().contains("eps"), "{err}");
}

fn run(p: &BnParams, x: &[f32], ss: &[f32], residual: Option<&[f32]>, seed: u32) -> Vec<f32> {
    let (xg, sg, y) = (upload(x), upload(ss), empty(x.len()));
    let rg = residual.map(upload);
    let d = bn_act_fwd(gpu(), p, &xg, &sg, rg.as_ref(), &seed_buffer(seed), &y).unwrap();
    let texel = p.texel(gpu());
    assert!(p.variant == KernelVariant::Auto || texel == (p.variant == KernelVariant::Texel), "{p:?}");
    assert_eq!(d.kernel, if texel { Kernel::BnActFwdTexel } else { Kernel::BnActFwd });
    run_and_read(&[d], &y)
}

// Tolerance throughout: atol 1e-6, rtol 1e-5.

/// C not a multiple of 4 (the buffer kernel), and a multiple of 4 with either kernel forced.
const SHAPES: [(usize, KernelVariant); 3] =
    [(7, KernelVariant::Auto), (12, KernelVariant::Texel), (12, KernelVariant::Scalar)];

#[test]
fn every_activation_and_kernel_variant() {
    for (c, variant) in SHAPES {
        every_activation(c, variant);
    }
}

fn every_activation(c: usize, variant: KernelVariant) {
    let ss = scale_shift(c);
    let x: Vec<f32> = rand_vec(3 * 5 * 5 * c, 54).iter().map(|v| v * 10.0).collect();
    for act in ALL_ACTS {
        let mut p = BnParams::new(x.len() / c, c, 25);
        p.act = act;
        p.variant = variant;
        let want = cpu_ref::bn_act_fwd(&p, &x, &ss, None, 0);
        assert_close(&format!("{act:?}"), &run(&p, &x, &ss, None, 0), &want, 1e-6, 1e-5);
    }
}

/// The first seed for which sample keeps are mixed (some dropped, some kept).
fn mixed_seed(d: DropPath, samples: usize) -> u32 {
    (0..1000u32)
        .find(|&s| {
            let kept = (0..samples).filter(|&n| uniform01(s, d.salt, n as u32) < d.survival).count();
            kept > 0 && kept < samples
        })
        .unwrap()
}

#[test]
fn drop_path_and_residual_every_kernel_variant() {
    for (c, variant) in [(13, KernelVariant::Auto), (16, KernelVariant::Texel), (16, KernelVariant::Scalar)] {
        drop_path_and_residual(c, variant);
    }
}

fn drop_path_and_residual(c: usize, variant: KernelVariant) {
    // 5 samples of 3x3 (odd rows per sample; 45 rows is no multiple of the texel kernel's 4).
    let (samples, rps) = (5, 9);
    let m = samples * rps;
    let ss = scale_shift(c);
    let x: Vec<f32> = rand_vec(m * c, 55).iter().map(|v| v * 3.0).collect();
    let res = rand_vec(m * c, 56);
    let drop = DropPath { survival: 0.6, salt: 17 };
    let seed = mixed_seed(drop, samples);
    for act in ALL_ACTS {
        for (with_drop, with_res) in [(false, true), (true, false), (true, true)] {
            let mut p = BnParams::new(m, c, rps);
            p.act = act;
            p.variant = variant;
            p.drop_path = with_drop.then_some(drop);
            p.has_residual = with_res;
            let residual = with_res.then_some(&res[..]);
            let want = cpu_ref::bn_act_fwd(&p, &x, &ss, residual, seed);
            let got = run(&p, &x, &ss, residual, seed);
            let what = format!("{act:?} c {c} {variant:?} drop {with_drop} residual {with_res}");
            assert_close(&what, &got, &want, 1e-6, 1e-5);
            if !with_drop {
                continue;
            }
            // Independently of the twin's drop logic: dropped samples are exactly the residual
            // (or 0), kept ones the plain output scaled by 1 / survival.
            let mut plain_p = p.clone();
            plain_p.drop_path = None;
            plain_p.has_residual = false;
            let plain = cpu_ref::bn_act_fwd(&plain_p, &x, &ss, None, 0);
            let (mut kept, mut dropped) = (0, 0);
            for n in 0..samples {
                let keep = uniform01(seed, drop.salt, n as u32) < drop.survival;
                if keep {
                    kept += 1
                } else {
                    dropped += 1
                }
                for i in n * rps * c..(n + 1) * rps * c {
                    let branch = got[i] - if with_res { res[i] } else { 0.0 };
                    if keep {
                        let w = plain[i] / 0.6;
                        assert!(
                            (branch - w).abs() <= 1e-5 + 1e-5 * w.abs(),
                            "{what}: kept sample {n}, element {i}: {branch} vs {w}"
                        );
                    } else {
                        assert_eq!(
                            got[i],
                            if with_res { res[i] } else { 0.0 },
                            "{what}: dropped sample {n}, element {i}"
                        );
                    }
                }
            }
            assert!(kept > 0 && dropped > 0);
        }
    }
}

#[test]
fn fold_weights_into_the_conv_before_the_bn() {
    // HWIO 3x3 weights of 5 input and 7 output channels (output innermost), and a 1x1 of 300 outputs
    // (several workgroups' worth of channels). Tolerance: atol 1e-6, rtol 1e-5 (f32 sqrt, division
    // and products against the twin's f64, rounded once).
    for (len, c) in [(3 * 3 * 5 * 7, 7), (4 * 300, 300)] {
        let weight = rand_vec(len, 70);
        let gamma_beta = rand_vec(2 * c, 71);
        let mut running = rand_vec(2 * c, 72);
        running[c..].iter_mut().for_each(|v| *v = v.abs() + 0.01);
        let mut p = BnParams::new(1, c, 1);
        p.eps = 1e-3;
        let (w, gb, run, folded, bias) = (upload(&weight), upload(&gamma_beta), upload(&running), empty(len), empty(c));
        let d = bn_fold_weights(gpu(), &p, &w, &gb, &run, &folded, &bias).unwrap();
        efficientnet_wgpu::gpu::submit(gpu(), &[d]).unwrap();
        let got = gpu().read_many(&[&folded, &bias]).unwrap();
        let (want_w, want_b) = cpu_ref::bn_fold_weights(c, 1e-3, &weight, &gamma_beta, &running);
        assert_close(&format!("folded weights C={c}"), &got[0], &want_w, 1e-6, 1e-5);
        assert_close(&format!("folded bias C={c}"), &got[1], &want_b, 1e-6, 1e-5);
    }
    let mut p = BnParams::new(1, 4, 1);
    p.eps = 1e-3;
    let b = upload(&[1.0; 8]);
    let err = bn_fold_weights(gpu(), &p, &upload(&[1.0; 6]), &b, &b, &empty(6), &empty(4)).err().expect("6 % 4");
    assert!(err.to_string().contains("whole number"), "{err}");
}
