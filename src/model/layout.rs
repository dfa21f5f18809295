//! Weight layouts: PyTorch keeps conv weights OIHW, the kernels read HWIO (output channel
//! innermost). Converted once, where weights cross the boundary.

/// OIHW (o, i, kh, kw) → HWIO (kh, kw, i, o); with (o, i) = (out, in) and kh = kw = 1 this is the
/// (in, out) transpose of a linear weight.
pub fn oihw_to_hwio(t: &[f32], shape: &[usize]) -> Vec<f32> {
    let (o, i) = (shape[0], shape[1]);
    let (kh, kw) = (shape.get(2).copied().unwrap_or(1), shape.get(3).copied().unwrap_or(1));
    let mut out = vec![0f32; t.len()];
    for a in 0..o {
        for b in 0..i {
            for y in 0..kh {
                for x in 0..kw {
                    out[((y * kw + x) * i + b) * o + a] = t[((a * i + b) * kh + y) * kw + x];
                }
            }
        }
    }
    out
}

/// The inverse of `oihw_to_hwio`.
pub fn hwio_to_oihw(t: &[f32], shape: &[usize]) -> Vec<f32> {
    let (o, i) = (shape[0], shape[1]);
    let (kh, kw) = (shape.get(2).copied().unwrap_or(1), shape.get(3).copied().unwrap_or(1));
    let mut out = vec![0f32; t.len()];
    for a in 0..o {
        for b in 0..i {
            for y in 0..kh {
                for x in 0..kw {
                    out[((a * i + b) * kh + y) * kw + x] = t[((y * kw + x) * i + b) * o + a];
                }
            }
        }
    }
    out
}
