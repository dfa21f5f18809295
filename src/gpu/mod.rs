//! GPU plumbing: the context, the kernel registry, buffers, dispatches and readback.

mod context;
pub mod kernels;

pub use context::{AdapterReport, Capabilities, Gpu, KernelClass};
pub use kernels::{BindingKind, Kernel};

use std::sync::Arc;

use crate::error::{Error, Result};

pub use kernels::{ACT_NONE, ACT_RELU6, ACT_SIGMOID, ACT_SWISH, TEXEL_ROW_LOG2, WG};

/// Width in texels of the scratch textures behind `BindingKind::Texels` bindings.
pub const TEXEL_ROW: u32 = 1 << TEXEL_ROW_LOG2;

/// The element type of a stored tensor. Everything is f32 except the f16 inference path
/// (`Precision::F16`), which stores weights and activations as f16 and computes in f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    F32,
    F16,
}

impl Dtype {
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
    pub buffer: Arc<wgpu::Buffer>,
    pub offset: u64,
    pub len: usize,
    pub dtype: Dtype,
}

impl GpuBuffer {
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
        Ok(self.create_storage(bytes, len, dtype, label))
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
        Ok(self.create_storage(bytes, len, Dtype::F32, label))
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

    fn create_storage(&self, bytes: u64, len: usize, dtype: Dtype, label: &str) -> GpuBuffer {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        GpuBuffer { buffer: Arc::new(buffer), offset: 0, len, dtype }
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

    /// A buffer of u32 values (class targets, RNG seeds): same 4-byte elements as f32 buffers.
    pub fn upload_u32(&self, data: &[u32], label: &str) -> Result<GpuBuffer> {
        let b = self.empty(data.len(), label)?;
        if !data.is_empty() {
            self.queue.write_buffer(&b.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(b)
    }

    /// Copies `src` back to the host as f32 (f16 tensors converted). Blocks until the GPU has finished all work submitted so far.
    pub fn read(&self, src: &GpuBuffer) -> Result<Vec<f32>> {
        self.read_many(&[src]).map(|mut v| v.remove(0))
    }

    /// Copies several buffers back with one submit and one wait.
    pub fn read_many(&self, srcs: &[&GpuBuffer]) -> Result<Vec<Vec<f32>>> {
        let mut encoder =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        let staging: Vec<wgpu::Buffer> = srcs
            .iter()
            .map(|s| {
                let st = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback staging"),
                    size: s.bytes().next_multiple_of(4).max(4),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                if s.len > 0 {
                    encoder.copy_buffer_to_buffer(&s.buffer, s.offset, &st, 0, s.bytes().next_multiple_of(4));
                }
                st
            })
            .collect();
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        for (i, st) in staging.iter().enumerate() {
            let tx = tx.clone();
            st.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send((i, r));
            });
        }
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu { context: "waiting for readback".into(), message: e.to_string() })?;
        drop(tx);
        for (_, r) in rx.iter() {
            r.map_err(|e| Error::Gpu { context: "mapping a readback buffer".into(), message: e.to_string() })?;
        }
        let mut out = Vec::with_capacity(srcs.len());
        for (s, st) in srcs.iter().zip(&staging) {
            let view = st
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Gpu { context: "reading a mapped buffer".into(), message: e.to_string() })?;
            let v: Vec<f32> = match s.dtype {
                Dtype::F32 => bytemuck::cast_slice(&view[..s.len * 4]).to_vec(),
                Dtype::F16 => {
                    view[..s.len * 2].chunks_exact(2).map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32()).collect()
                }
            };
            drop(view);
            st.unmap();
            out.push(v);
        }
        Ok(out)
    }
}

/// A copy of a buffer range into a scratch texture, encoded just before the dispatch that reads it.
pub struct TexelCopy {
    pub src: GpuBuffer,
    pub texture: Arc<wgpu::Texture>,
}

impl TexelCopy {
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let row = TEXEL_ROW as u64;
        let texels = self.src.len as u64 / 4;
        let (full, rest) = (texels / row, texels % row);
        let copy = |encoder: &mut wgpu::CommandEncoder, offset: u64, y: u32, width: u64, height: u64| {
            encoder.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: &self.src.buffer,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset,
                        bytes_per_row: Some(TEXEL_ROW * 16),
                        rows_per_image: None,
                    },
                },
                wgpu::TexelCopyTextureInfo {
                    texture: &self.texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d { x: 0, y, z: 0 },
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::Extent3d { width: width as u32, height: height as u32, depth_or_array_layers: 1 },
            );
        };
        if full > 0 {
            copy(encoder, self.src.offset, 0, row, full);
        }
        if rest > 0 {
            copy(encoder, self.src.offset + full * row * 16, full as u32, rest, 1);
        }
    }
}

/// A buffer range by identity: (buffer, byte offset, elements).
type RangeKey = (usize, u64, usize);

fn range_key(b: &GpuBuffer) -> RangeKey {
    (Arc::as_ptr(&b.buffer) as usize, b.offset, b.len)
}

/// Which buffer range each scratch texture holds, so that a texel copy whose texture already holds
/// its range is skipped: on CPU adapters the copies cost ~10% of a pass, and several kernels in a
/// row read the same tensor (the SE pool and the project conv read the depthwise output; the BN
/// backward's two passes read dy and z). A dispatch that writes a buffer makes every texture
/// holding a range of it stale.
#[derive(Default)]
pub struct TexelResidency {
    held: Vec<(Arc<wgpu::Texture>, RangeKey)>,
}

impl TexelResidency {
    /// Whether `copy` must be encoded: its texture does not hold its range.
    pub fn needs(&self, copy: &TexelCopy) -> bool {
        let key = range_key(&copy.src);
        !self.held.iter().any(|(t, k)| Arc::ptr_eq(t, &copy.texture) && *k == key)
    }
    /// `copy` was encoded: its texture now holds its range.
    fn copied(&mut self, copy: &TexelCopy) {
        self.held.retain(|(t, _)| !Arc::ptr_eq(t, &copy.texture));
        self.held.push((copy.texture.clone(), range_key(&copy.src)));
    }
    /// Hands `copy` each of `dispatch`'s copies whose texture does not hold its range, in order,
    /// and counts it held from then on.
    pub fn bring_in<'a>(&mut self, dispatch: &'a Dispatch, mut copy: impl FnMut(&'a TexelCopy)) {
        for c in &dispatch.copies {
            if self.needs(c) {
                copy(c);
                self.copied(c);
            }
        }
    }
    /// `dispatch` ran: textures holding any range of a buffer it writes are stale.
    pub fn ran(&mut self, dispatch: &Dispatch) {
        self.held.retain(|(_, k)| !dispatch.writes.iter().any(|w| range_key(w).0 == k.0));
    }
    /// How recently `texture` received its content: 0 for none, then 1, 2, ... from the oldest copy.
    fn age(&self, texture: &Arc<wgpu::Texture>) -> usize {
        self.held.iter().position(|(t, _)| Arc::ptr_eq(t, texture)).map_or(0, |i| i + 1)
    }
    /// A texture holding `b`'s range other than those in `taken`.
    fn holding(&self, b: &GpuBuffer, taken: &[Arc<wgpu::Texture>]) -> Option<Arc<wgpu::Texture>> {
        let key = range_key(b);
        self.held.iter().find(|(t, k)| *k == key && !taken.iter().any(|u| Arc::ptr_eq(t, u))).map(|(t, _)| t.clone())
    }
}

/// One recorded dispatch: everything needed to replay it, built once.
pub struct Dispatch {
    pub kernel: Kernel,
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    /// Floating-point operations (2 per multiply-add) and bytes moved, for the bench's table.
    pub flops: u64,
    pub bytes: u64,
    /// Which graph node this dispatch belongs to, for profiles.
    pub label: String,
    /// Buffers copied into the textures of its `Texels` bindings before it runs.
    pub copies: Vec<TexelCopy>,
    /// The buffers of its `Write` bindings.
    pub writes: Vec<GpuBuffer>,
}

impl Dispatch {
    /// Builds the pipeline and bind group for `kernel` over `buffers` (in binding order).
    pub fn new(
        gpu: &Gpu,
        kernel: Kernel,
        constants: &[(&'static str, f64)],
        buffers: &[&GpuBuffer],
        threads: u64,
        label: impl Into<String>,
    ) -> Result<Dispatch> {
        if buffers.len() != kernel.bindings().len() {
            return Err(Error::invalid(format!(
                "{}: {} buffers bound, its shader has {} bindings",
                kernel.name(),
                buffers.len(),
                kernel.bindings().len()
            )));
        }
        // Every override must exist in the shader and be finite: wgpu panics on either.
        for &(name, value) in constants {
            if !kernel.overrides().contains(&name) {
                return Err(Error::invalid(format!("{}: its shader has no override named {name}", kernel.name())));
            }
            if !value.is_finite() {
                return Err(Error::invalid(format!(
                    "{}: override {name} is {value}, not a finite number",
                    kernel.name()
                )));
            }
        }
        let pipeline = gpu.pipeline(kernel, constants);
        let layout = gpu.bind_group_layout(kernel);
        let mut copies = Vec::new();
        let mut views = Vec::new();
        // What the textures will hold when this dispatch replays right after the ones recorded
        // before it: reusing the texture that holds an input lets the replay skip its copy
        // (`encode_dispatches` checks that it really holds it then).
        let mut recorded = gpu.texel_record.lock().unwrap_or_else(|e| e.into_inner());
        for (slot, (b, kind)) in buffers.iter().zip(kernel.bindings()).enumerate() {
            if *kind == BindingKind::Texels {
                if !b.len.is_multiple_of(4) || !b.offset.is_multiple_of(16) {
                    return Err(Error::invalid(format!(
                        "{}: binding {slot} must be whole vec4s at a 16-byte offset to be read as texels",
                        kernel.name()
                    )));
                }
                // The same range bound twice (an absent optional input stands in as another
                // input, as for buffer kernels) is copied once and both bindings read it.
                let same = |c: &&TexelCopy| c.src.same_buffer(b) && (c.src.offset, c.src.len) == (b.offset, b.len);
                if let Some(c) = copies.iter().find(same) {
                    views.push(Some(c.texture.create_view(&Default::default())));
                    continue;
                }
                let taken: Vec<_> = copies.iter().map(|c: &TexelCopy| c.texture.clone()).collect();
                let texture = match recorded.holding(b, &taken) {
                    Some(t) => t,
                    None => gpu.scratch_texture(b.len / 4, &taken, &recorded)?,
                };
                views.push(Some(texture.create_view(&Default::default())));
                copies.push(TexelCopy { src: (*b).clone(), texture });
            } else {
                views.push(None);
            }
        }
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .zip(&views)
            .enumerate()
            .map(|(i, (b, view))| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: match view {
                    Some(v) => wgpu::BindingResource::TextureView(v),
                    None => b.binding(),
                },
            })
            .collect();
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.name()),
            layout: &layout,
            entries: &entries,
        });
        let workgroups = grid(threads.div_ceil(WG as u64), gpu.limits.max_compute_workgroups_per_dimension)?;
        let writes = buffers
            .iter()
            .zip(kernel.bindings())
            .filter(|(_, kind)| **kind == BindingKind::Write)
            .map(|(b, _)| (*b).clone())
            .collect();
        let d = Dispatch {
            kernel,
            pipeline,
            bind_group,
            workgroups,
            flops: 0,
            bytes: 0,
            label: label.into(),
            copies,
            writes,
        };
        d.copies.iter().for_each(|c| recorded.copied(c));
        recorded.ran(&d);
        Ok(d)
    }

    pub fn with_cost(mut self, flops: u64, bytes: u64) -> Self {
        self.flops = flops;
        self.bytes = bytes;
        self
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Folds `n` workgroups into a 2-D grid when `n` exceeds the per-dimension limit. Kernels recover
/// the linear index as `wid.x + wid.y * nwg.x` and skip the overhang.
pub fn grid(n: u64, max_per_dim: u32) -> Result<[u32; 3]> {
    let max = max_per_dim.max(1) as u64;
    if n <= max {
        return Ok([n.max(1) as u32, 1, 1]);
    }
    let y = n.div_ceil(max);
    if y > max {
        return Err(Error::ExceedsDeviceLimit {
            what: format!("a dispatch of {n} workgroups"),
            needed: n,
            limit: max * max,
            limit_name: "max_compute_workgroups_per_dimension squared",
            hint: "use a smaller batch or input size".into(),
        });
    }
    Ok([n.div_ceil(y) as u32, y as u32, 1])
}

/// Encodes `dispatches` in order, in as few compute passes as possible: a pass ends only where a
/// dispatch needs buffers copied into textures first (copies can't be encoded inside a pass). A
/// copy whose texture still holds its range (`TexelResidency`, starting empty in each call) is
/// skipped.
pub fn encode_dispatches<'a>(
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    dispatches: impl IntoIterator<Item = &'a Dispatch>,
) {
    let mut held = TexelResidency::default();
    let mut iter = dispatches.into_iter().peekable();
    while let Some(first) = iter.next() {
        held.bring_in(first, |c| c.encode(encoder));
        let mut pass =
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(label), timestamp_writes: None });
        first.encode(&mut pass);
        held.ran(first);
        while let Some(d) = iter.next_if(|d| !d.copies.iter().any(|c| held.needs(c))) {
            d.encode(&mut pass);
            held.ran(d);
        }
    }
}

/// The copies `encode_dispatches` encodes for `dispatches`, in order (those whose texture does not
/// already hold their range).
pub fn encoded_copies<'a>(dispatches: impl IntoIterator<Item = &'a Dispatch>) -> Vec<&'a TexelCopy> {
    let mut held = TexelResidency::default();
    let mut out = Vec::new();
    for d in dispatches {
        held.bring_in(d, |c| out.push(c));
        held.ran(d);
    }
    out
}

/// Records `dispatches` and submits them.
pub fn submit(gpu: &Gpu, dispatches: &[Dispatch]) {
    let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("effnet") });
    encode_dispatches(&mut encoder, "effnet", dispatches);
    gpu.queue.submit([encoder.finish()]);
}

/// Times each dispatch on the GPU with timestamp queries, one compute pass per dispatch (so the
/// figures include a pass boundary each, but attribute time cleanly; texel copies fall outside).
/// Returns nanoseconds per dispatch, in order. Needs `Capabilities::timestamps`.
pub fn profile_dispatches(gpu: &Gpu, dispatches: &[&Dispatch]) -> Result<Vec<f64>> {
    if !gpu.caps.timestamps {
        return Err(Error::invalid(format!(
            "{} has no timestamp queries: per-kernel times are unavailable",
            gpu.describe()
        )));
    }
    // wgpu caps a query set at 4096 queries: two per dispatch, in chunks.
    const CHUNK: usize = 2048;
    let period = gpu.queue.get_timestamp_period() as f64;
    let mut out = Vec::with_capacity(dispatches.len());
    for chunk in dispatches.chunks(CHUNK) {
        let count = (2 * chunk.len()) as u32;
        let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile resolve"),
            size: count as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile staging"),
            size: count as u64 * 8,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("profile") });
        for (i, d) in chunk.iter().enumerate() {
            d.copies.iter().for_each(|c| c.encode(&mut encoder));
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&d.label),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &set,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            d.encode(&mut pass);
        }
        encoder.resolve_query_set(&set, 0..count, &resolve, 0);
        encoder.copy_buffer_to_buffer(&resolve, 0, &staging, 0, count as u64 * 8);
        gpu.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu { context: "waiting for timestamps".into(), message: e.to_string() })?;
        rx.recv()
            .map_err(|e| Error::Gpu { context: "mapping timestamps".into(), message: e.to_string() })?
            .map_err(|e| Error::Gpu { context: "mapping timestamps".into(), message: e.to_string() })?;
        let view = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::Gpu { context: "reading timestamps".into(), message: e.to_string() })?;
        let ticks: &[u64] = bytemuck::cast_slice(&view);
        out.extend(ticks.chunks(2).map(|t| t[1].saturating_sub(t[0]) as f64 * period));
    }
    Ok(out)
}
