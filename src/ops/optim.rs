//! Optimizer kernels over the flat parameter buffer (one dispatch per step for all parameters),
//! the global gradient norm for clipping, and the weight EMA.

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Kernel};
use crate::ops::reduce::{sum_partials, SumPartialsParams};

/// Which update rule, with its fixed constants. The learning rate, bias corrections and clipping
/// norm change per step and come from the `hyper` buffer instead.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum OptimizerKind {
    /// TensorFlow's RMSProp (the paper's): eps inside the square root, accumulator starting at 1.
    RmspropTf {
        /// Decay of the mean-square accumulator: ms = decay * ms + (1 - decay) * g^2.
        decay: f32,
        /// Momentum of the step accumulator: mom = momentum * mom + lr * g / sqrt(ms + eps).
        momentum: f32,
        /// Added to `ms` inside the square root.
        eps: f32,
    },
    /// SGD with momentum (PyTorch semantics); weight decay is L2 added to the gradient.
    Sgd {
        /// Momentum of the velocity: v = momentum * v + g.
        momentum: f32,
        /// Nesterov momentum: step along g + momentum * v instead of v.
        nesterov: bool,
    },
    /// AdamW (PyTorch semantics): Adam with decoupled weight decay.
    AdamW {
        /// Decay of the first-moment average m.
        beta1: f32,
        /// Decay of the second-moment average v.
        beta2: f32,
        /// Added to sqrt(v / bc2) in the denominator.
        eps: f32,
    },
}

impl OptimizerKind {
    /// Rejects hyper-parameters outside their range (decays and momenta in [0, 1), eps > 0), naming
    /// the one that is wrong.
    pub fn validate(&self) -> Result<()> {
        let positive = (std::ops::Bound::Excluded(0.0), std::ops::Bound::Unbounded);
        match *self {
            OptimizerKind::RmspropTf { decay, momentum, eps } => {
                Error::check_number("rmsprop decay", decay as f64, 0.0..1.0)?;
                Error::check_number("rmsprop momentum", momentum as f64, 0.0..1.0)?;
                Error::check_number("rmsprop eps", eps as f64, positive)
            }
            OptimizerKind::Sgd { momentum, .. } => Error::check_number("sgd momentum", momentum as f64, 0.0..1.0),
            OptimizerKind::AdamW { beta1, beta2, eps } => {
                Error::check_number("adamw beta1", beta1 as f64, 0.0..1.0)?;
                Error::check_number("adamw beta2", beta2 as f64, 0.0..1.0)?;
                Error::check_number("adamw eps", eps as f64, positive)
            }
        }
    }

    /// Per-parameter state buffers the rule keeps.
    pub fn slots(&self) -> usize {
        match self {
            OptimizerKind::Sgd { .. } => 1,
            _ => 2,
        }
    }
    /// Initial value of each state slot (TF-RMSProp's accumulator starts at 1).
    pub fn slot_init(&self, slot: usize) -> f32 {
        match (self, slot) {
            (OptimizerKind::RmspropTf { .. }, 0) => 1.0,
            _ => 0.0,
        }
    }
    /// The rule's name: "rmsprop-tf", "sgd", "sgd-nesterov" or "adamw".
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerKind::RmspropTf { .. } => "rmsprop-tf",
            OptimizerKind::Sgd { nesterov: false, .. } => "sgd",
            OptimizerKind::Sgd { nesterov: true, .. } => "sgd-nesterov",
            OptimizerKind::AdamW { .. } => "adamw",
        }
    }
}

/// One optimizer step over the flat parameter, gradient and state buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerParams {
    /// The update rule and its constants.
    pub kind: OptimizerKind,
    /// Values in the flat buffers.
    pub total: usize,
    /// Weight decay applies to indices below this (conv and linear weights come first).
    pub decay_end: usize,
    /// Weight decay factor: L2 added to the gradient (RMSProp, SGD) or decoupled (AdamW).
    pub weight_decay: f32,
}

/// The `hyper` buffer's four values for one step.
pub fn hyper(kind: &OptimizerKind, lr: f32, step: u64, max_norm: f32) -> [f32; 4] {
    let (bc1, bc2) = match kind {
        OptimizerKind::AdamW { beta1, beta2, .. } => {
            let t = step.max(1) as i32;
            (1.0 - beta1.powi(t), 1.0 - beta2.powi(t))
        }
        _ => (1.0, 1.0),
    };
    [lr, bc1, bc2, max_norm]
}

/// Records one update of every parameter. `state` holds `kind.slots()` buffers. The flat buffers
/// may exceed one storage binding (B6, B7): one dispatch per binding range (`Gpu::binding_ranges`).
pub fn optimizer_step(
    gpu: &Gpu,
    p: &OptimizerParams,
    grads: &GpuBuffer,
    hyper: &GpuBuffer,
    norm2: &GpuBuffer,
    params: &GpuBuffer,
    state: &[&GpuBuffer],
) -> Result<Vec<Dispatch>> {
    let mut out = Vec::new();
    for (start, len) in gpu.binding_ranges(p.total, 1) {
        let range = |b: &GpuBuffer| b.slice(start, len);
        let (grads, params) = (range(grads), range(params));
        let state: Vec<GpuBuffer> = state.iter().map(|b| range(b)).collect();
        let decay_end = p.decay_end.clamp(start, start + len) - start;
        let mut c =
            vec![("TOTAL", len as f64), ("DECAY_END", decay_end as f64), ("WEIGHT_DECAY", p.weight_decay as f64)];
        let (kernel, bufs): (Kernel, Vec<&GpuBuffer>) = match p.kind {
            OptimizerKind::RmspropTf { decay, momentum, eps } => {
                c.extend([("DECAY", decay as f64), ("MOMENTUM", momentum as f64), ("EPS", eps as f64)]);
                (Kernel::RmspropTfStep, vec![&grads, hyper, norm2, &params, &state[0], &state[1]])
            }
            OptimizerKind::Sgd { momentum, nesterov } => {
                c.extend([("MOMENTUM", momentum as f64), ("NESTEROV", nesterov as u32 as f64)]);
                (Kernel::SgdStep, vec![&grads, hyper, norm2, &params, &state[0]])
            }
            OptimizerKind::AdamW { beta1, beta2, eps } => {
                c.extend([("B1", beta1 as f64), ("B2", beta2 as f64), ("EPS", eps as f64)]);
                (Kernel::AdamwStep, vec![&grads, hyper, norm2, &params, &state[0], &state[1]])
            }
        };
        let n = len as u64;
        out.push(
            Dispatch::new(gpu, kernel, &c, &bufs, n, kernel.name())?
                .with_cost(8 * n, 4 * n * (2 + 2 * p.kind.slots() as u64)),
        );
    }
    Ok(out)
}

/// Chunk of the first stage of the global norm.
pub const NORM_CHUNK: usize = 256;

/// Length of the partial-sum scratch of `grad_norm2` for `total` values.
pub fn grad_norm2_partial_len(total: usize) -> usize {
    total.div_ceil(NORM_CHUNK)
}

/// Records `norm2 = sum x^2` over `total` values (two fixed-order stages). The first stage runs
/// per binding range of `x`, each range a whole number of chunks, so the partials and their sum
/// are the same as in one dispatch.
pub fn grad_norm2(
    gpu: &Gpu,
    total: usize,
    x: &GpuBuffer,
    partial: &GpuBuffer,
    norm2: &GpuBuffer,
) -> Result<Vec<Dispatch>> {
    let parts = grad_norm2_partial_len(total);
    let mut out = Vec::new();
    for (start, len) in gpu.binding_ranges(total, NORM_CHUNK) {
        let n = grad_norm2_partial_len(len);
        let (xs, ps) = (x.slice(start, len), partial.slice(start / NORM_CHUNK, n));
        let c = [("TOTAL", len as f64), ("CHUNK", NORM_CHUNK as f64)];
        out.push(
            Dispatch::new(gpu, Kernel::SumSquaresPartial, &c, &[&xs, &ps], n as u64, "sum_squares_partial")?
                .with_cost(2 * len as u64, 4 * len as u64),
        );
    }
    out.push(sum_partials(gpu, &SumPartialsParams { parts, len: 1, scale: 1.0, accumulate: false }, partial, norm2)?);
    Ok(out)
}

/// Records `ema = decay * ema + (1 - decay) * params`, one dispatch per binding range.
pub fn ema_update(gpu: &Gpu, total: usize, decay: f32, params: &GpuBuffer, ema: &GpuBuffer) -> Result<Vec<Dispatch>> {
    let c = |len: usize| [("TOTAL", len as f64), ("DECAY", decay as f64)];
    gpu.binding_ranges(total, 1)
        .into_iter()
        .map(|(start, len)| {
            let (p, e) = (params.slice(start, len), ema.slice(start, len));
            Ok(Dispatch::new(gpu, Kernel::EmaUpdate, &c(len), &[&p, &e], len as u64, "ema_update")?
                .with_cost(3 * len as u64, 12 * len as u64))
        })
        .collect()
}
