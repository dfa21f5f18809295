//! Weights on the host in PyTorch layout, and the name maps of the three PyTorch ecosystems that
//! publish EfficientNet weights (torchvision, timm, lukemelas). Files on disk keep PyTorch names
//! and layouts; layout conversion for the GPU happens where the weights are uploaded.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use safetensors::tensor::{Dtype, Metadata, SafeTensors, TensorInfo, TensorView, View};
use serde::{Deserialize, Serialize};

use super::config::{BlockSpec, Config, Padding, Variant, B0_STAGES};
use crate::error::{Error, Result};

/// Whose naming (and training numerics) a weight file follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WeightFormat {
    /// `torchvision.models.efficientnet_*`: `features.0.0.weight`, ... PyTorch-trained (B5–B7 are
    /// ported TF weights, but torchvision runs them with symmetric padding too).
    Torchvision,
    /// timm `efficientnet_*` / `efficientnet_lite*`: `conv_stem.weight`, ... PyTorch-trained.
    Timm,
    /// timm `tf_efficientnet_*`: timm names, TF-trained (TF "SAME" padding, BN eps 1e-3). The
    /// names equal `Timm`'s, so autodetection cannot tell them apart: pass this one explicitly.
    TimmTf,
    /// lukemelas `efficientnet_pytorch`: `_conv_stem.weight`, ... TF-trained.
    Lukemelas,
}

impl WeightFormat {
    /// Every format: torchvision, timm, timm-tf, lukemelas.
    pub const ALL: [WeightFormat; 4] =
        [WeightFormat::Torchvision, WeightFormat::Timm, WeightFormat::TimmTf, WeightFormat::Lukemelas];

    /// The CLI spelling: `torchvision`, `timm`, `timm-tf`, `lukemelas`.
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::Torchvision => "torchvision",
            WeightFormat::Timm => "timm",
            WeightFormat::TimmTf => "timm-tf",
            WeightFormat::Lukemelas => "lukemelas",
        }
    }

    /// PyTorch-semantics BatchNorm momentum that matches how the weights were trained: 0.1 for
    /// PyTorch-trained weights, 0.01 (TensorFlow's decay 0.99) for TF-trained ones. Training from
    /// scratch follows the paper: 0.01.
    pub fn default_bn_momentum(self) -> f32 {
        match self {
            WeightFormat::Torchvision | WeightFormat::Timm => 0.1,
            WeightFormat::TimmTf | WeightFormat::Lukemelas => 0.01,
        }
    }

    /// Switches a config to the numerics the weights were trained with: TF-trained weights need
    /// TF "SAME" padding and BN eps 1e-3; PyTorch-trained ones keep the config as it is.
    pub fn adjust_config(&self, cfg: &mut Config) {
        match self {
            WeightFormat::TimmTf | WeightFormat::Lukemelas => {
                cfg.padding = Padding::TfSame;
                cfg.bn_eps = 1e-3;
            }
            WeightFormat::Torchvision | WeightFormat::Timm => {}
        }
    }

    /// Guesses the format from a file's keys by its stem conv name. timm-tf files read as `Timm`.
    pub fn detect<'a>(keys: impl IntoIterator<Item = &'a str>) -> Option<WeightFormat> {
        keys.into_iter().find_map(|k| match k {
            "features.0.0.weight" => Some(WeightFormat::Torchvision),
            "conv_stem.weight" => Some(WeightFormat::Timm),
            "_conv_stem.weight" => Some(WeightFormat::Lukemelas),
            _ => None,
        })
    }

    /// Whether two formats name tensors the same way (timm and timm-tf do).
    fn same_names(self, other: WeightFormat) -> bool {
        let family = |f: WeightFormat| {
            if f == WeightFormat::TimmTf {
                WeightFormat::Timm
            } else {
                f
            }
        };
        family(self) == family(other)
    }
}

impl FromStr for WeightFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<WeightFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "torchvision" | "tv" => Ok(WeightFormat::Torchvision),
            "timm" => Ok(WeightFormat::Timm),
            "timm-tf" | "timm_tf" | "tf" => Ok(WeightFormat::TimmTf),
            "lukemelas" | "efficientnet_pytorch" | "efficientnet-pytorch" => Ok(WeightFormat::Lukemelas),
            _ => Err(Error::invalid(format!(
                "unknown weight format {s:?}; expected torchvision, timm, timm-tf or lukemelas"
            ))),
        }
    }
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Prefix of the non-weight tensors of a training checkpoint (optimizer state, EMA).
pub const TRAIN_PREFIX: &str = "train.";

/// The conv (and its BN) or SE layer a block tensor belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlockPart {
    /// 1x1 expand conv + BN (absent when the expand ratio is 1).
    Expand,
    /// kxk depthwise conv + BN.
    Depthwise,
    /// SE 1x1 conv with bias, expanded → squeezed channels.
    SeReduce,
    /// SE 1x1 conv with bias, squeezed → expanded channels.
    SeExpand,
    /// 1x1 project conv + BN.
    Project,
}

/// Structural role of a tensor, independent of any naming scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Layer {
    /// 3x3 stride-2 conv + BN.
    Stem,
    /// A part of MBConv block `index` (the running index of `Config::blocks`).
    Block {
        /// Running index of the block over the whole network (`BlockSpec::index`).
        index: usize,
        /// Which conv or SE layer of the block.
        part: BlockPart,
    },
    /// 1x1 conv + BN before pooling.
    Head,
    /// Final linear layer.
    Classifier,
}

impl Layer {
    /// The name profiles and labels use, as the forward plan's: "stem", "stage2.0 expand",
    /// "stage2.0 se reduce", "head", "classifier". `blocks` is `Config::blocks()`.
    pub fn describe(&self, blocks: &[BlockSpec]) -> String {
        match self {
            Layer::Stem => "stem".into(),
            Layer::Head => "head".into(),
            Layer::Classifier => "classifier".into(),
            Layer::Block { index, part } => {
                let part = match part {
                    BlockPart::Expand => "expand",
                    BlockPart::Depthwise => "depthwise",
                    BlockPart::SeReduce => "se reduce",
                    BlockPart::SeExpand => "se expand",
                    BlockPart::Project => "project",
                };
                match blocks.get(*index) {
                    Some(b) => format!("stage{}.{} {part}", b.stage, b.index_in_stage),
                    None => format!("block {index} {part}"),
                }
            }
        }
    }
}

/// Which tensor of a layer. Conv layers own a `Weight` and the five BN entries; SE convs and the
/// classifier own `Weight` and `Bias`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Field {
    /// Conv kernel (OIHW, depthwise `[C,1,kh,kw]`) or linear weight `[out,in]`.
    Weight,
    /// Bias of an SE conv or of the classifier (no other conv has one).
    Bias,
    /// BN scale (gamma).
    BnWeight,
    /// BN shift (beta).
    BnBias,
    /// BN running mean of the conv's output channels (used at inference).
    RunningMean,
    /// BN running variance of the conv's output channels; `bn_eps` is added before the square root.
    RunningVar,
    /// PyTorch's BN step counter, an i64 scalar; optional when loading.
    NumBatchesTracked,
}

impl Field {
    /// Trained by the optimizer (not BN running statistics or the counter).
    pub fn is_learnable(self) -> bool {
        matches!(self, Field::Weight | Field::Bias | Field::BnWeight | Field::BnBias)
    }

    /// Belongs to a conv's BatchNorm: scale, shift, running statistics or the step counter.
    pub fn is_bn(self) -> bool {
        matches!(
            self,
            Field::BnWeight | Field::BnBias | Field::RunningMean | Field::RunningVar | Field::NumBatchesTracked
        )
    }

    /// Stored as I64 in PyTorch files.
    pub fn is_integer(self) -> bool {
        self == Field::NumBatchesTracked
    }

    fn suffix(self) -> &'static str {
        match self {
            Field::Weight | Field::BnWeight => "weight",
            Field::Bias | Field::BnBias => "bias",
            Field::RunningMean => "running_mean",
            Field::RunningVar => "running_var",
            Field::NumBatchesTracked => "num_batches_tracked",
        }
    }
}

/// One state_dict entry: its name in some format, its PyTorch shape and its role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TensorSpec {
    /// Full state_dict name in the spec's format, e.g. `features.0.0.weight`.
    pub key: String,
    /// PyTorch layout; `[]` for `num_batches_tracked`.
    pub shape: Vec<usize>,
    /// The layer the tensor belongs to.
    pub layer: Layer,
    /// Which of the layer's tensors it is.
    pub field: Field,
}

impl TensorSpec {
    /// Number of elements, the product of `shape` (1 for the 0-d counter).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A dense f32 tensor on the host, row-major in PyTorch layout.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Dimensions in PyTorch layout (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// The values, row-major; as many as the product of `shape`.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Checks that `data` holds exactly `shape.product()` values.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<HostTensor> {
        let numel: usize = shape.iter().product();
        if numel != data.len() {
            return Err(Error::invalid(format!("tensor of shape {shape:?} needs {numel} values, got {}", data.len())));
        }
        Ok(HostTensor { shape, data })
    }

    /// A tensor of `shape` with every element `value`.
    pub fn full(shape: Vec<usize>, value: f32) -> HostTensor {
        let numel = shape.iter().product();
        HostTensor { shape, data: vec![value; numel] }
    }

    /// A tensor of `shape` filled with zeros.
    pub fn zeros(shape: Vec<usize>) -> HostTensor {
        HostTensor::full(shape, 0.0)
    }

    /// Number of values (`data.len()`).
    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// Every tensor of the network, layer by layer, in the natural (state_dict) order; the same
/// sequence for every format, so formats map onto each other 1:1 by position.
fn roles(cfg: &Config, blocks: &[BlockSpec]) -> Vec<(Layer, Field, Vec<usize>)> {
    let mut out = Vec::new();
    let conv_bn = |out: &mut Vec<_>, layer: Layer, weight: Vec<usize>| {
        let c = weight[0];
        out.push((layer, Field::Weight, weight));
        for field in [Field::BnWeight, Field::BnBias, Field::RunningMean, Field::RunningVar] {
            out.push((layer, field, vec![c]));
        }
        out.push((layer, Field::NumBatchesTracked, vec![]));
    };
    let stem = cfg.stem_channels();
    conv_bn(&mut out, Layer::Stem, vec![stem, 3, 3, 3]);
    for b in blocks {
        let part = |part| Layer::Block { index: b.index, part };
        let (i, e, o, k, s) = (b.in_ch, b.expanded_ch, b.out_ch, b.kernel, b.se_ch);
        if b.has_expand() {
            conv_bn(&mut out, part(BlockPart::Expand), vec![e, i, 1, 1]);
        }
        conv_bn(&mut out, part(BlockPart::Depthwise), vec![e, 1, k, k]);
        if b.has_se() {
            out.push((part(BlockPart::SeReduce), Field::Weight, vec![s, e, 1, 1]));
            out.push((part(BlockPart::SeReduce), Field::Bias, vec![s]));
            out.push((part(BlockPart::SeExpand), Field::Weight, vec![e, s, 1, 1]));
            out.push((part(BlockPart::SeExpand), Field::Bias, vec![e]));
        }
        conv_bn(&mut out, part(BlockPart::Project), vec![o, e, 1, 1]);
    }
    let last = blocks.last().map_or(stem, |b| b.out_ch);
    let head = cfg.head_channels();
    conv_bn(&mut out, Layer::Head, vec![head, last, 1, 1]);
    out.push((Layer::Classifier, Field::Weight, vec![cfg.num_classes, head]));
    out.push((Layer::Classifier, Field::Bias, vec![cfg.num_classes]));
    out
}

/// The module path (without the field suffix) of a tensor in `format`'s naming.
fn module_name(format: WeightFormat, layer: Layer, field: Field, blocks: &[BlockSpec]) -> String {
    let bn = field.is_bn();
    match format {
        WeightFormat::Torchvision => {
            let conv_bn = |prefix: String| format!("{prefix}.{}", if bn { 1 } else { 0 });
            match layer {
                Layer::Stem => conv_bn("features.0".into()),
                Layer::Head => conv_bn(format!("features.{}", B0_STAGES.len() + 1)),
                Layer::Classifier => "classifier.1".into(),
                Layer::Block { index, part } => {
                    let Some(b) = blocks.get(index) else {
                        return format!("features.?.{index}");
                    };
                    // torchvision numbers the block's submodules consecutively, so absent expand
                    // or SE modules shift the later indices down.
                    let expand = usize::from(b.has_expand());
                    let depthwise = expand;
                    let se = depthwise + 1;
                    let project = se + usize::from(b.has_se());
                    let base = format!("features.{}.{}.block", b.stage, b.index_in_stage);
                    match part {
                        BlockPart::Expand => conv_bn(format!("{base}.0")),
                        BlockPart::Depthwise => conv_bn(format!("{base}.{depthwise}")),
                        BlockPart::SeReduce => format!("{base}.{se}.fc1"),
                        BlockPart::SeExpand => format!("{base}.{se}.fc2"),
                        BlockPart::Project => conv_bn(format!("{base}.{project}")),
                    }
                }
            }
        }
        WeightFormat::Timm | WeightFormat::TimmTf => match layer {
            Layer::Stem => (if bn { "bn1" } else { "conv_stem" }).into(),
            Layer::Head => (if bn { "bn2" } else { "conv_head" }).into(),
            Layer::Classifier => "classifier".into(),
            Layer::Block { index, part } => {
                let Some(b) = blocks.get(index) else {
                    return format!("blocks.?.{index}");
                };
                let base = format!("blocks.{}.{}", b.stage - 1, b.index_in_stage);
                // InvertedResidual (expand) vs DepthwiseSeparableConv (no expand) name their
                // convs and BNs differently.
                let name = match (b.has_expand(), part, bn) {
                    (_, BlockPart::SeReduce, _) => "se.conv_reduce",
                    (_, BlockPart::SeExpand, _) => "se.conv_expand",
                    (true, BlockPart::Expand, false) => "conv_pw",
                    (true, BlockPart::Expand, true) => "bn1",
                    (true, BlockPart::Depthwise, false) => "conv_dw",
                    (true, BlockPart::Depthwise, true) => "bn2",
                    (true, BlockPart::Project, false) => "conv_pwl",
                    (true, BlockPart::Project, true) => "bn3",
                    (false, BlockPart::Depthwise, false) => "conv_dw",
                    (false, BlockPart::Depthwise, true) => "bn1",
                    (false, BlockPart::Project, false) => "conv_pw",
                    (false, BlockPart::Project, true) => "bn2",
                    (false, BlockPart::Expand, _) => "expand?",
                };
                format!("{base}.{name}")
            }
        },
        WeightFormat::Lukemelas => match layer {
            Layer::Stem => (if bn { "_bn0" } else { "_conv_stem" }).into(),
            Layer::Head => (if bn { "_bn1" } else { "_conv_head" }).into(),
            Layer::Classifier => "_fc".into(),
            Layer::Block { index, part } => {
                let name = match (part, bn) {
                    (BlockPart::Expand, false) => "_expand_conv",
                    (BlockPart::Expand, true) => "_bn0",
                    (BlockPart::Depthwise, false) => "_depthwise_conv",
                    (BlockPart::Depthwise, true) => "_bn1",
                    (BlockPart::SeReduce, _) => "_se_reduce",
                    (BlockPart::SeExpand, _) => "_se_expand",
                    (BlockPart::Project, false) => "_project_conv",
                    (BlockPart::Project, true) => "_bn2",
                };
                format!("_blocks.{index}.{name}")
            }
        },
    }
}

impl Config {
    /// Every state_dict entry of this network in `format`'s names and natural order, with
    /// PyTorch shapes. The order is the same for every format (entry i of one format is entry i of
    /// another), and for torchvision B0 it is exactly torchvision's `state_dict()`.
    pub fn state_dict_spec(&self, format: WeightFormat) -> Vec<TensorSpec> {
        let blocks = self.blocks();
        roles(self, &blocks)
            .into_iter()
            .map(|(layer, field, shape)| TensorSpec {
                key: format!("{}.{}", module_name(format, layer, field, &blocks), field.suffix()),
                shape,
                layer,
                field,
            })
            .collect()
    }
}

/// The metadata key of the class names a weights file carries: a JSON list, one name per class.
pub const CLASS_NAMES_KEY: &str = "effnet.class_names";

/// `metadata` with `names` under `CLASS_NAMES_KEY`, for `Weights::save`: PyTorch ignores metadata,
/// so the file still loads there.
pub fn metadata_with_class_names(mut metadata: HashMap<String, String>, names: &[String]) -> HashMap<String, String> {
    metadata.insert(CLASS_NAMES_KEY.to_string(), serde_json::to_string(names).unwrap_or_default());
    metadata
}

/// What `Weights::load_backbone` did with a classifier of another class count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadReset {
    /// Classes of the file's classifier.
    pub file_classes: usize,
    /// Classes of the re-initialised one.
    pub classes: usize,
}

/// A safetensors file's JSON header, read without the tensors (at most 100 MiB of it).
fn header_json(path: &Path) -> Option<serde_json::Value> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let mut header = vec![0u8; usize::try_from(u64::from_le_bytes(len)).ok()?.min(100 << 20)];
    f.read_exact(&mut header).ok()?;
    serde_json::from_slice(&header).ok()
}

/// Weights a network cannot compute with are refused where they load, naming the tensor: NaN or
/// infinite values anywhere, and negative running variances (BatchNorm would take their square
/// root). Otherwise they surface, if at all, as NaN logits far from their cause.
fn check_values(path: &Path, key: &str, field: Field, data: &[f32]) -> Result<()> {
    if let Some((i, v)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::file(
            path,
            format!("tensor {key:?} holds {v} at index {i}: weights must be finite numbers"),
        ));
    }
    if field == Field::RunningVar {
        if let Some((i, v)) = data.iter().enumerate().find(|(_, &v)| v < 0.0) {
            return Err(Error::file(
                path,
                format!("tensor {key:?} (a BatchNorm running variance) holds {v} at index {i}: variances cannot be negative"),
            ));
        }
    }
    Ok(())
}

/// splitmix64: tiny, fast, statistically fine for weight init, and the same on every platform.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal by Box-Muller (one value per call; simplicity over speed).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln stays finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// All tensors of a network, stored under torchvision names (the canonical ones) in state_dict
/// order, whatever format they were loaded from.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    specs: Vec<TensorSpec>,
    tensors: Vec<HostTensor>,
    by_key: HashMap<String, usize>,
    by_role: HashMap<(Layer, Field), usize>,
}

/// Up to `limit` items joined with ", " and "(+N more)".
fn list_some(items: &[String], limit: usize) -> String {
    let mut s = items.iter().take(limit).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > limit {
        s.push_str(&format!(", ... (+{} more)", items.len() - limit));
    }
    s
}

/// The file's name → shape map must equal the spec (num_batches_tracked optional).
fn spec_matches(spec: &[TensorSpec], file: &HashMap<String, Vec<usize>>) -> bool {
    let mut required = 0;
    for t in spec {
        match file.get(&t.key) {
            Some(shape) if *shape == t.shape => {}
            Some(_) => return false,
            None if t.field == Field::NumBatchesTracked => continue,
            None => return false,
        }
        required += 1;
    }
    required == file.len()
}

/// Reads one tensor as f32, converting F16/BF16/F64 (and integer counters) on the way.
fn read_values(path: &Path, name: &str, view: &TensorView<'_>, integer_ok: bool) -> Result<Vec<f32>> {
    let bytes = view.data();
    let numel: usize = view.shape().iter().product();
    let width = match view.dtype() {
        Dtype::F32 | Dtype::I32 => 4,
        Dtype::F16 | Dtype::BF16 => 2,
        Dtype::F64 | Dtype::I64 => 8,
        _ => 0,
    };
    let dtype_error =
        || Error::DType { path: path.to_path_buf(), name: name.to_string(), dtype: view.dtype().to_string() };
    let is_int = matches!(view.dtype(), Dtype::I32 | Dtype::I64);
    if width == 0 || (is_int && !integer_ok) {
        return Err(dtype_error());
    }
    if bytes.len() != numel * width {
        let message = format!("tensor {name:?} has {} bytes, expected {}", bytes.len(), numel * width);
        return Err(Error::safetensors(path, message));
    }
    // `chunks_exact` yields slices of exactly `width` bytes, so the array conversions cannot fail;
    // `unwrap_or` keeps that proof out of panic paths anyway.
    let values = match view.dtype() {
        Dtype::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4]))).collect(),
        Dtype::F16 => {
            bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes(c.try_into().unwrap_or([0; 2])).to_f32()).collect()
        }
        Dtype::BF16 => {
            bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes(c.try_into().unwrap_or([0; 2])).to_f32()).collect()
        }
        Dtype::F64 => {
            bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect()
        }
        Dtype::I32 => {
            bytes.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as f32).collect()
        }
        Dtype::I64 => {
            bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect()
        }
        _ => return Err(dtype_error()),
    };
    Ok(values)
}

/// A tensor ready for `write_safetensors`.
struct OutTensor<'a> {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Cow<'a, [u8]>,
}

impl View for OutTensor<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn f32_bytes(values: &[f32]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(values))
    } else {
        Cow::Owned(values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
}

fn model_label(cfg: &Config, format: WeightFormat) -> String {
    format!("{} with {} classes ({} names)", cfg.name, cfg.num_classes, format)
}

/// Departures from the paper's initialisation for short training runs from scratch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct InitOptions {
    /// Zero the BatchNorm scale after the project conv of every block with an identity shortcut,
    /// so each such block starts as the identity (Goyal et al., 2017).
    pub zero_init_last: bool,
    /// Classifier weights N(0, 0.01) instead of U(±1/sqrt(classes)): the paper's range suits
    /// 1000 classes, while with 10 it starts with logits of standard deviation ~6.
    pub small_classifier: bool,
}

impl Weights {
    fn from_parts(specs: Vec<TensorSpec>, tensors: Vec<HostTensor>) -> Weights {
        let by_key = specs.iter().enumerate().map(|(i, s)| (s.key.clone(), i)).collect();
        let by_role = specs.iter().enumerate().map(|(i, s)| ((s.layer, s.field), i)).collect();
        Weights { specs, tensors, by_key, by_role }
    }

    /// All-zero tensors of `config`'s shapes: a container to read GPU tensors back into.
    pub fn zeros(config: &Config) -> Weights {
        let specs = config.state_dict_spec(WeightFormat::Torchvision);
        let tensors = specs.iter().map(|s| HostTensor::zeros(s.shape.clone())).collect();
        Weights::from_parts(specs, tensors)
    }

    /// TF's initialisation, deterministic from `seed`: conv kernels N(0, sqrt(2 / fan_out)) with
    /// `fan_out = kh·kw·out_channels / groups` (kh·kw for depthwise, as TF's depth-multiplier-1
    /// kernels and timm compute it; torchvision's kaiming uses kh·kw·C there instead), linear
    /// U(±1/sqrt(out)), biases 0, BN weight 1, bias 0, running mean 0, var 1.
    pub fn init_random(config: &Config, seed: u64) -> Weights {
        Self::init_random_with(config, seed, InitOptions::default())
    }

    /// [`Weights::init_random`] with the changes of `options`.
    pub fn init_random_with(config: &Config, seed: u64, options: InitOptions) -> Weights {
        let specs = config.state_dict_spec(WeightFormat::Torchvision);
        let residual: Vec<bool> = config.blocks().iter().map(|b| b.residual).collect();
        let mut rng = SplitMix64(seed);
        let tensors = specs
            .iter()
            .map(|s| {
                let shape = s.shape.clone();
                match (s.layer, s.field) {
                    (Layer::Classifier, Field::Weight) if options.small_classifier => {
                        let data = (0..s.numel()).map(|_| (rng.normal() * 0.01) as f32).collect();
                        HostTensor { shape, data }
                    }
                    (Layer::Classifier, Field::Weight) => {
                        let range = 1.0 / (shape[0].max(1) as f64).sqrt();
                        let data = (0..s.numel()).map(|_| ((rng.uniform() * 2.0 - 1.0) * range) as f32).collect();
                        HostTensor { shape, data }
                    }
                    (layer, Field::Weight) => {
                        let depthwise = matches!(layer, Layer::Block { part: BlockPart::Depthwise, .. });
                        let (out, kh, kw) = (shape[0], shape[2], shape[3]);
                        let fan_out = if depthwise { kh * kw } else { kh * kw * out };
                        let std = (2.0 / fan_out.max(1) as f64).sqrt();
                        let data = (0..s.numel()).map(|_| (rng.normal() * std) as f32).collect();
                        HostTensor { shape, data }
                    }
                    (Layer::Block { index, part: BlockPart::Project }, Field::BnWeight)
                        if options.zero_init_last && residual.get(index).copied().unwrap_or(false) =>
                    {
                        HostTensor::zeros(shape)
                    }
                    (_, Field::BnWeight | Field::RunningVar) => HostTensor::full(shape, 1.0),
                    _ => HostTensor::zeros(shape),
                }
            })
            .collect();
        Weights::from_parts(specs, tensors)
    }

    /// Loads a safetensors file (F32, F16, BF16 or F64; counters I64/I32) for `config`, in the
    /// given naming `format` or the one detected from the keys. Returns the weights under
    /// torchvision names and the format used; apply `format.adjust_config` to the config that
    /// runs them (TF-trained weights need TF padding and eps 1e-3). Mismatches list what is
    /// missing, unexpected or misshapen, and name the variant the file fits when one does.
    pub fn load(
        path: impl AsRef<Path>,
        config: &Config,
        format: Option<WeightFormat>,
    ) -> Result<(Weights, WeightFormat)> {
        let path = path.as_ref();
        let buffer = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = SafeTensors::deserialize(&buffer).map_err(|e| Error::safetensors(path, e))?;
        // Training checkpoints keep optimizer state under `train.`: not weights.
        let mut names: Vec<String> =
            st.names().into_iter().filter(|n| !n.starts_with(TRAIN_PREFIX)).map(str::to_string).collect();
        names.sort();

        let format = match format {
            Some(f) => f,
            None => WeightFormat::detect(names.iter().map(String::as_str)).ok_or_else(|| Error::WeightsMismatch {
                path: path.to_path_buf(),
                model: config.name.clone(),
                details: format!(
                    "cannot tell the naming scheme: no features.0.0.weight (torchvision), conv_stem.weight (timm) \
                     or _conv_stem.weight (lukemelas) among its {} tensors; first keys: {}",
                    names.len(),
                    list_some(&names, 5)
                ),
            })?,
        };

        let spec = config.state_dict_spec(format);
        let canonical = config.state_dict_spec(WeightFormat::Torchvision);
        let mut file_shapes: HashMap<String, Vec<usize>> = HashMap::with_capacity(names.len());
        for (name, view) in st.iter().filter(|(n, _)| !n.starts_with(TRAIN_PREFIX)) {
            file_shapes.insert(name.to_string(), view.shape().to_vec());
        }
        Self::check_names_and_shapes(path, config, format, &spec, &file_shapes)?;

        let mut tensors = Vec::with_capacity(spec.len());
        for t in &spec {
            let integer = t.field.is_integer();
            let data = match st.tensor(&t.key) {
                Ok(view) => read_values(path, &t.key, &view, integer)?,
                // Only num_batches_tracked may be absent here (checked above): start it at 0.
                Err(_) => vec![0.0; t.numel()],
            };
            check_values(path, &t.key, t.field, &data)?;
            tensors.push(HostTensor { shape: t.shape.clone(), data });
        }
        Ok((Weights::from_parts(canonical, tensors), format))
    }

    /// Loads `path` to fine-tune `config`: the backbone from the file and, where the file's
    /// classifier has another number of classes, the classifier of `head` (a fresh initialisation
    /// for `config`) instead; `Some` says so, with both class counts. Anything else that does not
    /// fit (another variant, another format) is the error `load` gives.
    pub fn load_backbone(
        path: impl AsRef<Path>,
        config: &Config,
        format: Option<WeightFormat>,
        head: &Weights,
    ) -> Result<(Weights, WeightFormat, Option<HeadReset>)> {
        let path = path.as_ref();
        let file_classes = match Self::classes_in_file(path) {
            Some(c) if c != config.num_classes => c,
            _ => return Self::load(path, config, format).map(|(w, f)| (w, f, None)),
        };
        let mut file_config = config.clone();
        file_config.num_classes = file_classes;
        file_config.validate().map_err(|e| Error::file(path, format!("its classifier does not fit a network: {e}")))?;
        let (loaded, format) = Self::load(path, &file_config, format)?;
        let mut out = head.clone();
        for (spec, t) in loaded.iter().filter(|(spec, _)| spec.layer != Layer::Classifier) {
            out.set(&spec.key, t.clone())?;
        }
        Ok((out, format, Some(HeadReset { file_classes, classes: config.num_classes })))
    }

    /// The class count of a weights file's classifier, read from its header alone (any naming
    /// scheme); `None` where the file has no recognisable classifier or cannot be read.
    pub fn classes_in_file(path: impl AsRef<Path>) -> Option<usize> {
        let json = header_json(path.as_ref())?;
        ["classifier.1.bias", "classifier.bias", "_fc.bias"]
            .iter()
            .find_map(|k| json.get(*k)?.get("shape")?.get(0)?.as_u64().and_then(|c| usize::try_from(c).ok()))
    }

    /// The class names a weights file carries in its metadata (`effnet.class_names`, a JSON list,
    /// which `save` writes from `metadata_with_class_names`); `None` where it carries none.
    pub fn class_names_in_file(path: impl AsRef<Path>) -> Result<Option<Vec<String>>> {
        let path = path.as_ref();
        let Some(json) = header_json(path) else { return Ok(None) };
        let Some(names) = json.get("__metadata__").and_then(|m| m.get(CLASS_NAMES_KEY)) else { return Ok(None) };
        let names = names.as_str().ok_or_else(|| Error::file(path, format!("{CLASS_NAMES_KEY} is not a string")))?;
        let names: Vec<String> = serde_json::from_str(names)
            .map_err(|e| Error::file(path, format!("{CLASS_NAMES_KEY} is not a JSON list of names: {e}")))?;
        Ok(Some(names))
    }

    /// Compares a file's names and shapes to the spec; on any difference, a `WeightsMismatch`
    /// listing them plus the flag that would make the file fit, if one would.
    fn check_names_and_shapes(
        path: &Path,
        config: &Config,
        format: WeightFormat,
        spec: &[TensorSpec],
        file: &HashMap<String, Vec<usize>>,
    ) -> Result<()> {
        let expected: HashSet<&str> = spec.iter().map(|t| t.key.as_str()).collect();
        let missing: Vec<String> = spec
            .iter()
            .filter(|t| t.field != Field::NumBatchesTracked && !file.contains_key(&t.key))
            .map(|t| t.key.clone())
            .collect();
        let mut unexpected: Vec<String> = file.keys().filter(|k| !expected.contains(k.as_str())).cloned().collect();
        unexpected.sort();
        let wrong_shape: Vec<String> = spec
            .iter()
            .filter_map(|t| {
                let got = file.get(&t.key)?;
                (*got != t.shape).then(|| format!("{} expected {:?}, file has {:?}", t.key, t.shape, got))
            })
            .collect();
        if missing.is_empty() && unexpected.is_empty() && wrong_shape.is_empty() {
            return Ok(());
        }

        let mut parts = Vec::new();
        if !wrong_shape.is_empty() {
            parts.push(format!("{} tensors with the wrong shape: {}", wrong_shape.len(), list_some(&wrong_shape, 10)));
        }
        if !missing.is_empty() {
            parts.push(format!("{} missing: {}", missing.len(), list_some(&missing, 10)));
        }
        if !unexpected.is_empty() {
            parts.push(format!("{} unexpected: {}", unexpected.len(), list_some(&unexpected, 10)));
        }
        let mut details = parts.join("; ");
        if let Some(hint) = Self::suggest(config, format, file) {
            details.push_str(". ");
            details.push_str(&hint);
        }
        Err(Error::WeightsMismatch { path: path.to_path_buf(), model: model_label(config, format), details })
    }

    /// The command-line change that makes the file fit, found by trying every variant with the
    /// file's classifier size, or a hint that the names belong to another format.
    fn suggest(config: &Config, format: WeightFormat, file: &HashMap<String, Vec<usize>>) -> Option<String> {
        if let Some(detected) = WeightFormat::detect(file.keys().map(String::as_str)) {
            if !detected.same_names(format) {
                return Some(format!("the names look like {detected}'s: pass --weights-format {detected}"));
            }
        }
        let bias_key = config
            .state_dict_spec(format)
            .into_iter()
            .find(|t| t.layer == Layer::Classifier && t.field == Field::Bias)
            .map(|t| t.key)?;
        let classes = match file.get(&bias_key).map(Vec::as_slice) {
            Some([n]) if *n > 0 => *n,
            _ => config.num_classes,
        };
        let current = config.variant();
        for v in Variant::ALL {
            let candidate = Config::new(v, classes);
            if !spec_matches(&candidate.state_dict_spec(format), file) {
                continue;
            }
            return Some(if current == Some(v) {
                format!("the classifier has {classes} classes: pass --classes {classes}")
            } else if classes == config.num_classes {
                format!("these weights look like efficientnet {v} with {classes} classes: pass --model {v}")
            } else {
                format!(
                    "these weights look like efficientnet {v} with {classes} classes: pass --model {v} --classes {classes}"
                )
            });
        }
        None
    }

    /// Writes the weights as safetensors with torchvision names: F32 tensors, num_batches_tracked
    /// as 0-d I64. Written through [`crate::fsio::write_atomic_with`]: streamed into a temporary
    /// beside the file, synced and renamed over it, so a crash or a failed write leaves the old
    /// file intact (a link is followed, a device such as `/dev/null` written through).
    /// `metadata` goes into the header (plus `format: pt` unless given, which PyTorch tooling
    /// expects).
    pub fn save(&self, path: impl AsRef<Path>, config: &Config, metadata: HashMap<String, String>) -> Result<()> {
        self.save_with(path, config, metadata, &[])
    }

    /// `save` plus `extra` f32 tensors (name, shape, values) — a training checkpoint's state under
    /// `train.`, which `load` skips. Each name must start with `train.` and appear once, and each
    /// shape must hold exactly its values.
    pub fn save_with(
        &self,
        path: impl AsRef<Path>,
        config: &Config,
        mut metadata: HashMap<String, String>,
        extra: &[(String, Vec<usize>, Vec<f32>)],
    ) -> Result<()> {
        let path = path.as_ref();
        let expected = config.state_dict_spec(WeightFormat::Torchvision);
        let same = expected.len() == self.specs.len()
            && expected.iter().zip(&self.specs).all(|(a, b)| a.key == b.key && a.shape == b.shape);
        if !same {
            return Err(Error::WeightsMismatch {
                path: path.to_path_buf(),
                model: model_label(config, WeightFormat::Torchvision),
                details: format!(
                    "these weights were made for another configuration ({} tensors, {} parameters; the config \
                     expects {} tensors, {} parameters)",
                    self.specs.len(),
                    self.param_count(),
                    expected.len(),
                    config.param_count()
                ),
            });
        }
        let mut names = HashSet::new();
        for (name, shape, data) in extra {
            if !name.starts_with(TRAIN_PREFIX) || !names.insert(name.as_str()) {
                return Err(Error::invalid(format!(
                    "{}: extra tensor {name:?} must be named {TRAIN_PREFIX}... and appear once",
                    path.display()
                )));
            }
            let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            if numel != Some(data.len()) {
                return Err(Error::Shape { what: name.clone(), expected: shape.clone(), got: vec![data.len()] });
            }
        }
        metadata.entry("format".to_string()).or_insert_with(|| "pt".to_string());

        let counters: Vec<[u8; 8]> =
            self.iter().map(|(s, t)| if s.field.is_integer() { counter_bytes(t) } else { [0; 8] }).collect();
        let mut views: Vec<(&str, OutTensor<'_>)> = self
            .iter()
            .zip(&counters)
            .map(|((s, t), counter)| {
                let view = if s.field.is_integer() {
                    OutTensor { dtype: Dtype::I64, shape: vec![], data: Cow::Borrowed(&counter[..]) }
                } else {
                    OutTensor { dtype: Dtype::F32, shape: t.shape.clone(), data: f32_bytes(&t.data) }
                };
                (s.key.as_str(), view)
            })
            .collect();
        for (name, shape, data) in extra {
            views.push((name.as_str(), OutTensor { dtype: Dtype::F32, shape: shape.clone(), data: f32_bytes(data) }));
        }

        crate::fsio::write_atomic_with(path, |w| write_safetensors(w, views, metadata, path))
    }

    /// Tensor by role, e.g. `get(Layer::Stem, Field::Weight)`.
    pub fn get(&self, layer: Layer, field: Field) -> Option<&HostTensor> {
        self.by_role.get(&(layer, field)).map(|&i| &self.tensors[i])
    }

    /// Tensor by role, mutably; nothing checks its shape afterwards (`set` replaces with a check).
    pub fn get_mut(&mut self, layer: Layer, field: Field) -> Option<&mut HostTensor> {
        self.by_role.get(&(layer, field)).map(|&i| &mut self.tensors[i])
    }

    /// Tensor by torchvision key, e.g. `"features.0.0.weight"`.
    pub fn get_by_key(&self, key: &str) -> Option<&HostTensor> {
        self.by_key.get(key).map(|&i| &self.tensors[i])
    }

    /// Replaces a tensor (by torchvision key), checking that the shape stays the same.
    pub fn set(&mut self, key: &str, tensor: HostTensor) -> Result<()> {
        let &i = self.by_key.get(key).ok_or_else(|| Error::invalid(format!("no weight named {key:?}")))?;
        let numel: usize = tensor.shape.iter().product();
        if tensor.shape != self.specs[i].shape || numel != tensor.data.len() {
            return Err(Error::Shape {
                what: key.to_string(),
                expected: self.specs[i].shape.clone(),
                got: tensor.shape,
            });
        }
        self.tensors[i] = tensor;
        Ok(())
    }

    /// `(spec with torchvision key, tensor)` in state_dict order.
    pub fn iter(&self) -> impl Iterator<Item = (&TensorSpec, &HostTensor)> {
        self.specs.iter().zip(&self.tensors)
    }

    /// Every tensor's spec (torchvision key, PyTorch shape, role) in state_dict order.
    pub fn specs(&self) -> &[TensorSpec] {
        &self.specs
    }

    /// Number of tensors (state_dict entries).
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Learnable parameters (equals `Config::param_count` of the config they were made for).
    pub fn param_count(&self) -> usize {
        self.iter().filter(|(s, _)| s.field.is_learnable()).map(|(_, t)| t.numel()).sum()
    }
}

/// A counter kept as f32 (exact up to 2^24 steps) back to the I64 PyTorch stores.
fn counter_bytes(t: &HostTensor) -> [u8; 8] {
    let v = t.data.first().copied().unwrap_or(0.0);
    let v = if v.is_finite() { v.round() as i64 } else { 0 };
    v.to_le_bytes()
}

/// Streams `views` as a safetensors file into `w`, byte for byte what `safetensors::serialize`
/// makes (tensors sorted by dtype alignment, then name; header padded to 8 bytes), without
/// holding a second copy of a checkpoint that may be gigabytes.
fn write_safetensors(
    w: &mut dyn std::io::Write,
    mut views: Vec<(&str, OutTensor<'_>)>,
    metadata: HashMap<String, String>,
    path: &Path,
) -> Result<()> {
    views.sort_by(|(a_name, a), (b_name, b)| b.dtype.cmp(&a.dtype).then(a_name.cmp(b_name)));
    let mut offset = 0;
    let mut infos = Vec::with_capacity(views.len());
    for (name, t) in &views {
        let len = t.data.len();
        let info = TensorInfo { dtype: t.dtype, shape: t.shape.clone(), data_offsets: (offset, offset + len) };
        infos.push((name.to_string(), info));
        offset += len;
    }
    // The metadata is a HashMap, whose order differs from process to process. safetensors writes
    // it first, as serde writes the map: that text is swapped for the same entries sorted, so the
    // same weights make the same bytes.
    fn json(path: &Path, v: &impl serde::Serialize) -> Result<String> {
        serde_json::to_string(v).map_err(|e| Error::safetensors(path, e))
    }
    let unsorted = json(path, &metadata)?;
    let sorted = json(path, &metadata.iter().collect::<std::collections::BTreeMap<_, _>>())?;
    let header = Metadata::new(Some(metadata), infos).map_err(|e| Error::safetensors(path, e))?;
    let header = json(path, &header)?;
    let prefix = format!("{{\"__metadata__\":{unsorted}");
    let mut header = match header.strip_prefix(&prefix) {
        Some(rest) => format!("{{\"__metadata__\":{sorted}{rest}").into_bytes(),
        None => header.into_bytes(),
    };
    header.resize(header.len().next_multiple_of(8), b' ');
    let io = |e| Error::io(path, e);
    w.write_all(&(header.len() as u64).to_le_bytes()).map_err(io)?;
    w.write_all(&header).map_err(io)?;
    for (_, t) in &views {
        w.write_all(&t.data).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_normal_has_unit_variance() {
        let mut rng = SplitMix64(7);
        let n = 20_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }

    #[test]
    fn timm_names_of_expand_one_block_follow_depthwise_separable() {
        let spec = Config::b0(1000).state_dict_spec(WeightFormat::Timm);
        let keys: Vec<&str> = spec.iter().map(|t| t.key.as_str()).collect();
        assert!(keys.contains(&"blocks.0.0.conv_dw.weight"));
        assert!(keys.contains(&"blocks.0.0.bn1.running_var"));
        assert!(keys.contains(&"blocks.0.0.conv_pw.weight"));
        assert!(keys.contains(&"blocks.1.0.conv_pwl.weight"));
        assert!(keys.contains(&"blocks.1.0.bn3.weight"));
        assert!(!keys.iter().any(|k| k.contains('?')));
    }
}
