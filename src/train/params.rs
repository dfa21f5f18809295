//! Trainable parameters on the GPU: every learnable tensor is a range of ONE flat buffer (and its
//! gradient the same range of one flat gradient buffer), in the layout the kernels read, so an
//! optimizer updates all of them in a single dispatch per storage binding (one for B0-B5; B6 and
//! B7 exceed a 128 MiB binding, lavapipe's and wgpu's default limit, and take two or three).
//! BatchNorm running statistics live in a third flat buffer. PyTorch layouts and names exist only
//! at the boundary (`from_weights`, `to_weights`).

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuBuffer};
use crate::model::layout::{hwio_to_oihw, oihw_to_hwio};
use crate::model::{Config, Field, HostTensor, Layer, Network, Weights};

/// How a parameter is laid out on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// OIHW conv weight stored HWIO (kh, kw, cin/groups, cout); depthwise `[C,1,kh,kw]` → (kh, kw, C);
    /// 1x1 convs and linear weights [out, in(,1,1)] → (in, out): the GEMM's B operand.
    Weight,
    /// Bias of an SE conv or the classifier.
    Bias,
    /// BatchNorm gamma then beta (2C).
    GammaBeta,
}

/// One parameter's place in the flat buffers.
#[derive(Clone, Debug)]
pub struct ParamEntry {
    /// The network layer the parameter belongs to.
    pub layer: Layer,
    /// Which of the layer's parameters it is, and so its GPU layout.
    pub kind: ParamKind,
    /// PyTorch shape of the weight (or `[C]` for BN / bias).
    pub torch_shape: Vec<usize>,
    /// Element offset in the flat buffers (aligned for binding).
    pub offset: usize,
    /// Number of values (2C for `GammaBeta`), without the alignment padding that follows.
    pub len: usize,
    /// Weight decay applies (conv and linear weights); BN parameters and biases are exempt.
    pub decay: bool,
}

/// Where one BN layer's running statistics are (mean then var, 2C, from `offset`).
#[derive(Clone, Debug)]
pub struct RunningEntry {
    /// The conv + BN layer whose statistics these are.
    pub layer: Layer,
    /// Element offset of the running mean in the flat running-statistics buffer; the variance follows at `offset + c`.
    pub offset: usize,
    /// Channels: the length of the mean and of the variance.
    pub c: usize,
}

/// A range of the trainable parameters the optimizer updates with one learning rate: its weights
/// under decay first (`start..start + decay_len`), then its biases and BN gamma/beta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamGroup {
    /// First element in `params` (and `grads`).
    pub start: usize,
    /// Elements, padding included.
    pub len: usize,
    /// Elements from `start` under weight decay.
    pub decay_len: usize,
}

/// A network's learnable tensors in one flat buffer, the gradients of the trainable ones in a
/// second, BN running statistics in a third. The layout is the backbone's trainable parameters,
/// the classifier's, then the frozen ones (none unless the backbone is frozen): frozen parameters
/// have no gradient and no optimizer state.
pub struct ParamStore {
    /// Where each parameter lies in `params` (and, if it trains, in `grads`).
    pub entries: Vec<ParamEntry>,
    /// Where each BN layer's running statistics lie in `running`, in network order.
    pub running_entries: Vec<RunningEntry>,
    /// All parameters, in the layout above.
    pub params: GpuBuffer,
    /// Gradients of the trainable parameters: `params`' layout up to `trainable_len`.
    pub grads: GpuBuffer,
    /// BN running statistics: mean then var per BN layer, each layer's pair padded to the alignment.
    pub running: GpuBuffer,
    /// The backbone's trainable parameters and the classifier's (lr multipliers apply per group).
    pub groups: [ParamGroup; 2],
    /// Elements of `params` that train: `0..trainable_len`.
    pub trainable_len: usize,
    /// Whether every layer but the classifier is frozen (fine-tuning the head alone).
    pub backbone_frozen: bool,
}

fn get(w: &Weights, layer: Layer, field: Field) -> Result<&HostTensor> {
    w.get(layer, field).ok_or_else(|| Error::invalid(format!("weights have no {field:?} for {layer:?}")))
}

/// Every learnable layer of `config`, in network order: (layer, has BN, has bias).
fn layers(config: &Config) -> Vec<(Layer, bool, bool)> {
    let r = config.resolution as usize;
    Network::new(config, r, r).learnable_layers()
}

impl ParamStore {
    /// Uploads `weights` (PyTorch layout) into the flat GPU buffers, every parameter trainable.
    pub fn from_weights(gpu: &Gpu, config: &Config, weights: &Weights) -> Result<ParamStore> {
        Self::from_weights_with(gpu, config, weights, false)
    }

    /// `from_weights`, with every layer but the classifier frozen where `freeze_backbone`.
    pub fn from_weights_with(
        gpu: &Gpu,
        config: &Config,
        weights: &Weights,
        freeze_backbone: bool,
    ) -> Result<ParamStore> {
        // At least 16-byte offsets: texel kernels copy weights into textures, which needs them.
        let align = (gpu.limits.min_storage_buffer_offset_alignment as usize / 4).max(4);
        let aligned = |n: usize| n.div_ceil(align) * align;
        type Param = (Layer, ParamKind, Vec<usize>, Vec<f32>);
        // Per part (backbone, classifier): the decayed weights, then the rest.
        let mut parts: [(Vec<Param>, Vec<Param>); 2] = Default::default();
        for (layer, bn, bias) in layers(config) {
            let part = &mut parts[(layer == Layer::Classifier) as usize];
            let w = get(weights, layer, Field::Weight)?;
            part.0.push((layer, ParamKind::Weight, w.shape.clone(), oihw_to_hwio(&w.data, &w.shape)));
            if bias {
                let b = get(weights, layer, Field::Bias)?;
                part.1.push((layer, ParamKind::Bias, b.shape.clone(), b.data.clone()));
            }
            if bn {
                let g = get(weights, layer, Field::BnWeight)?;
                let b = get(weights, layer, Field::BnBias)?;
                part.1.push((layer, ParamKind::GammaBeta, g.shape.clone(), [g.data.clone(), b.data.clone()].concat()));
            }
        }
        let [backbone, head] = parts;
        let (mut entries, mut flat) = (Vec::new(), Vec::new());
        let place = |group: Vec<Param>, decay: bool, entries: &mut Vec<ParamEntry>, flat: &mut Vec<f32>| {
            for (layer, kind, torch_shape, data) in group {
                let offset = flat.len();
                entries.push(ParamEntry { layer, kind, torch_shape, offset, len: data.len(), decay });
                flat.extend_from_slice(&data);
                flat.resize(aligned(flat.len()), 0.0);
            }
        };
        let mut groups = [ParamGroup { start: 0, len: 0, decay_len: 0 }; 2];
        let order = if freeze_backbone { [head, backbone] } else { [backbone, head] };
        for (i, (decayed, exempt)) in order.into_iter().enumerate() {
            let start = flat.len();
            place(decayed, true, &mut entries, &mut flat);
            let decay_len = flat.len() - start;
            place(exempt, false, &mut entries, &mut flat);
            // With the backbone frozen the classifier comes first and the backbone trains not.
            let group = ParamGroup { start, len: flat.len() - start, decay_len };
            match (freeze_backbone, i) {
                (false, i) => groups[i] = group,
                (true, 0) => groups[1] = group,
                (true, _) => groups[0] = ParamGroup { start, len: 0, decay_len: 0 },
            }
        }
        let trainable_len = if freeze_backbone { groups[1].len } else { flat.len() };
        let mut running_entries = Vec::new();
        let mut running = Vec::new();
        for (layer, bn, _) in layers(config) {
            if bn {
                let m = get(weights, layer, Field::RunningMean)?;
                let v = get(weights, layer, Field::RunningVar)?;
                running_entries.push(RunningEntry { layer, offset: running.len(), c: m.data.len() });
                running.extend_from_slice(&m.data);
                running.extend_from_slice(&v.data);
                running.resize(aligned(running.len()), 0.0);
            }
        }
        let store = ParamStore {
            params: gpu.upload_flat(&flat, "parameters")?,
            grads: gpu.upload_flat(&vec![0.0; trainable_len], "gradients")?,
            running: gpu.upload(&running, "bn running statistics")?,
            entries,
            running_entries,
            groups,
            trainable_len,
            backbone_frozen: freeze_backbone,
        };
        gpu.submit("uploading parameters", [])?;
        Ok(store)
    }

    fn find(&self, layer: Layer, kind: ParamKind) -> Result<&ParamEntry> {
        self.entries
            .iter()
            .find(|e| e.layer == layer && e.kind == kind)
            .ok_or_else(|| Error::invalid(format!("no {kind:?} parameter for {layer:?}")))
    }

    /// The parameter's range of the flat parameter buffer.
    pub fn param(&self, layer: Layer, kind: ParamKind) -> Result<GpuBuffer> {
        let e = self.find(layer, kind)?;
        Ok(self.params.slice(e.offset, e.len))
    }

    /// The parameter's range of `flat`, another buffer in the parameters' layout (the EMA's).
    pub fn param_in(&self, flat: &GpuBuffer, layer: Layer, kind: ParamKind) -> Result<GpuBuffer> {
        let e = self.find(layer, kind)?;
        if flat.len != self.params.len {
            return Err(Error::Shape {
                what: "flat parameters".into(),
                expected: vec![self.params.len],
                got: vec![flat.len],
            });
        }
        Ok(flat.slice(e.offset, e.len))
    }

    /// The parameter's range of the flat gradient buffer; an error for a frozen parameter.
    pub fn grad(&self, layer: Layer, kind: ParamKind) -> Result<GpuBuffer> {
        let e = self.find(layer, kind)?;
        if e.offset + e.len > self.trainable_len {
            return Err(Error::invalid(format!("{layer:?} is frozen: it has no gradient")));
        }
        Ok(self.grads.slice(e.offset, e.len))
    }

    /// The BN layer's running statistics (mean then var).
    pub fn running(&self, layer: Layer) -> Result<GpuBuffer> {
        let e = self
            .running_entries
            .iter()
            .find(|e| e.layer == layer)
            .ok_or_else(|| Error::invalid(format!("no BN running statistics for {layer:?}")))?;
        Ok(self.running.slice(e.offset, 2 * e.c))
    }

    /// Number of learnable values (without alignment padding).
    pub fn count(&self) -> usize {
        self.entries.iter().map(|e| e.len).sum()
    }

    /// Writes flat GPU-layout values (parameters or gradients) into `out` in PyTorch layout:
    /// `Field::Weight/Bias/BnWeight/BnBias` of every layer.
    pub fn unflatten_into(&self, flat: &[f32], out: &mut Weights) -> Result<()> {
        // A gradient buffer ends before the frozen parameters: those are left as they are.
        for e in self.entries.iter().filter(|e| e.offset + e.len <= flat.len()) {
            let data = &flat[e.offset..e.offset + e.len];
            let put = |out: &mut Weights, field: Field, values: Vec<f32>| -> Result<()> {
                let t = out
                    .get_mut(e.layer, field)
                    .ok_or_else(|| Error::invalid(format!("no {field:?} for {:?}", e.layer)))?;
                if t.data.len() != values.len() {
                    return Err(Error::Shape {
                        what: format!("{:?} {field:?}", e.layer),
                        expected: t.shape.clone(),
                        got: vec![values.len()],
                    });
                }
                t.data = values;
                Ok(())
            };
            match e.kind {
                ParamKind::Weight => put(out, Field::Weight, hwio_to_oihw(data, &e.torch_shape))?,
                ParamKind::Bias => put(out, Field::Bias, data.to_vec())?,
                ParamKind::GammaBeta => {
                    let c = e.len / 2;
                    put(out, Field::BnWeight, data[..c].to_vec())?;
                    put(out, Field::BnBias, data[c..].to_vec())?;
                }
            }
        }
        Ok(())
    }

    /// Writes the flat running statistics into `out` (RunningMean / RunningVar).
    pub fn unflatten_running_into(&self, flat: &[f32], out: &mut Weights) -> Result<()> {
        for e in &self.running_entries {
            for (field, start) in [(Field::RunningMean, e.offset), (Field::RunningVar, e.offset + e.c)] {
                let t = out
                    .get_mut(e.layer, field)
                    .ok_or_else(|| Error::invalid(format!("no {field:?} for {:?}", e.layer)))?;
                t.data = flat[start..start + e.c].to_vec();
            }
        }
        Ok(())
    }

    /// Reads parameters and running statistics back into `out` (which must match the config).
    pub fn read_into(&self, gpu: &Gpu, out: &mut Weights) -> Result<()> {
        let v = gpu.read_many(&[&self.params, &self.running])?;
        self.unflatten_into(&v[0], out)?;
        self.unflatten_running_into(&v[1], out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_conversions_are_inverse() {
        let shape = [5, 3, 2, 4];
        let t: Vec<f32> = (0..120).map(|i| i as f32).collect();
        let h = oihw_to_hwio(&t, &shape);
        // HWIO (y=1, x=2, i=1, o=4) is OIHW (o=4, i=1, y=1, x=2).
        assert_eq!(h[((4 + 2) * 3 + 1) * 5 + 4], t[((4 * 3 + 1) * 2 + 1) * 4 + 2]);
        assert_eq!(hwio_to_oihw(&h, &shape), t);
        let lin = [7, 3];
        let t: Vec<f32> = (0..21).map(|i| i as f32).collect();
        assert_eq!(oihw_to_hwio(&t, &lin)[2 * 7 + 5], t[5 * 3 + 2]);
    }
}
