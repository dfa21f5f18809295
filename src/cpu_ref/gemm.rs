//! CPU twin of the `gemm` kernels.

use super::act64;
use crate::ops::GemmParams;

/// (m, n) = act((a * a_scale) x b + bias) + residual.
pub fn gemm_fwd(
    p: &GemmParams,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    a_scale: Option<&[f32]>,
) -> Vec<f32> {
    let mut out = vec![0f32; p.m * p.n];
    for r in 0..p.m {
        for c in 0..p.n {
            let mut acc = bias.map_or(0.0, |b| b[c] as f64);
            for k in 0..p.k {
                let mut av = a[r * p.k + k] as f64;
                if let Some(s) = a_scale {
                    av *= s[(r / p.a_scale_rows) * p.k + k] as f64;
                }
                acc += av * b[k * p.n + c] as f64;
            }
            let mut v = act64(p.act, acc);
            if let Some(res) = residual {
                v += res[r * p.n + c] as f64;
            }
            out[r * p.n + c] = v as f32;
        }
    }
    out
}
