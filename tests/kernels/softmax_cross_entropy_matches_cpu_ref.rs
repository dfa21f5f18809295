use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::ops::{softmax_cross_entropy, sum_partials, SoftmaxCrossEntropyParams, SumPartialsParams};

/// Tolerances: losses and mean loss atol 1e-5 rtol 1e-5; dlogits atol 1e-6 / rows rtol 1e-4.
fn check(p: &SoftmaxCrossEntropyParams, target: &[u32], seed: u64) {
    let logits: Vec<f32> = rand_vec(p.rows * p.classes, seed).iter().map(|v| v * 8.0).collect();
    let want = cpu_ref::softmax_cross_entropy(p, &logits, target);
    let (lg, tg) = (upload(&logits), gpu().upload_u32(target, "target").unwrap());
    let (losses, dlogits, mean) = (empty(p.rows), empty(p.rows * p.classes), empty(1));
    let mp = SumPartialsParams { parts: p.rows, len: 1, scale: 1.0 / p.rows as f32, accumulate: false };
    let d = [
        softmax_cross_entropy(gpu(), p, &lg, &tg, &losses, &dlogits).unwrap(),
        sum_partials(gpu(), &mp, &losses, &mean).unwrap(),
    ];
    efficientnet_wgpu::gpu::submit(gpu(), &d).unwrap();
    let got = gpu().read_many(&[&losses, &dlogits, &mean]).unwrap();
    let what = format!("{p:?}");
    assert_close(&format!("{what}: losses"), &got[0], &want.losses, 1e-5, 1e-5);
    assert_close(&format!("{what}: dlogits"), &got[1], &want.dlogits, 1e-6 / p.rows as f32, 1e-4);
    assert_close(&format!("{what}: mean"), &got[2], &[want.mean_loss], 1e-5, 1e-5);
}

#[test]
fn with_and_without_label_smoothing() {
    for smoothing in [0.0, 0.1] {
        check(&SoftmaxCrossEntropyParams { rows: 5, classes: 1000, smoothing }, &[0, 999, 17, 500, 3], 100);
        check(&SoftmaxCrossEntropyParams { rows: 3, classes: 7, smoothing }, &[6, 0, 2], 101);
    }
    check(&SoftmaxCrossEntropyParams { rows: 1, classes: 1, smoothing: 0.0 }, &[0], 102);
}

#[test]
fn out_of_range_target_is_clamped_not_read_out_of_bounds() {
    check(&SoftmaxCrossEntropyParams { rows: 2, classes: 10, smoothing: 0.1 }, &[10, u32::MAX], 103);
}
