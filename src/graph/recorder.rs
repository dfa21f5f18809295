//! Records dispatches and hands out activation buffers. A buffer may be reused as soon as its
//! last reader has been recorded: dispatches replay in order (wgpu orders storage-buffer hazards
//! between dispatches), so a later dispatch may overwrite it safely.
//!
//! A graph is recorded twice. The first pass (`Recorder::new`) hands out buffers greedily as the
//! tensors come and notes each tensor's size and lifetime; `MemoryPlan::new` then places the
//! tensors offline, largest first, each in the smallest buffer that is free for its whole
//! lifetime; the second pass (`Recorder::planned`) hands out those buffers. Greedy reuse fits
//! early tensors into buffers that larger later ones then cannot use: on B0's training step it
//! created ~50% more than the peak of live tensors.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Dtype, Gpu, GpuBuffer, TexelResidency};

/// Records one graph: its dispatches in order, its activation buffers, and what the texel scratch
/// textures hold as each dispatch replays after the ones before it.
pub struct Recorder<'a> {
    /// The device it records for.
    pub gpu: &'a Gpu,
    alloc: Alloc,
    /// The dispatches recorded so far, in replay order.
    pub dispatches: Vec<Dispatch>,
    /// Bytes of activation buffers created (the plan's activation memory).
    pub allocated_bytes: u64,
    /// What the scratch textures hold after the dispatches recorded so far, so that a texel
    /// input still held is bound from its texture and the replay skips the copy.
    texels: TexelResidency,
}

enum Alloc {
    /// First pass: greedy reuse of released buffers, and the tensors' sizes and lifetimes.
    Greedy {
        free: Vec<Arc<wgpu::Buffer>>,
        tensors: Vec<Lifetime>,
        /// The tensor each handed-out buffer holds now, by the buffer's address.
        live: HashMap<*const wgpu::Buffer, usize>,
        /// Allocations and releases so far: the clock of the lifetimes.
        events: usize,
    },
    /// Second pass: tensor `next` goes in `buffers[plan.slot[next]]`.
    Planned { plan: MemoryPlan, buffers: Vec<Arc<wgpu::Buffer>>, next: usize },
}

/// One tensor of the first pass: its bytes, and the events at which it was allocated and
/// released (`usize::MAX` if it outlives the recording, as outputs do).
#[derive(Clone, Copy, Debug)]
struct Lifetime {
    bytes: u64,
    start: usize,
    end: usize,
}

/// Where each tensor of a recording goes: `slot[i]` is the buffer of the i-th allocation,
/// `sizes[s]` the bytes of buffer s.
#[derive(Clone, Debug)]
pub struct MemoryPlan {
    bytes: Vec<u64>,
    slot: Vec<usize>,
    sizes: Vec<u64>,
}

impl MemoryPlan {
    /// Largest tensor first, each into the smallest buffer that fits it and holds no other tensor
    /// during its lifetime, else a new buffer of its size. Tensors placed later are no larger, so
    /// a buffer never has to grow.
    fn new(tensors: &[Lifetime]) -> MemoryPlan {
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(tensors[i].bytes), tensors[i].start));
        let mut sizes: Vec<u64> = Vec::new();
        let mut busy: Vec<Vec<(usize, usize)>> = Vec::new();
        let mut slot = vec![0; tensors.len()];
        for i in order {
            let t = tensors[i];
            let overlaps = |(s, e): &(usize, usize)| t.start < *e && *s < t.end;
            let fit = (0..sizes.len())
                .filter(|&s| sizes[s] >= t.bytes && !busy[s].iter().any(overlaps))
                .min_by_key(|&s| sizes[s]);
            let s = fit.unwrap_or_else(|| {
                sizes.push(t.bytes);
                busy.push(Vec::new());
                sizes.len() - 1
            });
            busy[s].push((t.start, t.end));
            slot[i] = s;
        }
        MemoryPlan { bytes: tensors.iter().map(|t| t.bytes).collect(), slot, sizes }
    }

    /// Bytes of all the plan's buffers.
    pub fn total_bytes(&self) -> u64 {
        self.sizes.iter().sum()
    }
}

/// Records a graph with `record` twice, the second time with the tensors placed by the first
/// pass's `MemoryPlan`; keeps the first recording where the plan would take no less memory.
pub fn record_planned<'a, T>(
    gpu: &'a Gpu,
    mut record: impl FnMut(Recorder<'a>) -> Result<(T, Recorder<'a>)>,
) -> Result<T> {
    let (first, r) = record(Recorder::new(gpu))?;
    let plan = r.plan()?;
    if plan.total_bytes() >= r.allocated_bytes {
        return Ok(first);
    }
    drop((first, r));
    // wgpu frees dropped buffers as it maintains the device: let it, before the second pass
    // allocates, so that the two passes' buffers are not held at once.
    gpu.device.poll(wgpu::PollType::Poll).map_err(|e| Error::gpu("freeing the first recording's buffers", e))?;
    Ok(record(Recorder::planned(gpu, plan)?)?.0)
}

impl<'a> Recorder<'a> {
    /// The first pass: greedy reuse, noting what `plan` needs.
    pub fn new(gpu: &'a Gpu) -> Self {
        let alloc = Alloc::Greedy { free: Vec::new(), tensors: Vec::new(), live: HashMap::new(), events: 0 };
        Recorder { gpu, alloc, dispatches: Vec::new(), allocated_bytes: 0, texels: TexelResidency::default() }
    }

    /// The second pass of the same recording: the buffers of `plan`, created up front.
    pub fn planned(gpu: &'a Gpu, plan: MemoryPlan) -> Result<Self> {
        let buffers = plan
            .sizes
            .iter()
            .map(|&bytes| Ok(gpu.empty_typed(bytes as usize / 4, Dtype::F32, "activation")?.buffer))
            .collect::<Result<Vec<_>>>()?;
        let allocated_bytes = buffers.iter().map(|b| b.size()).sum();
        Ok(Recorder {
            gpu,
            alloc: Alloc::Planned { plan, buffers, next: 0 },
            dispatches: Vec::new(),
            allocated_bytes,
            texels: TexelResidency::default(),
        })
    }

    /// The offline placement of this first pass's tensors, for `Recorder::planned`.
    pub fn plan(&self) -> Result<MemoryPlan> {
        match &self.alloc {
            Alloc::Greedy { tensors, .. } => Ok(MemoryPlan::new(tensors)),
            Alloc::Planned { .. } => Err(Error::invalid("Recorder::plan: this recording already follows a plan")),
        }
    }

    /// A buffer of at least `len` f32.
    pub fn alloc(&mut self, len: usize) -> Result<GpuBuffer> {
        self.alloc_typed(len, Dtype::F32)
    }

    /// `alloc` for `len` elements of `dtype` (buffers are shared across element types).
    pub fn alloc_typed(&mut self, len: usize, dtype: Dtype) -> Result<GpuBuffer> {
        let bytes = (len.max(1) * dtype.size()).next_multiple_of(4) as u64;
        let buffer = match &mut self.alloc {
            Alloc::Greedy { free, tensors, live, events } => {
                // The smallest free buffer that fits and is at most 4x larger (or 4 KiB): uncapped,
                // small late tensors settle in the big buffers early layers free.
                let best = free
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.size() >= bytes && b.size() <= bytes.saturating_mul(4).max(4096))
                    .min_by_key(|(_, b)| b.size())
                    .map(|(i, _)| i);
                let buffer = match best {
                    Some(i) => free.swap_remove(i),
                    None => {
                        let b = self.gpu.empty_typed(len, dtype, "activation")?.buffer;
                        self.allocated_bytes += b.size();
                        b
                    }
                };
                live.insert(Arc::as_ptr(&buffer), tensors.len());
                tensors.push(Lifetime { bytes, start: *events, end: usize::MAX });
                *events += 1;
                buffer
            }
            Alloc::Planned { plan, buffers, next } => {
                let i = *next;
                if plan.bytes.get(i) != Some(&bytes) {
                    return Err(Error::invalid(format!(
                        "recording diverged from its first pass at tensor {i}: {bytes} bytes where the plan has {:?}",
                        plan.bytes.get(i)
                    )));
                }
                *next += 1;
                buffers[plan.slot[i]].clone()
            }
        };
        Ok(GpuBuffer { buffer, offset: 0, len, dtype })
    }

    /// Returns a buffer from `alloc`: later dispatches may reuse it.
    pub fn release(&mut self, b: GpuBuffer) {
        if let Alloc::Greedy { free, tensors, live, events } = &mut self.alloc {
            if let Some(i) = live.remove(&Arc::as_ptr(&b.buffer)) {
                tensors[i].end = *events;
                *events += 1;
                free.push(b.buffer);
            }
        }
    }

    /// Appends `d`, labelled, its texel inputs bound from the textures that hold them after the
    /// dispatches before it.
    pub fn push(&mut self, mut d: Dispatch, label: &str) -> Result<()> {
        d.label = format!("{label}: {}", d.kernel.name());
        d.bind(self.gpu, &mut self.texels)?;
        self.dispatches.push(d);
        Ok(())
    }

    /// `push` for each of `ds`.
    pub fn push_all(&mut self, ds: impl IntoIterator<Item = Dispatch>, label: &str) -> Result<()> {
        for d in ds {
            self.push(d, label)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn life(bytes: u64, start: usize, end: usize) -> Lifetime {
        Lifetime { bytes, start, end }
    }

    #[test]
    fn the_plan_reuses_what_greedy_reuse_cannot() {
        // A (100) lives over events 0-2, B (30) over 2-4, C (100) over 3-5. Greedy reuse puts B
        // in A's freed buffer (within 4x), so C needs a second 100: 200 in all. Placed largest
        // first, A and C share one buffer and B gets its own: 130.
        let plan = MemoryPlan::new(&[life(100, 0, 2), life(30, 2, 4), life(100, 3, 5)]);
        assert_eq!(plan.slot[0], plan.slot[2]);
        assert_ne!(plan.slot[1], plan.slot[0]);
        assert_eq!(plan.total_bytes(), 130);
    }

    #[test]
    fn tensors_alive_together_never_share_a_buffer_and_each_fits_its_own() {
        // A pseudo-random recording: sizes 4..4096 bytes, lifetimes over 200 events, some never
        // released (outputs).
        let mut x = 12345u64;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) as usize
        };
        let tensors: Vec<Lifetime> = (0..300)
            .map(|_| {
                let start = next() % 200;
                let end = if next() % 10 == 0 { usize::MAX } else { start + 1 + next() % 40 };
                life(4 * (1 + next() % 1024) as u64, start, end)
            })
            .collect();
        let plan = MemoryPlan::new(&tensors);
        for (i, a) in tensors.iter().enumerate() {
            assert!(plan.sizes[plan.slot[i]] >= a.bytes, "tensor {i} does not fit its buffer");
            for (j, b) in tensors.iter().enumerate().skip(i + 1) {
                let together = a.start < b.end && b.start < a.end;
                assert!(
                    !(together && plan.slot[i] == plan.slot[j]),
                    "tensors {i} and {j} share a buffer while both live"
                );
            }
        }
        // Never more than one buffer per tensor, and here well under.
        let all: u64 = tensors.iter().map(|t| t.bytes).sum();
        assert!(plan.total_bytes() < all / 2, "{} of {all}", plan.total_bytes());
    }
}
