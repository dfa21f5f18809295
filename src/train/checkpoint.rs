//! Training checkpoints: one safetensors file with the weights in torchvision names (so any
//! checkpoint is also a weights file), the optimizer state under `train.`, and step, epoch, seed
//! and configs in the metadata. Written atomically through `fsio` (temp file + rename): a crash
//! mid-write leaves the previous checkpoint intact.
//!
//! A resume validates the whole file before it changes anything: the stored model config and
//! optimizer must equal the run's, the counters must be in range for the run, and every tensor
//! must be there with the shape and element type (F32; I64 for BatchNorm's counters) the run
//! needs, holding finite numbers. Anything else is an error naming the file and what is wrong, and
//! the trainer is left as it was.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};
use crate::model::{Config, Field, HostTensor, WeightFormat, Weights, TRAIN_PREFIX};
use crate::ops::OptimizerKind;
use crate::train::{TrainConfig, Trainer};

/// What a checkpoint's metadata records about the run.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Steps taken when it was written (the next step's index).
    pub step: u64,
    /// The epoch in progress (0-based).
    pub epoch: u64,
    /// Batches of `epoch` already consumed (a resumed run skips them).
    pub batch_in_epoch: usize,
    /// The model configuration, which a resume must match.
    pub config: Config,
    /// The run's training configuration (a resume must use the same optimizer).
    pub train_config: TrainConfig,
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::invalid(e.to_string()))
}

/// The version of the flat layout the optimizer state is stored in (`ParamStore`): a checkpoint
/// of another layout holds the same numbers in another order, so it is refused rather than
/// misread.
const PARAM_LAYOUT: &str = "2";

/// The name of optimizer state slot `i`.
fn slot_name(i: usize) -> String {
    format!("{TRAIN_PREFIX}optimizer.slot{i}")
}

/// The name of the EMA of the parameters.
fn ema_name() -> String {
    format!("{TRAIN_PREFIX}ema")
}

/// Up to 8 problems joined with "; ", then how many more there are.
fn list_some(items: &[String]) -> String {
    let mut s = items.iter().take(8).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > 8 {
        s.push_str(&format!("; ... (+{} more)", items.len() - 8));
    }
    s
}

impl Trainer {
    /// Writes the full training state to `path` atomically (see [`crate::fsio`]).
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let weights = self.graph.weights(&self.gpu)?;
        let mut extra = Vec::new();
        let mut bufs: Vec<&crate::gpu::GpuBuffer> = self.optimizer.state.iter().collect();
        if let Some((_, ema)) = &self.optimizer.ema {
            bufs.push(ema);
        }
        let data = self.gpu.read_many(&bufs)?;
        let slots = self.optimizer.state.len();
        for (i, v) in data.into_iter().enumerate() {
            let name = if i < slots { slot_name(i) } else { ema_name() };
            extra.push((name, vec![v.len()], v));
        }
        let metadata = HashMap::from([
            ("effnet.step".to_string(), self.step.to_string()),
            ("effnet.epoch".to_string(), self.epoch.to_string()),
            ("effnet.batch_in_epoch".to_string(), self.batch_in_epoch.to_string()),
            ("effnet.config".to_string(), json(&self.config)?),
            ("effnet.train_config".to_string(), json(&self.tc)?),
            ("effnet.param_layout".to_string(), PARAM_LAYOUT.to_string()),
        ]);
        weights.save_with(path, &self.config, metadata, &extra)
    }

    /// Restores a checkpoint written by `save_checkpoint` for the same model and optimizer. The
    /// file is read once and validated completely first (configs, counters, every tensor's name,
    /// element type, shape and values); on any error the trainer is unchanged.
    pub fn resume(&mut self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::safetensors(path, e))?;
        let ck = parse_checkpoint(path, &bytes)?;
        self.check_run(path, &ck)?;
        let (weights, state) = self.read_state(path, &ck, &st)?;

        // Everything checked: now change the trainer.
        let store = &self.graph.params;
        let frozen = self.graph.params.backbone_frozen;
        let fresh = crate::train::params::ParamStore::from_weights_with(&self.gpu, &self.config, &weights, frozen)?;
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&fresh.params.buffer, 0, &store.params.buffer, 0, store.params.bytes());
        enc.copy_buffer_to_buffer(&fresh.running.buffer, 0, &store.running.buffer, 0, store.running.bytes());
        self.gpu.submit("restoring a checkpoint", [enc.finish()])?;
        let mut targets: Vec<&crate::gpu::GpuBuffer> = self.optimizer.state.iter().collect();
        if let Some((_, ema)) = &self.optimizer.ema {
            targets.push(ema);
        }
        for (buf, values) in targets.into_iter().zip(&state) {
            self.gpu.queue.write_buffer(&buf.buffer, buf.offset, bytemuck::cast_slice(values));
        }
        self.gpu.submit("restoring a checkpoint", [])?;
        self.step = ck.step;
        self.epoch = ck.epoch;
        self.batch_in_epoch = ck.batch_in_epoch;
        // Every replica of a data-parallel run starts from the same state.
        for peer in self.peers_mut() {
            peer.resume(path)?;
        }
        Ok(())
    }

    /// The checkpoint's model config and optimizer must be this run's, and its counters in range
    /// for this run.
    fn check_run(&self, path: &Path, ck: &Checkpoint) -> Result<()> {
        if ck.config != self.config {
            let (a, b) = (&ck.config, &self.config);
            let mut message = format!(
                "checkpoint of {} ({} classes, width {}, depth {}) cannot resume {} ({} classes, width {}, depth {})",
                a.name, a.num_classes, a.width, a.depth, b.name, b.num_classes, b.width, b.depth
            );
            let differences = config_differences(a, b);
            if !differences.is_empty() {
                message.push_str(&format!("; the model configs differ in {}", differences.join(", ")));
            }
            return Err(Error::file(path, message));
        }
        let (theirs, ours) = (ck.train_config.optimizer, self.tc.optimizer);
        if theirs != ours {
            let message = if theirs.name() == ours.name() {
                format!(
                    "checkpoint used {} with {} but this run uses {}: its optimizer state belongs to those \
                     hyper-parameters",
                    theirs.name(),
                    hyper_parameters(&theirs),
                    hyper_parameters(&ours)
                )
            } else {
                format!("checkpoint used {} but this run uses {}", theirs.name(), ours.name())
            };
            return Err(Error::file(path, message));
        }

        let (epochs, total, per_epoch) = (self.tc.epochs, self.total_steps(), self.schedule.steps_per_epoch);
        let out_of_range = |message: String| Err(Error::file(path, message));
        if ck.epoch > epochs {
            return out_of_range(format!(
                "effnet.epoch is {} but this run has {epochs} epochs (a finished run's checkpoint says {epochs})",
                ck.epoch
            ));
        }
        if ck.step > total {
            return out_of_range(format!(
                "effnet.step is {} but this run takes {total} steps ({epochs} epochs of {per_epoch}{})",
                ck.step,
                self.tc.max_steps.map(|m| format!(", at most {m}")).unwrap_or_default()
            ));
        }
        if ck.batch_in_epoch as u64 > per_epoch {
            return out_of_range(format!(
                "effnet.batch_in_epoch is {} but an epoch of this run has {per_epoch} batches (was the batch size {}?)",
                ck.batch_in_epoch, ck.train_config.batch_size
            ));
        }
        if ck.epoch == epochs && ck.batch_in_epoch > 0 {
            return out_of_range(format!(
                "effnet.batch_in_epoch is {} in epoch {}, but the epochs of this run are 0..{}",
                ck.batch_in_epoch,
                ck.epoch,
                epochs.saturating_sub(1)
            ));
        }
        Ok(())
    }

    /// Every tensor of the checkpoint, checked against the run: the weights (F32, counters I64,
    /// the model's shapes, finite, variances ≥ 0) and the optimizer state then EMA in the order of
    /// `optimizer.state` (F32, one value per parameter, finite, second moments ≥ 0). Names the
    /// run does not use are errors too.
    fn read_state(&self, path: &Path, ck: &Checkpoint, st: &SafeTensors<'_>) -> Result<(Weights, Vec<Vec<f32>>)> {
        let mut problems = Vec::new();
        let mut weights = Weights::zeros(&self.config);
        let spec = self.config.state_dict_spec(WeightFormat::Torchvision);
        for t in &spec {
            let want = if t.field.is_integer() { Dtype::I64 } else { Dtype::F32 };
            let Some(view) = tensor(st, &t.key, want, &t.shape, &mut problems) else { continue };
            let data = if t.field.is_integer() {
                view.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect()
            } else {
                f32_values(&view)
            };
            if !t.field.is_integer() {
                check_values(&t.key, &data, t.field == Field::RunningVar, &mut problems);
            }
            match HostTensor::new(t.shape.clone(), data).and_then(|h| weights.set(&t.key, h)) {
                Ok(()) => {}
                Err(e) => problems.push(e.to_string()),
            }
        }

        let kind = self.tc.optimizer;
        let mut names: Vec<(String, usize, bool)> = self
            .optimizer
            .state
            .iter()
            .enumerate()
            .map(|(i, b)| (slot_name(i), b.len, second_moment(&kind, i)))
            .collect();
        if let Some((_, ema)) = &self.optimizer.ema {
            names.push((ema_name(), ema.len, false));
        }
        let mut state = Vec::with_capacity(names.len());
        for (name, len, non_negative) in &names {
            let Some(view) = tensor(st, name, Dtype::F32, &[*len], &mut problems) else { continue };
            let data = f32_values(&view);
            check_values(name, &data, *non_negative, &mut problems);
            state.push(data);
        }

        let known: std::collections::HashSet<&str> =
            spec.iter().map(|t| t.key.as_str()).chain(names.iter().map(|n| n.0.as_str())).collect();
        let mut unexpected: Vec<String> =
            st.names().into_iter().filter(|n| !known.contains(n)).map(str::to_string).collect();
        unexpected.sort();
        for name in unexpected {
            problems.push(if name == ema_name() {
                format!(
                    "it holds {name}, an EMA of the weights (decay {}), but this run keeps none: set the same EMA \
                     decay to resume it",
                    ck.train_config.ema.map(|d| d.to_string()).unwrap_or_else(|| "not recorded".into())
                )
            } else {
                format!("unexpected tensor {name:?}: this run has no such weight or optimizer state")
            });
        }
        if !problems.is_empty() {
            return Err(Error::file(path, format!("cannot resume from this checkpoint: {}", list_some(&problems))));
        }
        Ok((weights, state))
    }
}

/// The tensor `name` if it is there with dtype `want` and `shape`; otherwise records why not.
fn tensor<'a>(
    st: &'a SafeTensors<'_>,
    name: &str,
    want: Dtype,
    shape: &[usize],
    problems: &mut Vec<String>,
) -> Option<TensorView<'a>> {
    let Ok(view) = st.tensor(name) else {
        problems.push(format!("tensor {name:?} is missing"));
        return None;
    };
    if view.dtype() != want {
        problems.push(format!(
            "tensor {name:?} is stored as {}, but a checkpoint keeps it as {want}; it is not converted",
            view.dtype()
        ));
        return None;
    }
    if view.shape() != shape {
        problems.push(format!("tensor {name:?} has shape {:?}, this run needs {shape:?}", view.shape()));
        return None;
    }
    let bytes = shape.iter().product::<usize>() * want.bitsize() / 8;
    if view.data().len() != bytes {
        problems.push(format!("tensor {name:?} has {} bytes, expected {bytes}", view.data().len()));
        return None;
    }
    Some(view)
}

/// The little-endian f32 values of an F32 view (its length checked by `tensor`).
fn f32_values(view: &TensorView<'_>) -> Vec<f32> {
    view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4]))).collect()
}

/// Records the first value that is not finite (or negative, where `non_negative`).
fn check_values(name: &str, data: &[f32], non_negative: bool, problems: &mut Vec<String>) {
    if let Some((i, v)) = data.iter().enumerate().find(|(_, v)| !v.is_finite() || (non_negative && **v < 0.0)) {
        let want = if non_negative { "finite and at least 0" } else { "finite" };
        problems.push(format!("tensor {name:?} holds {v} at index {i}; its values must be {want}"));
    }
}

/// Whether state slot `slot` of `kind` is a mean of squares (RMSProp's ms, AdamW's v), which a
/// square root is taken of.
fn second_moment(kind: &OptimizerKind, slot: usize) -> bool {
    matches!((kind, slot), (OptimizerKind::RmspropTf { .. }, 0) | (OptimizerKind::AdamW { .. }, 1))
}

/// `beta1 0.9, beta2 0.999, eps 1e-8` and the like.
fn hyper_parameters(kind: &OptimizerKind) -> String {
    // Debug prints floats in full and short: 1e-8, not 0.00000001.
    match *kind {
        OptimizerKind::RmspropTf { decay, momentum, eps } => {
            format!("decay {decay:?}, momentum {momentum:?}, eps {eps:?}")
        }
        OptimizerKind::Sgd { momentum, nesterov } => format!("momentum {momentum:?}, nesterov {nesterov}"),
        OptimizerKind::AdamW { beta1, beta2, eps } => format!("beta1 {beta1:?}, beta2 {beta2:?}, eps {eps:?}"),
    }
}

/// `field (checkpoint X, this run Y)` for every field where two configs differ, in field order.
fn config_differences(checkpoint: &Config, run: &Config) -> Vec<String> {
    // Through the JSON text, so f32 fields print as written (0.001, not 0.0010000000474974513).
    let value = |c: &Config| serde_json::to_string(c).ok().and_then(|s| serde_json::from_str(&s).ok());
    let (Some(serde_json::Value::Object(a)), Some(serde_json::Value::Object(b))) = (value(checkpoint), value(run))
    else {
        return Vec::new();
    };
    a.iter()
        .filter_map(|(k, va)| {
            let vb = b.get(k).unwrap_or(&serde_json::Value::Null);
            (va != vb).then(|| format!("{k} (checkpoint {va}, this run {vb})"))
        })
        .collect()
}

/// Reads a checkpoint's run description (not its tensors). The counters must be whole numbers
/// that agree with each other (no more batches in the epoch than steps).
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_checkpoint(path, &bytes)
}

fn parse_checkpoint(path: &Path, bytes: &[u8]) -> Result<Checkpoint> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| Error::safetensors(path, e))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let get = |k: &str| {
        meta.get(k).ok_or_else(|| Error::file(path, format!("not a training checkpoint: no {k} in its metadata")))
    };
    let num = |k: &str| -> Result<u64> {
        let v = get(k)?;
        v.parse().map_err(|_| Error::file(path, format!("{k} is {v:?} in its metadata; expected a whole number ≥ 0")))
    };
    let parse = |k: &str| -> Result<serde_json::Value> {
        serde_json::from_str(get(k)?).map_err(|e| Error::file(path, format!("bad {k} in metadata: {e}")))
    };
    match meta.get("effnet.param_layout") {
        Some(v) if v == PARAM_LAYOUT => {}
        other => {
            return Err(Error::file(
                path,
                format!(
                    "its optimizer state is in parameter layout {} and this version reads layout {PARAM_LAYOUT}: \
                     start a new run from its weights with --init instead of --resume",
                    other.map_or("1 (unmarked)", |v| v.as_str())
                ),
            ))
        }
    }
    let config: Config = serde_json::from_value(parse("effnet.config")?)
        .map_err(|e| Error::file(path, format!("bad effnet.config: {e}")))?;
    let train_config: TrainConfig = serde_json::from_value(parse("effnet.train_config")?)
        .map_err(|e| Error::file(path, format!("bad effnet.train_config: {e}")))?;
    let (step, epoch, batch_in_epoch) = (num("effnet.step")?, num("effnet.epoch")?, num("effnet.batch_in_epoch")?);
    // Every batch of the epoch in progress was a step.
    if batch_in_epoch > step {
        return Err(Error::file(
            path,
            format!("effnet.batch_in_epoch is {batch_in_epoch} but effnet.step is only {step}: the counters disagree"),
        ));
    }
    let batch_in_epoch = usize::try_from(batch_in_epoch)
        .map_err(|_| Error::file(path, format!("effnet.batch_in_epoch is {batch_in_epoch}: too large")))?;
    Ok(Checkpoint { step, epoch, batch_in_epoch, config, train_config })
}
