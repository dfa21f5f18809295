use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::ops::{activation_bwd, activation_fwd, Activation, ActivationParams};

// Tolerance: atol 1e-6, rtol 1e-5.

#[test]
fn every_activation_forward_and_backward() {
    let total = 3 * 5 * 5 * 7; // not a multiple of 4 or of the workgroup size
    let x: Vec<f32> = rand_vec(total, 80).iter().map(|v| v * 8.0 - 1.0).collect();
    let dy = rand_vec(total, 81);
    let prior = rand_vec(total, 82);
    for act in [Activation::None, Activation::Swish, Activation::Relu6, Activation::Sigmoid] {
        for accumulate in [false, true] {
            let p = ActivationParams { total, act, accumulate };
            let (xg, dyg, y, dx) = (upload(&x), upload(&dy), empty(total), upload(&prior));
            let d = [activation_fwd(gpu(), &p, &xg, &y).unwrap(), activation_bwd(gpu(), &p, &xg, &dyg, &dx).unwrap()];
            efficientnet_wgpu::gpu::submit(gpu(), &d).unwrap();
            let got = gpu().read_many(&[&y, &dx]).unwrap();
            let mut want_dx = cpu_ref::activation_bwd(&p, &x, &dy);
            if accumulate {
                want_dx.iter_mut().zip(&prior).for_each(|(a, b)| *a += b);
            }
            assert_close(&format!("{act:?} fwd"), &got[0], &cpu_ref::activation_fwd(&p, &x), 1e-6, 1e-5);
            assert_close(&format!("{act:?} bwd accumulate {accumulate}"), &got[1], &want_dx, 1e-6, 1e-5);
        }
    }
}
