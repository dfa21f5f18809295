//! Reading buffers back to the host.

use super::{Dtype, Gpu, GpuBuffer};
use crate::error::{Error, Result};

impl Gpu {
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
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::gpu("waiting for readback", e))?;
        drop(tx);
        for (_, r) in rx.iter() {
            r.map_err(|e| Error::gpu("mapping a readback buffer", e))?;
        }
        let mut out = Vec::with_capacity(srcs.len());
        for (s, st) in srcs.iter().zip(&staging) {
            let view = st.slice(..).get_mapped_range().map_err(|e| Error::gpu("reading a mapped buffer", e))?;
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
