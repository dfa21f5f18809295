//! GPU plumbing, one concern a file: the context (adapter, device, capabilities, pipeline and
//! layout caches), the persistent pipeline cache, the kernel registry, buffers, readback, dispatches, texel copies for CPU
//! adapters, and timestamp profiling.

mod buffer;
mod cache;
mod context;
mod dispatch;
pub mod kernels;
mod profile;
mod readback;
mod texel;

pub use buffer::{Dtype, GpuBuffer, UploadBuffer};
pub use cache::PipelineCacheStatus;
pub use context::{AdapterReport, Capabilities, Gpu, KernelClass};
pub use dispatch::{encode_dispatches, encoded_copies, grid, submit, Dispatch};
pub use kernels::{BindingKind, Kernel};
pub use kernels::{ACT_NONE, ACT_RELU6, ACT_SIGMOID, ACT_SWISH, TEXEL_ROW_LOG2, WG};
pub use profile::profile_dispatches;
pub use readback::{KeptReadback, Readback, Staged};
pub use texel::{TexelCopy, TexelResidency};

/// Width in texels of the scratch textures behind `BindingKind::Texels` bindings.
pub const TEXEL_ROW: u32 = 1 << TEXEL_ROW_LOG2;
