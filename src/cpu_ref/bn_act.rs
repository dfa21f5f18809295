//! CPU twin of the `bn_act` kernels.

use super::act64;
use crate::ops::BnActParams;

pub fn bn_act_fwd(p: &BnActParams, x: &[f32], scale: &[f32], shift: &[f32]) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = i % p.c;
            act64(p.act, v as f64 * scale[c] as f64 + shift[c] as f64) as f32
        })
        .collect()
}
