//! CPU twin of the `se` kernels.

use crate::ops::SeGateParams;

/// (dy (n, hw, c), d_gate (n, c)) for gated = y * gate.
pub fn se_gate_bwd(p: &SeGateParams, d_gated: &[f32], y: &[f32], gate: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut dy = vec![0f32; d_gated.len()];
    let mut dg = vec![0f32; p.n * p.c];
    for n in 0..p.n {
        for c in 0..p.c {
            let g = gate[n * p.c + c] as f64;
            let mut acc = 0f64;
            for i in 0..p.hw {
                let o = (n * p.hw + i) * p.c + c;
                dy[o] = (d_gated[o] as f64 * g) as f32;
                acc += d_gated[o] as f64 * y[o] as f64;
            }
            dg[n * p.c + c] = acc as f32;
        }
    }
    (dy, dg)
}
