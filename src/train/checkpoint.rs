//! Training checkpoints: one safetensors file with the weights in torchvision names (so any
//! checkpoint is also a weights file), the optimizer state under `train.`, and step, epoch, seed
//! and configs in the metadata. Written atomically (temp file + rename): a crash mid-write leaves
//! the previous checkpoint intact.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::model::{Config, WeightFormat, Weights};
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

impl Trainer {
    /// Writes the full training state to `path` atomically.
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
            let name = if i < slots { format!("train.optimizer.slot{i}") } else { "train.ema".to_string() };
            extra.push((name, vec![v.len()], v));
        }
        let metadata = HashMap::from([
            ("effnet.step".to_string(), self.step.to_string()),
            ("effnet.epoch".to_string(), self.epoch.to_string()),
            ("effnet.batch_in_epoch".to_string(), self.batch_in_epoch.to_string()),
            ("effnet.config".to_string(), json(&self.config)?),
            ("effnet.train_config".to_string(), json(&self.tc)?),
        ]);
        weights.save_with(path, &self.config, metadata, &extra)
    }

    /// Restores a checkpoint written by `save_checkpoint` for the same model and optimizer.
    pub fn resume(&mut self, path: &Path) -> Result<()> {
        let ck = load_checkpoint(path)?;
        if ck.config != self.config {
            return Err(Error::file(
                path,
                format!(
                    "checkpoint of {} ({} classes, width {}, depth {}) cannot resume {} ({} classes, width {}, depth {})",
                    ck.config.name,
                    ck.config.num_classes,
                    ck.config.width,
                    ck.config.depth,
                    self.config.name,
                    self.config.num_classes,
                    self.config.width,
                    self.config.depth
                ),
            ));
        }
        if ck.train_config.optimizer != self.tc.optimizer {
            return Err(Error::file(
                path,
                format!(
                    "checkpoint used {} but this run uses {}",
                    ck.train_config.optimizer.name(),
                    self.tc.optimizer.name()
                ),
            ));
        }
        let (weights, _) = Weights::load(path, &self.config, Some(WeightFormat::Torchvision))?;
        let store = &self.graph.params;
        let fresh = crate::train::params::ParamStore::from_weights(&self.gpu, &self.config, &weights)?;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::safetensors(path, e))?;
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&fresh.params.buffer, 0, &store.params.buffer, 0, store.params.bytes());
        enc.copy_buffer_to_buffer(&fresh.running.buffer, 0, &store.running.buffer, 0, store.running.bytes());
        self.gpu.queue.submit([enc.finish()]);
        let mut targets: Vec<(String, &crate::gpu::GpuBuffer)> =
            self.optimizer.state.iter().enumerate().map(|(i, b)| (format!("train.optimizer.slot{i}"), b)).collect();
        if let Some((_, ema)) = &self.optimizer.ema {
            targets.push(("train.ema".to_string(), ema));
        }
        for (name, buf) in targets {
            let t = st.tensor(&name).map_err(|_| Error::file(path, format!("checkpoint has no {name}")))?;
            let v: Vec<f32> = bytemuck::pod_collect_to_vec(t.data());
            if v.len() != buf.len {
                return Err(Error::file(path, format!("{name} has {} values, this run needs {}", v.len(), buf.len)));
            }
            self.gpu.queue.write_buffer(&buf.buffer, buf.offset, bytemuck::cast_slice(&v));
        }
        self.gpu.queue.submit([]);
        self.step = ck.step;
        self.epoch = ck.epoch;
        self.batch_in_epoch = ck.batch_in_epoch;
        Ok(())
    }
}

/// Reads a checkpoint's run description (not its tensors).
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| Error::safetensors(path, e))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let get = |k: &str| {
        meta.get(k).ok_or_else(|| Error::file(path, format!("not a training checkpoint: no {k} in its metadata")))
    };
    let num =
        |k: &str| -> Result<u64> { get(k)?.parse().map_err(|_| Error::file(path, format!("bad {k} in metadata"))) };
    let parse = |k: &str| -> Result<serde_json::Value> {
        serde_json::from_str(get(k)?).map_err(|e| Error::file(path, format!("bad {k} in metadata: {e}")))
    };
    let config: Config = serde_json::from_value(parse("effnet.config")?)
        .map_err(|e| Error::file(path, format!("bad effnet.config: {e}")))?;
    let train_config: TrainConfig = serde_json::from_value(parse("effnet.train_config")?)
        .map_err(|e| Error::file(path, format!("bad effnet.train_config: {e}")))?;
    Ok(Checkpoint {
        step: num("effnet.step")?,
        epoch: num("effnet.epoch")?,
        batch_in_epoch: num("effnet.batch_in_epoch")? as usize,
        config,
        train_config,
    })
}
