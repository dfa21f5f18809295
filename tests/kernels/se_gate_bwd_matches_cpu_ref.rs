use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::ops::{se_gate_bwd, SeGateParams};

#[test]
fn gate_gradient_over_several_chunks() {
    // 15x15 = 225 pixels: 4 chunks of 64 rows, the last partial; C not a multiple of 4.
    let p = SeGateParams::new(3, 225, 13);
    let d = rand_vec(p.n * p.hw * p.c, 90);
    let y = rand_vec(p.n * p.hw * p.c, 91);
    let g = rand_vec(p.n * p.c, 92);
    let (want_dy, want_dg) = cpu_ref::se_gate_bwd(&p, &d, &y, &g);
    let (dg_, yg, gg) = (upload(&d), upload(&y), upload(&g));
    let (dy, part, dgate) = (empty(d.len()), empty(p.partial_len()), empty(p.n * p.c));
    let ds = se_gate_bwd(gpu(), &p, &dg_, &yg, &gg, &dy, &part, &dgate).unwrap();
    efficientnet_wgpu::gpu::submit(gpu(), &ds);
    let got = gpu().read_many(&[&dy, &dgate]).unwrap();
    assert_close("dy", &got[0], &want_dy, 1e-6, 1e-5);
    assert_close("d_gate", &got[1], &want_dg, 1e-5 * (p.hw as f32).sqrt(), 1e-4);
}
