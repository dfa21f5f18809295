//! Plain-loop CPU twins of every kernel: same names and argument order as `ops`, f32 in and out,
//! f64 accumulation so the twin is the more accurate side of every comparison.

use crate::ops::{
    Activation, BilinearResizeParams, BnActParams, Conv2dParams, DepthwiseConvParams, GemmParams, GlobalAvgPoolParams,
    SoftmaxParams,
};

fn act64(a: Activation, x: f64) -> f64 {
    match a {
        Activation::None => x,
        Activation::Swish => x / (1.0 + (-x).exp()),
        Activation::Relu6 => x.clamp(0.0, 6.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
    }
}

/// (n, oh, ow, cout) = act(conv(x, w HWIO) + bias).
pub fn conv2d_fwd(p: &Conv2dParams, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (cin_g, cout_g) = (p.cin / p.groups, p.cout / p.groups);
    let xi = |n: usize, c: usize, iy: usize, ix: usize| {
        if p.input_nchw {
            ((n * p.cin + c) * p.h + iy) * p.w + ix
        } else {
            ((n * p.h + iy) * p.w + ix) * p.cin + c
        }
    };
    let mut y = vec![0f32; p.output_len()];
    for n in 0..p.n {
        for oy in 0..p.oh {
            for ox in 0..p.ow {
                for co in 0..p.cout {
                    let g = co / cout_g;
                    let mut acc = bias.map_or(0.0, |b| b[co] as f64);
                    for ky in 0..p.kh {
                        let iy = (oy * p.stride + ky) as isize - p.pad_top as isize;
                        if iy < 0 || iy >= p.h as isize {
                            continue;
                        }
                        for kx in 0..p.kw {
                            let ix = (ox * p.stride + kx) as isize - p.pad_left as isize;
                            if ix < 0 || ix >= p.w as isize {
                                continue;
                            }
                            for ci in 0..cin_g {
                                let xv = x[xi(n, g * cin_g + ci, iy as usize, ix as usize)] as f64;
                                let wv = w[((ky * p.kw + kx) * cin_g + ci) * p.cout + co] as f64;
                                acc += xv * wv;
                            }
                        }
                    }
                    y[((n * p.oh + oy) * p.ow + ox) * p.cout + co] = act64(p.act, acc) as f32;
                }
            }
        }
    }
    y
}

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

/// (n, oh, ow, c) = act(depthwise(x, w (kh, kw, c)) + bias).
pub fn depthwise_conv_fwd(p: &DepthwiseConvParams, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let mut y = vec![0f32; p.output_len()];
    for n in 0..p.n {
        for oy in 0..p.oh {
            for ox in 0..p.ow {
                for c in 0..p.c {
                    let mut acc = bias.map_or(0.0, |b| b[c] as f64);
                    for ky in 0..p.kh {
                        let iy = (oy * p.stride + ky) as isize - p.pad_top as isize;
                        if iy < 0 || iy >= p.h as isize {
                            continue;
                        }
                        for kx in 0..p.kw {
                            let ix = (ox * p.stride + kx) as isize - p.pad_left as isize;
                            if ix < 0 || ix >= p.w as isize {
                                continue;
                            }
                            let xv = x[((n * p.h + iy as usize) * p.w + ix as usize) * p.c + c] as f64;
                            acc += xv * w[(ky * p.kw + kx) * p.c + c] as f64;
                        }
                    }
                    y[((n * p.oh + oy) * p.ow + ox) * p.c + c] = act64(p.act, acc) as f32;
                }
            }
        }
    }
    y
}

/// (n, c) = mean over hw of x (n, hw, c).
pub fn global_avg_pool_fwd(p: &GlobalAvgPoolParams, x: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; p.n * p.c];
    for n in 0..p.n {
        for c in 0..p.c {
            let s: f64 = (0..p.hw).map(|i| x[(n * p.hw + i) * p.c + c] as f64).sum();
            y[n * p.c + c] = (s / p.hw as f64) as f32;
        }
    }
    y
}

pub fn softmax_fwd(p: &SoftmaxParams, x: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; p.rows * p.cols];
    for r in 0..p.rows {
        let row = &x[r * p.cols..(r + 1) * p.cols];
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        for (i, &v) in row.iter().enumerate() {
            y[r * p.cols + i] = ((v as f64 - m).exp() / s) as f32;
        }
    }
    y
}

pub fn bn_act_fwd(p: &BnActParams, x: &[f32], scale: &[f32], shift: &[f32]) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = i % p.c;
            act64(p.act, v as f64 * scale[c] as f64 + shift[c] as f64) as f32
        })
        .collect()
}

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

/// (n, c, oh, ow) bilinear resample of a window of x (n, c, ih, iw), then y * mul[c] + add[c].
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
