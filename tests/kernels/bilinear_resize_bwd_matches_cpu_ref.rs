use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::ops::{bilinear_resize_bwd, BilinearResizeParams};

/// dx against the twin (which scatters each output's taps). Each dx element sums the products of
/// dy in [-1, 1) with tap weights over the outputs that tap it; `terms` bounds their count.
/// Tolerance atol 1e-5 * sqrt(terms) + rtol 1e-4 (f32 rounding ~1e-7 per term; a missed tap of
/// weight w changes the result by ~w / 2).
fn check(p: &BilinearResizeParams, seed: u64) {
    let dy = rand_vec(p.output_len(), seed);
    let affine: Vec<f32> = (0..p.c).map(|c| 1.0 + c as f32 * 0.5).chain((0..p.c).map(|c| -(c as f32))).collect();
    let want = cpu_ref::bilinear_resize_bwd(p, &dy, &affine);
    let dx = empty(p.n * p.c * p.ih * p.iw);
    let (dyg, ag) = (upload(&dy), upload(&affine));
    let got = run_and_read(&[bilinear_resize_bwd(gpu(), p, &dyg, &ag, &dx).unwrap()], &dx);
    // Outputs per input along an axis: those within one input pixel (2 / ratio + 1), or all of them
    // for an input the window's clamped sources pile onto.
    let terms = (p.oh.min((2.0 / p.ratio_h).ceil() as usize + 1)) * (p.ow.min((2.0 / p.ratio_w).ceil() as usize + 1));
    let terms = terms.max(if p.y0 != 0.0 || p.x0 != 0.0 { p.oh * p.ow } else { 1 });
    assert_close(&format!("{p:?}"), &got, &want, 1e-5 * (terms as f32).sqrt(), 1e-4);
    assert!(max_abs(&want) > 0.1, "degenerate test: gradient is ~0");
}

#[test]
fn upscale_by_fractional_scale_factor() {
    let p = BilinearResizeParams::by_scale(2, 3, 13, 10, 1.15);
    check(&p, 500);
}

#[test]
fn large_upscale_many_outputs_per_input() {
    let p = BilinearResizeParams::to_size(1, 2, 4, 5, 23, 17);
    check(&p, 501);
}

#[test]
fn downscale_to_size_skips_some_inputs() {
    // Ratio > 2: some input pixels are tapped by no output and get exactly zero.
    let p = BilinearResizeParams::to_size(3, 3, 37, 50, 8, 9);
    check(&p, 502);
}

#[test]
fn center_crop_window() {
    let mut p = BilinearResizeParams::to_size(1, 3, 48, 64, 20, 15);
    p.y0 = 4.0;
    p.x0 = 17.0;
    p.ratio_h = 2.0;
    p.ratio_w = 2.0;
    check(&p, 503);
}

#[test]
fn window_past_the_edge_clamps_onto_the_last_pixels() {
    // The window runs past the bottom-right corner: those sources clamp to the last row/column,
    // which collect many outputs each.
    let mut p = BilinearResizeParams::to_size(2, 1, 9, 7, 12, 10);
    p.y0 = 3.5;
    p.x0 = 2.25;
    p.ratio_h = 0.9;
    p.ratio_w = 1.3;
    check(&p, 504);
}

#[test]
fn single_row_and_column_inputs() {
    check(&BilinearResizeParams::to_size(1, 2, 1, 6, 3, 11), 505);
    check(&BilinearResizeParams::to_size(1, 1, 5, 1, 9, 4), 506);
}

#[test]
fn antialias_only_errors_when_it_shrinks() {
    let mut p = BilinearResizeParams::to_size(1, 1, 20, 20, 8, 8);
    p.antialias = true;
    let (dy, a, dx) = (empty(64), upload(&[1.0, 0.0]), empty(400));
    assert!(bilinear_resize_bwd(gpu(), &p, &dy, &a, &dx).is_err());
    // Enlarging with antialias on is plain bilinear, forward and backward.
    let mut p = BilinearResizeParams::to_size(1, 2, 6, 7, 11, 9);
    p.antialias = true;
    check(&p, 507);
}
