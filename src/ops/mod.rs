//! One file per kernel family. Each holds the parameter struct (the shapes, shared with `cpu_ref`),
//! the recorder that binds buffers and builds the dispatch of the WGSL kernel, and FLOP/byte
//! counts for the bench. These are the only code that knows a kernel's bindings.

use crate::error::{Error, Result};
use crate::gpu::{Dtype, GpuBuffer, Kernel};

pub mod activation;
pub mod bn_act;
pub mod cast;
pub mod conv2d;
pub mod depthwise_conv;
pub mod dropout;
pub mod gemm;
pub mod loss;
pub mod optim;
pub mod padding;
pub mod pool;
pub mod reduce;
pub mod resize;
pub mod rng;
pub mod se;
pub mod softmax;

pub use activation::{activation_bwd, activation_fwd, ActivationParams};
pub use bn_act::{
    bn_act_bwd, bn_act_fwd, bn_eval_scale_shift, bn_fold_weights, bn_stats, bn_stats_finish, BnParams, DropPath,
};
pub use cast::cast;
pub use conv2d::{conv2d_bwd_data, conv2d_bwd_weight, conv2d_fwd, Conv2dParams};
pub use depthwise_conv::{
    depthwise_conv_bwd_data, depthwise_conv_bwd_weight, depthwise_conv_fwd, depthwise_conv_fwd_bn_input,
    DepthwiseConvParams,
};
pub use dropout::{dropout_fwd, DropoutParams};
pub use gemm::{gemm_bwd_bias, gemm_bwd_data, gemm_bwd_weight, gemm_fwd, gemm_fwd_bn_stats, GemmParams};
pub use loss::{softmax_cross_entropy, SoftmaxCrossEntropyParams};
pub use optim::{ema_update, grad_norm2, optimizer_step, OptimizerKind, OptimizerParams};
pub use padding::{conv_padding, Padding};
pub use pool::{global_avg_pool_fwd, GlobalAvgPoolParams};
pub use reduce::{add_inplace, sum_partials, SumPartialsParams};
pub use resize::{
    bilinear_resize_bwd, bilinear_resize_fwd, resample_image_h, resample_image_v, BilinearResizeParams,
    ImageResampleParams,
};
pub use se::{se_gate_bwd, SeGateParams};
pub use softmax::{softmax_fwd, SoftmaxParams};

/// The element type all `tensors` of one dispatch are stored in: a kernel reads and writes a
/// single `Store` type (the f16 path converts at its edges with `cast`).
pub(crate) fn store_of(op: &str, tensors: &[&GpuBuffer]) -> Result<Dtype> {
    let store = tensors.first().map_or(Dtype::F32, |t| t.dtype);
    if let Some(t) = tensors.iter().find(|t| t.dtype != store) {
        return Err(Error::invalid(format!(
            "{op}: tensors of one call must share an element type, got {store:?} and {:?}",
            t.dtype
        )));
    }
    Ok(store)
}

/// `kernel`'s twin for tensors stored as `store`, or an error naming the op.
pub(crate) fn kernel_for(op: &str, kernel: Kernel, store: Dtype) -> Result<Kernel> {
    kernel.for_store(store).ok_or_else(|| {
        Error::invalid(format!("{op}: {} has no {store:?} variant (f16 is for inference only)", kernel.name()))
    })
}

/// Activation applied in a kernel's epilogue. The discriminant is the WGSL `ACT` override value
/// (the `ACT_*` constants the kernels share).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u32)]
pub enum Activation {
    /// The identity.
    None = crate::gpu::ACT_NONE,
    /// x · sigmoid(x) (SiLU).
    Swish = crate::gpu::ACT_SWISH,
    /// clamp(x, 0, 6).
    Relu6 = crate::gpu::ACT_RELU6,
    /// 1 / (1 + e^-x).
    Sigmoid = crate::gpu::ACT_SIGMOID,
}

impl Activation {
    /// act(x) on the CPU, as the kernels' epilogues compute it.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Swish => x / (1.0 + (-x).exp()),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        }
    }

    /// d act(x) / dx, as the kernels' `activate_grad` computes it.
    pub fn grad(self, x: f32) -> f32 {
        match self {
            Activation::None => 1.0,
            Activation::Swish => {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 + x * (1.0 - s))
            }
            Activation::Relu6 => (x > 0.0 && x < 6.0) as u32 as f32,
            Activation::Sigmoid => {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 - s)
            }
        }
    }
}

/// Which family of a kernel runs. `Auto` picks per adapter and shape; the others force a family
/// (tests, the bench), falling back Texel → Vec4 → Scalar where the shape or adapter doesn't fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelVariant {
    /// Pick the family per adapter and shape (each op's `kernel_variant` says how).
    Auto,
    /// The storage-buffer kernel for any shape (for GEMMs: one output per invocation).
    Scalar,
    /// GEMM 4x4 register tiles of vec4 loads: K and N multiples of 4.
    Vec4,
    /// GPUs (the GEMMs): 64 x 64 output tiles staged through workgroup memory, 8 x 8 register
    /// blocks per thread; K and N multiples of 4. `Auto` picks it on GPU adapters.
    Tiled,
    /// CPU adapters: inputs read as texels of textures (vector gathers where buffer loads are
    /// per-lane loops); the GEMMs also share weights across 8-lane subgroups by shuffles. Channel
    /// counts multiples of 4 (GEMM: K of 8).
    Texel,
}

impl KernelVariant {
    /// Texel or storage-buffer kernel for a family whose texel kernel needs no subgroups: the
    /// texel one when the shape `fits` it and it is forced, or `Auto` on a CPU adapter.
    pub fn texel_or_scalar(self, gpu: &crate::gpu::Gpu, fits: bool) -> KernelVariant {
        let cpu = gpu.caps.kernel_class == crate::gpu::KernelClass::Cpu;
        match self {
            KernelVariant::Texel if fits => KernelVariant::Texel,
            KernelVariant::Auto if fits && cpu => KernelVariant::Texel,
            _ => KernelVariant::Scalar,
        }
    }
}
