//! The optimizer on the GPU: per-parameter state in flat buffers matching the parameter store, a
//! small `hyper` buffer for what changes per step (learning rate, bias corrections), and the
//! dispatches — global norm (when clipping), update, EMA — recorded once.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};
use crate::ops::{self, OptimizerKind, OptimizerParams};
use crate::train::params::ParamStore;

/// The GPU optimizer of one `ParamStore`: per-parameter state, optional EMA, update dispatches recorded once.
pub struct Optimizer {
    /// The update rule and its hyper-parameters.
    pub kind: OptimizerKind,
    /// Weight-decay coefficient on the decayed range only (L2 for RMSProp and SGD, decoupled for AdamW).
    pub weight_decay: f32,
    /// Clip gradients to this global L2 norm (0 = off).
    pub max_norm: f32,
    /// `kind.slots()` flat buffers in the parameters' layout: RMSProp (ms from 1, mom), AdamW (m, v), SGD (velocity).
    pub state: Vec<GpuBuffer>,
    /// Exponential moving average of the parameters, when on.
    pub ema: Option<(f32, GpuBuffer)>,
    /// What changes per step (learning rate, bias corrections), for the backbone's group and the
    /// classifier's.
    hypers: [GpuBuffer; 2],
    /// The backbone's learning rate over the classifier's.
    backbone_lr_mult: f32,
    dispatches: Vec<Dispatch>,
}

impl Optimizer {
    /// Allocates the state of the trainable parameters (and, with `ema_decay`, an EMA copy of all
    /// parameters) and records all dispatches: one update per parameter group, so that the
    /// backbone's learning rate can be a multiple of the classifier's (`set_step`).
    pub fn new(
        gpu: &Gpu,
        store: &ParamStore,
        kind: OptimizerKind,
        weight_decay: f32,
        max_norm: f32,
        ema_decay: Option<f32>,
    ) -> Result<Optimizer> {
        kind.validate()?;
        let trainable = store.trainable_len;
        let state = (0..kind.slots())
            .map(|s| gpu.upload_flat(&vec![kind.slot_init(s); trainable], "optimizer state"))
            .collect::<Result<Vec<_>>>()?;
        let hypers = [
            gpu.upload(&[0.0; 4], "backbone hyper-parameters")?,
            gpu.upload(&[0.0; 4], "classifier hyper-parameters")?,
        ];
        let norm2 = gpu.upload(&[0.0], "gradient norm")?;
        let mut dispatches = Vec::new();
        if max_norm > 0.0 {
            let partial = gpu.empty(ops::optim::grad_norm2_partial_len(trainable), "norm partials")?;
            dispatches.extend(ops::grad_norm2(gpu, trainable, &store.grads, &partial, &norm2)?);
        }
        for (g, hyper) in store.groups.iter().zip(&hypers).filter(|(g, _)| g.len > 0) {
            let p = OptimizerParams { kind, total: g.len, decay_end: g.decay_len, weight_decay };
            let range = |b: &GpuBuffer| b.slice(g.start, g.len);
            let slots: Vec<GpuBuffer> = state.iter().map(range).collect();
            let slots: Vec<&GpuBuffer> = slots.iter().collect();
            let (grads, params) = (range(&store.grads), range(&store.params));
            dispatches.extend(ops::optimizer_step(gpu, &p, &grads, hyper, &norm2, &params, &slots)?);
        }
        let total = store.params.len;
        let ema = match ema_decay {
            Some(d) => {
                let e = gpu.empty_flat(total, "ema")?;
                let mut enc = gpu.device.create_command_encoder(&Default::default());
                enc.copy_buffer_to_buffer(&store.params.buffer, 0, &e.buffer, 0, store.params.bytes());
                gpu.submit("an optimizer step", [enc.finish()])?;
                dispatches.extend(ops::ema_update(gpu, total, d, &store.params, &e)?);
                Some((d, e))
            }
            None => None,
        };
        Ok(Optimizer { kind, weight_decay, max_norm, state, ema, hypers, backbone_lr_mult: 1.0, dispatches })
    }

    /// Scales the backbone's learning rate by `mult` relative to the classifier's (discriminative
    /// fine-tuning; 1 by default). Takes effect at the next `set_step`.
    pub fn with_backbone_lr_mult(mut self, mult: f32) -> Result<Optimizer> {
        crate::error::Error::check_number("backbone_lr_mult", mult as f64, 0.0..)?;
        self.backbone_lr_mult = mult;
        Ok(self)
    }

    /// Sets this step's learning rate (the backbone's times its multiplier; the step count drives
    /// AdamW's bias corrections). Staged with the next submit.
    pub fn set_step(&self, gpu: &Gpu, lr: f32, step: u64) {
        for (hyper, lr) in self.hypers.iter().zip([lr * self.backbone_lr_mult, lr]) {
            let h = ops::optim::hyper(&self.kind, lr, step, self.max_norm);
            gpu.queue.write_buffer(&hyper.buffer, hyper.offset, bytemuck::cast_slice(&h));
        }
    }

    /// Encodes the recorded dispatches (global norm, update, EMA) into `pass`, in order.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            d.encode(pass);
        }
    }

    /// The recorded dispatches, in the order `encode` runs them.
    pub fn dispatches(&self) -> &[Dispatch] {
        &self.dispatches
    }
}
