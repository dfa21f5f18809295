//! CPU twin of the `bn_act` kernels (training-mode BatchNorm + activation + drop path + residual).
//! Composable like the GPU side: `bn_stats` then `bn_act_fwd` is the training forward, so the
//! gradient check can differentiate it through the batch statistics.

use super::{act64, act_grad64};
use crate::ops::rng::uniform01;
use crate::ops::{BnParams, DropPath};

/// What `ops::bn_stats` writes: each 2C.
#[derive(Clone, Debug, PartialEq)]
pub struct BnStats {
    /// Running mean then running var, after the update (unchanged when `!p.update_running`).
    pub running: Vec<f32>,
    /// Batch mean then invstd = 1 / sqrt(biased var + eps).
    pub stats: Vec<f32>,
    /// scale = gamma * invstd then shift = beta - mean * scale.
    pub scale_shift: Vec<f32>,
}

/// What `ops::bn_act_bwd` writes.
#[derive(Clone, Debug, PartialEq)]
pub struct BnActGrads {
    /// dgamma then dbeta (2C).
    pub d_gamma_beta: Vec<f32>,
    /// The gradient of the BatchNorm input (M, C), the contribution alone (no accumulate).
    pub dz: Vec<f32>,
}

/// Whether sample `n` survives stochastic depth, exactly as the kernels decide it.
fn keep_scale(drop: Option<DropPath>, seed: u32, n: usize) -> f64 {
    match drop {
        None => 1.0,
        Some(d) if uniform01(seed, d.salt, n as u32) < d.survival => 1.0 / d.survival as f64,
        Some(_) => 0.0,
    }
}

/// Batch statistics of z (M, C) over the rows: two passes in f64 over all rows (the GPU merges
/// chunks; both are the exact mean and biased variance up to rounding).
pub fn bn_stats(p: &BnParams, z: &[f32], gamma_beta: &[f32], running: &[f32]) -> BnStats {
    let (m, c) = (p.m, p.c);
    let mut out = BnStats { running: running.to_vec(), stats: vec![0.0; 2 * c], scale_shift: vec![0.0; 2 * c] };
    for ch in 0..c {
        let mean = (0..m).map(|r| z[r * c + ch] as f64).sum::<f64>() / m as f64;
        let m2: f64 = (0..m).map(|r| (z[r * c + ch] as f64 - mean).powi(2)).sum();
        let var = m2 / m as f64;
        let invstd = 1.0 / (var + p.eps as f64).sqrt();
        out.stats[ch] = mean as f32;
        out.stats[c + ch] = invstd as f32;
        let scale = gamma_beta[ch] as f64 * invstd;
        out.scale_shift[ch] = scale as f32;
        out.scale_shift[c + ch] = (gamma_beta[c + ch] as f64 - mean * scale) as f32;
        if p.update_running {
            let mom = p.momentum as f64;
            let unbiased = m2 / (m.max(2) - 1) as f64;
            out.running[ch] = ((1.0 - mom) * running[ch] as f64 + mom * mean) as f32;
            out.running[c + ch] = ((1.0 - mom) * running[c + ch] as f64 + mom * unbiased) as f32;
        }
    }
    out
}

/// The first stage of the statistics as the GPU chunks it: per chunk of `chunk` rows of z (m, c)
/// (the last may be shorter) and channel, the chunk's mean and M2 = sum (z - mean)^2, in f64;
/// (chunks, 2, c).
pub fn bn_stats_partial(z: &[f32], m: usize, c: usize, chunk: usize) -> Vec<f32> {
    let chunks = m.div_ceil(chunk);
    let mut out = vec![0f32; chunks * 2 * c];
    for s in 0..chunks {
        let rows = s * chunk..(s * chunk + chunk).min(m);
        for ch in 0..c {
            let mean = rows.clone().map(|r| z[r * c + ch] as f64).sum::<f64>() / rows.len() as f64;
            let m2: f64 = rows.clone().map(|r| (z[r * c + ch] as f64 - mean).powi(2)).sum();
            out[(s * 2) * c + ch] = mean as f32;
            out[(s * 2 + 1) * c + ch] = m2 as f32;
        }
    }
    out
}

/// `y = act(x * scale + shift)` over (m, c), times keep(n) / survival with drop path, plus
/// `residual` when `p.has_residual`. `seed` is the value of the GPU's `seed[0]` (ignored without
/// drop path).
pub fn bn_act_fwd(p: &BnParams, x: &[f32], scale_shift: &[f32], residual: Option<&[f32]>, seed: u32) -> Vec<f32> {
    let residual = residual.filter(|_| p.has_residual);
    x[..p.m * p.c]
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = i % p.c;
            let mut y = act64(p.act, v as f64 * scale_shift[c] as f64 + scale_shift[p.c + c] as f64);
            if p.drop_path.is_some() {
                y *= keep_scale(p.drop_path, seed, i / p.c / p.rows_per_sample);
            }
            if let Some(r) = residual {
                y += r[i] as f64;
            }
            y as f32
        })
        .collect()
}

/// Backward of `y = drop_path(act(bn(z)))` through the batch statistics, given the gradient of
/// `y` as `dy` (M, C) and/or `dy_pool` (N, C) (the gradient of a global average pool of `y`):
/// g = (dy + dy_pool / rows_per_sample) * keep(n) / survival, u = g * act'(gamma * xhat + beta),
/// dbeta = sum u, dgamma = sum u * xhat, dz = gamma * invstd * (u - dbeta / M - xhat * dgamma / M).
#[allow(clippy::too_many_arguments)] // the kernel's bindings, in order
pub fn bn_act_bwd(
    p: &BnParams,
    dy: Option<&[f32]>,
    dy_pool: Option<&[f32]>,
    z: &[f32],
    stats: &[f32],
    gamma_beta: &[f32],
    seed: u32,
) -> BnActGrads {
    let (m, c) = (p.m, p.c);
    let mut u = vec![0f64; m * c];
    let mut xhat = vec![0f64; m * c];
    let mut sums = vec![0f64; 2 * c];
    for r in 0..m {
        let n = r / p.rows_per_sample.max(1);
        let keep = keep_scale(p.drop_path, seed, n);
        for ch in 0..c {
            let i = r * c + ch;
            let mut g = dy.map_or(0.0, |d| d[i] as f64);
            if let Some(dp) = dy_pool {
                g += dp[n * c + ch] as f64 / p.rows_per_sample as f64;
            }
            let xh = (z[i] as f64 - stats[ch] as f64) * stats[c + ch] as f64;
            let pre = gamma_beta[ch] as f64 * xh + gamma_beta[c + ch] as f64;
            u[i] = g * keep * act_grad64(p.act, pre);
            xhat[i] = xh;
            sums[ch] += u[i] * xh;
            sums[c + ch] += u[i];
        }
    }
    let dz = (0..m * c)
        .map(|i| {
            let ch = i % c;
            let k = gamma_beta[ch] as f64 * stats[c + ch] as f64;
            (k * (u[i] - sums[c + ch] / m as f64 - xhat[i] * sums[ch] / m as f64)) as f32
        })
        .collect();
    BnActGrads { d_gamma_beta: sums.iter().map(|&s| s as f32).collect(), dz }
}

/// Twin of `ops::bn_eval_scale_shift`: inference-mode BatchNorm's (scale, shift), 2C, from
/// `gamma_beta` (2C) and `running` (2C: mean then var), in f64 and rounded once.
pub fn bn_eval_scale_shift(c: usize, eps: f32, gamma_beta: &[f32], running: &[f32]) -> Vec<f32> {
    let scale: Vec<f64> = (0..c).map(|i| gamma_beta[i] as f64 / (running[c + i] as f64 + eps as f64).sqrt()).collect();
    let shift = (0..c).map(|i| (gamma_beta[c + i] as f64 - running[i] as f64 * scale[i]) as f32);
    scale.iter().map(|&s| s as f32).chain(shift).collect()
}

/// Twin of `ops::bn_fold_weights`: `weight` (output channel innermost, `c` of them) times each
/// channel's `gamma / sqrt(var + eps)`, and the bias `beta - mean * scale`, in f64 rounded once.
pub fn bn_fold_weights(
    c: usize,
    eps: f32,
    weight: &[f32],
    gamma_beta: &[f32],
    running: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f64> = (0..c).map(|o| gamma_beta[o] as f64 / (running[c + o] as f64 + eps as f64).sqrt()).collect();
    let folded = weight.iter().enumerate().map(|(i, &w)| (w as f64 * scale[i % c]) as f32).collect();
    let bias = (0..c).map(|o| (gamma_beta[c + o] as f64 - running[o] as f64 * scale[o]) as f32).collect();
    (folded, bias)
}
