//! One file per kernel family. Each holds the parameter struct (the shapes, shared with `cpu_ref`),
//! the recorder that binds buffers and dispatches the WGSL kernel, and FLOP counts for the bench.

/// Activation applied in a kernel's epilogue. The discriminant is the WGSL `ACT` override value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    None = 0,
    Swish = 1,
    Relu6 = 2,
    Sigmoid = 3,
}

impl Activation {
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Swish => x / (1.0 + (-x).exp()),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        }
    }
}
