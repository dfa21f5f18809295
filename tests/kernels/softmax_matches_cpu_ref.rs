use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::ops::{softmax_fwd, SoftmaxParams};

#[test]
fn rows_of_logits_including_large_values() {
    let p = SoftmaxParams { rows: 3, cols: 1000 };
    let mut x: Vec<f32> = rand_vec(p.rows * p.cols, 40).iter().map(|v| v * 8.0).collect();
    x[5] = 90.0; // exp(90) overflows f32: the max must be subtracted first
    let want = cpu_ref::softmax_fwd(&p, &x);
    let (xg, y) = (upload(&x), empty(x.len()));
    let got = run_and_read(&[softmax_fwd(gpu(), &p, &xg, &y).unwrap()], &y);
    assert_close("softmax", &got, &want, 1e-7, 1e-4);
    let row0: f32 = got[..1000].iter().sum();
    assert!((row0 - 1.0).abs() < 1e-4, "row sums to {row0}");
}
