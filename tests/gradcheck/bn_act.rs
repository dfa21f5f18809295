//! bn_act (training-mode BatchNorm + activation + drop path, through the batch statistics),
//! activation, dropout and softmax cross-entropy backward twins against central finite
//! differences of their forward twins. h = 1e-2 (the difference actually taken between the two
//! f32 inputs is used), tolerance |fd - analytic| <= 2e-3 * max|analytic| + 1e-4. ReLU6 inputs
//! are kept at least 0.15 away from the kinks 0 and 6, further than any perturbation moves them.

use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::ops::rng::uniform01;
use efficientnet_wgpu::ops::{
    Activation, ActivationParams, BnParams, DropPath, DropoutParams, SoftmaxCrossEntropyParams,
};

const H: f32 = 1e-2;

/// Central differences of L(x) = sum_i r_i f(x)_i (f64) with respect to every element of `x`.
fn fd(x: &[f32], r: &[f32], f: &dyn Fn(&[f32]) -> Vec<f64>) -> Vec<f32> {
    let loss = |v: &[f32]| f(v).iter().zip(r).map(|(&y, &r)| y * r as f64).sum::<f64>();
    (0..x.len())
        .map(|i| {
            let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
            xp[i] += H;
            xm[i] -= H;
            ((loss(&xp) - loss(&xm)) / (xp[i] as f64 - xm[i] as f64)) as f32
        })
        .collect()
}

fn check(what: &str, analytic: &[f32], fd: &[f32]) {
    let tol = 2e-3 * max_abs(analytic) + 1e-4;
    assert_close(what, analytic, fd, tol, 0.0);
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// The training forward of one BN layer: bn_stats then bn_act_fwd, followed by the outputs of a
/// global average pool of y, so that dy_pool is checked too: [y (m, c), pool(y) (samples, c)].
fn bn_forward(p: &BnParams, z: &[f32], gamma_beta: &[f32], seed: u32) -> Vec<f64> {
    let running = vec![0.0; 2 * p.c];
    let ss = cpu_ref::bn_stats(p, z, gamma_beta, &running).scale_shift;
    let y = cpu_ref::bn_act_fwd(p, z, &ss, None, seed);
    let samples = p.m / p.rows_per_sample;
    let mut out = widen(&y);
    for n in 0..samples {
        for c in 0..p.c {
            let s: f64 = (0..p.rows_per_sample).map(|r| y[(n * p.rows_per_sample + r) * p.c + c] as f64).sum();
            out.push(s / p.rows_per_sample as f64);
        }
    }
    out
}

/// Compares bn_act_bwd with finite differences of `bn_forward` in z and gamma_beta.
fn check_bn(p: &BnParams, z: &[f32], gamma_beta: &[f32], with_dy: bool, with_pool: bool, seed: u32, data: u64) {
    let samples = p.m / p.rows_per_sample;
    let ry = if with_dy { rand_vec(p.m * p.c, data) } else { vec![0.0; p.m * p.c] };
    let rp = if with_pool {
        rand_vec(samples * p.c, data + 1).iter().map(|v| v * 5.0).collect()
    } else {
        vec![0.0; samples * p.c]
    };
    let r = [ry.clone(), rp.clone()].concat();
    let stats = cpu_ref::bn_stats(p, z, gamma_beta, &vec![0.0; 2 * p.c]).stats;
    let g =
        cpu_ref::bn_act_bwd(p, with_dy.then_some(&ry[..]), with_pool.then_some(&rp[..]), z, &stats, gamma_beta, seed);
    let what = format!("{:?} dy {with_dy} pool {with_pool} drop {:?}", p.act, p.drop_path);
    check(&format!("{what}: dz"), &g.dz, &fd(z, &r, &|z| bn_forward(p, z, gamma_beta, seed)));
    check(&format!("{what}: d_gamma_beta"), &g.d_gamma_beta, &fd(gamma_beta, &r, &|gb| bn_forward(p, z, gb, seed)));
}

fn bn_case(act: Activation) -> (BnParams, Vec<f32>, Vec<f32>) {
    // 3 samples of 5 rows (odd), 3 channels.
    let mut p = BnParams::new(15, 3, 5);
    p.act = act;
    p.eps = 1e-3;
    let z: Vec<f32> = rand_vec(p.m * p.c, 110).iter().map(|v| 2.0 * v + 0.3).collect();
    let gamma_beta: Vec<f32> =
        rand_vec(2 * p.c, 111).iter().enumerate().map(|(i, v)| if i < p.c { 1.0 + 0.5 * v } else { *v }).collect();
    (p, z, gamma_beta)
}

#[test]
fn bn_act_bwd_smooth_activations() {
    for act in [Activation::None, Activation::Swish, Activation::Sigmoid] {
        let (p, z, gb) = bn_case(act);
        check_bn(&p, &z, &gb, true, false, 0, 112);
    }
}

#[test]
fn bn_act_bwd_relu6_away_from_the_kinks() {
    let (p, z, mut gb) = bn_case(Activation::Relu6);
    let c = p.c;
    let stats = cpu_ref::bn_stats(&p, &z, &gb, &vec![0.0; 2 * c]).stats;
    let mut clamped = 0;
    for ch in 0..c {
        // gamma 3 spreads the pre-activations over both kinks; pick the beta that keeps them
        // furthest from 0 and 6.
        gb[ch] = 3.0;
        let pre = |beta: f64| -> Vec<f64> {
            (0..p.m).map(|r| 3.0 * (z[r * c + ch] as f64 - stats[ch] as f64) * stats[c + ch] as f64 + beta).collect()
        };
        let margin = |beta: f64| pre(beta).iter().map(|&v| v.abs().min((v - 6.0).abs())).fold(f64::INFINITY, f64::min);
        let beta = (0..200).map(|i| -2.0 + 0.05 * i as f64).max_by(|a, b| margin(*a).total_cmp(&margin(*b))).unwrap();
        assert!(margin(beta) > 0.15, "channel {ch}: margin {}", margin(beta));
        gb[c + ch] = beta as f32;
        clamped += pre(beta).iter().filter(|&&v| !(0.0..6.0).contains(&v)).count();
    }
    assert!(clamped > 0, "no pre-activation outside (0, 6): the clamp is untested");
    check_bn(&p, &z, &gb, true, false, 0, 113);
    check_bn(&p, &z, &gb, true, true, 0, 114);
}

#[test]
fn bn_act_bwd_fused_pool_gradient() {
    let (p, z, gb) = bn_case(Activation::Swish);
    check_bn(&p, &z, &gb, false, true, 0, 115);
    check_bn(&p, &z, &gb, true, true, 0, 116);
}

#[test]
fn bn_act_bwd_drop_path() {
    let (mut p, z, gb) = bn_case(Activation::Swish);
    let drop = DropPath { survival: 0.6, salt: 11 };
    p.drop_path = Some(drop);
    let seed = (0..1000u32)
        .find(|&s| {
            let kept = (0..3).filter(|&n| uniform01(s, drop.salt, n) < drop.survival).count();
            kept > 0 && kept < 3
        })
        .unwrap();
    check_bn(&p, &z, &gb, true, false, seed, 117);
    check_bn(&p, &z, &gb, true, true, seed, 118);
}

#[test]
fn activation_bwd_every_activation() {
    let x: Vec<f32> = rand_vec(61, 120)
        .iter()
        .map(|v| 6.0 * v + 2.0)
        .map(|v| if v.abs() < 0.15 || (v - 6.0).abs() < 0.15 { v + 0.4 } else { v })
        .collect();
    let r = rand_vec(x.len(), 121);
    for act in [Activation::None, Activation::Swish, Activation::Relu6, Activation::Sigmoid] {
        let p = ActivationParams { total: x.len(), act, accumulate: false };
        let analytic = cpu_ref::activation_bwd(&p, &x, &r);
        check(&format!("{act:?}"), &analytic, &fd(&x, &r, &|x| widen(&cpu_ref::activation_fwd(&p, x))));
    }
}

#[test]
fn dropout_is_its_own_backward() {
    let x = rand_vec(101, 122);
    let r = rand_vec(x.len(), 123);
    for rate in [0.0, 0.3] {
        let p = DropoutParams { total: x.len(), rate, salt: 2 };
        let analytic = cpu_ref::dropout_fwd(&p, &r, 99);
        check(&format!("rate {rate}"), &analytic, &fd(&x, &r, &|x| widen(&cpu_ref::dropout_fwd(&p, x, 99))));
    }
}

#[test]
fn softmax_cross_entropy_with_label_smoothing() {
    let (rows, classes) = (4, 6);
    let logits: Vec<f32> = rand_vec(rows * classes, 124).iter().map(|v| 3.0 * v).collect();
    let target = [2u32, 0, 5, 2];
    let r = rand_vec(rows, 125);
    for smoothing in [0.0, 0.1] {
        let p = SoftmaxCrossEntropyParams { rows, classes, smoothing };
        // dlogits is the gradient of the mean loss: of sum r_n loss_n it is r_n * rows * dlogits.
        let dl = cpu_ref::softmax_cross_entropy(&p, &logits, &target).dlogits;
        let analytic: Vec<f32> = dl.iter().enumerate().map(|(i, g)| g * r[i / classes] * rows as f32).collect();
        let f = |l: &[f32]| widen(&cpu_ref::softmax_cross_entropy(&p, l, &target).losses);
        check(&format!("smoothing {smoothing}"), &analytic, &fd(&logits, &r, &f));
    }
}
