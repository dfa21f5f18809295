//! Convolution and resize backward twins against central finite differences of their forward
//! twins: L = sum_i r_i * y_i (fixed random r) accumulated in f64, each input or weight perturbed
//! by h = 1e-2 in f32 (divided by the perturbation actually stored). These ops are linear in each
//! argument, so the differences are exact up to rounding of the f32 outputs.
//! Tolerance: |fd - analytic| <= 1e-3 * max|analytic| + 1e-4.

use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::model::Padding;
use efficientnet_wgpu::ops::{BilinearResizeParams, Conv2dParams, DepthwiseConvParams};

const H: f32 = 1e-2;

/// Central differences of L(v) = sum r_i f(v)_i with respect to every element of `v`.
fn fd_grad(v: &[f32], r: &[f32], f: &dyn Fn(&[f32]) -> Vec<f32>) -> Vec<f32> {
    let loss = |v: &[f32]| {
        let y = f(v);
        assert_eq!(y.len(), r.len());
        y.iter().zip(r).map(|(&y, &r)| y as f64 * r as f64).sum::<f64>()
    };
    (0..v.len())
        .map(|i| {
            let (mut vp, mut vm) = (v.to_vec(), v.to_vec());
            vp[i] += H;
            vm[i] -= H;
            ((loss(&vp) - loss(&vm)) / (vp[i] as f64 - vm[i] as f64)) as f32
        })
        .collect()
}

fn assert_grad(what: &str, analytic: &[f32], fd: &[f32]) {
    assert!(max_abs(analytic) > 1e-2, "{what}: degenerate check, gradient ~0");
    let tol = 1e-3 * max_abs(analytic) + 1e-4;
    assert_close(what, analytic, fd, tol, 0.0);
}

fn check_depthwise(p: &DepthwiseConvParams, seed: u64) {
    let x = rand_vec(p.input_len(), seed);
    let w = rand_vec(p.weight_len(), seed + 1);
    let r = rand_vec(p.output_len(), seed + 2);
    let dx = cpu_ref::depthwise_conv_bwd_data(p, &r, &w);
    let fd = fd_grad(&x, &r, &|x| cpu_ref::depthwise_conv_fwd(p, x, &w, None));
    assert_grad(&format!("depthwise dx {p:?}"), &dx, &fd);
    let dw = cpu_ref::depthwise_conv_bwd_weight(p, &x, &r);
    let fd = fd_grad(&w, &r, &|w| cpu_ref::depthwise_conv_fwd(p, &x, w, None));
    assert_grad(&format!("depthwise dw {p:?}"), &dw, &fd);
}

fn check_conv2d(p: &Conv2dParams, seed: u64) {
    let x = rand_vec(p.input_len(), seed);
    let w = rand_vec(p.weight_len(), seed + 1);
    let r = rand_vec(p.output_len(), seed + 2);
    let dx = cpu_ref::conv2d_bwd_data(p, &r, &w);
    let fd = fd_grad(&x, &r, &|x| cpu_ref::conv2d_fwd(p, x, &w, None));
    assert_grad(&format!("conv2d dx {p:?}"), &dx, &fd);
    let dw = cpu_ref::conv2d_bwd_weight(p, &x, &r);
    let fd = fd_grad(&w, &r, &|w| cpu_ref::conv2d_fwd(p, &x, w, None));
    assert_grad(&format!("conv2d dw {p:?}"), &dw, &fd);
}

fn check_resize(p: &BilinearResizeParams, seed: u64) {
    let x = rand_vec(p.n * p.c * p.ih * p.iw, seed);
    let affine: Vec<f32> = (0..p.c).map(|c| 0.5 + c as f32).chain((0..p.c).map(|c| c as f32 - 1.0)).collect();
    let r = rand_vec(p.output_len(), seed + 1);
    let dx = cpu_ref::bilinear_resize_bwd(p, &r, &affine);
    let fd = fd_grad(&x, &r, &|x| cpu_ref::bilinear_resize_fwd(p, x, &affine));
    assert_grad(&format!("resize dx {p:?}"), &dx, &fd);
}

#[test]
fn depthwise_conv_backward_matches_finite_differences() {
    check_depthwise(&DepthwiseConvParams::new(2, 7, 6, 3, 3, 2, Padding::TfSame), 600);
    check_depthwise(&DepthwiseConvParams::new(1, 6, 5, 2, 5, 1, Padding::Symmetric), 603);
    check_depthwise(&DepthwiseConvParams::new(1, 8, 7, 5, 5, 2, Padding::TfSame), 606);
}

#[test]
fn conv2d_backward_matches_finite_differences() {
    let mut p = Conv2dParams::new(2, 7, 6, 3, 5, 3, 2, Padding::Symmetric);
    p.input_nchw = true;
    check_conv2d(&p, 610);
    let mut p = Conv2dParams::new(1, 6, 5, 4, 6, 5, 1, Padding::TfSame);
    p.groups = 2;
    check_conv2d(&p, 613);
    let p = Conv2dParams::new(1, 8, 7, 3, 4, 3, 2, Padding::TfSame);
    check_conv2d(&p, 616);
}

#[test]
fn bilinear_resize_backward_matches_finite_differences() {
    check_resize(&BilinearResizeParams::by_scale(1, 2, 5, 4, 1.7), 620);
    check_resize(&BilinearResizeParams::to_size(2, 1, 11, 9, 4, 3), 622);
    let mut p = BilinearResizeParams::to_size(1, 2, 7, 6, 5, 6);
    p.y0 = 2.5;
    p.x0 = 1.0;
    p.ratio_h = 1.1;
    p.ratio_w = 0.8;
    check_resize(&p, 624);
    // The twin's antialiased filter too (the GPU kernel has no antialiased backward).
    let mut p = BilinearResizeParams::to_size(1, 1, 13, 10, 4, 3);
    p.antialias = true;
    check_resize(&p, 626);
}
