use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::ops::{bn_act_fwd, bn_scale_shift, Activation, BnActParams};

#[test]
fn every_activation_c_not_multiple_of_4() {
    let c = 7;
    let gamma = rand_vec(c, 50);
    let beta = rand_vec(c, 51);
    let mean = rand_vec(c, 52);
    let var: Vec<f32> = rand_vec(c, 53).iter().map(|v| v.abs() + 0.1).collect();
    let (scale, shift) = bn_scale_shift(&gamma, &beta, &mean, &var, 1e-3);
    let x: Vec<f32> = rand_vec(3 * 5 * 5 * c, 54).iter().map(|v| v * 10.0).collect();
    for act in [Activation::None, Activation::Swish, Activation::Relu6, Activation::Sigmoid] {
        let p = BnActParams { total: x.len(), c, act };
        let want = cpu_ref::bn_act_fwd(&p, &x, &scale, &shift);
        let (xg, sg, hg, y) = (upload(&x), upload(&scale), upload(&shift), empty(x.len()));
        let got = run_and_read(&[bn_act_fwd(gpu(), &p, &xg, &sg, &hg, &y).unwrap()], &y);
        assert_close(&format!("{act:?}"), &got, &want, 1e-6, 1e-5);
    }
}
