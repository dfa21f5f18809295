//! Per-dispatch GPU time from timestamp queries.

use super::{Dispatch, Gpu};
use crate::error::{Error, Result};

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
        gpu.submit("profiling", [encoder.finish()])?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::gpu("waiting for timestamps", e))?;
        rx.recv().map_err(|e| Error::gpu("mapping timestamps", e))?.map_err(|e| Error::gpu("mapping timestamps", e))?;
        let view = staging.slice(..).get_mapped_range().map_err(|e| Error::gpu("reading timestamps", e))?;
        let ticks: &[u64] = bytemuck::cast_slice(&view);
        out.extend(ticks.chunks(2).map(|t| t[1].saturating_sub(t[0]) as f64 * period));
    }
    Ok(out)
}
