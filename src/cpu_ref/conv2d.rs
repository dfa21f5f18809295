//! CPU twin of the `conv2d` kernels.

use super::act64;
use crate::ops::Conv2dParams;

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

/// Input gradient of the convolution for dy (n, oh, ow, cout), the gradient of its output before
/// bias/activation: (n, h, w, cin), or (n, cin, h, w) when `p.input_nchw`. With `accumulate` the
/// kernel adds this to dx.
pub fn conv2d_bwd_data(p: &Conv2dParams, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let (cin_g, cout_g) = (p.cin / p.groups, p.cout / p.groups);
    let mut dx = vec![0f64; p.input_len()];
    conv2d_taps(p, |n, oy, ox, iy, ix, ky, kx| {
        let yo = ((n * p.oh + oy) * p.ow + ox) * p.cout;
        for co in 0..p.cout {
            let g = co / cout_g;
            let d = dy[yo + co] as f64;
            for ci in 0..cin_g {
                let wv = w[((ky * p.kw + kx) * cin_g + ci) * p.cout + co] as f64;
                dx[x_offset(p, n, g * cin_g + ci, iy, ix)] += d * wv;
            }
        }
    });
    dx.into_iter().map(|v| v as f32).collect()
}

/// (kh, kw, cin / groups, cout) weight gradient of the convolution for input x and output
/// gradient dy (before bias/activation).
pub fn conv2d_bwd_weight(p: &Conv2dParams, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (cin_g, cout_g) = (p.cin / p.groups, p.cout / p.groups);
    let mut dw = vec![0f64; p.weight_len()];
    conv2d_taps(p, |n, oy, ox, iy, ix, ky, kx| {
        let yo = ((n * p.oh + oy) * p.ow + ox) * p.cout;
        for co in 0..p.cout {
            let g = co / cout_g;
            let d = dy[yo + co] as f64;
            for ci in 0..cin_g {
                let xv = x[x_offset(p, n, g * cin_g + ci, iy, ix)] as f64;
                dw[((ky * p.kw + kx) * cin_g + ci) * p.cout + co] += d * xv;
            }
        }
    });
    dw.into_iter().map(|v| v as f32).collect()
}

/// Offset of input element (n, c, iy, ix) in NHWC, or NCHW when `p.input_nchw`.
fn x_offset(p: &Conv2dParams, n: usize, c: usize, iy: usize, ix: usize) -> usize {
    if p.input_nchw {
        ((n * p.cin + c) * p.h + iy) * p.w + ix
    } else {
        ((n * p.h + iy) * p.w + ix) * p.cin + c
    }
}

/// Calls `f(n, oy, ox, iy, ix, ky, kx)` for every tap that reads inside the input.
fn conv2d_taps(p: &Conv2dParams, mut f: impl FnMut(usize, usize, usize, usize, usize, usize, usize)) {
    for n in 0..p.n {
        for oy in 0..p.oh {
            for ox in 0..p.ow {
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
                        f(n, oy, ox, iy as usize, ix as usize, ky, kx);
                    }
                }
            }
        }
    }
}
