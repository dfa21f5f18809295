//! Every WGSL kernel by name. The sources are embedded with `include_str!` so the library and the
//! `effnet` binary are self-contained.

/// How a kernel uses one binding (all bindings are storage buffers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    Read,
    Write,
}

use BindingKind::{Read as R, Write as W};

macro_rules! kernels {
    ($($variant:ident => $name:literal, $file:literal, $entry:literal, [$($b:expr),*];)*) => {
        /// One WGSL entry point. The name is the same across `shaders/`, `src/ops/`, `src/cpu_ref/`
        /// and `tests/`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kernel { $($variant),* }

        impl Kernel {
            pub const ALL: &'static [Kernel] = &[$(Kernel::$variant),*];

            pub fn name(self) -> &'static str {
                match self { $(Kernel::$variant => $name),* }
            }
            /// Path of the WGSL file under `shaders/`.
            pub fn file(self) -> &'static str {
                match self { $(Kernel::$variant => $file),* }
            }
            /// The WGSL source: `shaders/common.wgsl` followed by the kernel's file.
            pub fn source(self) -> &'static str {
                match self {
                    $(Kernel::$variant => concat!(
                        include_str!("../../shaders/common.wgsl"),
                        include_str!(concat!("../../shaders/", $file))
                    )),*
                }
            }
            pub fn entry_point(self) -> &'static str {
                match self { $(Kernel::$variant => $entry),* }
            }
            /// The bindings of group 0, in binding-number order.
            pub fn bindings(self) -> &'static [BindingKind] {
                match self { $(Kernel::$variant => &[$($b),*]),* }
            }
        }
    };
}

kernels! {
    // x, weight (HWIO), bias, y
    Conv2dFwd => "conv2d_fwd", "conv2d/conv2d_fwd.wgsl", "main", [R, R, R, W];
    // a, b, bias, residual, a_scale, out
    GemmFwd => "gemm_fwd", "gemm/gemm_fwd.wgsl", "main", [R, R, R, R, R, W];
    // x, weight (HW C), bias, y
    DepthwiseConvFwd => "depthwise_conv_fwd", "depthwise_conv/depthwise_conv_fwd.wgsl", "main", [R, R, R, W];
    // x, partial sums
    GlobalAvgPoolPartial => "global_avg_pool_partial", "pool/global_avg_pool_fwd.wgsl", "partial", [R, W];
    // partial sums, mean
    GlobalAvgPoolFinish => "global_avg_pool_finish", "pool/global_avg_pool_fwd.wgsl", "finish", [R, W];
    // x, y
    SoftmaxFwd => "softmax_fwd", "softmax/softmax_fwd.wgsl", "main", [R, W];
    // x, channel affine (mul, add), y
    BilinearResizeFwd => "bilinear_resize_fwd", "resize/bilinear_resize_fwd.wgsl", "main", [R, R, W];
    // x, scale, shift, y
    BnActFwd => "bn_act_fwd", "bn_act/bn_act_fwd.wgsl", "main", [R, R, R, W];
}
