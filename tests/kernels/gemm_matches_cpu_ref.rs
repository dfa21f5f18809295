use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::gpu::Kernel;
use efficientnet_wgpu::ops::{gemm_fwd, Activation, GemmParams, KernelVariant};

fn check(p: &GemmParams, with_bias: bool, with_residual: bool, seed: u64) {
    let a = rand_vec(p.m * p.k, seed);
    let b = rand_vec(p.k * p.n, seed + 1);
    let bias = rand_vec(p.n, seed + 2);
    let res = rand_vec(p.m * p.n, seed + 3);
    let groups = if p.a_scale_rows > 0 { p.m.div_ceil(p.a_scale_rows) } else { 1 };
    let scale = rand_vec(groups * p.k, seed + 4);
    let p = p.clone();
    let want = cpu_ref::gemm_fwd(
        &p,
        &a,
        &b,
        with_bias.then_some(&bias[..]),
        with_residual.then_some(&res[..]),
        (p.a_scale_rows > 0).then_some(&scale[..]),
    );
    let (ag, bg, biasg, resg, sg, out) =
        (upload(&a), upload(&b), upload(&bias), upload(&res), upload(&scale), empty(p.m * p.n));
    let d = gemm_fwd(
        gpu(),
        &p,
        &ag,
        &bg,
        with_bias.then_some(&biasg),
        with_residual.then_some(&resg),
        (p.a_scale_rows > 0).then_some(&sg),
        &out,
    )
    .unwrap();
    let kernel = match p.kernel_variant(gpu()) {
        KernelVariant::Texel => Kernel::GemmFwdTexel,
        KernelVariant::Tiled => Kernel::GemmFwdTiled,
        KernelVariant::Vec4 => Kernel::GemmFwdVec4,
        _ => Kernel::GemmFwd,
    };
    assert_eq!(d.kernel, kernel, "{p:?}");
    let got = run_and_read(&[d], &out);
    // Tolerance: sums of k products of values in [-1, 1) in f32.
    let atol = 1e-5 * (p.k as f32).sqrt();
    assert_close(&format!("{p:?}"), &got, &want, atol, 1e-4);
}

#[test]
fn pointwise_conv_shape_odd_everything() {
    let mut p = GemmParams::new(3 * 7 * 7, 30, 43);
    p.act = Activation::Swish;
    check(&p, true, false, 10);
}

#[test]
fn project_conv_with_se_scale_and_residual() {
    // 2 images of 5x5 pixels: the gate changes mid-tile (25 rows per image, tiles of 4).
    let mut p = GemmParams::new(2 * 25, 18, 26);
    p.a_scale_rows = 25;
    check(&p, true, true, 11);
}

#[test]
fn se_fc_and_classifier_shapes() {
    let mut p = GemmParams::new(3, 6, 96);
    p.act = Activation::Swish;
    check(&p, true, false, 12);
    let mut p = GemmParams::new(3, 96, 6);
    p.act = Activation::Sigmoid;
    check(&p, true, false, 13);
    let mut p = GemmParams::new(1, 1000, 1280);
    p.act = Activation::None;
    check(&p, true, false, 14);
}

#[test]
fn relu6_no_bias_single_row() {
    let mut p = GemmParams::new(1, 5, 3);
    p.act = Activation::Relu6;
    check(&p, false, false, 15);
}

#[test]
fn every_variant_on_aligned_shapes() {
    // K a multiple of 8 and N of 4 (every EfficientNet 1x1 conv): each family, forced. Ragged
    // tiles: rows not a multiple of 16, columns not of 16, the gate changing inside a tile.
    for variant in [KernelVariant::Scalar, KernelVariant::Vec4, KernelVariant::Tiled, KernelVariant::Texel] {
        let mut p = GemmParams::new(2 * 49 + 3, 24, 40);
        p.variant = variant;
        p.act = Activation::Swish;
        check(&p, true, false, 16);
        let mut p = GemmParams::new(2 * 25, 36, 96);
        p.variant = variant;
        p.a_scale_rows = 25;
        check(&p, true, true, 17);
    }
}

#[test]
fn tiled_ragged_tiles_and_stages() {
    // 64 x 64 tiles, 16-deep stages: M = 2 tiles + 3 rows, N = 1 tile + 8 columns, K = 2 stages +
    // 8; the gate changes inside a tile; several 8 x 8 thread blocks fall wholly outside.
    let mut p = GemmParams::new(2 * 64 + 3, 72, 40);
    p.variant = KernelVariant::Tiled;
    p.act = Activation::Swish;
    p.a_scale_rows = 49;
    check(&p, true, true, 20);
    // The classifier: one row, N in 16 tiles, K in 80 stages; and a SE FC with K of 4.
    let mut p = GemmParams::new(1, 1000, 1280);
    p.variant = KernelVariant::Tiled;
    check(&p, true, false, 21);
    let mut p = GemmParams::new(5, 96, 4);
    p.variant = KernelVariant::Tiled;
    p.act = Activation::Sigmoid;
    check(&p, true, false, 22);
}

#[test]
fn f16_twins_on_f16_inputs() {
    // Each family compiled with Store = f16 against the twin on the same f16-rounded inputs. On
    // CPU adapters Auto (texel) falls back to vec4, whose f16 twin runs.
    let cases = [
        (KernelVariant::Scalar, Kernel::GemmFwdF16, GemmParams::new(2 * 25 + 1, 18, 26)),
        (KernelVariant::Vec4, Kernel::GemmFwdVec4F16, GemmParams::new(2 * 25, 36, 96)),
        (KernelVariant::Tiled, Kernel::GemmFwdTiledF16, GemmParams::new(2 * 64 + 3, 72, 40)),
    ];
    for (variant, kernel, mut p) in cases {
        p.variant = variant;
        p.act = Activation::Swish;
        p.a_scale_rows = 25;
        let a = round_f16(&rand_vec(p.m * p.k, 30));
        let b = round_f16(&rand_vec(p.k * p.n, 31));
        let bias = round_f16(&rand_vec(p.n, 32));
        let res = round_f16(&rand_vec(p.m * p.n, 33));
        let scale = round_f16(&rand_vec(p.m.div_ceil(25) * p.k, 34));
        let want = cpu_ref::gemm_fwd(&p, &a, &b, Some(&bias), Some(&res), Some(&scale));
        let (ag, bg, biasg, resg, sg) =
            (upload_f16(&a), upload_f16(&b), upload_f16(&bias), upload_f16(&res), upload_f16(&scale));
        let out = empty_f16(p.m * p.n);
        let d = gemm_fwd(gpu(), &p, &ag, &bg, Some(&biasg), Some(&resg), Some(&sg), &out).unwrap();
        assert_eq!(d.kernel, kernel);
        let got = run_and_read(&[d], &out);
        assert_close(&format!("f16 {p:?}"), &got, &want, 1e-5 * (p.k as f32).sqrt(), F16_RTOL);
    }
    let mut p = GemmParams::new(4, 40, 24);
    p.variant = KernelVariant::Auto;
    let (a, b) = (upload_f16(&rand_vec(4 * 24, 35)), upload_f16(&rand_vec(24 * 40, 36)));
    let d = gemm_fwd(gpu(), &p, &a, &b, None, None, None, &empty_f16(4 * 40)).unwrap();
    assert!(matches!(d.kernel, Kernel::GemmFwdVec4F16 | Kernel::GemmFwdTiledF16), "{:?}", d.kernel);
    // Results beyond f16's range saturate at ±65504 (WGSL's plain conversion is indeterminate).
    for variant in [KernelVariant::Vec4, KernelVariant::Tiled] {
        let mut p = GemmParams::new(4, 8, 8);
        p.variant = variant;
        let (a, b, out) = (upload_f16(&[1.0; 32]), upload_f16(&[1000.0; 64]), empty_f16(32));
        let bias = upload_f16(&[65504.0, -65504.0, 0.0, 4.0, 65504.0, -65504.0, 0.0, 4.0]);
        let d = gemm_fwd(gpu(), &p, &a, &b, Some(&bias), None, None, &out).unwrap();
        let got = run_and_read(&[d], &out);
        let row = [65504.0, -57504.0, 8000.0, 8004.0, 65504.0, -57504.0, 8000.0, 8004.0];
        assert_eq!(got, row.repeat(4), "{variant:?}");
    }
    // Mixed element types are an error, not a reinterpretation.
    let err = gemm_fwd(gpu(), &p, &a, &b, None, None, None, &empty(4 * 40)).err().expect("mixed f16/f32");
    assert!(err.to_string().contains("element type"), "{err}");
}

#[test]
fn tiled_is_the_gpu_choice() {
    // GPU adapters (and EFFNET_KERNELS=gpu) run aligned GEMMs tiled; CPU adapters never do
    // unless forced (barriers and workgroup memory are slow there).
    let p = GemmParams::new(2 * 64 + 5, 40, 24);
    let gpu_class = gpu().caps.kernel_class == efficientnet_wgpu::gpu::KernelClass::Gpu;
    assert_eq!(p.kernel_variant(gpu()) == KernelVariant::Tiled, gpu_class);
    assert_eq!(GemmParams::new(8, 10, 12).kernel_variant(gpu()), KernelVariant::Scalar);
    let mut p = GemmParams::new(8, 10, 12);
    p.variant = KernelVariant::Tiled;
    assert_eq!(p.kernel_variant(gpu()), KernelVariant::Scalar, "N = 10 has no vec4 form");
}

#[test]
fn texel_kernel_choice() {
    // Auto picks the texel kernel on adapters with 8-lane subgroups (lavapipe, CI's adapter)
    // whenever K is a multiple of 8 and N of 4, whatever M (so batch slices run the same kernel);
    // vec4 otherwise, and a forced texel falls back to vec4 where subgroups don't fit.
    let lavapipe = gpu().info.name.contains("llvmpipe");
    assert!(!lavapipe || gpu().caps.texel_kernels(), "lavapipe should have texel kernels");
    let texel_or_vec4 = if gpu().caps.texel_kernels() { KernelVariant::Texel } else { KernelVariant::Vec4 };
    let p = GemmParams::new(2 * 64 + 5, 40, 24);
    assert_eq!(p.kernel_variant(gpu()), texel_or_vec4);
    check(&p, true, true, 18);
    let mut p = GemmParams::new(3, 40, 24);
    p.variant = KernelVariant::Texel;
    assert_eq!(p.kernel_variant(gpu()), texel_or_vec4);
    p.act = Activation::Sigmoid;
    check(&p, true, false, 19);
    let vec4_or_tiled = if gpu().caps.kernel_class == efficientnet_wgpu::gpu::KernelClass::Gpu {
        KernelVariant::Tiled
    } else {
        KernelVariant::Vec4
    };
    assert_eq!(GemmParams::new(8, 40, 12).kernel_variant(gpu()), vec4_or_tiled);
}
