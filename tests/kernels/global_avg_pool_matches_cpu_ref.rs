use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::gpu::Kernel;
use efficientnet_wgpu::ops::{global_avg_pool_fwd, GlobalAvgPoolParams, KernelVariant};

fn check(p: &GlobalAvgPoolParams, seed: u64) {
    let x = rand_vec(p.n * p.hw * p.c, seed);
    let want = cpu_ref::global_avg_pool_fwd(p, &x);
    let (xg, part, y) = (upload(&x), empty(p.partial_len()), empty(p.n * p.c));
    let d = global_avg_pool_fwd(gpu(), p, &xg, &part, &y).unwrap();
    let texel = p.texel(gpu());
    assert!(p.variant == KernelVariant::Auto || texel == (p.variant == KernelVariant::Texel), "{p:?}");
    assert_eq!(d[0].kernel, if texel { Kernel::GlobalAvgPoolPartialTexel } else { Kernel::GlobalAvgPoolPartial });
    let got = run_and_read(&d, &y);
    assert_close(&format!("{p:?}"), &got, &want, 1e-6, 1e-5);
}

#[test]
fn f16_twin_on_f16_input() {
    // f16 in and out, f32 partial sums: 225 rows in 4 chunks, C odd.
    let p = GlobalAvgPoolParams::new(3, 225, 7);
    let x = round_f16(&rand_vec(p.n * p.hw * p.c, 34));
    let want = cpu_ref::global_avg_pool_fwd(&p, &x);
    let (part, y) = (empty(p.partial_len()), empty_f16(p.n * p.c));
    let d = global_avg_pool_fwd(gpu(), &p, &upload_f16(&x), &part, &y).unwrap();
    assert_eq!([d[0].kernel, d[1].kernel], [Kernel::GlobalAvgPoolPartialF16, Kernel::GlobalAvgPoolFinishF16]);
    assert_close("f16 pool", &run_and_read(&d, &y), &want, 1e-6, F16_RTOL);
}

#[test]
fn several_chunks_last_one_partial() {
    // 15x15 = 225 rows: three full chunks of 64 and one of 33.
    check(&GlobalAvgPoolParams::new(3, 225, 7), 30);
}

#[test]
fn single_pixel_and_small_chunk() {
    check(&GlobalAvgPoolParams::new(1, 1, 5), 31);
    let mut p = GlobalAvgPoolParams::new(2, 49, 13);
    p.chunk = 8;
    check(&p, 32);
}

#[test]
fn texel_and_buffer_first_stage_with_c_a_multiple_of_4() {
    for variant in [KernelVariant::Texel, KernelVariant::Scalar] {
        let mut p = GlobalAvgPoolParams::new(3, 225, 12);
        p.variant = variant;
        check(&p, 33);
        let mut p = GlobalAvgPoolParams::new(2, 49, 8);
        p.chunk = 8;
        p.variant = variant;
        check(&p, 34);
    }
}
