use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::model::Padding;
use efficientnet_wgpu::ops::conv2d::conv2d_bwd_weight_rows;
use efficientnet_wgpu::ops::{conv2d_bwd_data, conv2d_bwd_weight, Conv2dParams};

/// dx against the twin, overwriting and accumulating onto a random dx. Each dx element sums up to
/// ceil(k / stride)^2 * cout / groups products of values in [-1, 1): atol 1e-5 * sqrt(terms) +
/// rtol 1e-4 (f32 rounding ~1e-7 per term; a missing or misplaced term is ~0.3).
fn check_data(p: &Conv2dParams, seed: u64) {
    let dy = rand_vec(p.output_len(), seed);
    let w = rand_vec(p.weight_len(), seed + 1);
    let dx0 = rand_vec(p.input_len(), seed + 2);
    let want = cpu_ref::conv2d_bwd_data(p, &dy, &w);
    let terms = p.kh.div_ceil(p.stride) * p.kw.div_ceil(p.stride) * (p.cout / p.groups);
    let atol = 1e-5 * (terms as f32).sqrt();
    let (dyg, wg) = (upload(&dy), upload(&w));
    for accumulate in [false, true] {
        let dx = upload(&dx0);
        let d = conv2d_bwd_data(gpu(), p, &dyg, &wg, &dx, accumulate).unwrap();
        let got = run_and_read(&[d], &dx);
        let want: Vec<f32> =
            if accumulate { want.iter().zip(&dx0).map(|(a, b)| a + b).collect() } else { want.clone() };
        assert_close(&format!("dx accumulate={accumulate} {p:?}"), &got, &want, atol, 1e-4);
    }
}

/// dw against the twin, with the default chunking and with `rows` rows per chunk (several chunks,
/// the last one partial). Each dw element sums up to n * oh * ow products of values in [-1, 1):
/// atol 1e-5 * sqrt(terms) + rtol 1e-4. Also checks the result is bit-identical run to run.
fn check_weight(p: &Conv2dParams, rows: usize, seed: u64) {
    let x = rand_vec(p.input_len(), seed);
    let dy = rand_vec(p.output_len(), seed + 1);
    let want = cpu_ref::conv2d_bwd_weight(p, &x, &dy);
    let atol = 1e-5 * ((p.n * p.oh * p.ow) as f32).sqrt();
    let (xg, dyg) = (upload(&x), upload(&dy));

    let (partial, dw) = (empty(p.weight_partial_len()), empty(p.weight_len()));
    let ds = conv2d_bwd_weight(gpu(), p, &xg, &dyg, &partial, &dw).unwrap();
    let got = run_and_read(&ds, &dw);
    assert_close(&format!("dw default chunks {p:?}"), &got, &want, atol, 1e-4);
    let again = run_and_read(&ds, &dw);
    assert!(got.iter().zip(&again).all(|(a, b)| a.to_bits() == b.to_bits()), "dw not deterministic");

    let chunks = (p.n * p.oh).div_ceil(rows);
    assert!(chunks > 1 && !(p.n * p.oh).is_multiple_of(rows), "test shape must give a partial last chunk");
    let (partial, dw) = (empty(chunks * p.weight_len()), empty(p.weight_len()));
    let ds = conv2d_bwd_weight_rows(gpu(), p, rows, &xg, &dyg, &partial, &dw).unwrap();
    let got = run_and_read(&ds, &dw);
    assert_close(&format!("dw {rows} rows per chunk {p:?}"), &got, &want, atol, 1e-4);
}

#[test]
fn stem_nchw_stride2_symmetric_odd_size_batch3() {
    let mut p = Conv2dParams::new(3, 17, 15, 3, 10, 3, 2, Padding::Symmetric);
    p.input_nchw = true;
    check_data(&p, 400);
    check_weight(&p, 5, 401);
}

#[test]
fn stem_nhwc_stride2_tf_same_asymmetric_pad_batch1() {
    let p = Conv2dParams::new(1, 16, 13, 3, 32, 3, 2, Padding::TfSame);
    assert_eq!((p.pad_top, p.pad_left), (0, 1));
    check_data(&p, 410);
    check_weight(&p, 3, 411);
}

#[test]
fn k5_stride1_groups2_channel_block_spans_groups() {
    // cin 6 / 2 groups: the first block of 4 input channels holds 3 of group 0 and 1 of group 1.
    let mut p = Conv2dParams::new(2, 9, 11, 6, 10, 5, 1, Padding::Symmetric);
    p.groups = 2;
    check_data(&p, 420);
    check_weight(&p, 4, 421);
}

#[test]
fn k5_stride2_groups2_nchw_tf_same() {
    let mut p = Conv2dParams::new(3, 11, 10, 10, 6, 5, 2, Padding::TfSame);
    p.groups = 2;
    p.input_nchw = true;
    check_data(&p, 430);
    check_weight(&p, 4, 431);
}

#[test]
fn pointwise_many_input_channels() {
    let p = Conv2dParams::new(1, 5, 5, 37, 7, 1, 1, Padding::Symmetric);
    check_data(&p, 440);
    check_weight(&p, 2, 441);
}

#[test]
fn many_channels_default_chunks_span_rows() {
    let p = Conv2dParams::new(2, 17, 17, 40, 48, 3, 1, Padding::Symmetric);
    assert!(p.weight_grad_rows() > 1, "{}", p.weight_grad_rows());
    check_weight(&p, 3, 450);
}
