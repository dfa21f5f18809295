//! CPU twins of the optimizer kernels.

use crate::ops::{OptimizerKind, OptimizerParams};

fn clip_scale(max_norm: f32, norm2: f32) -> f64 {
    if max_norm <= 0.0 {
        1.0
    } else {
        (max_norm as f64 / (norm2 as f64 + 1e-12).sqrt()).min(1.0)
    }
}

/// One update: returns the new parameters and updates `state` (kind.slots() vectors) in place.
pub fn optimizer_step(
    p: &OptimizerParams,
    grads: &[f32],
    hyper: &[f32; 4],
    norm2: f32,
    params: &[f32],
    state: &mut [Vec<f32>],
) -> Vec<f32> {
    let lr = hyper[0] as f64;
    let clip = clip_scale(hyper[3], norm2);
    let wd = p.weight_decay as f64;
    let mut out = params.to_vec();
    for i in 0..p.total {
        let w = params[i] as f64;
        let decayed = i < p.decay_end;
        let g = grads[i] as f64 * clip;
        match p.kind {
            OptimizerKind::RmspropTf { decay, momentum, eps } => {
                let g = if decayed { g + wd * w } else { g };
                let ms = decay as f64 * state[0][i] as f64 + (1.0 - decay as f64) * g * g;
                let mom = momentum as f64 * state[1][i] as f64 + lr * g / (ms + eps as f64).sqrt();
                state[0][i] = ms as f32;
                state[1][i] = mom as f32;
                out[i] = (w - mom) as f32;
            }
            OptimizerKind::Sgd { momentum, nesterov } => {
                let g = if decayed { g + wd * w } else { g };
                let v = momentum as f64 * state[0][i] as f64 + g;
                state[0][i] = v as f32;
                let d = if nesterov { g + momentum as f64 * v } else { v };
                out[i] = (w - lr * d) as f32;
            }
            OptimizerKind::AdamW { beta1, beta2, eps } => {
                let w = if decayed { w - lr * wd * w } else { w };
                let m = beta1 as f64 * state[0][i] as f64 + (1.0 - beta1 as f64) * g;
                let v = beta2 as f64 * state[1][i] as f64 + (1.0 - beta2 as f64) * g * g;
                state[0][i] = m as f32;
                state[1][i] = v as f32;
                out[i] = (w - lr * (m / hyper[1] as f64) / ((v / hyper[2] as f64).sqrt() + eps as f64)) as f32;
            }
        }
    }
    out
}

/// Sum of squares (the global gradient norm squared).
pub fn grad_norm2(x: &[f32]) -> f32 {
    x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() as f32
}

/// Twin of `ops::ema_update`: `ema = decay · ema + (1 - decay) · params`.
pub fn ema_update(decay: f32, params: &[f32], ema: &[f32]) -> Vec<f32> {
    ema.iter().zip(params).map(|(&e, &p)| (decay as f64 * e as f64 + (1.0 - decay as f64) * p as f64) as f32).collect()
}
