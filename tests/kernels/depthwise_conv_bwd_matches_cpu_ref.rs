use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::gpu::Kernel;
use efficientnet_wgpu::model::Padding;
use efficientnet_wgpu::ops::depthwise_conv::depthwise_conv_bwd_weight_rows;
use efficientnet_wgpu::ops::{depthwise_conv_bwd_data, depthwise_conv_bwd_weight, DepthwiseConvParams, KernelVariant};

use super::depthwise_conv_matches_cpu_ref::both_variants;

/// Both checks, for the storage-buffer and the texel kernels.
fn check_both(p: &DepthwiseConvParams, rows: usize, seed: u64) {
    for p in both_variants(p) {
        check_data(&p, seed);
        check_weight(&p, rows, seed + 1);
    }
}

/// dx against the twin, overwriting and accumulating onto a random dx. Each dx element sums at most
/// ceil(k / stride)^2 products of values in [-1, 1): atol 1e-5 + rtol 1e-4 (f32 rounding is ~1e-7
/// per term; a missing or misplaced tap is ~0.3).
fn check_data(p: &DepthwiseConvParams, seed: u64) {
    let dy = rand_vec(p.output_len(), seed);
    let w = rand_vec(p.weight_len(), seed + 1);
    let dx0 = rand_vec(p.input_len(), seed + 2);
    let want = cpu_ref::depthwise_conv_bwd_data(p, &dy, &w);
    let (dyg, wg) = (upload(&dy), upload(&w));
    for accumulate in [false, true] {
        let dx = upload(&dx0);
        let d = depthwise_conv_bwd_data(gpu(), p, &dyg, &wg, &dx, accumulate).unwrap();
        let texel = p.variant == KernelVariant::Texel;
        assert_eq!(d.kernel, if texel { Kernel::DepthwiseConvBwdDataTexel } else { Kernel::DepthwiseConvBwdData });
        let got = run_and_read(&[d], &dx);
        let want: Vec<f32> =
            if accumulate { want.iter().zip(&dx0).map(|(a, b)| a + b).collect() } else { want.clone() };
        assert_close(&format!("dx accumulate={accumulate} {p:?}"), &got, &want, 1e-5, 1e-4);
    }
}

/// dw against the twin, with the default chunking and with `rows` rows per chunk (several chunks,
/// the last one partial). Each dw element sums up to n * oh * ow products of values in [-1, 1):
/// atol 1e-5 * sqrt(terms) + rtol 1e-4. Also checks the result is bit-identical run to run.
fn check_weight(p: &DepthwiseConvParams, rows: usize, seed: u64) {
    let x = rand_vec(p.input_len(), seed);
    let dy = rand_vec(p.output_len(), seed + 1);
    let want = cpu_ref::depthwise_conv_bwd_weight(p, &x, &dy);
    let atol = 1e-5 * ((p.n * p.oh * p.ow) as f32).sqrt();
    let (xg, dyg) = (upload(&x), upload(&dy));

    let (partial, dw) = (empty(p.weight_partial_len(gpu())), empty(p.weight_len()));
    let ds = depthwise_conv_bwd_weight(gpu(), p, &xg, &dyg, &partial, &dw).unwrap();
    let texel = p.variant == KernelVariant::Texel;
    assert_eq!(ds[0].kernel, if texel { Kernel::DepthwiseConvBwdWeightTexel } else { Kernel::DepthwiseConvBwdWeight });
    let got = run_and_read(&ds, &dw);
    assert_close(&format!("dw default chunks {p:?}"), &got, &want, atol, 1e-4);
    let again = run_and_read(&ds, &dw);
    assert!(got.iter().zip(&again).all(|(a, b)| a.to_bits() == b.to_bits()), "dw not deterministic");

    let chunks = (p.n * p.oh).div_ceil(rows);
    assert!(chunks > 1 && !(p.n * p.oh).is_multiple_of(rows), "test shape must give a partial last chunk");
    let (partial, dw) = (empty(chunks * p.weight_len()), empty(p.weight_len()));
    let ds = depthwise_conv_bwd_weight_rows(gpu(), p, rows, &xg, &dyg, &partial, &dw).unwrap();
    let got = run_and_read(&ds, &dw);
    assert_close(&format!("dw {rows} rows per chunk {p:?}"), &got, &want, atol, 1e-4);
}

#[test]
fn k3_stride1_symmetric_c_not_multiple_of_4_batch3() {
    let p = DepthwiseConvParams::new(3, 7, 9, 10, 3, 1, Padding::Symmetric);
    check_both(&p, 4, 300);
}

#[test]
fn k5_stride2_odd_tf_same_batch1() {
    let p = DepthwiseConvParams::new(1, 13, 11, 6, 5, 2, Padding::TfSame);
    check_both(&p, 2, 310);
}

#[test]
fn k3_stride2_odd_symmetric() {
    let p = DepthwiseConvParams::new(2, 15, 15, 5, 3, 2, Padding::Symmetric);
    check_both(&p, 5, 320);
}

#[test]
fn k5_stride1_tf_same_wide_rows() {
    // 19 columns: several 4-column blocks and a partial one.
    let p = DepthwiseConvParams::new(1, 6, 19, 9, 5, 1, Padding::TfSame);
    check_both(&p, 4, 330);
}

#[test]
fn k3_stride2_tf_same_even_input_pads_after() {
    // TF-SAME with an even input and stride 2 pads 0 before and 1 after.
    let p = DepthwiseConvParams::new(3, 10, 12, 3, 3, 2, Padding::TfSame);
    assert_eq!((p.pad_top, p.pad_left), (0, 0));
    check_both(&p, 4, 340);
}

#[test]
fn k7_splits_the_taps_and_single_channel() {
    // kw = 7: the weight gradient splits kx into two blocks of 4 (one tap masked).
    let p = DepthwiseConvParams::new(2, 9, 8, 1, 7, 2, Padding::Symmetric);
    check_both(&p, 3, 350);
    let p = DepthwiseConvParams::new(1, 11, 9, 7, 7, 1, Padding::TfSame);
    check_both(&p, 4, 352);
}

#[test]
fn many_channels_default_chunks_span_rows() {
    // Enough channels that the default chunking puts several rows in each chunk.
    let p = DepthwiseConvParams::new(3, 21, 21, 600, 3, 1, Padding::Symmetric);
    assert!(p.weight_grad_rows(gpu()) > 1, "{}", p.weight_grad_rows(gpu()));
    for p in both_variants(&p) {
        check_weight(&p, 8, 360);
    }
}
