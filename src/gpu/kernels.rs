//! Every WGSL kernel by name. The sources are embedded with `include_str!` so the library and the
//! `effnet` binary are self-contained.

/// How a kernel uses one binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    /// A read-only storage buffer.
    Read,
    /// A read-write storage buffer.
    Write,
    /// A read-only `rgba32float` storage texture holding a storage buffer's contents, copied in
    /// just before the dispatch (see `gpu::TexelCopy`): on CPU adapters a texel load is a vector
    /// gather, 3–4x cheaper than a storage-buffer load.
    Texels,
    /// A sampled `texture_2d<f32>` the host owns (any float format), read with `textureLoad`:
    /// always the last binding, given to `Dispatch::with_image`.
    Image,
}

use BindingKind::{Image as I, Read as R, Texels as T, Write as W};

use super::Dtype;

/// Defines `Store`, the element type of a kernel's tensors: kernels that have an f16 twin declare
/// tensors as `Store`, convert to f32 on load and store through `to_store`, so one file serves
/// both. WGSL leaves an f32 beyond f16's range converting to an indeterminate value: f16 stores
/// saturate at ±65504 instead.
macro_rules! prelude {
    (F32) => {
        "alias Store = f32;
fn to_store(v: f32) -> f32 { return v; }
fn to_store4(v: vec4<f32>) -> vec4<f32> { return v; }
"
    };
    (F16) => {
        "enable f16;
alias Store = f16;
fn to_store(v: f32) -> f16 { return f16(clamp(v, -65504.0, 65504.0)); }
fn to_store4(v: vec4<f32>) -> vec4<f16> { return vec4<f16>(clamp(v, vec4<f32>(-65504.0), vec4<f32>(65504.0))); }
"
    };
}

/// Constants the Rust side and the kernels share, from this one list: `shared_constants!(rust)`
/// makes them Rust `const`s (re-exported from `gpu`) and `shared_constants!(wgsl)` the WGSL
/// `const`s prepended to every kernel.
macro_rules! shared_constants {
    ($m:ident) => {
        $m! {
            /// Workgroup size (x) of the one-dimensional kernels. Only x is vectorised on lavapipe,
            /// and 64 is a multiple of every GPU's SIMD width.
            WG = 64;
            /// log2 of the width in texels of the scratch textures behind `BindingKind::Texels`
            /// bindings: a buffer's vec4 number `i` lands at texel (i % 2048, i / 2048). 2048 x 16
            /// bytes is a multiple of the 256-byte row pitch copies need.
            TEXEL_ROW_LOG2 = 11;
            /// `Activation::None` as the kernels' `ACT` override.
            ACT_NONE = 0;
            /// `Activation::Swish`: x · sigmoid(x).
            ACT_SWISH = 1;
            /// `Activation::Relu6`: clamp(x, 0, 6).
            ACT_RELU6 = 2;
            /// `Activation::Sigmoid`.
            ACT_SIGMOID = 3;
        }
    };
}

macro_rules! rust {
    ($($(#[doc = $doc:literal])* $name:ident = $value:literal;)*) => {
        $($(#[doc = $doc])* pub const $name: u32 = $value;)*
    };
}

macro_rules! wgsl {
    ($($(#[doc = $doc:literal])* $name:ident = $value:literal;)*) => {
        concat!($("const ", stringify!($name), ": u32 = ", stringify!($value), "u;\n"),*)
    };
}

shared_constants!(rust);

macro_rules! kernels {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal, $file:literal, $entry:literal, $store:ident, [$($b:expr),*];)*) => {
        /// One WGSL entry point. The name is the same across `shaders/`, `src/ops/`, `src/cpu_ref/`
        /// and `tests/`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kernel { $($(#[doc = $doc])* $variant),* }

        impl Kernel {
            /// Every kernel, in declaration order.
            pub const ALL: &'static [Kernel] = &[$(Kernel::$variant),*];

            /// Unique snake_case name, e.g. "gemm_fwd_tiled": the label of its shader, layouts and pipelines.
            pub fn name(self) -> &'static str {
                match self { $(Kernel::$variant => $name),* }
            }
            /// Path of the WGSL file under `shaders/`.
            pub fn file(self) -> &'static str {
                match self { $(Kernel::$variant => $file),* }
            }
            /// The WGSL source: the `Store` prelude, the shared constants, `shaders/common.wgsl`, the
            /// kernel's file.
            pub fn source(self) -> &'static str {
                match self {
                    $(Kernel::$variant => concat!(
                        prelude!($store),
                        shared_constants!(wgsl),
                        include_str!("../../shaders/common.wgsl"),
                        include_str!(concat!("../../shaders/", $file))
                    )),*
                }
            }
            /// The element type its tensors are stored in.
            pub fn store(self) -> Dtype {
                match self { $(Kernel::$variant => Dtype::$store),* }
            }
            /// Name of the `@compute` function of its file that it runs.
            pub fn entry_point(self) -> &'static str {
                match self { $(Kernel::$variant => $entry),* }
            }
            /// The override constants its shader declares: the only names `Dispatch::new` takes.
            pub fn overrides(self) -> &'static [&'static str] {
                let file = self.file();
                OVERRIDES.iter().find(|(f, _)| *f == file).map_or(&[], |(_, names)| names)
            }
            /// The bindings of group 0, in binding-number order.
            pub fn bindings(self) -> &'static [BindingKind] {
                match self { $(Kernel::$variant => &[$($b),*]),* }
            }
        }
    };
}

kernels! {
    /// Direct convolution + bias + activation (the stem): x (NHWC or NCHW), weight (HWIO), bias, y.
    Conv2dFwd => "conv2d_fwd", "conv2d/conv2d_fwd.wgsl", "main", F32, [R, R, R, W];
    /// `Conv2dFwd` for stem shapes on CPU adapters: x (NCHW) and weight (HWIO) as texels, bias, y.
    Conv2dFwdTexel => "conv2d_fwd_texel", "conv2d/conv2d_fwd_texel.wgsl", "main", F32, [T, T, R, W];
    /// out = act((a * a_scale) x b + bias) + residual: a, b, bias, residual, a_scale, out.
    GemmFwd => "gemm_fwd", "gemm/gemm_fwd.wgsl", "main", F32, [R, R, R, R, R, W];
    /// `GemmFwd` with vec4 loads, K and N multiples of 4; the same bindings.
    GemmFwdVec4 => "gemm_fwd_vec4", "gemm/gemm_fwd_vec4.wgsl", "main", F32, [R, R, R, R, R, W];
    /// `GemmFwd` on GPUs: 64 x 64 tiles through workgroup memory, K and N multiples of 4; the same bindings.
    GemmFwdTiled => "gemm_fwd_tiled", "gemm/gemm_tiled.wgsl", "fwd", F32, [R, R, R, R, R, W];
    /// `GemmFwd` on CPU adapters with 8-lane subgroups, a, b and a_scale as texels; the same bindings.
    GemmFwdTexel => "gemm_fwd_texel", "gemm/gemm_fwd_texel.wgsl", "main", F32, [T, T, R, R, T, W];
    /// `GemmFwdTiled` plus the BatchNorm partials of out per 64 rows: its bindings, then bn_partial.
    GemmFwdBnStatsTiled => "gemm_fwd_bn_stats_tiled", "gemm/gemm_tiled.wgsl", "fwd_bn_stats", F32, [R, R, R, R, R, W, W];
    /// `GemmFwdTexel` plus the BatchNorm partials of out per 16 rows: its bindings, then bn_partial.
    GemmFwdBnStatsTexel => "gemm_fwd_bn_stats_texel", "gemm/gemm_fwd_texel.wgsl", "bn_stats", F32, [T, T, R, R, T, W, W];
    /// Depthwise convolution + bias + activation: x, weight (HWC), bias, y, in_scale_shift (BN of x).
    DepthwiseConvFwd => "depthwise_conv_fwd", "depthwise_conv/depthwise_conv_fwd.wgsl", "main", F32, [R, R, R, W, R];
    /// `DepthwiseConvFwd` on CPU adapters, C % 4 == 0, x and weight as texels; the same bindings.
    DepthwiseConvFwdTexel => "depthwise_conv_fwd_texel", "depthwise_conv/depthwise_conv_fwd_texel.wgsl", "main", F32, [T, T, R, W, R];
    /// Global average pool, first stage: x, per-chunk partial sums (f32).
    GlobalAvgPoolPartial => "global_avg_pool_partial", "pool/global_avg_pool_fwd.wgsl", "partial", F32, [R, W];
    /// `GlobalAvgPoolPartial` on CPU adapters, C % 4 == 0: x as texels, partial sums.
    GlobalAvgPoolPartialTexel => "global_avg_pool_partial_texel", "pool/global_avg_pool_partial_texel.wgsl", "main", F32, [T, W];
    /// Global average pool, second stage (chunks summed in order, divided by H*W): partial sums, mean.
    GlobalAvgPoolFinish => "global_avg_pool_finish", "pool/global_avg_pool_fwd.wgsl", "finish", F32, [R, W];
    /// Row-wise softmax: x, y.
    SoftmaxFwd => "softmax_fwd", "softmax/softmax_fwd.wgsl", "main", F32, [R, W];
    /// Bilinear resize of an NCHW window, then a per-channel affine: x, affine (mul, add), y.
    BilinearResizeFwd => "bilinear_resize_fwd", "resize/bilinear_resize_fwd.wgsl", "main", F32, [R, R, W];
    /// The preprocessing's horizontal resize pass from a host's texture: taps, across, image.
    ResampleImageH => "resample_image_h", "resize/resample_image_h.wgsl", "main", F32, [R, W, I];
    /// Its vertical pass, rounding and normalisation: across, taps, affine, y.
    ResampleImageV => "resample_image_v", "resize/resample_image_v.wgsl", "main", F32, [R, R, R, W];
    /// y = act(x * scale + shift), stochastic depth, residual: x, scale_shift, residual, seed, y.
    BnActFwd => "bn_act_fwd", "bn_act/bn_act_fwd.wgsl", "main", F32, [R, R, R, R, W];
    /// `BnActFwd` on CPU adapters, C % 4 == 0, x and residual as texels; the same bindings.
    BnActFwdTexel => "bn_act_fwd_texel", "bn_act/bn_act_fwd_texel.wgsl", "main", F32, [T, R, T, R, W];
    /// da (+)= dc x b^T, the gradient of `GemmFwd`'s a: dc, b, da.
    GemmBwdData => "gemm_bwd_data", "gemm/gemm_bwd_data.wgsl", "main", F32, [R, R, W];
    /// `GemmBwdData` with vec4 loads, K and N multiples of 4; the same bindings.
    GemmBwdDataVec4 => "gemm_bwd_data_vec4", "gemm/gemm_bwd_data_vec4.wgsl", "main", F32, [R, R, W];
    /// `GemmBwdData` on GPUs, tiled through workgroup memory; the same bindings.
    GemmBwdDataTiled => "gemm_bwd_data_tiled", "gemm/gemm_tiled.wgsl", "bwd_data", F32, [R, R, W];
    /// `GemmBwdData` on CPU adapters with 8-lane subgroups, dc and b as texels; the same bindings.
    GemmBwdDataTexel => "gemm_bwd_data_texel", "gemm/gemm_bwd_data_texel.wgsl", "main", F32, [T, T, W];
    /// Split-K partials of db = (a * a_scale)^T x dc, per chunk of rows: a, a_scale, dc, partial.
    GemmBwdWeight => "gemm_bwd_weight", "gemm/gemm_bwd_weight.wgsl", "main", F32, [R, R, R, W];
    /// `GemmBwdWeight` with vec4 loads, K and N multiples of 4; the same bindings.
    GemmBwdWeightVec4 => "gemm_bwd_weight_vec4", "gemm/gemm_bwd_weight_vec4.wgsl", "main", F32, [R, R, R, W];
    /// `GemmBwdWeight` on GPUs, tiled through workgroup memory; the same bindings.
    GemmBwdWeightTiled => "gemm_bwd_weight_tiled", "gemm/gemm_tiled.wgsl", "bwd_weight", F32, [R, R, R, W];
    /// `GemmBwdWeight` on CPU adapters with 8-lane subgroups, a, a_scale and dc as texels; the same bindings.
    GemmBwdWeightTexel => "gemm_bwd_weight_texel", "gemm/gemm_bwd_weight_texel.wgsl", "main", F32, [T, T, T, W];
    /// dy = d_gated * gate and per-chunk partials of d_gate: d_gated, y, gate, dy, partial.
    SeGateBwd => "se_gate_bwd", "se/se_gate_bwd.wgsl", "main", F32, [R, R, R, W, W];
    /// `SeGateBwd` on CPU adapters, C % 4 == 0, d_gated and y as texels; the same bindings.
    SeGateBwdTexel => "se_gate_bwd_texel", "se/se_gate_bwd_texel.wgsl", "main", F32, [T, T, R, W, W];
    /// dx (+)= the input gradient of a depthwise convolution: dy, w, dx.
    DepthwiseConvBwdData => "depthwise_conv_bwd_data", "depthwise_conv/depthwise_conv_bwd_data.wgsl", "main", F32, [R, R, W];
    /// `DepthwiseConvBwdData` on CPU adapters, C % 4 == 0, dy and w as texels; the same bindings.
    DepthwiseConvBwdDataTexel => "depthwise_conv_bwd_data_texel", "depthwise_conv/depthwise_conv_bwd_data_texel.wgsl", "main", F32, [T, T, W];
    /// Per-chunk partials of a depthwise convolution's weight gradient: x, dy, partial.
    DepthwiseConvBwdWeight => "depthwise_conv_bwd_weight", "depthwise_conv/depthwise_conv_bwd_weight.wgsl", "main", F32, [R, R, W];
    /// `DepthwiseConvBwdWeight` on CPU adapters, C % 4 == 0, x and dy as texels; the same bindings.
    DepthwiseConvBwdWeightTexel => "depthwise_conv_bwd_weight_texel", "depthwise_conv/depthwise_conv_bwd_weight_texel.wgsl", "main", F32, [T, T, W];
    /// dx (+)= the input gradient of a direct convolution: dy, w, dx.
    Conv2dBwdData => "conv2d_bwd_data", "conv2d/conv2d_bwd_data.wgsl", "main", F32, [R, R, W];
    /// Per-chunk partials of a direct convolution's weight gradient: x, dy, partial.
    Conv2dBwdWeight => "conv2d_bwd_weight", "conv2d/conv2d_bwd_weight.wgsl", "main", F32, [R, R, W];
    /// out (+)= scale * the sum of the partial chunks, in order: partial, out.
    SumPartials => "sum_partials", "reduce/sum_partials.wgsl", "main", F32, [R, W];
    /// y += x: x, y.
    AddInplace => "add_inplace", "reduce/add_inplace.wgsl", "main", F32, [R, W];
    /// The input gradient of the plain (not antialiased) bilinear resize: dy, affine, dx.
    BilinearResizeBwd => "bilinear_resize_bwd", "resize/bilinear_resize_bwd.wgsl", "main", F32, [R, R, W];
    /// BatchNorm statistics, first stage: per-chunk (mean, M2) of each channel: z, partial.
    BnStatsPartial => "bn_stats_partial", "bn_act/bn_stats_partial.wgsl", "main", F32, [R, W];
    /// `BnStatsPartial` on GPUs: 4 row lanes per channel, summed in workgroup memory; the same bindings.
    BnStatsPartialTiled => "bn_stats_partial_tiled", "bn_act/bn_stats_partial.wgsl", "tiled", F32, [R, W];
    /// `BnStatsPartial` on CPU adapters, C % 4 == 0, z as texels; the same bindings.
    BnStatsPartialTexel => "bn_stats_partial_texel", "bn_act/bn_stats_partial_texel.wgsl", "main", F32, [T, W];
    /// Merges each GROUP consecutive chunks of BatchNorm partials into one, where they are many: partial, merged.
    BnStatsMerge => "bn_stats_merge", "bn_act/bn_stats_finish.wgsl", "merge", F32, [R, W];
    /// BatchNorm statistics, last stage, and the running update: partial, gamma_beta, running, stats, scale_shift.
    BnStatsFinish => "bn_stats_finish", "bn_act/bn_stats_finish.wgsl", "main", F32, [R, R, W, W, W];
    /// Inference-mode BatchNorm folded into the conv before it: weight, gamma_beta, running,
    /// folded weight, bias.
    BnFoldWeights => "bn_fold_weights", "bn_act/bn_fold_weights.wgsl", "main", F32, [R, R, R, W, W];
    /// Inference-mode BatchNorm's (scale, shift) from the parameters and running statistics:
    /// gamma_beta, running, scale_shift.
    BnEvalScaleShift => "bn_eval_scale_shift", "bn_act/bn_eval_scale_shift.wgsl", "main", F32, [R, R, W];
    /// BatchNorm + activation backward, first pass: per-chunk partials of (dgamma, dbeta):
    /// dy, dy_pool, z, stats, gamma_beta, seed, partial.
    BnActBwdReduce => "bn_act_bwd_reduce", "bn_act/bn_act_bwd_reduce.wgsl", "main", F32, [R, R, R, R, R, R, W];
    /// BatchNorm + activation backward, second pass: dz (+)= from the finished sums:
    /// dy, dy_pool, z, stats, gamma_beta, seed, sums, dz.
    BnActBwdApply => "bn_act_bwd_apply", "bn_act/bn_act_bwd_apply.wgsl", "main", F32, [R, R, R, R, R, R, R, W];
    /// `BnActBwdReduce` on GPUs: 4 row lanes per channel, summed in workgroup memory; the same bindings.
    BnActBwdReduceTiled => "bn_act_bwd_reduce_tiled", "bn_act/bn_act_bwd_reduce.wgsl", "tiled", F32, [R, R, R, R, R, R, W];
    /// `BnActBwdReduce` on CPU adapters, C % 4 == 0, dy and z as texels; the same bindings.
    BnActBwdReduceTexel => "bn_act_bwd_reduce_texel", "bn_act/bn_act_bwd_texel.wgsl", "reduce", F32, [T, R, T, R, R, R, W];
    /// `BnActBwdApply` on CPU adapters, C % 4 == 0, dy and z as texels; the same bindings.
    BnActBwdApplyTexel => "bn_act_bwd_apply_texel", "bn_act/bn_act_bwd_texel.wgsl", "apply", F32, [T, R, T, R, R, R, R, W];
    /// y = act(x), elementwise: x, y.
    ActivationFwd => "activation_fwd", "activation/activation_fwd.wgsl", "main", F32, [R, W];
    /// dx (+)= dy * act'(x), x the pre-activation: x, dy, dx.
    ActivationBwd => "activation_bwd", "activation/activation_bwd.wgsl", "main", F32, [R, R, W];
    /// Inverted dropout with a regenerated mask, also its own backward: x, seed, y.
    DropoutFwd => "dropout_fwd", "dropout/dropout_fwd.wgsl", "main", F32, [R, R, W];
    /// Per-row label-smoothed cross-entropy and the gradient of its mean: logits, target, losses, dlogits.
    SoftmaxCrossEntropy => "softmax_cross_entropy", "loss/softmax_cross_entropy.wgsl", "main", F32, [R, R, W, W];
    /// TF-RMSProp step: grads, hyper (lr, bc1, bc2, max_norm), norm2, params, ms, mom.
    RmspropTfStep => "rmsprop_tf_step", "optim/rmsprop_tf_step.wgsl", "main", F32, [R, R, R, W, W, W];
    /// SGD step with (Nesterov) momentum: grads, hyper, norm2, params, velocity.
    SgdStep => "sgd_step", "optim/sgd_step.wgsl", "main", F32, [R, R, R, W, W];
    /// AdamW step: grads, hyper, norm2, params, m, v.
    AdamwStep => "adamw_step", "optim/adamw_step.wgsl", "main", F32, [R, R, R, W, W, W];
    /// ema = decay * ema + (1 - decay) * params: params, ema.
    EmaUpdate => "ema_update", "optim/ema_update.wgsl", "main", F32, [R, W];
    /// Per-chunk sums of x^2, the first stage of the global gradient norm: x, partial.
    SumSquaresPartial => "sum_squares_partial", "optim/sum_squares_partial.wgsl", "main", F32, [R, W];

    // The f16 inference path: the forward kernels above compiled with Store = f16 (weights and
    // activations stored as f16, arithmetic in f32), and the casts at its edges.
    /// `GemmFwd` on f16 tensors.
    GemmFwdF16 => "gemm_fwd_f16", "gemm/gemm_fwd.wgsl", "main", F16, [R, R, R, R, R, W];
    /// `GemmFwdVec4` on f16 tensors.
    GemmFwdVec4F16 => "gemm_fwd_vec4_f16", "gemm/gemm_fwd_vec4.wgsl", "main", F16, [R, R, R, R, R, W];
    /// `GemmFwdTiled` on f16 tensors.
    GemmFwdTiledF16 => "gemm_fwd_tiled_f16", "gemm/gemm_tiled.wgsl", "fwd", F16, [R, R, R, R, R, W];
    /// `Conv2dFwd` on f16 tensors.
    Conv2dFwdF16 => "conv2d_fwd_f16", "conv2d/conv2d_fwd.wgsl", "main", F16, [R, R, R, W];
    /// `DepthwiseConvFwd` on f16 tensors (in_scale_shift stays f32).
    DepthwiseConvFwdF16 => "depthwise_conv_fwd_f16", "depthwise_conv/depthwise_conv_fwd.wgsl", "main", F16, [R, R, R, W, R];
    /// `GlobalAvgPoolPartial` of an f16 x: x (f16), partial sums (f32).
    GlobalAvgPoolPartialF16 => "global_avg_pool_partial_f16", "pool/global_avg_pool_fwd.wgsl", "partial", F16, [R, W];
    /// `GlobalAvgPoolFinish` to an f16 mean: partial sums (f32), mean (f16).
    GlobalAvgPoolFinishF16 => "global_avg_pool_finish_f16", "pool/global_avg_pool_fwd.wgsl", "finish", F16, [R, W];
    /// f32 to f16, saturating at ±65504: x (f32), y (f16).
    CastToF16 => "cast_to_f16", "cast/cast.wgsl", "to_f16", F16, [R, W];
    /// f16 to f32 (exact): x (f16), y (f32).
    CastToF32 => "cast_to_f32", "cast/cast.wgsl", "to_f32", F16, [R, W];
}

impl Kernel {
    /// This kernel for tensors stored as `store`: itself for f32, its f16 twin (same file and
    /// entry point) for f16; `None` where the family has no such twin (training and texel kernels).
    pub fn for_store(self, store: Dtype) -> Option<Kernel> {
        use Kernel::*;
        const F16_TWINS: &[(Kernel, Kernel)] = &[
            (GemmFwd, GemmFwdF16),
            (GemmFwdVec4, GemmFwdVec4F16),
            (GemmFwdTiled, GemmFwdTiledF16),
            (Conv2dFwd, Conv2dFwdF16),
            (DepthwiseConvFwd, DepthwiseConvFwdF16),
            (GlobalAvgPoolPartial, GlobalAvgPoolPartialF16),
            (GlobalAvgPoolFinish, GlobalAvgPoolFinishF16),
        ];
        match store {
            Dtype::F32 => Some(self),
            Dtype::F16 => F16_TWINS.iter().find(|t| t.0 == self).map(|t| t.1),
        }
    }
}

/// The override constants each shader file declares, by file under `shaders/`: the only names
/// `Dispatch::new` accepts for its kernels. tests/shaders_validate.rs checks this table against the
/// WGSL, both ways.
const OVERRIDES: &[(&str, &[&str])] = &[
    ("activation/activation_bwd.wgsl", &["TOTAL", "ACT", "ACCUMULATE"]),
    ("activation/activation_fwd.wgsl", &["TOTAL", "ACT"]),
    (
        "bn_act/bn_act_bwd_apply.wgsl",
        &["M", "C", "ACT", "HAS_DY", "HAS_DY_POOL", "ROWS_PER_SAMPLE", "DROP_PATH", "SURVIVAL", "SALT", "ACCUMULATE"],
    ),
    (
        "bn_act/bn_act_bwd_reduce.wgsl",
        &["M", "C", "CHUNK", "ACT", "HAS_DY", "HAS_DY_POOL", "ROWS_PER_SAMPLE", "DROP_PATH", "SURVIVAL", "SALT"],
    ),
    (
        "bn_act/bn_act_bwd_texel.wgsl",
        &[
            "M",
            "C",
            "CHUNK",
            "ACT",
            "HAS_DY",
            "HAS_DY_POOL",
            "ROWS_PER_SAMPLE",
            "DROP_PATH",
            "SURVIVAL",
            "SALT",
            "ACCUMULATE",
        ],
    ),
    (
        "bn_act/bn_act_fwd.wgsl",
        &["TOTAL", "C", "ACT", "HAS_RESIDUAL", "DROP_PATH", "ROWS_PER_SAMPLE", "SURVIVAL", "SALT"],
    ),
    (
        "bn_act/bn_act_fwd_texel.wgsl",
        &["TOTAL", "C", "ACT", "HAS_RESIDUAL", "DROP_PATH", "ROWS_PER_SAMPLE", "SURVIVAL", "SALT"],
    ),
    ("bn_act/bn_eval_scale_shift.wgsl", &["C", "EPS"]),
    ("bn_act/bn_fold_weights.wgsl", &["LEN", "C", "EPS"]),
    ("bn_act/bn_stats_finish.wgsl", &["M", "C", "CHUNK", "EPS", "MOMENTUM", "UPDATE_RUNNING", "GROUP"]),
    ("bn_act/bn_stats_partial.wgsl", &["M", "C", "CHUNK"]),
    ("bn_act/bn_stats_partial_texel.wgsl", &["M", "C", "CHUNK"]),
    ("cast/cast.wgsl", &["LEN"]),
    (
        "conv2d/conv2d_bwd_data.wgsl",
        &[
            "N",
            "H",
            "W",
            "CIN",
            "COUT",
            "KH",
            "KW",
            "SH",
            "SW",
            "PT",
            "PL",
            "OH",
            "OW",
            "GROUPS",
            "IN_NCHW",
            "ACCUMULATE",
        ],
    ),
    (
        "conv2d/conv2d_bwd_weight.wgsl",
        &["N", "H", "W", "CIN", "COUT", "KH", "KW", "SH", "SW", "PT", "PL", "OH", "OW", "GROUPS", "IN_NCHW", "ROWS"],
    ),
    (
        "conv2d/conv2d_fwd.wgsl",
        &[
            "N", "H", "W", "CIN", "COUT", "KH", "KW", "SH", "SW", "PT", "PL", "OH", "OW", "GROUPS", "ACT", "HAS_BIAS",
            "IN_NCHW",
        ],
    ),
    (
        "conv2d/conv2d_fwd_texel.wgsl",
        &["N", "H", "W", "CIN", "COUT", "KH", "KW", "SH", "SW", "PT", "PL", "OH", "OW", "ACT", "HAS_BIAS"],
    ),
    (
        "depthwise_conv/depthwise_conv_bwd_data.wgsl",
        &["N", "H", "W", "C", "KH", "KW", "SH", "SW", "PT", "PL", "OH", "OW", "ACCUMULATE"],
    ),
    (
        "depthwise_conv/depthwise_conv_bwd_data_texel.wgsl",
        &["N", "H", "W", "C", "KH", "KW", "SH", "SW", "PT", "PL", "OH", "OW", "ACCUMULATE"],
    ),
    (
        "depthwise_conv/depthwise_conv_bwd_weight.wgsl",
        &["N", "H", "W", "C", "KH", "KW", "SH", "SW", "PT", "PL", "OH", "OW", "ROWS", "KB"],
    ),
    (
        "depthwise_conv/depthwise_conv_bwd_weight_texel.wgsl",
        &["N", "H", "W", "C", "KH", "KW", "SH", "SW", "PT", "PL", "OH", "OW", "ROWS", "KB"],
    ),
    (
        "depthwise_conv/depthwise_conv_fwd.wgsl",
        &["N", "H", "W", "C", "KH", "KW", "SH", "SW", "PT", "PL", "OH", "OW", "ACT", "HAS_BIAS", "IN_BN", "IN_ACT"],
    ),
    (
        "depthwise_conv/depthwise_conv_fwd_texel.wgsl",
        &[
            "N", "H", "W", "C", "KH", "KW", "SH", "SW", "PT", "PL", "OH", "OW", "ACT", "HAS_BIAS", "IN_BN", "IN_ACT",
            "ROWS",
        ],
    ),
    ("dropout/dropout_fwd.wgsl", &["TOTAL", "RATE", "SALT"]),
    ("gemm/gemm_bwd_data.wgsl", &["M", "N", "K", "ACCUMULATE"]),
    ("gemm/gemm_bwd_data_texel.wgsl", &["M", "N", "K", "ACCUMULATE"]),
    ("gemm/gemm_bwd_data_vec4.wgsl", &["M", "N", "K", "ACCUMULATE"]),
    ("gemm/gemm_bwd_weight.wgsl", &["M", "N", "K", "ROWS", "HAS_A_SCALE", "A_SCALE_ROWS"]),
    ("gemm/gemm_bwd_weight_texel.wgsl", &["M", "N", "K", "ROWS", "HAS_A_SCALE", "A_SCALE_ROWS"]),
    ("gemm/gemm_bwd_weight_vec4.wgsl", &["M", "N", "K", "ROWS", "HAS_A_SCALE", "A_SCALE_ROWS"]),
    ("gemm/gemm_fwd.wgsl", &["M", "N", "K", "ACT", "HAS_BIAS", "HAS_RESIDUAL", "HAS_A_SCALE", "A_SCALE_ROWS"]),
    ("gemm/gemm_fwd_texel.wgsl", &["M", "N", "K", "ACT", "HAS_BIAS", "HAS_RESIDUAL", "HAS_A_SCALE", "A_SCALE_ROWS"]),
    ("gemm/gemm_fwd_vec4.wgsl", &["M", "N", "K", "ACT", "HAS_BIAS", "HAS_RESIDUAL", "HAS_A_SCALE", "A_SCALE_ROWS"]),
    (
        "gemm/gemm_tiled.wgsl",
        &["M", "N", "K", "ACT", "HAS_BIAS", "HAS_RESIDUAL", "HAS_A_SCALE", "A_SCALE_ROWS", "ACCUMULATE", "ROWS"],
    ),
    ("loss/softmax_cross_entropy.wgsl", &["N", "K", "SMOOTHING"]),
    ("optim/adamw_step.wgsl", &["TOTAL", "DECAY_END", "B1", "B2", "EPS", "WEIGHT_DECAY"]),
    ("optim/ema_update.wgsl", &["TOTAL", "DECAY"]),
    ("optim/rmsprop_tf_step.wgsl", &["TOTAL", "DECAY_END", "DECAY", "MOMENTUM", "EPS", "WEIGHT_DECAY"]),
    ("optim/sgd_step.wgsl", &["TOTAL", "DECAY_END", "MOMENTUM", "NESTEROV", "WEIGHT_DECAY"]),
    ("optim/sum_squares_partial.wgsl", &["TOTAL", "CHUNK"]),
    ("pool/global_avg_pool_fwd.wgsl", &["N", "HW", "C", "CHUNK"]),
    ("pool/global_avg_pool_partial_texel.wgsl", &["N", "HW", "C", "CHUNK"]),
    ("reduce/add_inplace.wgsl", &["TOTAL"]),
    ("reduce/sum_partials.wgsl", &["PARTS", "LEN", "SCALE", "ACCUMULATE"]),
    ("resize/bilinear_resize_bwd.wgsl", &["N", "C", "IH", "IW", "OH", "OW", "Y0", "X0", "RATIO_H", "RATIO_W"]),
    (
        "resize/bilinear_resize_fwd.wgsl",
        &["N", "C", "IH", "IW", "OH", "OW", "Y0", "X0", "RATIO_H", "RATIO_W", "ANTIALIAS"],
    ),
    ("resize/resample_image_h.wgsl", &["RES", "SRGB", "ROUND"]),
    ("resize/resample_image_v.wgsl", &["RES"]),
    ("se/se_gate_bwd.wgsl", &["N", "HW", "C", "ROWS"]),
    ("se/se_gate_bwd_texel.wgsl", &["N", "HW", "C", "ROWS"]),
    ("softmax/softmax_fwd.wgsl", &["ROWS", "COLS"]),
];
