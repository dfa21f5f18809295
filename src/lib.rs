//! EfficientNet B0–B7 and Lite0–4 on the GPU through wgpu, with every kernel hand-written in WGSL.
//!
//! Layers, each using only those before it: `gpu` (device, buffers, kernel registry, dispatches)
//! → `ops` (one recorder per kernel family) → `graph` (recording with buffer reuse) → `model`
//! (configs, the network description, weights, the inference lowering) → `data` → `infer`
//! (classification) and `train` (the training lowering, optimizers, the trainer).

#![warn(missing_docs)]

/// Test support: the kernels' plain-loop CPU twins, with the names and argument order of `ops`.
/// Not part of the library's API (the `test-support` feature, which the crate's own tests and
/// examples turn on).
#[cfg(feature = "test-support")]
pub mod cpu_ref;
pub mod data;
pub mod error;
pub mod fsio;
pub mod gpu;
pub mod graph;
pub mod infer;
pub mod model;
pub mod ops;
pub mod train;

pub use error::{Error, Result};
pub use gpu::Gpu;
pub use infer::{Classifier, Prediction, Preprocess};
pub use model::{Config, EfficientNet, Variant, WeightFormat, Weights};
pub use ops::Activation;
