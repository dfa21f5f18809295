use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::gpu::Kernel;
use efficientnet_wgpu::model::Padding;
use efficientnet_wgpu::ops::{conv2d_fwd, Activation, Conv2dParams, KernelVariant};

fn check(p: &Conv2dParams, bias: bool, seed: u64) {
    let x = rand_vec(p.input_len(), seed);
    let w = rand_vec(p.weight_len(), seed + 1);
    let b = rand_vec(p.cout, seed + 2);
    let want = cpu_ref::conv2d_fwd(p, &x, &w, bias.then_some(&b[..]));
    let (xg, wg, bg, y) = (upload(&x), upload(&w), upload(&b), empty(p.output_len()));
    let d = conv2d_fwd(gpu(), p, &xg, &wg, bias.then_some(&bg), &y).unwrap();
    let texel = p.kernel_variant(gpu()) == KernelVariant::Texel;
    assert_eq!(d.kernel, if texel { Kernel::Conv2dFwdTexel } else { Kernel::Conv2dFwd });
    assert!(p.variant != KernelVariant::Texel || texel, "forced texel kernel must run: {p:?}");
    let got = run_and_read(&[d], &y);
    // Tolerance: f32 accumulation of up to k*k*cin products of values in [-1, 1).
    assert_close(&format!("{p:?}"), &got, &want, 1e-5, 1e-4);
}

#[test]
fn f16_twin_stem_on_f16_inputs() {
    // The f16 inference path's stem: NCHW f16 input, stride 2, C out not a multiple of 4.
    let mut p = Conv2dParams::new(2, 17, 15, 3, 10, 3, 2, Padding::Symmetric);
    p.input_nchw = true;
    p.act = Activation::Swish;
    let x = round_f16(&rand_vec(p.input_len(), 5));
    let w = round_f16(&rand_vec(p.weight_len(), 6));
    let b = round_f16(&rand_vec(p.cout, 7));
    let want = cpu_ref::conv2d_fwd(&p, &x, &w, Some(&b));
    let y = empty_f16(p.output_len());
    let d = conv2d_fwd(gpu(), &p, &upload_f16(&x), &upload_f16(&w), Some(&upload_f16(&b)), &y).unwrap();
    assert_eq!(d.kernel, Kernel::Conv2dFwdF16);
    assert_close("f16 stem", &run_and_read(&[d], &y), &want, 1e-5, F16_RTOL);
}

#[test]
fn stem_nchw_stride2_symmetric_odd_size() {
    let mut p = Conv2dParams::new(3, 17, 15, 3, 10, 3, 2, Padding::Symmetric);
    p.input_nchw = true;
    p.act = Activation::Swish;
    check(&p, true, 1);
}

#[test]
fn stem_nhwc_stride2_tf_same_asymmetric_pad() {
    let mut p = Conv2dParams::new(1, 16, 13, 3, 32, 3, 2, Padding::TfSame);
    p.act = Activation::Relu6;
    assert_eq!((p.pad_top, p.pad_left), (0, 1), "TF-SAME puts the odd pad after");
    check(&p, true, 2);
}

#[test]
fn k5_stride1_groups2_no_bias() {
    let mut p = Conv2dParams::new(2, 9, 11, 6, 10, 5, 1, Padding::Symmetric);
    p.groups = 2;
    check(&p, false, 3);
}

#[test]
fn pointwise_sized_many_input_channels() {
    let mut p = Conv2dParams::new(1, 5, 5, 37, 7, 1, 1, Padding::Symmetric);
    p.act = Activation::Sigmoid;
    check(&p, true, 4);
}

#[test]
fn stem_texel_kernel_both_paddings_ragged_tiles() {
    // W a multiple of 4 (the texel kernel's requirement), OW not a multiple of its 4 columns,
    // COUT not a multiple of its 8 channels; each shape also on the buffer kernel.
    for variant in [KernelVariant::Texel, KernelVariant::Scalar] {
        let mut p = Conv2dParams::new(2, 18, 20, 3, 12, 3, 2, Padding::Symmetric);
        p.input_nchw = true;
        p.act = Activation::Swish;
        p.variant = variant;
        check(&p, true, 5);
        let mut p = Conv2dParams::new(1, 15, 12, 3, 32, 3, 2, Padding::TfSame);
        p.input_nchw = true;
        p.variant = variant;
        check(&p, false, 6);
        let mut p = Conv2dParams::new(1, 9, 8, 2, 8, 5, 1, Padding::Symmetric);
        p.input_nchw = true;
        p.act = Activation::Relu6;
        p.variant = variant;
        check(&p, true, 7);
    }
}
