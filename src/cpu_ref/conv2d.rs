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
