//! The network described once, as the paper's table reads after scaling: stem, MBConv blocks
//! (expand → depthwise → squeeze-excite → project [+ identity]), head, pool, classifier. It is a
//! list of units in execution order, each naming its parameters (`Layer`), the values it reads and
//! the shape it writes. Every walk of the network reads this list: inference lowers it with each
//! BatchNorm folded into its conv (`model::efficientnet`), training with saved state and a
//! reverse-order backward (`train::graph`), and the parameter store and shape summaries count
//! from it. A new output or block type is a change here and one arm in each lowering.

use crate::model::{BlockPart, BlockSpec, Config, Layer};
use crate::ops::{conv_padding, Activation};

/// A tensor of the network: `INPUT` is the image batch entering the stem (after any input
/// resize), value `i + 1` is the output of unit `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub usize);

impl ValueId {
    /// The (n, 3, h, w) NCHW image batch the stem reads.
    pub const INPUT: ValueId = ValueId(0);

    /// The unit that writes this value, `None` for the input.
    pub fn producer(self) -> Option<usize> {
        self.0.checked_sub(1)
    }
}

/// How a conv unit convolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKind {
    /// A full convolution over the NCHW image batch (3 input channels).
    Stem,
    /// A 1x1 convolution: a GEMM over the pixels.
    Pointwise,
    /// A depthwise convolution (one filter per channel).
    Depthwise,
}

/// What a unit computes.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Op {
    /// conv → BatchNorm → activation, with the conv's input rows scaled per image and channel by
    /// `gate` (squeeze-excite's output) where given, and [→ stochastic depth with this survival
    /// probability, in training →] + `residual` where given.
    ConvBn {
        /// The conv and BatchNorm parameters.
        layer: Layer,
        /// How it convolves.
        kind: ConvKind,
        /// Kernel size (1 for pointwise).
        kernel: usize,
        /// Stride of the conv.
        stride: usize,
        /// Activation after the BatchNorm.
        act: Activation,
        /// Per (image, channel) scale of the input.
        gate: Option<ValueId>,
        /// Identity shortcut added to the output.
        residual: Option<ValueId>,
        /// Stochastic-depth survival probability applied before the shortcut in training.
        drop_path: Option<f32>,
    },
    /// Squeeze-excite of MBConv block `block`: mean over H and W → FC (`SeReduce`) + `act` → FC
    /// (`SeExpand`) + sigmoid, giving the (n, c) channel gate of its input.
    SqueezeExcite {
        /// Running index of the block (`BlockSpec::index`).
        block: usize,
        /// Hidden width of the two FCs.
        hidden: usize,
        /// Activation between the FCs.
        act: Activation,
    },
    /// Global average pool to (n, c): the pooled features.
    Pool,
    /// Dropout at this rate (training only) → the classifier's linear layer: the logits.
    Classifier {
        /// Dropout rate before the linear layer.
        dropout: f32,
    },
}

/// One unit of the network at a given input size.
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    /// What it computes.
    pub op: Op,
    /// The value it reads (and convolves, pools or gates).
    pub input: ValueId,
    /// Per-image shape of its input, (h, w, c).
    pub in_shape: [usize; 3],
    /// Per-image shape of its output, (h, w, c); (1, 1, c) for pooled values and logits.
    pub out_shape: [usize; 3],
    /// Its name in dispatch labels and profiles: "stem", "stage2.0 expand", "stage2.0 se",
    /// "head", "pool", "classifier".
    pub label: String,
    /// Name of the tap at its output, where one is: "stem", "stage1" .. "stage7", "head".
    pub tap: Option<String>,
}

impl Unit {
    /// Every value the unit reads: its input, then its gate and shortcut where it has them.
    pub fn reads(&self) -> impl Iterator<Item = ValueId> + '_ {
        let (gate, residual) = match &self.op {
            Op::ConvBn { gate, residual, .. } => (*gate, *residual),
            _ => (None, None),
        };
        std::iter::once(self.input).chain(gate).chain(residual)
    }
}

/// A feature map of the multi-scale output: the last map at each resolution, as timm's
/// `features_only` models return them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureLevel {
    /// The tap it is read from ("stage1", "stage2", "stage3", "stage5", "stage7" for every
    /// built-in variant).
    pub tap: String,
    /// Channels.
    pub channels: usize,
    /// How much smaller than the input it is (2, 4, 8, 16, 32).
    pub reduction: usize,
}

/// EfficientNet at one input size: the units in execution order.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// The units, in execution order.
    pub units: Vec<Unit>,
    /// The MBConv blocks the units were made from.
    pub blocks: Vec<BlockSpec>,
    /// Height and width of the stem's input.
    pub input_size: (usize, usize),
}

impl Network {
    /// `config`'s network for a stem input of `h` x `w` (after any input resize).
    pub fn new(config: &Config, h: usize, w: usize) -> Network {
        let blocks = config.blocks();
        let act = config.activation;
        let mut units: Vec<Unit> = Vec::new();
        // Appends a unit and returns the value it writes.
        let push =
            |units: &mut Vec<Unit>, op: Op, input: ValueId, in_shape: [usize; 3], out: [usize; 3], label: String| {
                units.push(Unit { op, input, in_shape, out_shape: out, label, tap: None });
                ValueId(units.len())
            };
        let conv_out = |[h, w, _]: [usize; 3], kernel: usize, stride: usize, c: usize| {
            [conv_padding(config.padding, h, kernel, stride).0, conv_padding(config.padding, w, kernel, stride).0, c]
        };
        let conv = |layer, kind, kernel, stride, act| Op::ConvBn {
            layer,
            kind,
            kernel,
            stride,
            act,
            gate: None,
            residual: None,
            drop_path: None,
        };

        let input = [h, w, 3];
        let stem = conv_out(input, 3, 2, config.stem_channels());
        let mut x =
            push(&mut units, conv(Layer::Stem, ConvKind::Stem, 3, 2, act), ValueId::INPUT, input, stem, "stem".into());
        units[x.0 - 1].tap = Some("stem".into());
        let mut shape = stem;
        for (i, b) in blocks.iter().enumerate() {
            let part = |part| Layer::Block { index: b.index, part };
            let name = |what: &str| format!("stage{}.{} {what}", b.stage, b.index_in_stage);
            let block_in = x;
            let wide = [shape[0], shape[1], b.expanded_ch];
            let expanded = if b.has_expand() {
                let op = conv(part(BlockPart::Expand), ConvKind::Pointwise, 1, 1, act);
                push(&mut units, op, x, shape, wide, name("expand"))
            } else {
                x
            };
            let dw_out = conv_out(wide, b.kernel, b.stride, b.expanded_ch);
            let op = conv(part(BlockPart::Depthwise), ConvKind::Depthwise, b.kernel, b.stride, act);
            let d = push(&mut units, op, expanded, wide, dw_out, name("depthwise"));
            let gate = b.has_se().then(|| {
                let op = Op::SqueezeExcite { block: b.index, hidden: b.se_ch, act };
                push(&mut units, op, d, dw_out, [1, 1, b.expanded_ch], name("se"))
            });
            let out = [dw_out[0], dw_out[1], b.out_ch];
            let drop_path =
                (b.residual && config.drop_connect > 0.0 && b.survival_prob < 1.0).then_some(b.survival_prob);
            let op = Op::ConvBn {
                layer: part(BlockPart::Project),
                kind: ConvKind::Pointwise,
                kernel: 1,
                stride: 1,
                act: Activation::None,
                gate,
                residual: b.residual.then_some(block_in),
                drop_path,
            };
            x = push(&mut units, op, d, dw_out, out, name("project"));
            if blocks.get(i + 1).is_none_or(|next| next.stage != b.stage) {
                units[x.0 - 1].tap = Some(format!("stage{}", b.stage));
            }
            shape = out;
        }
        let head = [shape[0], shape[1], config.head_channels()];
        x = push(&mut units, conv(Layer::Head, ConvKind::Pointwise, 1, 1, act), x, shape, head, "head".into());
        units[x.0 - 1].tap = Some("head".into());
        let pooled = [1, 1, head[2]];
        x = push(&mut units, Op::Pool, x, head, pooled, "pool".into());
        let op = Op::Classifier { dropout: config.dropout };
        push(&mut units, op, x, pooled, [1, 1, config.num_classes], "classifier".into());
        Network { units, blocks, input_size: (h, w) }
    }

    /// The unit that writes `v`, `None` for the input.
    pub fn producer(&self, v: ValueId) -> Option<&Unit> {
        v.producer().and_then(|i| self.units.get(i))
    }

    /// Per-image shape (h, w, c) of `v`.
    pub fn shape(&self, v: ValueId) -> [usize; 3] {
        match self.producer(v) {
            Some(u) => u.out_shape,
            None => [self.input_size.0, self.input_size.1, 3],
        }
    }

    /// The logits: the last unit's output.
    pub fn logits(&self) -> ValueId {
        ValueId(self.units.len())
    }

    /// The pooled features the classifier reads.
    pub fn pooled(&self) -> ValueId {
        self.units.last().map_or(ValueId::INPUT, |u| u.input)
    }

    /// For every value, the index of the last unit that reads it (`None` if no unit does).
    pub fn last_reads(&self) -> Vec<Option<usize>> {
        let mut last = vec![None; self.units.len() + 1];
        for (i, u) in self.units.iter().enumerate() {
            for v in u.reads() {
                last[v.0] = Some(i);
            }
        }
        last
    }

    /// The units that read `v`.
    pub fn readers(&self, v: ValueId) -> impl Iterator<Item = &Unit> + '_ {
        self.units.iter().filter(move |u| u.reads().any(|r| r == v))
    }

    /// The value a tap names.
    pub fn tap(&self, name: &str) -> Option<ValueId> {
        self.units.iter().position(|u| u.tap.as_deref() == Some(name)).map(|i| ValueId(i + 1))
    }

    /// Every tap name, in execution order.
    pub fn tap_names(&self) -> Vec<&str> {
        self.units.iter().filter_map(|u| u.tap.as_deref()).collect()
    }

    /// The multi-scale feature maps of a detection or segmentation backbone: the last stage output
    /// at each resolution (timm's `features_only` levels), from the 1/2 map to the 1/32 one.
    /// Reductions are counted from the strides, so they hold at any input size.
    pub fn feature_levels(&self) -> Vec<FeatureLevel> {
        let mut levels: Vec<FeatureLevel> = Vec::new();
        let mut reduction = 1;
        for u in &self.units {
            if let Op::ConvBn { stride, .. } = u.op {
                reduction *= stride;
            }
            let Some(tap) = u.tap.as_deref().filter(|t| t.starts_with("stage")) else { continue };
            let level = FeatureLevel { tap: tap.to_string(), channels: u.out_shape[2], reduction };
            match levels.last_mut() {
                Some(last) if last.reduction == reduction => *last = level,
                _ => levels.push(level),
            }
        }
        levels
    }

    /// Elements of the largest per-image activation.
    pub fn largest_activation(&self) -> usize {
        self.units.iter().map(|u| u.out_shape.iter().product::<usize>()).max().unwrap_or(0)
    }

    /// Height and width of the smallest map: the head's.
    pub fn head_size(&self) -> (usize, usize) {
        self.units
            .iter()
            .find(|u| u.tap.as_deref() == Some("head"))
            .map_or((0, 0), |u| (u.out_shape[0], u.out_shape[1]))
    }

    /// Every layer with parameters, in execution order, with whether it has a BatchNorm (conv
    /// units) or a bias (SE FCs and the classifier).
    pub fn learnable_layers(&self) -> Vec<(Layer, bool, bool)> {
        let mut out = Vec::new();
        for u in &self.units {
            match &u.op {
                Op::ConvBn { layer, .. } => out.push((*layer, true, false)),
                Op::SqueezeExcite { block, .. } => {
                    for part in [BlockPart::SeReduce, BlockPart::SeExpand] {
                        out.push((Layer::Block { index: *block, part }, false, true));
                    }
                }
                Op::Classifier { .. } => out.push((Layer::Classifier, false, true)),
                Op::Pool => {}
            }
        }
        out
    }
}
