//! CPU twin of the `depthwise_conv` kernels.

use super::act64;
use crate::ops::{Activation, DepthwiseConvParams};

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

/// `depthwise_conv_fwd` of act(z * scale + shift) per channel (`scale_shift` = scale then
/// shift, 2C), each input value rounded to f32 as the kernel holds it.
pub fn depthwise_conv_fwd_bn_input(
    p: &DepthwiseConvParams,
    z: &[f32],
    scale_shift: &[f32],
    act: Activation,
    w: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let x: Vec<f32> = z
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = i % p.c;
            act64(act, v as f64 * scale_shift[c] as f64 + scale_shift[p.c + c] as f64) as f32
        })
        .collect();
    depthwise_conv_fwd(p, &x, w, bias)
}

/// (n, h, w, c) input gradient of the depthwise convolution for dy (n, oh, ow, c), the gradient of
/// its output before bias/activation. With `accumulate` the kernel adds this to dx.
pub fn depthwise_conv_bwd_data(p: &DepthwiseConvParams, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let mut dx = vec![0f64; p.n * p.h * p.w * p.c];
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
                        let xo = ((n * p.h + iy as usize) * p.w + ix as usize) * p.c;
                        let yo = ((n * p.oh + oy) * p.ow + ox) * p.c;
                        for c in 0..p.c {
                            dx[xo + c] += dy[yo + c] as f64 * w[(ky * p.kw + kx) * p.c + c] as f64;
                        }
                    }
                }
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// (kh, kw, c) weight gradient of the depthwise convolution for input x and output gradient dy
/// (before bias/activation).
pub fn depthwise_conv_bwd_weight(p: &DepthwiseConvParams, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dw = vec![0f64; p.kh * p.kw * p.c];
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
                        let xo = ((n * p.h + iy as usize) * p.w + ix as usize) * p.c;
                        let yo = ((n * p.oh + oy) * p.ow + ox) * p.c;
                        for c in 0..p.c {
                            dw[(ky * p.kw + kx) * p.c + c] += dy[yo + c] as f64 * x[xo + c] as f64;
                        }
                    }
                }
            }
        }
    }
    dw.into_iter().map(|v| v as f32).collect()
}
