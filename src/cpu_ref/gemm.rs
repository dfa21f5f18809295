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

/// `gemm_fwd` and the BatchNorm partials of its output per `chunk` rows (see
/// [`super::bn_stats_partial`]): (out, partial).
pub fn gemm_fwd_bn_stats(
    p: &GemmParams,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    a_scale: Option<&[f32]>,
    chunk: usize,
) -> (Vec<f32>, Vec<f32>) {
    let out = gemm_fwd(p, a, b, bias, residual, a_scale);
    let partial = super::bn_stats_partial(&out, p.m, p.n, chunk);
    (out, partial)
}

/// (m, k) = dc (m, n) x b (k, n)^T.
pub fn gemm_bwd_data(p: &GemmParams, dc: &[f32], b: &[f32]) -> Vec<f32> {
    let mut da = vec![0f32; p.m * p.k];
    for r in 0..p.m {
        for k in 0..p.k {
            let s: f64 = (0..p.n).map(|n| dc[r * p.n + n] as f64 * b[k * p.n + n] as f64).sum();
            da[r * p.k + k] = s as f32;
        }
    }
    da
}

/// (k, n) = (a * a_scale)^T x dc.
pub fn gemm_bwd_weight(p: &GemmParams, a: &[f32], a_scale: Option<&[f32]>, dc: &[f32]) -> Vec<f32> {
    let mut db = vec![0f64; p.k * p.n];
    for r in 0..p.m {
        for k in 0..p.k {
            let mut av = a[r * p.k + k] as f64;
            if let Some(s) = a_scale {
                av *= s[(r / p.a_scale_rows) * p.k + k] as f64;
            }
            for n in 0..p.n {
                db[k * p.n + n] += av * dc[r * p.n + n] as f64;
            }
        }
    }
    db.into_iter().map(|v| v as f32).collect()
}

/// (n) = sum over rows of dc (m, n).
pub fn gemm_bwd_bias(p: &GemmParams, dc: &[f32]) -> Vec<f32> {
    (0..p.n).map(|c| (0..p.m).map(|r| dc[r * p.n + c] as f64).sum::<f64>() as f32).collect()
}
