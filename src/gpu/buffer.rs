//! Storage buffers: element types, buffer ranges, and making and filling them on a `Gpu`.

use std::sync::{Arc, Mutex};

use super::Gpu;
use crate::error::{Error, Result};

/// The element type of a stored tensor. Everything is f32 except the f16 inference path
/// (`Precision::F16`), which stores weights and activations as f16 and computes in f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// 32-bit IEEE float, 4 bytes.
    F32,
    /// 16-bit IEEE half float, 2 bytes (WGSL `f16`, needs `shader-f16`).
    F16,
}

impl Dtype {
    /// Bytes per element: 4 for f32, 2 for f16.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        }
    }
}

/// A range of a storage buffer: `len` elements of `dtype` from byte `offset`. Most tensors own a
/// whole buffer (offset 0); parameters are ranges of one flat buffer, so that an optimizer updates
/// them all in one dispatch.
#[derive(Clone, Debug)]
pub struct GpuBuffer {
    /// The wgpu buffer the range lies in, shared by every range of it.
    pub buffer: Arc<wgpu::Buffer>,
    /// Byte offset of the range's first element in `buffer`.
    pub offset: u64,
    /// Number of elements (not bytes) in the range.
    pub len: usize,
    /// Element type of the range.
    pub dtype: Dtype,
}

impl GpuBuffer {
    /// Size of the range in bytes: `len` times the element size, unpadded.
    pub fn bytes(&self) -> u64 {
        (self.len * self.dtype.size()) as u64
    }

    /// `len` elements starting `start` elements into this range. The byte offset must respect the
    /// device's `min_storage_buffer_offset_alignment` when the slice is bound.
    pub fn slice(&self, start: usize, len: usize) -> GpuBuffer {
        debug_assert!(start + len <= self.len);
        let offset = self.offset + (start * self.dtype.size()) as u64;
        GpuBuffer { buffer: self.buffer.clone(), offset, len, dtype: self.dtype }
    }

    /// The binding resource for this range, in whole 4-byte words (an odd number of f16 values
    /// takes the buffer's padding; empty bindings are invalid).
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.bytes().next_multiple_of(4).max(4)),
        })
    }

    /// Whether two ranges share a buffer (then one dispatch may not read one and write the other).
    pub fn same_buffer(&self, other: &GpuBuffer) -> bool {
        Arc::ptr_eq(&self.buffer, &other.buffer)
    }
}

impl Gpu {
    /// An uninitialised f32 storage buffer of `len` elements (at least one, bindings can't be empty).
    pub fn empty(&self, len: usize, label: &str) -> Result<GpuBuffer> {
        self.empty_typed(len, Dtype::F32, label)
    }

    /// An uninitialised storage buffer of `len` elements of `dtype`, padded to whole 4-byte words
    /// (f16 kernels read and write in pairs or vec4s).
    pub fn empty_typed(&self, len: usize, dtype: Dtype, label: &str) -> Result<GpuBuffer> {
        let bytes = (len.max(1) * dtype.size()).next_multiple_of(4) as u64;
        if bytes > self.max_binding_bytes() {
            return Err(Error::ExceedsDeviceLimit {
                what: format!("tensor {label:?} ({len} {dtype:?} values)"),
                needed: bytes,
                limit: self.max_binding_bytes(),
                limit_name: "max_storage_buffer_binding_size",
                hint: "use a smaller batch or input size".into(),
            });
        }
        self.create_storage(bytes, len, dtype, label)
    }

    /// An f32 buffer for a flat store that kernels bind only in ranges (`Gpu::binding_ranges`,
    /// or one tensor's slice): parameters, gradients and optimizer state, which for B6 and B7
    /// exceed a 128 MiB storage binding (lavapipe's, and wgpu's default limit). Limited by
    /// `max_buffer_size`.
    pub fn empty_flat(&self, len: usize, label: &str) -> Result<GpuBuffer> {
        let bytes = (len.max(1) * 4) as u64;
        if bytes > self.limits.max_buffer_size {
            return Err(Error::ExceedsDeviceLimit {
                what: format!("{label} ({len} values)"),
                needed: bytes,
                limit: self.limits.max_buffer_size,
                limit_name: "max_buffer_size",
                hint: "the model is too large for this device; use a smaller variant".into(),
            });
        }
        self.create_storage(bytes, len, Dtype::F32, label)
    }

    /// `empty_flat` holding `data`.
    pub fn upload_flat(&self, data: &[f32], label: &str) -> Result<GpuBuffer> {
        let b = self.empty_flat(data.len(), label)?;
        if !data.is_empty() {
            self.queue.write_buffer(&b.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(b)
    }

    /// Ranges `(start, len)` covering `0..total` elements of a flat f32 buffer, each within one
    /// storage binding, every start a multiple of `quantum` elements times the binding offset
    /// alignment (so per-range partial sums of `quantum` elements land at aligned offsets too).
    /// One range where the whole buffer fits one binding; none for no elements.
    pub fn binding_ranges(&self, total: usize, quantum: usize) -> Vec<(usize, usize)> {
        let align = (self.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
        let step = quantum.max(1) * align;
        let max = ((self.max_binding_bytes() / 4) as usize / step * step).max(step);
        (0..total).step_by(max).map(|start| (start, max.min(total - start))).collect()
    }

    fn create_storage(&self, bytes: u64, len: usize, dtype: Dtype, label: &str) -> Result<GpuBuffer> {
        let buffer = self.scoped(&format!("tensor {label:?}"), bytes, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        Ok(GpuBuffer { buffer: Arc::new(buffer), offset: 0, len, dtype })
    }

    /// A storage buffer holding `data` rounded to f16 (round to nearest even), saturating at
    /// ±65504 as the kernels' stores do.
    pub fn upload_f16(&self, data: &[f32], label: &str) -> Result<GpuBuffer> {
        let b = self.empty_typed(data.len(), Dtype::F16, label)?;
        let mut halves: Vec<half::f16> =
            data.iter().map(|&v| half::f16::from_f32(v.clamp(-65504.0, 65504.0))).collect();
        if halves.len() % 2 == 1 {
            halves.push(half::f16::ZERO);
        }
        if !halves.is_empty() {
            self.queue.write_buffer(&b.buffer, 0, bytemuck::cast_slice(&halves));
        }
        Ok(b)
    }

    /// `upload` or `upload_f16`, by `dtype`.
    pub fn upload_typed(&self, data: &[f32], dtype: Dtype, label: &str) -> Result<GpuBuffer> {
        match dtype {
            Dtype::F32 => self.upload(data, label),
            Dtype::F16 => self.upload_f16(data, label),
        }
    }

    /// A storage buffer holding `data`.
    pub fn upload(&self, data: &[f32], label: &str) -> Result<GpuBuffer> {
        let b = self.empty(data.len(), label)?;
        if !data.is_empty() {
            self.queue.write_buffer(&b.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(b)
    }

    /// Writes `data` into `dst` through a buffer of its own, copied in `encoder`. Unlike
    /// `queue.write_buffer`, whose writes land before the next submission of anyone's, the write
    /// rides in the encoder's command buffer, in order with its work: a shared buffer can be
    /// filled and used by one caller without another's submission coming between.
    pub fn upload_in(&self, encoder: &mut wgpu::CommandEncoder, dst: &GpuBuffer, data: &[f32]) -> Result<()> {
        if data.len() != dst.len || dst.dtype != Dtype::F32 {
            return Err(Error::Shape { what: "upload".into(), expected: vec![dst.len], got: vec![data.len()] });
        }
        if data.is_empty() {
            return Ok(());
        }
        // A one-shot staging buffer: made mapped, filled, copied, dropped.
        self.upload_buffer(data.len(), "upload")?.write(self, encoder, dst, data)
    }

    /// A host-writable staging buffer for repeated uploads of `len` f32 values (see
    /// [`UploadBuffer`]), ready for its first `write`.
    pub fn upload_buffer(&self, len: usize, label: &str) -> Result<UploadBuffer> {
        let bytes = (len.max(1) * 4) as u64;
        let buffer = self.scoped(&format!("upload buffer {label:?}"), bytes, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: true,
            })
        })?;
        Ok(UploadBuffer { buffer, len, state: Arc::new(Mutex::new(MapState::Mapped)) })
    }

    /// A buffer of u32 values (class targets, RNG seeds): same 4-byte elements as f32 buffers.
    pub fn upload_u32(&self, data: &[u32], label: &str) -> Result<GpuBuffer> {
        let b = self.empty(data.len(), label)?;
        if !data.is_empty() {
            self.queue.write_buffer(&b.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(b)
    }
}

/// Where an [`UploadBuffer`] stands: writable, on its way back from the GPU, or failed.
#[derive(Clone, Debug, PartialEq)]
enum MapState {
    Mapped,
    Pending,
    Failed(String),
}

/// A staging buffer kept for uploads of one size that repeat every step (`Gpu::upload_in` makes
/// and zero-fills a fresh one per call, which for hundreds of megabytes costs more than the
/// copy). `write` fills it and records its copy in an encoder, in order with the encoder's work;
/// after that encoder is submitted, `remap` hands it back for the next `write`, which waits for
/// the GPU to be done with it.
pub struct UploadBuffer {
    buffer: wgpu::Buffer,
    len: usize,
    state: Arc<Mutex<MapState>>,
}

impl UploadBuffer {
    /// Fills the buffer with `data` (its length) and records its copy into `dst` in `encoder`.
    pub fn write(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, dst: &GpuBuffer, data: &[f32]) -> Result<()> {
        if data.len() != self.len || dst.len != self.len || dst.dtype != Dtype::F32 {
            return Err(Error::Shape { what: "upload".into(), expected: vec![self.len], got: vec![data.len()] });
        }
        let pending = || *self.state.lock().unwrap_or_else(|e| e.into_inner()) == MapState::Pending;
        if pending() {
            gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| gpu.failure("an upload buffer", e))?;
        }
        match self.state.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            MapState::Mapped => {}
            MapState::Pending => {
                return Err(Error::invalid("an upload buffer was written before its last copy was submitted"))
            }
            MapState::Failed(why) => return Err(gpu.failure("mapping an upload buffer", std::io::Error::other(why))),
        }
        self.buffer
            .slice(..)
            .get_mapped_range_mut()
            .map_err(|e| gpu.failure("filling an upload buffer", e))?
            .copy_from_slice(bytemuck::cast_slice(data));
        self.buffer.unmap();
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = MapState::Pending;
        encoder.copy_buffer_to_buffer(&self.buffer, 0, &dst.buffer, dst.offset, dst.bytes());
        Ok(())
    }

    /// Starts mapping the buffer again for the next `write`: call it after the encoder holding
    /// the last write's copy is submitted.
    pub fn remap(&self) {
        let state = self.state.clone();
        self.buffer.slice(..).map_async(wgpu::MapMode::Write, move |r| {
            *state.lock().unwrap_or_else(|e| e.into_inner()) = match r {
                Ok(()) => MapState::Mapped,
                Err(e) => MapState::Failed(e.to_string()),
            };
        });
    }
}
