use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::ops::{ema_update, grad_norm2, optim, optimizer_step, OptimizerKind, OptimizerParams};

/// Three steps of `kind` on GPU and CPU twin; returns the final parameters.
fn check(kind: OptimizerKind, weight_decay: f32, max_norm: f32) {
    let total = 1000;
    let p = OptimizerParams { kind, total, decay_end: 600, weight_decay };
    let params0 = rand_vec(total, 120);
    let mut state: Vec<Vec<f32>> = (0..kind.slots()).map(|s| vec![kind.slot_init(s); total]).collect();
    let (pg, sg): (_, Vec<_>) = (upload(&params0), state.iter().map(|s| upload(s)).collect());
    let (norm2, partial) = (empty(1), empty(optim::grad_norm2_partial_len(total)));
    let mut want = params0.clone();
    for step in 1..=3u64 {
        let grads: Vec<f32> = rand_vec(total, 121 + step).iter().map(|g| g * 3.0).collect();
        let h = optim::hyper(&kind, 0.05, step, max_norm);
        let gg = upload(&grads);
        let hg = upload(&h);
        let mut ds: Vec<_> = grad_norm2(gpu(), total, &gg, &partial, &norm2).unwrap().into_iter().collect();
        let refs: Vec<&_> = sg.iter().collect();
        ds.extend(optimizer_step(gpu(), &p, &gg, &hg, &norm2, &pg, &refs).unwrap());
        efficientnet_wgpu::gpu::submit(gpu(), &ds).unwrap();
        let n2 = cpu_ref::grad_norm2(&grads);
        let got_n2 = gpu().read(&norm2).unwrap()[0];
        assert!((got_n2 - n2).abs() <= 1e-4 * n2, "norm2 {got_n2} vs {n2}");
        want = cpu_ref::optimizer_step(&p, &grads, &h, n2, &want, &mut state);
    }
    let got = gpu().read(&pg).unwrap();
    assert_close(&format!("{kind:?} params"), &got, &want, 1e-6, 1e-5);
    for (i, s) in sg.iter().enumerate() {
        assert_close(&format!("{kind:?} state {i}"), &gpu().read(s).unwrap(), &state[i], 1e-6, 1e-5);
    }
    assert_ne!(got, params0);
}

#[test]
fn rmsprop_tf_eps_inside_sqrt_accumulator_starts_at_one() {
    let kind = OptimizerKind::RmspropTf { decay: 0.9, momentum: 0.9, eps: 1e-3 };
    assert_eq!(kind.slot_init(0), 1.0);
    check(kind, 1e-2, 0.0);
    // The twin itself: one step from ms = 1, mom = 0 with g = 2, lr = 0.1:
    // ms = 0.9 + 0.1 * 4 = 1.3; mom = 0.1 * 2 / sqrt(1.3 + 1e-3); p = 1 - mom.
    let p = OptimizerParams { kind, total: 1, decay_end: 0, weight_decay: 0.0 };
    let mut st = vec![vec![1.0], vec![0.0]];
    let out = cpu_ref::optimizer_step(&p, &[2.0], &[0.1, 1.0, 1.0, 0.0], 4.0, &[1.0], &mut st);
    let mom = 0.2 / (1.3f64 + 1e-3).sqrt();
    assert!((out[0] as f64 - (1.0 - mom)).abs() < 1e-6, "{}", out[0]);
}

#[test]
fn sgd_momentum_and_nesterov() {
    check(OptimizerKind::Sgd { momentum: 0.9, nesterov: false }, 1e-3, 0.0);
    check(OptimizerKind::Sgd { momentum: 0.9, nesterov: true }, 0.0, 0.0);
}

#[test]
fn adamw_with_gradient_clipping() {
    // max_norm 5 is far below the gradients' norm (~55): clipping is active.
    check(OptimizerKind::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, 0.05, 5.0);
}

#[test]
fn ema_matches() {
    let (p, e) = (rand_vec(777, 130), rand_vec(777, 131));
    let (pg, eg) = (upload(&p), upload(&e));
    let got = run_and_read(&ema_update(gpu(), 777, 0.99, &pg, &eg).unwrap(), &eg);
    assert_close("ema", &got, &cpu_ref::ema_update(0.99, &p, &e), 1e-7, 1e-6);
}
