//! Conversions at the edges of the f16 inference path: the f32 input to f16, the f16 logits to f32.

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Dtype, Gpu, GpuBuffer, Kernel};

/// Records `y = x` converted to `y`'s element type (f32 → f16 rounds to nearest even; f16 → f32
/// is exact). `x` and `y` must have the same length and different element types.
pub fn cast(gpu: &Gpu, x: &GpuBuffer, y: &GpuBuffer) -> Result<Dispatch> {
    if x.len != y.len {
        return Err(Error::Shape { what: "cast output".into(), expected: vec![x.len], got: vec![y.len] });
    }
    let kernel = match (x.dtype, y.dtype) {
        (Dtype::F32, Dtype::F16) => Kernel::CastToF16,
        (Dtype::F16, Dtype::F32) => Kernel::CastToF32,
        (a, b) => return Err(Error::invalid(format!("cast: from {a:?} to {b:?} is not a conversion"))),
    };
    let bytes = x.bytes() + y.bytes();
    Ok(Dispatch::new(gpu, kernel, &[("LEN", x.len as f64)], &[x, y], x.len as u64, kernel.name())?.with_cost(0, bytes))
}
