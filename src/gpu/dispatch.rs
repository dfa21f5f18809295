//! Dispatches: one kernel over its bound buffers, built once and replayed, and encoding them in as
//! few compute passes as the texel copies allow.

use std::sync::Arc;

use super::{BindingKind, Gpu, GpuBuffer, Kernel, TexelCopy, TexelResidency, WG};
use crate::error::{Error, Result};

/// One recorded dispatch: everything needed to replay it, built once.
pub struct Dispatch {
    /// The kernel it runs.
    pub kernel: Kernel,
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    /// Workgroups per grid dimension.
    pub workgroups: [u32; 3],
    /// Floating-point operations (2 per multiply-add), for the bench's table.
    pub flops: u64,
    /// Bytes moved, for the bench's table.
    pub bytes: u64,
    /// Which graph node this dispatch belongs to, for profiles.
    pub label: String,
    /// Buffers copied into the textures of its `Texels` bindings before it runs.
    pub copies: Vec<TexelCopy>,
    /// Its buffers, in binding order.
    buffers: Vec<GpuBuffer>,
}

impl Dispatch {
    /// Builds the pipeline and bind group for `kernel` over `buffers` (in binding order). Texel
    /// inputs get scratch textures as if nothing were held: a recording picks them again with
    /// what its earlier dispatches leave in the textures (`Dispatch::bind`).
    pub fn new(
        gpu: &Gpu,
        kernel: Kernel,
        constants: &[(&'static str, f64)],
        buffers: &[&GpuBuffer],
        threads: u64,
        label: impl Into<String>,
    ) -> Result<Dispatch> {
        check(kernel, constants, buffers, kernel.bindings().len())?;
        let buffers: Vec<GpuBuffer> = buffers.iter().map(|b| (*b).clone()).collect();
        let bound = bind_group(gpu, kernel, &buffers, &mut TexelResidency::default())?;
        Self::assemble(gpu, kernel, constants, threads, label.into(), buffers, bound)
    }

    /// `new` for a kernel whose last binding is a host's texture (`BindingKind::Image`), bound
    /// through `image`; `buffers` are the bindings before it.
    pub fn with_image(
        gpu: &Gpu,
        kernel: Kernel,
        constants: &[(&'static str, f64)],
        buffers: &[&GpuBuffer],
        image: &wgpu::TextureView,
        threads: u64,
        label: impl Into<String>,
    ) -> Result<Dispatch> {
        if kernel.bindings().last() != Some(&BindingKind::Image) {
            return Err(Error::invalid(format!("{}: its last binding is not an image", kernel.name())));
        }
        check(kernel, constants, buffers, kernel.bindings().len() - 1)?;
        let mut entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.binding() })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: buffers.len() as u32,
            resource: wgpu::BindingResource::TextureView(image),
        });
        let bound = (create_bind_group(gpu, kernel, &entries)?, Vec::new());
        let buffers = buffers.iter().map(|b| (*b).clone()).collect();
        Self::assemble(gpu, kernel, constants, threads, label.into(), buffers, bound)
    }

    /// The dispatch over `bound` (its bind group and texel copies): the pipeline, and the grid
    /// for `threads`.
    fn assemble(
        gpu: &Gpu,
        kernel: Kernel,
        constants: &[(&'static str, f64)],
        threads: u64,
        label: String,
        buffers: Vec<GpuBuffer>,
        (bind_group, copies): (wgpu::BindGroup, Vec<TexelCopy>),
    ) -> Result<Dispatch> {
        let pipeline = gpu.pipeline(kernel, constants)?;
        let workgroups = grid(threads.div_ceil(WG as u64), gpu.limits.max_compute_workgroups_per_dimension)?;
        Ok(Dispatch { kernel, pipeline, bind_group, workgroups, flops: 0, bytes: 0, label, copies, buffers })
    }

    /// Binds the texel inputs again, as this dispatch replays right after the ones `held` has
    /// seen: an input a texture still holds is bound from it, so the replay skips its copy
    /// (`encode_dispatches` checks that it really holds it then). `held` then counts this
    /// dispatch. A recording does this for each dispatch in order (`graph::Recorder::push`).
    pub fn bind(&mut self, gpu: &Gpu, held: &mut TexelResidency) -> Result<()> {
        if !self.copies.is_empty() {
            (self.bind_group, self.copies) = bind_group(gpu, self.kernel, &self.buffers, held)?;
        } else {
            held.ran(self);
        }
        Ok(())
    }

    /// Sets the cost figures the bench reports.
    pub fn with_cost(mut self, flops: u64, bytes: u64) -> Self {
        self.flops = flops;
        self.bytes = bytes;
        self
    }

    /// The buffers of its `Write` bindings.
    pub fn writes(&self) -> impl Iterator<Item = &GpuBuffer> {
        self.buffers.iter().zip(self.kernel.bindings()).filter(|(_, k)| **k == BindingKind::Write).map(|(b, _)| b)
    }

    /// Records it into `pass`.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Refuses what wgpu would panic on: a wrong number of buffers, an override the shader lacks or a
/// non-finite one, a texel input that is not whole vec4s.
fn check(kernel: Kernel, constants: &[(&'static str, f64)], buffers: &[&GpuBuffer], wanted: usize) -> Result<()> {
    if buffers.len() != wanted {
        return Err(Error::invalid(format!(
            "{}: {} buffers bound, its shader has {} bindings",
            kernel.name(),
            buffers.len(),
            kernel.bindings().len()
        )));
    }
    for &(name, value) in constants {
        if !kernel.overrides().contains(&name) {
            return Err(Error::invalid(format!("{}: its shader has no override named {name}", kernel.name())));
        }
        if !value.is_finite() {
            return Err(Error::invalid(format!("{}: override {name} is {value}, not a finite number", kernel.name())));
        }
    }
    for (slot, (b, kind)) in buffers.iter().zip(kernel.bindings()).enumerate() {
        if *kind == BindingKind::Texels && (!b.len.is_multiple_of(4) || !b.offset.is_multiple_of(16)) {
            return Err(Error::invalid(format!(
                "{}: binding {slot} must be whole vec4s at a 16-byte offset to be read as texels",
                kernel.name()
            )));
        }
    }
    Ok(())
}

/// The bind group of `kernel` over `buffers`, with a scratch texture for each texel input chosen
/// by what `held` says the textures hold (and `held` updated as if the dispatch then ran).
fn bind_group(
    gpu: &Gpu,
    kernel: Kernel,
    buffers: &[GpuBuffer],
    held: &mut TexelResidency,
) -> Result<(wgpu::BindGroup, Vec<TexelCopy>)> {
    let mut copies: Vec<TexelCopy> = Vec::new();
    let mut views = Vec::new();
    for (b, kind) in buffers.iter().zip(kernel.bindings()) {
        if *kind != BindingKind::Texels {
            views.push(None);
            continue;
        }
        // The same range bound twice (an absent optional input stands in as another input, as
        // for buffer kernels) is copied once and both bindings read it.
        let same = |c: &&TexelCopy| c.src.same_buffer(b) && (c.src.offset, c.src.len) == (b.offset, b.len);
        if let Some(c) = copies.iter().find(same) {
            views.push(Some(c.texture.create_view(&Default::default())));
            continue;
        }
        let taken: Vec<_> = copies.iter().map(|c| c.texture.clone()).collect();
        let texture = match held.holding(b, &taken) {
            Some(t) => t,
            None => gpu.scratch_texture(b.len / 4, &taken, held)?,
        };
        views.push(Some(texture.create_view(&Default::default())));
        copies.push(TexelCopy { src: b.clone(), texture });
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
    let bind_group = create_bind_group(gpu, kernel, &entries)?;
    copies.iter().for_each(|c| held.copied(c));
    held.ran_writes(buffers.iter().zip(kernel.bindings()).filter(|(_, k)| **k == BindingKind::Write).map(|(b, _)| b));
    Ok((bind_group, copies))
}

/// The bind group of `kernel`'s layout over `entries`, inside the device's error scopes.
fn create_bind_group(gpu: &Gpu, kernel: Kernel, entries: &[wgpu::BindGroupEntry]) -> Result<wgpu::BindGroup> {
    let layout = gpu.bind_group_layout(kernel);
    gpu.scoped(&format!("binding the resources of {}", kernel.name()), 0, || {
        gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.name()),
            layout: &layout,
            entries,
        })
    })
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
pub fn submit(gpu: &Gpu, dispatches: &[Dispatch]) -> Result<wgpu::SubmissionIndex> {
    let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("effnet") });
    encode_dispatches(&mut encoder, "effnet", dispatches);
    gpu.submit("running kernels", [encoder.finish()])
}
