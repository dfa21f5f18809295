use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::gpu::Kernel;
use efficientnet_wgpu::ops::{se_gate_bwd, KernelVariant, SeGateParams};

/// Tolerances: dy atol 1e-6 rtol 1e-5 (one product); d_gate atol 1e-5 * sqrt(hw) rtol 1e-4 (a sum
/// of hw products).
fn check(p: &SeGateParams, seed: u64) {
    let d = rand_vec(p.n * p.hw * p.c, seed);
    let y = rand_vec(p.n * p.hw * p.c, seed + 1);
    let g = rand_vec(p.n * p.c, seed + 2);
    let (want_dy, want_dg) = cpu_ref::se_gate_bwd(p, &d, &y, &g);
    let (dg_, yg, gg) = (upload(&d), upload(&y), upload(&g));
    let (dy, part, dgate) = (empty(d.len()), empty(p.partial_len()), empty(p.n * p.c));
    let ds = se_gate_bwd(gpu(), p, &dg_, &yg, &gg, &dy, &part, &dgate).unwrap();
    let texel = p.kernel_variant(gpu()) == KernelVariant::Texel;
    assert_eq!(ds[0].kernel, if texel { Kernel::SeGateBwdTexel } else { Kernel::SeGateBwd });
    assert!(p.variant == KernelVariant::Auto || p.kernel_variant(gpu()) == p.variant, "{p:?}");
    efficientnet_wgpu::gpu::submit(gpu(), &ds).unwrap();
    let got = gpu().read_many(&[&dy, &dgate]).unwrap();
    assert_close(&format!("dy {p:?}"), &got[0], &want_dy, 1e-6, 1e-5);
    assert_close(&format!("d_gate {p:?}"), &got[1], &want_dg, 1e-5 * (p.hw as f32).sqrt(), 1e-4);
}

#[test]
fn gate_gradient_over_several_chunks() {
    // 15x15 = 225 pixels: 4 chunks of 64 rows, the last partial; C not a multiple of 4.
    check(&SeGateParams::new(3, 225, 13), 90);
}

#[test]
fn texel_and_buffer_kernels_with_c_a_multiple_of_4() {
    // 4 chunks of 64 rows, the last partial; 2 images; 12 channels (3 texels); and chunks of 5
    // rows over 7x7 pixels.
    for variant in [KernelVariant::Texel, KernelVariant::Scalar] {
        let mut p = SeGateParams::new(2, 225, 12);
        p.variant = variant;
        check(&p, 93);
        let mut p = SeGateParams::new(3, 49, 8);
        p.rows = 5;
        p.variant = variant;
        check(&p, 96);
    }
}
