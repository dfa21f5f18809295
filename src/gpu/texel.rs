//! Texel inputs for CPU adapters: a buffer range copied into a scratch `rgba32float` texture just
//! before the dispatch that reads it, and which range each texture holds so that a copy can be
//! skipped.

use std::sync::Arc;

use super::{Dispatch, GpuBuffer, TEXEL_ROW};

/// A copy of a buffer range into a scratch texture, encoded just before the dispatch that reads it.
pub struct TexelCopy {
    /// The range copied: a whole number of vec4s at a 16-byte offset, one per texel.
    pub src: GpuBuffer,
    /// The scratch `rgba32float` texture it lands in, `TEXEL_ROW` texels a row, row-major.
    pub texture: Arc<wgpu::Texture>,
}

impl TexelCopy {
    /// Records the copy on `encoder`: whole rows of `TEXEL_ROW` texels, then the partial last row.
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
    pub(super) fn copied(&mut self, copy: &TexelCopy) {
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
        self.ran_writes(dispatch.writes());
    }
    /// A dispatch that writes `writes` ran.
    pub(super) fn ran_writes<'a>(&mut self, writes: impl Iterator<Item = &'a GpuBuffer>) {
        let written: Vec<usize> = writes.map(|w| range_key(w).0).collect();
        self.held.retain(|(_, k)| !written.contains(&k.0));
    }
    /// How recently `texture` received its content: 0 for none, then 1, 2, ... from the oldest copy.
    pub(super) fn age(&self, texture: &Arc<wgpu::Texture>) -> usize {
        self.held.iter().position(|(t, _)| Arc::ptr_eq(t, texture)).map_or(0, |i| i + 1)
    }
    /// A texture holding `b`'s range other than those in `taken`.
    pub(super) fn holding(&self, b: &GpuBuffer, taken: &[Arc<wgpu::Texture>]) -> Option<Arc<wgpu::Texture>> {
        let key = range_key(b);
        self.held.iter().find(|(t, k)| *k == key && !taken.iter().any(|u| Arc::ptr_eq(t, u))).map(|(t, _)| t.clone())
    }
}
