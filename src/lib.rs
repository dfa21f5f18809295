//! EfficientNet B0–B7 and Lite0–4 on the GPU through wgpu, with every kernel hand-written in WGSL.

pub mod cpu_ref;
pub mod error;
pub mod gpu;
pub mod model;
pub mod ops;

pub use error::{Error, Result};
pub use ops::Activation;
