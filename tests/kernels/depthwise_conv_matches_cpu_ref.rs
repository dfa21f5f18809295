use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::gpu::Kernel;
use efficientnet_wgpu::model::Padding;
use efficientnet_wgpu::ops::{
    depthwise_conv_fwd, depthwise_conv_fwd_bn_input, Activation, DepthwiseConvParams, KernelVariant,
};

/// The storage-buffer kernel on the shape, and the texel kernel on it with C rounded up to a
/// multiple of 4 (its requirement).
pub fn both_variants(p: &DepthwiseConvParams) -> [DepthwiseConvParams; 2] {
    let mut q = p.clone();
    q.variant = KernelVariant::Texel;
    q.c = p.c.next_multiple_of(4);
    [DepthwiseConvParams { variant: KernelVariant::Scalar, ..p.clone() }, q]
}

fn check(p: &DepthwiseConvParams, bias: bool, seed: u64) {
    for p in both_variants(p) {
        check_one(&p, bias, seed);
    }
}

fn check_one(p: &DepthwiseConvParams, bias: bool, seed: u64) {
    let x = rand_vec(p.n * p.h * p.w * p.c, seed);
    let w = rand_vec(p.kh * p.kw * p.c, seed + 1);
    let b = rand_vec(p.c, seed + 2);
    let want = cpu_ref::depthwise_conv_fwd(p, &x, &w, bias.then_some(&b[..]));
    let (xg, wg, bg, y) = (upload(&x), upload(&w), upload(&b), empty(p.output_len()));
    let d = depthwise_conv_fwd(gpu(), p, &xg, &wg, bias.then_some(&bg), &y).unwrap();
    let texel = p.variant == KernelVariant::Texel;
    assert_eq!(d.kernel, if texel { Kernel::DepthwiseConvFwdTexel } else { Kernel::DepthwiseConvFwd });
    let got = run_and_read(&[d], &y);
    assert_close(&format!("{p:?}"), &got, &want, 1e-5, 1e-4);
}

#[test]
fn f16_twin_on_f16_inputs() {
    // Store = f16 (the f16 inference path; no texel family): stride 1 and 2, k 3 and 5, C odd.
    for (k, stride, c, padding) in [(3, 1, 10, Padding::Symmetric), (5, 2, 12, Padding::TfSame)] {
        let mut p = DepthwiseConvParams::new(2, 9, 7, c, k, stride, padding);
        p.act = Activation::Swish;
        let x = round_f16(&rand_vec(p.input_len(), 40));
        let w = round_f16(&rand_vec(p.weight_len(), 41));
        let b = round_f16(&rand_vec(p.c, 42));
        let want = cpu_ref::depthwise_conv_fwd(&p, &x, &w, Some(&b));
        let y = empty_f16(p.output_len());
        let d = depthwise_conv_fwd(gpu(), &p, &upload_f16(&x), &upload_f16(&w), Some(&upload_f16(&b)), &y).unwrap();
        assert_eq!(d.kernel, Kernel::DepthwiseConvFwdF16);
        assert_close(&format!("f16 {p:?}"), &run_and_read(&[d], &y), &want, 1e-5, F16_RTOL);
    }
}

#[test]
fn k3_stride1_symmetric_c_not_multiple_of_4() {
    let mut p = DepthwiseConvParams::new(3, 7, 9, 10, 3, 1, Padding::Symmetric);
    p.act = Activation::Swish;
    check(&p, true, 20);
}

#[test]
fn k5_stride2_odd_tf_same() {
    let mut p = DepthwiseConvParams::new(1, 13, 11, 6, 5, 2, Padding::TfSame);
    p.act = Activation::Relu6;
    check(&p, true, 21);
}

#[test]
fn k3_stride2_odd_symmetric_and_k5_stride1_tf_same() {
    let p = DepthwiseConvParams::new(2, 15, 15, 5, 3, 2, Padding::Symmetric);
    check(&p, true, 22);
    let p = DepthwiseConvParams::new(1, 6, 10, 9, 5, 1, Padding::TfSame);
    check(&p, false, 23);
}

#[test]
fn wide_rows_several_column_blocks_and_k7() {
    // 19 and 11 output columns: several 4-column blocks and a partial one, both strides.
    let mut p = DepthwiseConvParams::new(2, 5, 19, 8, 3, 1, Padding::TfSame);
    p.act = Activation::Swish;
    check(&p, true, 24);
    let p = DepthwiseConvParams::new(1, 9, 21, 12, 5, 2, Padding::Symmetric);
    check(&p, false, 25);
    // kw = 7.
    let p = DepthwiseConvParams::new(1, 9, 11, 4, 7, 1, Padding::Symmetric);
    check(&p, false, 26);
}

/// The input read as act(z * scale + shift), as training records it after an expand conv's BN.
/// Every shift is at least 0.5 away from zero, so act(shift) != 0 and a padding tap that went
/// through the BN instead of staying zero would show.
fn check_bn_input(p: &DepthwiseConvParams, bias: bool, act: Activation, seed: u64) {
    for p in both_variants(p) {
        let z = rand_vec(p.input_len(), seed);
        let w = rand_vec(p.weight_len(), seed + 1);
        let b = rand_vec(p.c, seed + 2);
        let mut scale_shift = rand_vec(2 * p.c, seed + 3);
        for s in &mut scale_shift[p.c..] {
            *s += 0.5f32.copysign(*s);
        }
        let want = cpu_ref::depthwise_conv_fwd_bn_input(&p, &z, &scale_shift, act, &w, bias.then_some(&b[..]));
        let (zg, sg, wg, bg, y) = (upload(&z), upload(&scale_shift), upload(&w), upload(&b), empty(p.output_len()));
        let d = depthwise_conv_fwd_bn_input(gpu(), &p, &zg, &sg, act, &wg, bias.then_some(&bg), &y).unwrap();
        let texel = p.variant == KernelVariant::Texel;
        assert_eq!(d.kernel, if texel { Kernel::DepthwiseConvFwdTexel } else { Kernel::DepthwiseConvFwd });
        assert_close(&format!("bn input {p:?}"), &run_and_read(&[d], &y), &want, 1e-5, 1e-4);
    }
}

#[test]
fn bn_input_k3_stride1_two_rows_and_k5_stride2_padding_stays_zero() {
    // 3x3 stride 1 with an odd output height (the texel kernel's two-row path and its last
    // single row), then 5x5 stride 2 with TF-SAME padding; C = 10 is not a multiple of 4.
    let mut p = DepthwiseConvParams::new(2, 7, 9, 10, 3, 1, Padding::Symmetric);
    p.act = Activation::Swish;
    check_bn_input(&p, true, Activation::Swish, 30);
    let p = DepthwiseConvParams::new(1, 11, 13, 8, 5, 2, Padding::TfSame);
    check_bn_input(&p, false, Activation::Relu6, 31);
}

#[test]
fn bn_input_needs_its_scale_shift_and_f32() {
    let p = DepthwiseConvParams::new(1, 5, 5, 4, 3, 1, Padding::Symmetric);
    let (x, w, y) = (upload(&rand_vec(p.input_len(), 1)), upload(&rand_vec(p.weight_len(), 2)), empty(p.output_len()));
    let ss = upload(&rand_vec(2 * p.c, 3));
    let swish = Activation::Swish;
    // A scale_shift of the wrong length.
    let short = upload(&rand_vec(p.c, 4));
    let e = depthwise_conv_fwd_bn_input(gpu(), &p, &x, &short, swish, &w, None, &y).err().expect("an error");
    assert!(e.to_string().contains("scale_shift"), "{e}");
    // f16 tensors: inference only.
    let (x16, w16, y16) =
        (upload_f16(&rand_vec(p.input_len(), 1)), upload_f16(&rand_vec(p.weight_len(), 2)), empty_f16(p.output_len()));
    let e = depthwise_conv_fwd_bn_input(gpu(), &p, &x16, &ss, swish, &w16, None, &y16).err().expect("an error");
    assert!(e.to_string().contains("f32"), "{e}");
}
