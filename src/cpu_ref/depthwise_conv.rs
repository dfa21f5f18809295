//! CPU twin of the `depthwise_conv` kernels.

use super::act64;
use crate::ops::DepthwiseConvParams;

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
