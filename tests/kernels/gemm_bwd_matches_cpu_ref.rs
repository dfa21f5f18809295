use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::gpu::Kernel;
use efficientnet_wgpu::ops::{gemm_bwd_bias, gemm_bwd_data, gemm_bwd_weight, GemmParams, KernelVariant};

#[test]
fn bwd_data_odd_shapes_with_and_without_accumulate() {
    for (m, n, k) in [(3 * 7 * 7, 30, 43), (1, 1000, 1280), (5, 3, 6)] {
        let p = GemmParams::new(m, n, k);
        let dc = rand_vec(m * n, 80);
        let b = rand_vec(k * n, 81);
        let prior = rand_vec(m * k, 82);
        let want = cpu_ref::gemm_bwd_data(&p, &dc, &b);
        let (dcg, bg) = (upload(&dc), upload(&b));
        let da = empty(m * k);
        let got = run_and_read(&[gemm_bwd_data(gpu(), &p, &dcg, &bg, &da, false).unwrap()], &da);
        // Tolerance: sums of n products of values in [-1, 1).
        let atol = 1e-5 * (n as f32).sqrt();
        assert_close(&format!("{p:?}"), &got, &want, atol, 1e-4);
        let acc = upload(&prior);
        let got = run_and_read(&[gemm_bwd_data(gpu(), &p, &dcg, &bg, &acc, true).unwrap()], &acc);
        let want_acc: Vec<f32> = want.iter().zip(&prior).map(|(a, b)| a + b).collect();
        assert_close(&format!("{p:?} accumulate"), &got, &want_acc, atol, 1e-4);
    }
}

#[test]
fn bwd_weight_split_k_with_se_scale_and_bias() {
    // 3 images of 7x7: the gate changes inside a 4-row tile and inside a split-K chunk.
    let (m, n, k) = (3 * 49, 18, 26);
    let mut p = GemmParams::new(m, n, k);
    p.a_scale_rows = 49;
    let a = rand_vec(m * k, 83);
    let s = rand_vec(3 * k, 84);
    let dc = rand_vec(m * n, 85);
    assert!(p.m.div_ceil(p.weight_grad_rows(gpu())) > 1, "the test must cover several chunks");
    let want = cpu_ref::gemm_bwd_weight(&p, &a, Some(&s), &dc);
    let (ag, sg, dcg) = (upload(&a), upload(&s), upload(&dc));
    let (part, db) = (empty(p.weight_partial_len(gpu())), empty(k * n));
    let got = run_and_read(&gemm_bwd_weight(gpu(), &p, &ag, Some(&sg), &dcg, &part, &db).unwrap(), &db);
    let atol = 1e-5 * (m as f32).sqrt();
    assert_close("dB", &got, &want, atol, 1e-4);

    let want = cpu_ref::gemm_bwd_bias(&p, &dc);
    let (part, dbias) = (empty(p.bias_partial_len()), empty(n));
    let got = run_and_read(&gemm_bwd_bias(gpu(), &p, &dcg, &part, &dbias).unwrap(), &dbias);
    assert_close("dbias", &got, &want, atol, 1e-4);
}

#[test]
fn bwd_weight_long_m_like_an_expand_conv() {
    // 2 images of 56x56 into 24 -> 144 channels: M is long, K x N small.
    let (m, n, k) = (2 * 56 * 56, 144, 24);
    let p = GemmParams::new(m, n, k);
    let a = rand_vec(m * k, 86);
    let dc = rand_vec(m * n, 87);
    let want = cpu_ref::gemm_bwd_weight(&p, &a, None, &dc);
    let (ag, dcg) = (upload(&a), upload(&dc));
    let (part, db) = (empty(p.weight_partial_len(gpu())), empty(k * n));
    let got = run_and_read(&gemm_bwd_weight(gpu(), &p, &ag, None, &dcg, &part, &db).unwrap(), &db);
    assert_close("dB", &got, &want, 1e-5 * (m as f32).sqrt(), 1e-4);
}

#[test]
fn every_variant_of_the_backward_kernels() {
    // Ragged everywhere: rows not a multiple of 8 or 16, K not of 16 or 32, N not of 8 or 16,
    // the gate changing inside a tile and a chunk.
    for variant in [KernelVariant::Scalar, KernelVariant::Vec4, KernelVariant::Tiled, KernelVariant::Texel] {
        let (m, n, k) = (3 * 49 + 1, 36, 40);
        let mut p = GemmParams::new(m, n, k);
        p.variant = variant;
        p.a_scale_rows = 49;
        // The texel GEMMs need 8-lane subgroups (lavapipe); elsewhere a forced texel falls back.
        let texel_ok = gpu().caps.texel_kernels();
        let variant = if variant == KernelVariant::Texel && !texel_ok { KernelVariant::Vec4 } else { variant };
        assert_eq!(p.kernel_variant(gpu()), variant);
        let (a, s, dc, b, prior) = (
            rand_vec(m * k, 140),
            rand_vec(4 * k, 141),
            rand_vec(m * n, 142),
            rand_vec(k * n, 143),
            rand_vec(m * k, 144),
        );
        let (ag, sg, dcg, bg) = (upload(&a), upload(&s), upload(&dc), upload(&b));
        let atol = 1e-5 * (m as f32).sqrt();
        let want = cpu_ref::gemm_bwd_weight(&p, &a, Some(&s), &dc);
        let (part, db) = (empty(p.weight_partial_len(gpu())), empty(k * n));
        let ds = gemm_bwd_weight(gpu(), &p, &ag, Some(&sg), &dcg, &part, &db).unwrap();
        let kernels =
            [Kernel::GemmBwdWeight, Kernel::GemmBwdWeightVec4, Kernel::GemmBwdWeightTiled, Kernel::GemmBwdWeightTexel];
        assert_eq!(ds[0].kernel, kernels[variant as usize - 1]);
        let got = run_and_read(&ds, &db);
        assert_close(&format!("dB {variant:?}"), &got, &want, atol, 1e-4);
        let want: Vec<f32> = cpu_ref::gemm_bwd_data(&p, &dc, &b).iter().zip(&prior).map(|(x, y)| x + y).collect();
        let da = upload(&prior);
        let d = gemm_bwd_data(gpu(), &p, &dcg, &bg, &da, true).unwrap();
        let kernels =
            [Kernel::GemmBwdData, Kernel::GemmBwdDataVec4, Kernel::GemmBwdDataTiled, Kernel::GemmBwdDataTexel];
        assert_eq!(d.kernel, kernels[variant as usize - 1]);
        let got = run_and_read(&[d], &da);
        assert_close(&format!("dA {variant:?}"), &got, &want, 1e-5 * (n as f32).sqrt(), 1e-4);
        // Not accumulated, and one split-K chunk (written straight into dB).
        let da = empty(m * k);
        let got = run_and_read(&[gemm_bwd_data(gpu(), &p, &dcg, &bg, &da, false).unwrap()], &da);
        let want = cpu_ref::gemm_bwd_data(&p, &dc, &b);
        assert_close(&format!("dA {variant:?} no accumulate"), &got, &want, 1e-5 * (n as f32).sqrt(), 1e-4);
        // 29 rows: one chunk on every adapter (chunks hold at least 32 rows), not a multiple of 8.
        let p1 = GemmParams { m: 29, a_scale_rows: 0, ..p.clone() };
        assert_eq!(p1.m.div_ceil(p1.weight_grad_rows(gpu())), 1);
        let ds = gemm_bwd_weight(gpu(), &p1, &ag.slice(0, 29 * k), None, &dcg.slice(0, 29 * n), &part, &db).unwrap();
        assert_eq!(ds.len(), 1);
        let got = run_and_read(&ds, &db);
        let want = cpu_ref::gemm_bwd_weight(&p1, &a[..29 * k], None, &dc[..29 * n]);
        assert_close(&format!("dB {variant:?} one chunk"), &got, &want, atol, 1e-4);
    }
}

#[test]
fn tiled_bwd_weight_split_k_like_an_expand_conv() {
    // Long M in split-K chunks that end inside a 16-row stage, a gate that changes inside a
    // chunk, K below one 64-wide tile and N over 2 tiles + 16.
    let (m, n, k) = (2 * 56 * 56, 144, 24);
    let mut p = GemmParams::new(m, n, k);
    p.variant = KernelVariant::Tiled;
    p.a_scale_rows = 56 * 56;
    let rows = p.weight_grad_rows(gpu());
    assert!(m.div_ceil(rows) > 1 && !rows.is_multiple_of(16), "chunks of {rows} rows");
    let (a, s, dc, b) = (rand_vec(m * k, 150), rand_vec(2 * k, 151), rand_vec(m * n, 152), rand_vec(k * n, 153));
    let (ag, sg, dcg, bg) = (upload(&a), upload(&s), upload(&dc), upload(&b));
    let (part, db) = (empty(p.weight_partial_len(gpu())), empty(k * n));
    let ds = gemm_bwd_weight(gpu(), &p, &ag, Some(&sg), &dcg, &part, &db).unwrap();
    assert_eq!(ds[0].kernel, Kernel::GemmBwdWeightTiled);
    let want = cpu_ref::gemm_bwd_weight(&p, &a, Some(&s), &dc);
    assert_close("dB", &run_and_read(&ds, &db), &want, 1e-5 * (m as f32).sqrt(), 1e-4);
    // dA = dC x B^T with K (24) under one tile and N (144) in 9 stages.
    let da = empty(m * k);
    let d = gemm_bwd_data(gpu(), &p, &dcg, &bg, &da, false).unwrap();
    assert_eq!(d.kernel, Kernel::GemmBwdDataTiled);
    let want = cpu_ref::gemm_bwd_data(&p, &dc, &b);
    assert_close("dA", &run_and_read(&[d], &da), &want, 1e-5 * (n as f32).sqrt(), 1e-4);
}
