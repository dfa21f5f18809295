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
    hyper: GpuBuffer,
    dispatches: Vec<Dispatch>,
}

impl Optimizer {
    /// Allocates the state (and, with `ema_decay`, an EMA copy of the parameters) and records all dispatches.
    pub fn new(
        gpu: &Gpu,
        store: &ParamStore,
        kind: OptimizerKind,
        weight_decay: f32,
        max_norm: f32,
        ema_decay: Option<f32>,
    ) -> Result<Optimizer> {
        let total = store.params.len;
        let state = (0..kind.slots())
            .map(|s| gpu.upload_flat(&vec![kind.slot_init(s); total], "optimizer state"))
            .collect::<Result<Vec<_>>>()?;
        let hyper = gpu.upload(&[0.0; 4], "optimizer hyper-parameters")?;
        let norm2 = gpu.upload(&[0.0], "gradient norm")?;
        let mut dispatches = Vec::new();
        if max_norm > 0.0 {
            let partial = gpu.empty(ops::optim::grad_norm2_partial_len(total), "norm partials")?;
            dispatches.extend(ops::grad_norm2(gpu, total, &store.grads, &partial, &norm2)?);
        }
        let p = OptimizerParams { kind, total, decay_end: store.decay_len, weight_decay };
        let slots: Vec<&GpuBuffer> = state.iter().collect();
        dispatches.extend(ops::optimizer_step(gpu, &p, &store.grads, &hyper, &norm2, &store.params, &slots)?);
        let ema = match ema_decay {
            Some(d) => {
                let e = gpu.empty_flat(total, "ema")?;
                let mut enc = gpu.device.create_command_encoder(&Default::default());
                enc.copy_buffer_to_buffer(&store.params.buffer, 0, &e.buffer, 0, store.params.bytes());
                gpu.queue.submit([enc.finish()]);
                dispatches.extend(ops::ema_update(gpu, total, d, &store.params, &e)?);
                Some((d, e))
            }
            None => None,
        };
        Ok(Optimizer { kind, weight_decay, max_norm, state, ema, hyper, dispatches })
    }

    /// Sets this step's learning rate (the step count drives AdamW's bias corrections). Staged
    /// with the next submit.
    pub fn set_step(&self, gpu: &Gpu, lr: f32, step: u64) {
        let h = ops::optim::hyper(&self.kind, lr, step, self.max_norm);
        gpu.queue.write_buffer(&self.hyper.buffer, self.hyper.offset, bytemuck::cast_slice(&h));
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
