//! Every forward kernel against its CPU twin (`src/cpu_ref`) on awkward shapes: channels not a
//! multiple of 4, odd H/W with stride 2, batch 1 and 3, k = 3 and 5, TF-SAME and symmetric padding.
//! One test binary, one module per kernel, named after it.

mod common;

#[path = "kernels/activation_matches_cpu_ref.rs"]
mod activation_matches_cpu_ref;
#[path = "kernels/add_inplace_matches_cpu_ref.rs"]
mod add_inplace_matches_cpu_ref;
#[path = "kernels/bilinear_resize_bwd_matches_cpu_ref.rs"]
mod bilinear_resize_bwd_matches_cpu_ref;
#[path = "kernels/bilinear_resize_matches_cpu_ref.rs"]
mod bilinear_resize_matches_cpu_ref;
#[path = "kernels/bn_act_bwd_matches_cpu_ref.rs"]
mod bn_act_bwd_matches_cpu_ref;
#[path = "kernels/bn_act_matches_cpu_ref.rs"]
mod bn_act_matches_cpu_ref;
#[path = "kernels/bn_stats_matches_cpu_ref.rs"]
mod bn_stats_matches_cpu_ref;
#[path = "kernels/cast_matches_cpu_ref.rs"]
mod cast_matches_cpu_ref;
#[path = "kernels/conv2d_bwd_matches_cpu_ref.rs"]
mod conv2d_bwd_matches_cpu_ref;
#[path = "kernels/conv2d_matches_cpu_ref.rs"]
mod conv2d_matches_cpu_ref;
#[path = "kernels/depthwise_conv_bwd_matches_cpu_ref.rs"]
mod depthwise_conv_bwd_matches_cpu_ref;
#[path = "kernels/depthwise_conv_matches_cpu_ref.rs"]
mod depthwise_conv_matches_cpu_ref;
#[path = "kernels/dropout_matches_cpu_ref.rs"]
mod dropout_matches_cpu_ref;
#[path = "kernels/gemm_bwd_matches_cpu_ref.rs"]
mod gemm_bwd_matches_cpu_ref;
#[path = "kernels/gemm_fwd_bn_stats_matches_cpu_ref.rs"]
mod gemm_fwd_bn_stats_matches_cpu_ref;
#[path = "kernels/gemm_matches_cpu_ref.rs"]
mod gemm_matches_cpu_ref;
#[path = "kernels/global_avg_pool_matches_cpu_ref.rs"]
mod global_avg_pool_matches_cpu_ref;
#[path = "kernels/optim_matches_cpu_ref.rs"]
mod optim_matches_cpu_ref;
#[path = "kernels/resample_image_matches_cpu_ref.rs"]
mod resample_image_matches_cpu_ref;
#[path = "kernels/se_gate_bwd_matches_cpu_ref.rs"]
mod se_gate_bwd_matches_cpu_ref;
#[path = "kernels/softmax_cross_entropy_matches_cpu_ref.rs"]
mod softmax_cross_entropy_matches_cpu_ref;
#[path = "kernels/softmax_matches_cpu_ref.rs"]
mod softmax_matches_cpu_ref;
#[path = "kernels/sum_partials_matches_cpu_ref.rs"]
mod sum_partials_matches_cpu_ref;
#[path = "kernels/texel_copies.rs"]
mod texel_copies;
