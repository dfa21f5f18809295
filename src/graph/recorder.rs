//! Records dispatches and hands out activation buffers, reusing a buffer as soon as its last
//! reader has been recorded: dispatches replay in order inside one compute pass (wgpu orders
//! storage-buffer hazards between dispatches), so a later dispatch may overwrite it safely.

use crate::error::Result;
use crate::gpu::{Dispatch, Dtype, Gpu, GpuBuffer};

pub struct Recorder<'a> {
    pub gpu: &'a Gpu,
    free: Vec<std::sync::Arc<wgpu::Buffer>>,
    pub dispatches: Vec<Dispatch>,
    /// Bytes of activation buffers created (the plan's activation memory).
    pub allocated_bytes: u64,
}

impl<'a> Recorder<'a> {
    pub fn new(gpu: &'a Gpu) -> Self {
        Recorder { gpu, free: Vec::new(), dispatches: Vec::new(), allocated_bytes: 0 }
    }

    /// A buffer of at least `len` f32: the smallest free one that fits and is at most 4x larger
    /// (or 4 KiB), else a new one. Without the cap, small late tensors settle in the big buffers
    /// that early layers free and the big tensors of the backward then need new ones: on B0's
    /// training step at 224 px, recomputation saved nothing with it uncapped and 26% with it.
    pub fn alloc(&mut self, len: usize) -> Result<GpuBuffer> {
        self.alloc_typed(len, Dtype::F32)
    }

    /// `alloc` for `len` elements of `dtype` (free buffers are shared across element types).
    pub fn alloc_typed(&mut self, len: usize, dtype: Dtype) -> Result<GpuBuffer> {
        let bytes = (len * dtype.size()) as u64;
        let best = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.size() >= bytes && b.size() <= bytes.saturating_mul(4).max(4096))
            .min_by_key(|(_, b)| b.size())
            .map(|(i, _)| i);
        match best {
            Some(i) => Ok(GpuBuffer { buffer: self.free.swap_remove(i), offset: 0, len, dtype }),
            None => {
                let b = self.gpu.empty_typed(len, dtype, "activation")?;
                self.allocated_bytes += b.buffer.size();
                Ok(b)
            }
        }
    }

    /// Returns a buffer from `alloc` for reuse by later dispatches.
    pub fn release(&mut self, b: GpuBuffer) {
        self.free.push(b.buffer);
    }

    pub fn push(&mut self, mut d: Dispatch, label: &str) {
        d.label = format!("{label}: {}", d.kernel.name());
        self.dispatches.push(d);
    }

    pub fn push_all(&mut self, ds: impl IntoIterator<Item = Dispatch>, label: &str) {
        for d in ds {
            self.push(d, label);
        }
    }
}
