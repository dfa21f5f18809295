//! CPU twin of the `resize` kernels.

use crate::ops::{BilinearResizeParams, ImageResampleParams};

/// Source taps and weights along one axis, as PyTorch computes them.
fn resize_taps(dst: usize, start: f64, ratio: f64, size: usize, antialias: bool) -> Vec<(usize, f64)> {
    if antialias {
        let support = ratio.max(1.0);
        let center = start + (dst as f64 + 0.5) * ratio;
        let lo = (center - support + 0.5).max(0.0) as usize;
        let hi = ((center + support + 0.5).max(0.0) as usize).min(size).max(lo + 1);
        let taps: Vec<(usize, f64)> =
            (lo..hi).map(|i| (i, (1.0 - ((i as f64 - center + 0.5) / support).abs()).max(0.0))).collect();
        let total: f64 = taps.iter().map(|t| t.1).sum();
        taps.into_iter().map(|(i, w)| (i, w / total)).collect()
    } else {
        let src = (start + (dst as f64 + 0.5) * ratio - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(size - 1);
        let i1 = (i0 + 1).min(size - 1);
        let l1 = (src - i0 as f64).min(1.0);
        vec![(i0, 1.0 - l1), (i1, l1)]
    }
}

/// (n, c, oh, ow) bilinear resample of a window of x (n, c, ih, iw), then `y * mul[c] + add[c]`.
pub fn bilinear_resize_fwd(p: &BilinearResizeParams, x: &[f32], affine: &[f32]) -> Vec<f32> {
    // The antialiased filter applies to both axes once either shrinks, as in PyTorch.
    let aa = p.antialias && (p.ratio_h > 1.0 || p.ratio_w > 1.0);
    let mut y = vec![0f32; p.output_len()];
    for nc in 0..p.n * p.c {
        let c = nc % p.c;
        for oy in 0..p.oh {
            let ty = resize_taps(oy, p.y0 as f64, p.ratio_h as f64, p.ih, aa);
            for ox in 0..p.ow {
                let tx = resize_taps(ox, p.x0 as f64, p.ratio_w as f64, p.iw, aa);
                let mut v = 0.0;
                for &(iy, wy) in &ty {
                    for &(ix, wx) in &tx {
                        v += wy * wx * x[(nc * p.ih + iy) * p.iw + ix] as f64;
                    }
                }
                y[(nc * p.oh + oy) * p.ow + ox] = (v * affine[c] as f64 + affine[p.c + c] as f64) as f32;
            }
        }
    }
    y
}

/// (n, c, ih, iw) input gradient of `bilinear_resize_fwd` for dy (n, c, oh, ow): each output's taps
/// scattered back with weight `dy * mul[c] * wy * wx`. Covers the antialiased filter too (the GPU
/// kernel does not).
pub fn bilinear_resize_bwd(p: &BilinearResizeParams, dy: &[f32], affine: &[f32]) -> Vec<f32> {
    let aa = p.antialias && (p.ratio_h > 1.0 || p.ratio_w > 1.0);
    let mut dx = vec![0f64; p.n * p.c * p.ih * p.iw];
    for nc in 0..p.n * p.c {
        let mul = affine[nc % p.c] as f64;
        for oy in 0..p.oh {
            let ty = resize_taps(oy, p.y0 as f64, p.ratio_h as f64, p.ih, aa);
            for ox in 0..p.ow {
                let tx = resize_taps(ox, p.x0 as f64, p.ratio_w as f64, p.iw, aa);
                let d = dy[(nc * p.oh + oy) * p.ow + ox] as f64 * mul;
                for &(iy, wy) in &ty {
                    for &(ix, wx) in &tx {
                        dx[(nc * p.ih + iy) * p.iw + ix] += d * wy * wx;
                    }
                }
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// `resample_image_h` on an 8-bit RGBA image (h, w, 4) whose values are the levels the texture
/// holds (sRGB-encoded ones as they are). `taps` starts with its 4-value header.
pub fn resample_image_h(p: &ImageResampleParams, rgba: &[u8], w: usize, taps: &[f32]) -> Vec<f32> {
    let k = p.taps_h;
    let mut across = vec![0f32; p.across_len()];
    for r in 0..p.rows {
        for ox in 0..p.res {
            let t = &taps[4 + ox * (1 + k)..4 + (ox + 1) * (1 + k)];
            let first = t[0] as usize;
            for c in 0..3 {
                let mut sum = 0f32;
                for (j, &wk) in t[1..].iter().enumerate() {
                    let x = (first + j).min(w - 1);
                    sum += wk * rgba[((p.y0 + r) * w + x) * 4 + c] as f32;
                }
                if p.round_between {
                    sum = (sum + 0.5).floor().clamp(0.0, 255.0);
                }
                across[(c * p.rows + r) * p.res + ox] = sum;
            }
        }
    }
    across
}

/// `resample_image_v`: rows of `across` → (3, res, res), rounded to 8 bits, scaled to [0, 1]
/// and normalised by `affine`.
pub fn resample_image_v(p: &ImageResampleParams, across: &[f32], taps: &[f32], affine: &[f32]) -> Vec<f32> {
    let k = p.taps_v;
    let mut y = vec![0f32; p.output_len()];
    for c in 0..3 {
        for oy in 0..p.res {
            let t = &taps[4 + oy * (1 + k)..4 + (oy + 1) * (1 + k)];
            let first = t[0] as usize;
            for ox in 0..p.res {
                let mut sum = 0f32;
                for (j, &wk) in t[1..].iter().enumerate() {
                    sum += wk * across[(c * p.rows + (first + j).min(p.rows - 1)) * p.res + ox];
                }
                let v = (sum + 0.5).floor().clamp(0.0, 255.0) / 255.0;
                y[(c * p.res + oy) * p.res + ox] = v * affine[c] + affine[3 + c];
            }
        }
    }
    y
}
