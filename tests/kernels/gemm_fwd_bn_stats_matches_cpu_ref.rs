use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::gpu::Kernel;
use efficientnet_wgpu::ops::{bn_stats_finish, gemm_fwd_bn_stats, Activation, BnParams, GemmParams, KernelVariant};

/// Runs gemm_fwd_bn_stats with `variant` forced, then bn_stats_finish, and checks
/// - the output against the GEMM's twin (tolerance of gemm_matches_cpu_ref);
/// - the epilogue's partials against the twin's partials of the GPU's own output, so that only
///   the epilogue's f32 sums differ. They are taken relative to each chunk's first row, so their
///   error scales with the spread d = max |z - z(first row of its chunk)|, not with |z|: mean atol
///   1e-6 * d rtol 1e-6, M2 atol 1e-6 * d^2 * rows rtol 1e-5;
/// - the statistics after the finish (and its merge stage where the chunks are many) against
///   cpu_ref::bn_stats of that output, with bn_stats_matches_cpu_ref's tolerances scaled by
///   max|z| (there z is within [-1, 1)).
///
/// `with` says which of bias and residual the GEMM gets.
fn check(mut p: GemmParams, with: (bool, bool), variant: KernelVariant, bias_offset: f32, a_mul: f32, seed: u64) {
    let (with_bias, with_residual) = with;
    p.variant = variant;
    let a: Vec<f32> = rand_vec(p.m * p.k, seed).iter().map(|v| v * a_mul).collect();
    let b = rand_vec(p.k * p.n, seed + 1);
    let bias: Vec<f32> = rand_vec(p.n, seed + 2).iter().map(|v| v + bias_offset).collect();
    let res = rand_vec(p.m * p.n, seed + 3);
    let scale = rand_vec(p.m.div_ceil(p.a_scale_rows.max(1)) * p.k, seed + 4);
    let opt = |on: bool, v: &[f32]| on.then(|| v.to_vec());
    let (bias_v, res_v, scale_v) = (opt(with_bias, &bias), opt(with_residual, &res), opt(p.a_scale_rows > 0, &scale));
    let rows = p.bn_stats_rows(gpu()).expect("the forced variant has the epilogue");
    let (want_out, _) =
        cpu_ref::gemm_fwd_bn_stats(&p, &a, &b, bias_v.as_deref(), res_v.as_deref(), scale_v.as_deref(), rows);

    let mut bp = BnParams::new(p.m, p.n, p.m);
    bp.eps = 1e-3;
    let c = p.n;
    let gamma_beta: Vec<f32> =
        rand_vec(2 * c, seed + 5).iter().enumerate().map(|(i, v)| if i < c { 1.0 + 0.5 * v } else { *v }).collect();
    let running: Vec<f32> =
        rand_vec(2 * c, seed + 6).iter().enumerate().map(|(i, v)| if i < c { *v } else { 1.0 + 0.5 * v }).collect();
    let (ag, bg, biasg, resg, sg) = (upload(&a), upload(&b), upload(&bias), upload(&res), upload(&scale));
    let (out, partial) = (empty(p.m * p.n), empty(p.bn_partial_len(gpu())));
    let merged = (bp.merged_partial_len(rows) > 0).then(|| empty(bp.merged_partial_len(rows)));
    let (gb, run, stats, ss) = (upload(&gamma_beta), upload(&running), empty(2 * c), empty(2 * c));
    let d = gemm_fwd_bn_stats(
        gpu(),
        &p,
        &ag,
        &bg,
        with_bias.then_some(&biasg),
        with_residual.then_some(&resg),
        (p.a_scale_rows > 0).then_some(&sg),
        &out,
        &partial,
    )
    .unwrap();
    let kernel = match variant {
        KernelVariant::Texel => Kernel::GemmFwdBnStatsTexel,
        _ => Kernel::GemmFwdBnStatsTiled,
    };
    assert_eq!(d.kernel, kernel, "{p:?}");
    let mut ds = vec![d];
    ds.extend(bn_stats_finish(gpu(), &bp, rows, &partial, merged.as_ref(), &gb, &run, &stats, &ss).unwrap());
    assert_eq!(ds.len(), 2 + (bp.merge_group(rows) > 1) as usize);
    efficientnet_wgpu::gpu::submit(gpu(), &ds).unwrap();
    let got = gpu().read_many(&[&out, &partial, &run, &stats, &ss]).unwrap();
    let what = format!("{variant:?} m {} n {} k {} (chunks of {rows})", p.m, p.n, p.k);

    assert_close(&format!("{what}: out"), &got[0], &want_out, 1e-5 * (p.k as f32).sqrt(), 1e-4);
    let z = &got[0];
    let zmax = max_abs(z);
    let spread = (0..p.m * c).map(|i| (z[i] - z[(i / c / rows * rows) * c + i % c]).abs()).fold(0f32, f32::max);
    assert!(spread > 0.0);
    let want_partial = cpu_ref::bn_stats_partial(z, p.m, p.n, rows);
    let (mean_got, m2_got): (Vec<f32>, Vec<f32>) = split_partial(&got[1][..want_partial.len()], c);
    let (mean_want, m2_want) = split_partial(&want_partial, c);
    assert_close(&format!("{what}: chunk means"), &mean_got, &mean_want, 1e-6 * spread, 1e-6);
    assert_close(&format!("{what}: chunk M2"), &m2_got, &m2_want, 1e-6 * spread * spread * rows as f32, 1e-5);

    let want = cpu_ref::bn_stats(&bp, z, &gamma_beta, &running);
    assert_close(&format!("{what}: mean"), &got[3][..c], &want.stats[..c], 1e-6 * zmax, 1e-6);
    assert_close(&format!("{what}: invstd"), &got[3][c..], &want.stats[c..], 1e-6, 1e-5);
    assert_close(&format!("{what}: scale_shift"), &got[4], &want.scale_shift, 1e-6 * zmax, 1e-5);
    assert_close(&format!("{what}: running"), &got[2], &want.running, 1e-6 * zmax, 1e-5);
}

/// (means, M2s) of a (chunks, 2, c) partial, each (chunks, c).
fn split_partial(partial: &[f32], c: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut mean, mut m2) = (Vec::new(), Vec::new());
    for chunk in partial.chunks(2 * c) {
        mean.extend_from_slice(&chunk[..c]);
        m2.extend_from_slice(&chunk[c..]);
    }
    (mean, m2)
}

#[test]
fn tiled_ragged_tiles_with_every_epilogue_input() {
    // M = 2 tiles + 3 rows (a last chunk of 3), N = 1 tile + 8 columns, K = 2 stages + 8; bias,
    // swish, a gate changing inside a tile and a residual: the statistics are of what is stored.
    let mut p = GemmParams::new(2 * 64 + 3, 72, 40);
    p.act = Activation::Swish;
    p.a_scale_rows = 49;
    check(p, (true, true), KernelVariant::Tiled, 0.0, 1.0, 90);
    // A training 1x1 conv: nothing but the product; one row in the last tile.
    check(GemmParams::new(3 * 64 + 1, 24, 16), (false, false), KernelVariant::Tiled, 0.0, 1.0, 91);
}

#[test]
fn texel_ragged_blocks_with_every_epilogue_input() {
    // M = 6 blocks of 16 + 5 rows, N = 1 block of 16 columns + 8; the gate changes mid-block.
    let mut p = GemmParams::new(6 * 16 + 5, 24, 40);
    p.act = Activation::Swish;
    p.a_scale_rows = 25;
    check(p, (true, true), KernelVariant::Texel, 0.0, 1.0, 92);
    check(GemmParams::new(4 * 16 + 1, 36, 16), (false, false), KernelVariant::Texel, 0.0, 1.0, 93);
}

#[test]
fn fewer_rows_than_one_chunk() {
    // BatchNorm over the 1x1 maps of a small batch: 3 rows, one partial chunk in either variant.
    for variant in [KernelVariant::Tiled, KernelVariant::Texel] {
        check(GemmParams::new(3, 40, 24), (false, false), variant, 0.0, 1.0, 96);
    }
}

#[test]
fn many_chunks_take_the_merge_stage_with_a_large_common_offset() {
    // More than 512 chunks (64-row tiles, 16-row blocks), the last one ragged; every value near
    // 1000 (the bias), where E[z^2] - E[z]^2 in f32 would lose the variance (~3) entirely.
    for (variant, rows) in [(KernelVariant::Tiled, 64), (KernelVariant::Texel, 16)] {
        let p = GemmParams::new(700 * rows + 5, 8, 8);
        assert!(BnParams::new(p.m, p.n, p.m).merge_group(rows) > 1);
        check(p, (true, false), variant, 1000.0, 1.0, 94);
    }
}

#[test]
fn near_equal_values_keep_their_spread() {
    // z = bias (~1) + products of size 1e-4: BatchNorm over a few rows of 1x1 maps sees such
    // columns. Summing z itself would round the mean by ~1e-7 and M2 (~1e-8 per row) by percents.
    for variant in [KernelVariant::Tiled, KernelVariant::Texel] {
        let p = GemmParams::new(2 * 64 + 5, 8, 8);
        check(p, (true, false), variant, 1.0, 1e-4, 95);
    }
}

#[test]
fn refuses_what_it_cannot_do() {
    let p = GemmParams::new(64, 8, 8);
    let (a, b, out) = (upload(&rand_vec(64 * 8, 1)), upload(&rand_vec(64, 2)), empty(64 * 8));
    // A variant without the epilogue.
    let mut v4 = p.clone();
    v4.variant = KernelVariant::Vec4;
    assert_eq!(v4.bn_stats_rows(gpu()), None);
    let err =
        gemm_fwd_bn_stats(gpu(), &v4, &a, &b, None, None, None, &out, &empty(16)).err().expect("vec4").to_string();
    assert!(err.contains("no statistics epilogue"), "{err}");
    // A partial buffer too short.
    let mut t = p.clone();
    t.variant = KernelVariant::Tiled;
    let err =
        gemm_fwd_bn_stats(gpu(), &t, &a, &b, None, None, None, &out, &empty(15)).err().expect("short").to_string();
    assert!(err.contains("bn_partial") && err.contains("16"), "{err}");
    // Many chunks without the merge stage's scratch.
    let bp = BnParams::new(600 * 16, 8, 16);
    let (partial, c2) = (empty(600 * 2 * 8), upload(&[1.0; 16]));
    let err = bn_stats_finish(gpu(), &bp, 16, &partial, None, &c2, &empty(16), &empty(16), &empty(16))
        .err()
        .expect("no merged");
    assert!(err.to_string().contains("merge stage"), "{err}");
}
