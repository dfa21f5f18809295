//! gemm and squeeze-excite gate backward twins against finite differences of their forward twins.
//! These ops are linear in each input, so central differences are exact up to rounding:
//! h = 1e-2, tolerance |fd - analytic| <= 1e-3 * max|analytic| + 1e-4.

use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::ops::{GemmParams, SeGateParams};

/// Central differences of L(x) = sum r_i f(x)_i with respect to every element of `x`.
pub fn fd_grad(x: &[f32], h: f32, r: &[f32], f: &dyn Fn(&[f32]) -> Vec<f32>) -> Vec<f32> {
    let loss = |v: &[f32]| f(v).iter().zip(r).map(|(&y, &r)| y as f64 * r as f64).sum::<f64>();
    (0..x.len())
        .map(|i| {
            let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
            xp[i] += h;
            xm[i] -= h;
            ((loss(&xp) - loss(&xm)) / (2.0 * h as f64)) as f32
        })
        .collect()
}

pub fn assert_grad(what: &str, analytic: &[f32], fd: &[f32]) {
    let tol = 1e-3 * max_abs(analytic) + 1e-4;
    assert_close(what, analytic, fd, tol, 0.0);
}

#[test]
fn gemm_backward_matches_finite_differences() {
    let mut p = GemmParams::new(6, 5, 7);
    p.a_scale_rows = 3;
    let a = rand_vec(p.m * p.k, 100);
    let b = rand_vec(p.k * p.n, 101);
    let bias = rand_vec(p.n, 102);
    let s = rand_vec(2 * p.k, 103);
    let r = rand_vec(p.m * p.n, 104);
    let fwd = |a: &[f32], b: &[f32], bias: &[f32]| cpu_ref::gemm_fwd(&p, a, b, Some(bias), None, Some(&s));
    // dA of the scaled product: gemm_bwd_data gives d(a * s); the chain rule multiplies by s.
    let d_scaled = cpu_ref::gemm_bwd_data(&p, &r, &b);
    let da: Vec<f32> = d_scaled.iter().enumerate().map(|(i, v)| v * s[(i / p.k / 3) * p.k + i % p.k]).collect();
    assert_grad("dA", &da, &fd_grad(&a, 1e-2, &r, &|a| fwd(a, &b, &bias)));
    let db = cpu_ref::gemm_bwd_weight(&p, &a, Some(&s), &r);
    assert_grad("dB", &db, &fd_grad(&b, 1e-2, &r, &|b| fwd(&a, b, &bias)));
    let dbias = cpu_ref::gemm_bwd_bias(&p, &r);
    assert_grad("dbias", &dbias, &fd_grad(&bias, 1e-2, &r, &|c| fwd(&a, &b, c)));
}

#[test]
fn se_gate_backward_matches_finite_differences() {
    let p = SeGateParams::new(2, 5, 3);
    let y = rand_vec(p.n * p.hw * p.c, 105);
    let g = rand_vec(p.n * p.c, 106);
    let r = rand_vec(y.len(), 107);
    let gated = |y: &[f32], g: &[f32]| -> Vec<f32> {
        y.iter().enumerate().map(|(i, v)| v * g[(i / (p.hw * p.c)) * p.c + i % p.c]).collect()
    };
    let (dy, dg) = cpu_ref::se_gate_bwd(&p, &r, &y, &g);
    assert_grad("dy", &dy, &fd_grad(&y, 1e-2, &r, &|y| gated(y, &g)));
    assert_grad("d_gate", &dg, &fd_grad(&g, 1e-2, &r, &|g| gated(&y, g)));
}
