//! Plain-loop CPU twins of every kernel: same names and argument order as `ops`, f32 in and out,
//! f64 accumulation so the twin is the more accurate side of every comparison. One file per
//! kernel family, as in `ops/` and `shaders/`.

mod activation;
mod bn_act;
mod cast;
mod conv2d;
mod depthwise_conv;
mod dropout;
mod gemm;
mod loss;
mod optim;
mod pool;
mod reduce;
mod resize;
mod se;
mod softmax;

pub use activation::*;
pub use bn_act::*;
pub use cast::*;
pub use conv2d::*;
pub use depthwise_conv::*;
pub use dropout::*;
pub use gemm::*;
pub use loss::*;
pub use optim::*;
pub use pool::*;
pub use reduce::*;
pub use resize::*;
pub use se::*;
pub use softmax::*;

use crate::ops::Activation;

/// The epilogue activations, in f64.
pub(crate) fn act64(a: Activation, x: f64) -> f64 {
    match a {
        Activation::None => x,
        Activation::Swish => x / (1.0 + (-x).exp()),
        Activation::Relu6 => x.clamp(0.0, 6.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
    }
}

/// d act(x) / dx in f64 (ReLU6 passes the gradient strictly inside (0, 6), like PyTorch).
pub(crate) fn act_grad64(a: Activation, x: f64) -> f64 {
    match a {
        Activation::None => 1.0,
        Activation::Swish => {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 + x * (1.0 - s))
        }
        Activation::Relu6 => (x > 0.0 && x < 6.0) as u32 as f64,
        Activation::Sigmoid => {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 - s)
        }
    }
}
