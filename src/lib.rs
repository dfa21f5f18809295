//! EfficientNet B0–B7 and Lite0–4 on the GPU through wgpu, with every kernel hand-written in WGSL.

pub mod cpu_ref;
pub mod data;
pub mod error;
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
