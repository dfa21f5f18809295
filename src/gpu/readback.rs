//! Reading buffers back to the host: copies into staging buffers of the call's own, recorded in
//! the same command buffer as the work that writes the sources, then mapped. Waiting is for that
//! submission only (never for a shared device to go idle), or a future that `map_async` resolves.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::{Dtype, Gpu, GpuBuffer};
use crate::error::{Error, Result};

/// Copies of buffers into staging buffers, recorded into an encoder and not yet submitted
/// (`Gpu::stage`). After the submit, `Staged::read` starts the mapping.
#[must_use = "staged copies are read only through Staged::read after the submit"]
pub struct Staged {
    buffers: Vec<(wgpu::Buffer, Dtype, usize)>,
}

impl Gpu {
    /// Records copies of `srcs` into new staging buffers into `encoder`. Because the copies ride
    /// in the same command buffer as the work that wrote the sources, no later submission (another
    /// thread's, or the host's) can change what they read.
    pub fn stage(&self, encoder: &mut wgpu::CommandEncoder, srcs: &[&GpuBuffer]) -> Result<Staged> {
        let mut buffers = Vec::with_capacity(srcs.len());
        for s in srcs {
            let size = s.bytes().next_multiple_of(4).max(4);
            let st = self.scoped("a readback buffer", size, || {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback staging"),
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })?;
            if s.len > 0 {
                encoder.copy_buffer_to_buffer(&s.buffer, s.offset, &st, 0, s.bytes().next_multiple_of(4));
            }
            buffers.push((st, s.dtype, s.len));
        }
        Ok(Staged { buffers })
    }

    /// Copies `src` back to the host as f32 (f16 tensors converted). Waits for the GPU work
    /// submitted before it, and no more.
    pub fn read(&self, src: &GpuBuffer) -> Result<Vec<f32>> {
        self.read_many(&[src]).map(|mut v| v.remove(0))
    }

    /// Copies several buffers back with one submit and one wait.
    pub fn read_many(&self, srcs: &[&GpuBuffer]) -> Result<Vec<Vec<f32>>> {
        self.read_many_async(srcs)?.wait()
    }

    /// Submits copies of `srcs` and returns the [`Readback`] without waiting: await it, or `wait`.
    pub fn read_many_async(&self, srcs: &[&GpuBuffer]) -> Result<Readback> {
        let mut encoder =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        let staged = self.stage(&mut encoder, srcs)?;
        let index = self.submit("reading back", [encoder.finish()])?;
        Ok(staged.read(self, index))
    }
}

impl Staged {
    /// Starts mapping the staging buffers once `submission` (the one carrying the copies) is
    /// submitted: the [`Readback`] resolves when the GPU has run it.
    pub fn read(self, gpu: &Gpu, submission: wgpu::SubmissionIndex) -> Readback {
        let state = Arc::new(Mutex::new(MapState { pending: self.buffers.len(), failed: None, waker: None }));
        for (st, _, _) in &self.buffers {
            let state = state.clone();
            st.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                s.pending -= 1;
                if let Err(e) = r {
                    s.failed.get_or_insert(e);
                }
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            });
        }
        Readback {
            device: gpu.device.clone(),
            adapter: gpu.info.name.clone(),
            lost: gpu.lost_flag(),
            submission,
            buffers: self.buffers,
            state,
        }
    }
}

struct MapState {
    pending: usize,
    failed: Option<wgpu::BufferAsyncError>,
    waker: Option<Waker>,
}

/// Buffers on their way back to the host. Either `wait` (blocks until this submission has run,
/// not until the device is idle), or await it: the future resolves through `map_async`'s
/// callbacks, which run whenever anything polls the device — a host's frame loop does with every
/// submit, and each poll of the future checks the device once without blocking. No thread is
/// started.
#[must_use = "a readback does nothing unless waited for or awaited"]
pub struct Readback {
    device: wgpu::Device,
    adapter: String,
    lost: Arc<Mutex<Option<String>>>,
    submission: wgpu::SubmissionIndex,
    buffers: Vec<(wgpu::Buffer, Dtype, usize)>,
    state: Arc<Mutex<MapState>>,
}

impl Readback {
    /// Blocks until the submission that carries the copies has run, then returns the values.
    pub fn wait(self) -> Result<Vec<Vec<f32>>> {
        let wait = wgpu::PollType::Wait { submission_index: Some(self.submission.clone()), timeout: None };
        self.device.poll(wait).map_err(|e| self.poll_error(e))?;
        self.take()
    }

    /// Whether the values are ready (checks the device once without blocking).
    pub fn is_ready(&self) -> bool {
        let _ = self.device.poll(wgpu::PollType::Poll);
        self.state.lock().unwrap_or_else(|e| e.into_inner()).pending == 0
    }

    fn poll_error(&self, e: wgpu::PollError) -> Error {
        let _ = self.device.poll(wgpu::PollType::Poll);
        match self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            Some(reason) => Error::DeviceLost { adapter: self.adapter.clone(), reason },
            None => Error::gpu("waiting for a readback", e),
        }
    }

    fn take(&self) -> Result<Vec<Vec<f32>>> {
        if let Some(e) = self.state.lock().unwrap_or_else(|e| e.into_inner()).failed.clone() {
            let _ = self.device.poll(wgpu::PollType::Poll);
            if let Some(reason) = self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                return Err(Error::DeviceLost { adapter: self.adapter.clone(), reason });
            }
            return Err(Error::gpu("mapping a readback buffer", e));
        }
        let mut out = Vec::with_capacity(self.buffers.len());
        for (st, dtype, len) in &self.buffers {
            let view = st.slice(..).get_mapped_range().map_err(|e| Error::gpu("reading a mapped buffer", e))?;
            let v: Vec<f32> = match dtype {
                Dtype::F32 => bytemuck::cast_slice(&view[..len * 4]).to_vec(),
                Dtype::F16 => {
                    view[..len * 2].chunks_exact(2).map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32()).collect()
                }
            };
            drop(view);
            st.unmap();
            out.push(v);
        }
        Ok(out)
    }
}

impl Future for Readback {
    type Output = Result<Vec<Vec<f32>>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Err(e) = self.device.poll(wgpu::PollType::Poll) {
            return Poll::Ready(Err(self.poll_error(e)));
        }
        {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if s.pending > 0 {
                s.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        Poll::Ready(self.take())
    }
}

/// A readback buffer kept for a copy of one size that repeats every step (`Gpu::read` makes a
/// fresh one per call, whose pages the host then faults in: for hundreds of megabytes that costs
/// more than the copy).
pub struct KeptReadback {
    buffer: wgpu::Buffer,
    len: usize,
}

impl Gpu {
    /// A [`KeptReadback`] for `len` f32 values.
    pub fn kept_readback(&self, len: usize, label: &str) -> Result<KeptReadback> {
        let bytes = (len.max(1) * 4) as u64;
        let buffer = self.scoped(&format!("readback buffer {label:?}"), bytes, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        Ok(KeptReadback { buffer, len })
    }
}

impl KeptReadback {
    /// Copies `src` (f32, its length) back through the kept buffer; waits for that copy only.
    pub fn read(&self, gpu: &Gpu, src: &GpuBuffer) -> Result<Vec<f32>> {
        if src.len != self.len || src.dtype != Dtype::F32 {
            return Err(Error::Shape { what: "readback".into(), expected: vec![self.len], got: vec![src.len] });
        }
        let mut encoder =
            gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        encoder.copy_buffer_to_buffer(&src.buffer, src.offset, &self.buffer, 0, src.bytes());
        let index = gpu.submit("reading back", [encoder.finish()])?;
        // The kept buffer goes through the same mapping as a fresh one; reading it unmaps it.
        let staged = Staged { buffers: vec![(self.buffer.clone(), Dtype::F32, self.len)] };
        Ok(staged.read(gpu, index).wait()?.remove(0))
    }
}
