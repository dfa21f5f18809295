//! The host twin of the shaders' counter-based RNG (`shaders/common.wgsl`): dropout and stochastic
//! depth masks are pure functions of (seed, salt, index), regenerated in the backward pass.

/// lowbias32 (Chris Wellons): a fast, well-mixed 32-bit integer hash.
pub fn hash_u32(v: u32) -> u32 {
    let mut x = v;
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// Uniform in [0, 1) with 24 random bits, exactly as the kernels compute it.
pub fn uniform01(seed: u32, salt: u32, index: u32) -> f32 {
    (hash_u32(index ^ hash_u32(salt ^ hash_u32(seed))) >> 8) as f32 * (1.0 / 16_777_216.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_is_in_range_and_roughly_uniform() {
        let n = 100_000;
        let mean: f64 = (0..n).map(|i| uniform01(7, 3, i) as f64).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert!((0..n).all(|i| (0.0..1.0).contains(&uniform01(7, 3, i))));
        assert_ne!(uniform01(7, 3, 0), uniform01(8, 3, 0));
        assert_ne!(uniform01(7, 3, 0), uniform01(7, 4, 0));
    }
}
