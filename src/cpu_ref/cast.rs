//! Twins of the f16 path's casts.

/// Each value rounded to f16 (round to nearest even; saturating at ±65504 like the kernels'
/// `to_store`), returned as f32.
pub fn cast_to_f16(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| half::f16::from_f32(v.clamp(-65504.0, 65504.0)).to_f32()).collect()
}

/// The spacing of f16 values around `v` (the subnormal step below 2^-14).
pub fn f16_ulp(v: f32) -> f32 {
    let e = v.abs().log2().floor().max(-14.0);
    2f32.powf(e - 10.0)
}
