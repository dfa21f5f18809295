//! Network configuration: the B0 stage table turned into concrete blocks by the compound-scaling
//! rules (width → channels rounded to multiples of 8, depth → `ceil` of repeats). Everything the
//! graph builder, the weight loader and `effnet info` need to know about a variant comes from here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::network::Network;
use crate::ops::Activation;
pub use crate::ops::{conv_padding, Padding};

/// The thirteen published variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Variant {
    /// EfficientNet-B0, the baseline: width 1.0, depth 1.0, 224 px.
    B0,
    /// EfficientNet-B1: width 1.0, depth 1.1, 240 px.
    B1,
    /// EfficientNet-B2: width 1.1, depth 1.2, 260 px.
    B2,
    /// EfficientNet-B3: width 1.2, depth 1.4, 300 px.
    B3,
    /// EfficientNet-B4: width 1.4, depth 1.8, 380 px.
    B4,
    /// EfficientNet-B5: width 1.6, depth 2.2, 456 px.
    B5,
    /// EfficientNet-B6: width 1.8, depth 2.6, 528 px.
    B6,
    /// EfficientNet-B7: width 2.0, depth 3.1, 600 px.
    B7,
    /// EfficientNet-Lite0 (ReLU6, no SE): width 1.0, depth 1.0, 224 px.
    Lite0,
    /// EfficientNet-Lite1 (ReLU6, no SE): width 1.0, depth 1.1, 240 px.
    Lite1,
    /// EfficientNet-Lite2 (ReLU6, no SE): width 1.1, depth 1.2, 260 px.
    Lite2,
    /// EfficientNet-Lite3 (ReLU6, no SE): width 1.2, depth 1.4, 280 px.
    Lite3,
    /// EfficientNet-Lite4 (ReLU6, no SE): width 1.4, depth 1.8, 300 px.
    Lite4,
}

impl Variant {
    /// Every variant, B0..B7 then Lite0..Lite4 (the order weight-shape suggestions try them in).
    pub const ALL: [Variant; 13] = [
        Variant::B0,
        Variant::B1,
        Variant::B2,
        Variant::B3,
        Variant::B4,
        Variant::B5,
        Variant::B6,
        Variant::B7,
        Variant::Lite0,
        Variant::Lite1,
        Variant::Lite2,
        Variant::Lite3,
        Variant::Lite4,
    ];

    /// Short lowercase name, as the CLI's `--model` takes it: `"b0"`, `"lite0"`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::B0 => "b0",
            Variant::B1 => "b1",
            Variant::B2 => "b2",
            Variant::B3 => "b3",
            Variant::B4 => "b4",
            Variant::B5 => "b5",
            Variant::B6 => "b6",
            Variant::B7 => "b7",
            Variant::Lite0 => "lite0",
            Variant::Lite1 => "lite1",
            Variant::Lite2 => "lite2",
            Variant::Lite3 => "lite3",
            Variant::Lite4 => "lite4",
        }
    }

    /// Whether this is a Lite variant (ReLU6, no SE, stem and head widths not scaled).
    pub fn is_lite(self) -> bool {
        matches!(self, Variant::Lite0 | Variant::Lite1 | Variant::Lite2 | Variant::Lite3 | Variant::Lite4)
    }

    /// `(width, depth, resolution, dropout)` from the paper (B) and the TF Lite release (Lite).
    pub fn coefficients(self) -> (f64, f64, u32, f32) {
        match self {
            Variant::B0 => (1.0, 1.0, 224, 0.2),
            Variant::B1 => (1.0, 1.1, 240, 0.2),
            Variant::B2 => (1.1, 1.2, 260, 0.3),
            Variant::B3 => (1.2, 1.4, 300, 0.3),
            Variant::B4 => (1.4, 1.8, 380, 0.4),
            Variant::B5 => (1.6, 2.2, 456, 0.4),
            Variant::B6 => (1.8, 2.6, 528, 0.5),
            Variant::B7 => (2.0, 3.1, 600, 0.5),
            Variant::Lite0 => (1.0, 1.0, 224, 0.2),
            Variant::Lite1 => (1.0, 1.1, 240, 0.2),
            Variant::Lite2 => (1.1, 1.2, 260, 0.3),
            Variant::Lite3 => (1.2, 1.4, 280, 0.3),
            Variant::Lite4 => (1.4, 1.8, 300, 0.3),
        }
    }

    /// Parses `b0`, `B0`, `efficientnet-b0`, `efficientnet_b0`, `lite0`, `efficientnet-lite0`, ...
    pub fn parse(s: &str) -> Result<Variant> {
        let lower = s.trim().to_ascii_lowercase();
        let short =
            lower.strip_prefix("efficientnet-").or_else(|| lower.strip_prefix("efficientnet_")).unwrap_or(&lower);
        Variant::ALL.into_iter().find(|v| v.name() == short).ok_or_else(|| Error::UnknownModel(s.to_string()))
    }
}

impl FromStr for Variant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Variant> {
        Variant::parse(s)
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One row of the B0 stage table; other variants scale `repeats` and the channel counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StageDef {
    /// Expansion factor of the blocks' 1x1 expand conv (1: no expand conv).
    pub expand_ratio: usize,
    /// Side of the depthwise conv's square kernel (3 or 5).
    pub kernel: usize,
    /// Stride of the first block of the stage (later blocks use 1).
    pub stride: usize,
    /// Number of blocks in the stage for B0, before depth scaling.
    pub repeats: usize,
    /// Input channels of the stage in B0 (for reference: `Config::blocks` chains the scaled outputs).
    pub in_ch: usize,
    /// Output channels of the stage in B0, before width scaling.
    pub out_ch: usize,
}

/// The B0 stage table (paper table 1): MBConv stages 1..=7.
pub const B0_STAGES: [StageDef; 7] = [
    StageDef { expand_ratio: 1, kernel: 3, stride: 1, repeats: 1, in_ch: 32, out_ch: 16 },
    StageDef { expand_ratio: 6, kernel: 3, stride: 2, repeats: 2, in_ch: 16, out_ch: 24 },
    StageDef { expand_ratio: 6, kernel: 5, stride: 2, repeats: 2, in_ch: 24, out_ch: 40 },
    StageDef { expand_ratio: 6, kernel: 3, stride: 2, repeats: 3, in_ch: 40, out_ch: 80 },
    StageDef { expand_ratio: 6, kernel: 5, stride: 1, repeats: 3, in_ch: 80, out_ch: 112 },
    StageDef { expand_ratio: 6, kernel: 5, stride: 2, repeats: 4, in_ch: 112, out_ch: 192 },
    StageDef { expand_ratio: 6, kernel: 3, stride: 1, repeats: 1, in_ch: 192, out_ch: 320 },
];

/// B0's stem and head widths before width scaling.
const BASE_STEM: usize = 32;
const BASE_HEAD: usize = 1280;

/// Channel rounding of the reference implementations: scale, round to the nearest multiple of 8
/// (at least 8), and never go more than 10 % below the scaled value.
pub fn round_filters(channels: usize, width: f64) -> usize {
    let f = channels as f64 * width;
    // `as usize` saturates (NaN → 0), so a nonsense width cannot panic here.
    let mut new = ((f + 4.0) as usize / 8 * 8).max(8);
    if (new as f64) < 0.9 * f {
        new += 8;
    }
    new
}

/// Depth scaling: `ceil(depth · repeats)`, the same f64 arithmetic as torchvision and TF.
pub fn round_repeats(repeats: usize, depth: f64) -> usize {
    (repeats as f64 * depth).ceil() as usize
}

/// The most classes a config may have: far beyond any data set, and small enough that every size
/// derived from it fits the index types of the kernels.
pub const MAX_CLASSES: usize = 1 << 20;

/// Everything that defines a network. Built-in variants come from [`Config::new`]; fields are
/// public so that a caller can change, say, the padding rule for TF-trained weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Display name, `efficientnet-b0` for the built-ins (parsed back by [`Config::variant`]).
    pub name: String,
    /// Width multiplier applied to every channel count (then rounded to multiples of 8).
    pub width: f64,
    /// Depth multiplier applied to every stage's number of blocks (then `ceil`).
    pub depth: f64,
    /// Input resolution the variant was trained at (an input-pipeline property, not a layer).
    pub resolution: u32,
    /// Dropout rate before the classifier (training only).
    pub dropout: f32,
    /// Outputs of the final linear layer.
    pub num_classes: usize,
    /// Whether blocks have squeeze-and-excitation (B: yes, Lite: no).
    pub se: bool,
    /// Activation after the stem, expand, depthwise and head convs (B: swish, Lite: ReLU6).
    /// SE keeps its own swish + sigmoid regardless.
    pub activation: Activation,
    /// Padding rule of every conv; `TfSame` for TF-trained weights (see `WeightFormat::adjust_config`).
    pub padding: Padding,
    /// BatchNorm epsilon: 1e-5 for PyTorch-trained weights, 1e-3 for TF-trained ones.
    pub bn_eps: f32,
    /// Lite rules: stem fixed at 32 and head at 1280 channels, first and last stage repeats not
    /// depth-scaled.
    pub lite: bool,
    /// Stochastic-depth drop rate of the last block (0.2); earlier blocks drop linearly less.
    pub drop_connect: f32,
    /// Optional bilinear resize of the input by this factor before the stem (the seed blog's
    /// `scale` convenience). `None` for the reference networks.
    pub scale: Option<f32>,
}

impl Default for Config {
    /// EfficientNet-B0 with the 1000 ImageNet classes.
    fn default() -> Config {
        Config::new(Variant::B0, 1000)
    }
}

macro_rules! variant_constructors {
    ($($method:ident, $free:ident, $variant:ident;)*) => {
        impl Config {
            $(
                #[doc = concat!("`Config::new(Variant::", stringify!($variant), ", num_classes)`.")]
                pub fn $method(num_classes: usize) -> Config {
                    Config::new(Variant::$variant, num_classes)
                }
            )*
        }
        $(
            #[doc = concat!("`Config::new(Variant::", stringify!($variant), ", num_classes)`, named like torchvision's builder.")]
            pub fn $free(num_classes: usize) -> Config {
                Config::new(Variant::$variant, num_classes)
            }
        )*
    };
}

variant_constructors! {
    b0, efficientnet_b0, B0;
    b1, efficientnet_b1, B1;
    b2, efficientnet_b2, B2;
    b3, efficientnet_b3, B3;
    b4, efficientnet_b4, B4;
    b5, efficientnet_b5, B5;
    b6, efficientnet_b6, B6;
    b7, efficientnet_b7, B7;
    lite0, efficientnet_lite0, Lite0;
    lite1, efficientnet_lite1, Lite1;
    lite2, efficientnet_lite2, Lite2;
    lite3, efficientnet_lite3, Lite3;
    lite4, efficientnet_lite4, Lite4;
}

/// One MBConv block after scaling.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlockSpec {
    /// Stage number, 1-based as in the paper's table (stage 0 is the stem).
    pub stage: usize,
    /// Position within its stage, 0-based (torchvision's `features.{stage}.{index_in_stage}`).
    pub index_in_stage: usize,
    /// Running index over all blocks, 0-based (lukemelas' `_blocks.{index}`).
    pub index: usize,
    /// Input channels: the previous block's output, or the stem's for the first block.
    pub in_ch: usize,
    /// Output channels: the stage's width after scaling.
    pub out_ch: usize,
    /// Expansion factor of the 1x1 expand conv (1: the block has none).
    pub expand_ratio: usize,
    /// Channels of the depthwise conv: `in_ch · expand_ratio`.
    pub expanded_ch: usize,
    /// Side of the depthwise conv's square kernel.
    pub kernel: usize,
    /// Stride of the depthwise conv.
    pub stride: usize,
    /// Hidden width of squeeze-excite, `max(1, in_ch / 4)`; 0 when the config has no SE.
    pub se_ch: usize,
    /// Identity shortcut (stride 1 and `in_ch == out_ch`); only these use stochastic depth.
    pub residual: bool,
    /// Stochastic-depth survival probability `1 - drop_connect · index / blocks`.
    pub survival_prob: f32,
}

impl BlockSpec {
    /// Whether the block starts with a 1x1 expand conv (absent when `expand_ratio == 1`).
    pub fn has_expand(&self) -> bool {
        self.expand_ratio != 1
    }

    /// Whether the block has squeeze-and-excitation (`se_ch > 0`).
    pub fn has_se(&self) -> bool {
        self.se_ch > 0
    }

    /// Learnable parameters: conv weights, BN weight+bias, SE weights+biases.
    pub fn param_count(&self) -> usize {
        let (i, e, o, k, s) = (self.in_ch, self.expanded_ch, self.out_ch, self.kernel, self.se_ch);
        let expand = if self.has_expand() { i * e + 2 * e } else { 0 };
        let depthwise = e * k * k + 2 * e;
        let se = if self.has_se() { e * s + s + s * e + e } else { 0 };
        let project = e * o + 2 * o;
        expand + depthwise + se + project
    }

    /// Multiply-accumulates for an `h`×`w` input, and the output size.
    fn macs(&self, padding: Padding, h: usize, w: usize) -> (u64, usize, usize) {
        let (oh, _) = conv_padding(padding, h, self.kernel, self.stride);
        let (ow, _) = conv_padding(padding, w, self.kernel, self.stride);
        let (i, e, o, k, s) =
            (self.in_ch as u64, self.expanded_ch as u64, self.out_ch as u64, self.kernel as u64, self.se_ch as u64);
        let (hw, ohw) = ((h * w) as u64, (oh * ow) as u64);
        let expand = if self.has_expand() { hw * i * e } else { 0 };
        let depthwise = ohw * e * k * k;
        let se = 2 * e * s;
        let project = ohw * e * o;
        (expand + depthwise + se + project, oh, ow)
    }
}

/// One row of `effnet info`: a stage (or the stem, head, classifier) and what it costs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageSummary {
    /// `stem`, `stage1` .. `stage7`, `head`, `classifier`.
    pub name: String,
    /// Input channels (of the stage's first block; 0 if the stage has no blocks).
    pub in_channels: usize,
    /// Output channels (the number of classes for the classifier).
    pub out_channels: usize,
    /// Number of blocks (1 for the stem, head and classifier).
    pub blocks: usize,
    /// Expansion factor of the stage's blocks (1 for the stem, head and classifier).
    pub expand_ratio: usize,
    /// Kernel side: the depthwise kernel for stages, 3 for the stem, 1 for the head and classifier.
    pub kernel: usize,
    /// Stride of the stage's first block.
    pub stride: usize,
    /// Output resolution of the stage for the input size given to `stage_summary`.
    pub out_h: usize,
    /// Output width of the stage for the input size given to `stage_summary`.
    pub out_w: usize,
    /// Learnable parameters of the stage.
    pub params: usize,
    /// Multiply-accumulates of the stage for one image.
    pub macs: u64,
}

impl Config {
    /// A published variant with its reference defaults: B uses swish, SE, symmetric padding and
    /// BN eps 1e-5 (B0–B4) or 1e-3 (B5–B7, torchvision's ported TF weights); Lite uses ReLU6, no SE,
    /// symmetric padding and eps 1e-5. TF-trained weights (timm `tf_*`, lukemelas) want `TfSame`
    /// and eps 1e-3 instead: `WeightFormat::adjust_config` switches them.
    pub fn new(variant: Variant, num_classes: usize) -> Config {
        let (width, depth, resolution, dropout) = variant.coefficients();
        let lite = variant.is_lite();
        let bn_eps = match variant {
            Variant::B5 | Variant::B6 | Variant::B7 => 1e-3,
            _ => 1e-5,
        };
        Config {
            name: format!("efficientnet-{}", variant.name()),
            width,
            depth,
            resolution,
            dropout,
            num_classes,
            se: !lite,
            activation: if lite { Activation::Relu6 } else { Activation::Swish },
            padding: Padding::Symmetric,
            bn_eps,
            lite,
            drop_connect: 0.2,
            scale: None,
        }
    }

    /// A B-style network (swish, SE, symmetric padding, eps 1e-5) with your own coefficients.
    pub fn custom(width: f64, depth: f64, resolution: u32, dropout: f32, num_classes: usize) -> Config {
        Config {
            name: "efficientnet-custom".to_string(),
            width,
            depth,
            resolution,
            dropout,
            num_classes,
            ..Config::new(Variant::B0, num_classes)
        }
    }

    /// The built-in variant this config was made from, if its name is one.
    pub fn variant(&self) -> Option<Variant> {
        Variant::parse(&self.name).ok()
    }

    /// Rejects values that would make a degenerate network, so builders can trust the numbers.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::invalid(format!("config {}: {what}", self.name)));
        // B7 scales width by 2.0 and depth by 3.1; 10 leaves room for larger networks while
        // keeping every count the sizes are derived from far from overflow.
        if !(self.width.is_finite() && self.width > 0.0 && self.width <= 10.0) {
            return bad(&format!("width must be a number in (0, 10], got {}", self.width));
        }
        if !(self.depth.is_finite() && self.depth > 0.0 && self.depth <= 10.0) {
            return bad(&format!("depth must be a number in (0, 10], got {}", self.depth));
        }
        if !(1..=MAX_CLASSES).contains(&self.num_classes) {
            return bad(&format!("num_classes is {}; it must be from 1 to {MAX_CLASSES}", self.num_classes));
        }
        if self.resolution == 0 {
            return bad("resolution is 0; it must be at least 1 pixel");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(&format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if !(0.0..1.0).contains(&self.drop_connect) {
            return bad(&format!("drop_connect must be in [0, 1), got {}", self.drop_connect));
        }
        if !(self.bn_eps.is_finite() && self.bn_eps > 0.0) {
            return bad(&format!("bn_eps must be positive, got {}", self.bn_eps));
        }
        if let Some(s) = self.scale {
            if !(s.is_finite() && s > 0.0) {
                return bad(&format!("scale must be a positive number, got {s}"));
            }
        }
        Ok(())
    }

    fn filters(&self, channels: usize) -> usize {
        round_filters(channels, self.width)
    }

    /// Output channels of the stem conv (32 scaled; fixed at 32 for Lite).
    pub fn stem_channels(&self) -> usize {
        if self.lite {
            BASE_STEM
        } else {
            self.filters(BASE_STEM)
        }
    }

    /// Output channels of the 1x1 head conv (1280 scaled; fixed at 1280 for Lite).
    pub fn head_channels(&self) -> usize {
        if self.lite {
            BASE_HEAD
        } else {
            self.filters(BASE_HEAD)
        }
    }

    /// Blocks of stage `stage_index` (0-based into [`B0_STAGES`]) after depth scaling.
    fn stage_repeats(&self, stage_index: usize, base: usize) -> usize {
        let fixed = self.lite && (stage_index == 0 || stage_index == B0_STAGES.len() - 1);
        if fixed {
            base
        } else {
            round_repeats(base, self.depth)
        }
    }

    /// Every MBConv block in execution order.
    pub fn blocks(&self) -> Vec<BlockSpec> {
        let repeats: Vec<usize> =
            B0_STAGES.iter().enumerate().map(|(i, st)| self.stage_repeats(i, st.repeats)).collect();
        let total: usize = repeats.iter().sum();
        let mut blocks = Vec::with_capacity(total);
        let mut in_stage = self.stem_channels();
        for (si, (st, &n)) in B0_STAGES.iter().zip(&repeats).enumerate() {
            let out = self.filters(st.out_ch);
            for j in 0..n {
                let in_ch = if j == 0 { in_stage } else { out };
                let stride = if j == 0 { st.stride } else { 1 };
                let index = blocks.len();
                let drop = self.drop_connect as f64 * index as f64 / total as f64;
                blocks.push(BlockSpec {
                    stage: si + 1,
                    index_in_stage: j,
                    index,
                    in_ch,
                    out_ch: out,
                    expand_ratio: st.expand_ratio,
                    expanded_ch: in_ch * st.expand_ratio,
                    kernel: st.kernel,
                    stride,
                    se_ch: if self.se { (in_ch / 4).max(1) } else { 0 },
                    residual: stride == 1 && in_ch == out,
                    survival_prob: (1.0 - drop) as f32,
                });
            }
            in_stage = out;
        }
        blocks
    }

    /// Output channels of the last MBConv stage (the head conv's input).
    fn last_stage_channels(&self) -> usize {
        self.filters(B0_STAGES[B0_STAGES.len() - 1].out_ch)
    }

    /// Learnable parameters (conv weights, BN weight+bias, SE weights+biases, classifier), not
    /// BN running statistics: the number torchvision and timm report.
    pub fn param_count(&self) -> usize {
        let (stem, head) = (self.stem_channels(), self.head_channels());
        let stem_params = 3 * stem * 3 * 3 + 2 * stem;
        let blocks: usize = self.blocks().iter().map(BlockSpec::param_count).sum();
        let head_params = self.last_stage_channels() * head + 2 * head;
        let classifier = head * self.num_classes + self.num_classes;
        stem_params + blocks + head_params + classifier
    }

    /// Size of the tensor entering the stem for an `h`×`w` image: the image itself, or after the
    /// optional bilinear resize by `scale` (floor, like PyTorch's `Upsample(scale_factor)`).
    pub fn input_size(&self, h: usize, w: usize) -> (usize, usize) {
        match self.scale {
            Some(s) if s.is_finite() && s > 0.0 => {
                let f = |x: usize| ((x as f64 * s as f64).floor() as usize).max(1);
                (f(h), f(w))
            }
            _ => (h, w),
        }
    }

    /// Elements of the largest activation of one image whose stem input is `h`×`w` (no `scale`
    /// applied): the widest expanded tensor, usually the first stage with an expansion. Batches
    /// are sized so that this tensor fits one storage binding.
    pub fn largest_activation(&self, h: usize, w: usize) -> usize {
        Network::new(self, h, w).largest_activation()
    }

    /// The head's feature map for a stem input of `h`×`w` (no `scale` applied): the smallest map,
    /// so its pixels are the fewest rows per image any BatchNorm sees.
    pub fn feature_size(&self, h: usize, w: usize) -> (usize, usize) {
        Network::new(self, h, w).head_size()
    }

    /// Multiply-accumulates of every conv (SE FCs and the classifier included) for one `h`×`w`
    /// image, with this config's padding rule; BN, activations and pooling are not counted.
    /// B0 at 224×224 gives 385,814,752 (the paper's "0.39 B FLOPs").
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        self.stage_summary(h, w).iter().map(|s| s.macs).sum()
    }

    /// Per-stage shapes and costs for an `h`×`w` input (after `scale`, see [`Config::input_size`]).
    pub fn stage_summary(&self, h: usize, w: usize) -> Vec<StageSummary> {
        let (h, w) = self.input_size(h, w);
        let mut rows = Vec::with_capacity(B0_STAGES.len() + 3);

        let stem = self.stem_channels();
        let (mut ch, _) = conv_padding(self.padding, h, 3, 2);
        let (mut cw, _) = conv_padding(self.padding, w, 3, 2);
        rows.push(StageSummary {
            name: "stem".to_string(),
            in_channels: 3,
            out_channels: stem,
            blocks: 1,
            expand_ratio: 1,
            kernel: 3,
            stride: 2,
            out_h: ch,
            out_w: cw,
            params: 3 * stem * 9 + 2 * stem,
            macs: (ch * cw * stem * 3 * 9) as u64,
        });

        let blocks = self.blocks();
        for (si, st) in B0_STAGES.iter().enumerate() {
            let stage_blocks: Vec<&BlockSpec> = blocks.iter().filter(|b| b.stage == si + 1).collect();
            let mut macs = 0;
            for b in &stage_blocks {
                let (m, oh, ow) = b.macs(self.padding, ch, cw);
                macs += m;
                (ch, cw) = (oh, ow);
            }
            rows.push(StageSummary {
                name: format!("stage{}", si + 1),
                in_channels: stage_blocks.first().map_or(0, |b| b.in_ch),
                out_channels: self.filters(st.out_ch),
                blocks: stage_blocks.len(),
                expand_ratio: st.expand_ratio,
                kernel: st.kernel,
                stride: st.stride,
                out_h: ch,
                out_w: cw,
                params: stage_blocks.iter().map(|b| b.param_count()).sum(),
                macs,
            });
        }

        let (last, head) = (self.last_stage_channels(), self.head_channels());
        rows.push(StageSummary {
            name: "head".to_string(),
            in_channels: last,
            out_channels: head,
            blocks: 1,
            expand_ratio: 1,
            kernel: 1,
            stride: 1,
            out_h: ch,
            out_w: cw,
            params: last * head + 2 * head,
            macs: (ch * cw * last * head) as u64,
        });
        rows.push(StageSummary {
            name: "classifier".to_string(),
            in_channels: head,
            out_channels: self.num_classes,
            blocks: 1,
            expand_ratio: 1,
            kernel: 1,
            stride: 1,
            out_h: 1,
            out_w: 1,
            params: head * self.num_classes + self.num_classes,
            macs: (head * self.num_classes) as u64,
        });
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_filters_matches_reference_widths() {
        assert_eq!(round_filters(32, 1.2), 40);
        assert_eq!(round_filters(1280, 1.2), 1536);
        assert_eq!(round_filters(32, 1.4), 48);
        assert_eq!(round_filters(1280, 2.0), 2560);
        assert_eq!(round_filters(16, 1.1), 16);
        assert_eq!(round_filters(4, 1.0), 8);
    }
}
