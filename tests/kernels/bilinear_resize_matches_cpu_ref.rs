use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::ops::{bilinear_resize_fwd, BilinearResizeParams};

fn check(p: &BilinearResizeParams, seed: u64) -> Vec<f32> {
    let x = rand_vec(p.n * p.c * p.ih * p.iw, seed);
    let affine: Vec<f32> = (0..p.c).map(|c| 1.0 + c as f32 * 0.5).chain((0..p.c).map(|c| -(c as f32))).collect();
    let want = cpu_ref::bilinear_resize_fwd(p, &x, &affine);
    let (xg, ag, y) = (upload(&x), upload(&affine), empty(p.output_len()));
    let got = run_and_read(&[bilinear_resize_fwd(gpu(), p, &xg, &ag, &y).unwrap()], &y);
    assert_close(&format!("{p:?}"), &got, &want, 1e-5, 1e-4);
    got
}

#[test]
fn upscale_by_fractional_scale_factor() {
    // The blog's `scale`: F.interpolate(scale_factor=1.15, mode="bilinear", align_corners=False).
    let p = BilinearResizeParams::by_scale(2, 3, 13, 10, 1.15);
    assert_eq!((p.oh, p.ow), (14, 11));
    check(&p, 60);
}

#[test]
fn downscale_to_size_with_and_without_antialias() {
    let mut p = BilinearResizeParams::to_size(1, 3, 37, 50, 8, 9);
    check(&p, 61);
    p.antialias = true;
    check(&p, 61);
}

#[test]
fn center_crop_window() {
    // A 40x30 window of a 48x64 image starting at (4, 17), resized to 20x15.
    let mut p = BilinearResizeParams::to_size(1, 3, 48, 64, 20, 15);
    p.y0 = 4.0;
    p.x0 = 17.0;
    p.ratio_h = 2.0;
    p.ratio_w = 2.0;
    p.antialias = true;
    check(&p, 62);
}

#[test]
fn identity_size_is_exact_copy_times_affine() {
    let p = BilinearResizeParams::to_size(1, 2, 5, 7, 5, 7);
    let x = rand_vec(2 * 35, 63);
    let got = check(&p, 63);
    // Channel 1: y = x * 1.5 - 1.
    assert!((got[35] - (x[35] * 1.5 - 1.0)).abs() < 1e-6);
}
