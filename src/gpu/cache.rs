//! The persistent pipeline cache: the driver's compiled pipelines kept between runs, where the
//! backend has one (Vulkan, lavapipe included). One file per adapter and driver in the user's
//! cache folder (`EFFNET_PIPELINE_CACHE` overrides the folder; `off` disables it), written
//! atomically; a corrupt file or one another adapter or driver made is ignored, with a note.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::Result;

/// What became of the pipeline cache when the `Gpu` was made (`Gpu::pipeline_cache_status`).
#[derive(Clone, Debug, Default)]
pub struct PipelineCacheStatus {
    /// The cache file, when this device keeps one.
    pub path: Option<PathBuf>,
    /// Bytes of compiled pipelines read from it at start.
    pub loaded_bytes: usize,
    /// Why the file on disk was not used (corrupt, or made by another adapter or driver): it is
    /// rebuilt. Worth telling the user.
    pub ignored: Option<String>,
    /// Why no cache is kept at all (no `PIPELINE_CACHE` feature, a backend without one, or
    /// `EFFNET_PIPELINE_CACHE=off`).
    pub off: Option<String>,
}

/// The file's header: magic, then the length and FNV-1a hash of the data, then the key of the
/// adapter and driver that made it.
const MAGIC: &[u8; 8] = b"EFFNETPC";

pub(super) struct PersistentCache {
    pub(super) cache: wgpu::PipelineCache,
    path: PathBuf,
    owner: String,
    /// Length of the data last written (or read): a save writes only when the cache grew.
    saved: Mutex<usize>,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The folder for cache files: `EFFNET_PIPELINE_CACHE`, else the platform's user cache folder.
fn folder() -> std::result::Result<PathBuf, String> {
    match std::env::var_os("EFFNET_PIPELINE_CACHE") {
        Some(v) if v == "off" => Err("EFFNET_PIPELINE_CACHE=off".into()),
        Some(v) => Ok(PathBuf::from(v)),
        None => dirs::cache_dir().map(|d| d.join("efficientnet-wgpu")).ok_or_else(|| "no user cache folder".into()),
    }
}

/// The cache's data from `file` made by `owner`, or why it cannot be used.
fn read(file: &Path, owner: &str) -> std::result::Result<Vec<u8>, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let corrupt = || format!("{}: ignored, not a complete pipeline cache (it is rebuilt)", file.display());
    let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(corrupt)?;
    let word = |b: &[u8], at: usize| b.get(at..at + 8).map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()));
    let (len, hash, owner_len) = match (word(rest, 0), word(rest, 8), word(rest, 16)) {
        (Some(l), Some(h), Some(o)) => (l as usize, h, o as usize),
        _ => return Err(corrupt()),
    };
    let stored_owner = rest.get(24..24 + owner_len).ok_or_else(corrupt)?;
    let data = rest.get(24 + owner_len..).ok_or_else(corrupt)?;
    if data.len() != len || fnv1a(data) != hash {
        return Err(corrupt());
    }
    if stored_owner != owner.as_bytes() {
        return Err(format!(
            "{}: ignored, made by {} (this is {owner}); it is rebuilt",
            file.display(),
            String::from_utf8_lossy(stored_owner)
        ));
    }
    Ok(data.to_vec())
}

impl PersistentCache {
    /// Opens the cache for `device`: none where the device lacks `PIPELINE_CACHE` or the backend
    /// has no cache key; the file's pipelines where it holds a valid one for this adapter.
    pub(super) fn open(
        device: &wgpu::Device,
        info: &wgpu::AdapterInfo,
    ) -> (Option<PersistentCache>, PipelineCacheStatus) {
        let mut status = PipelineCacheStatus::default();
        if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
            status.off = Some("the device was created without PIPELINE_CACHE".into());
            return (None, status);
        }
        let Some(key) = wgpu::util::pipeline_cache_key(info) else {
            status.off = Some(format!("the {:?} backend keeps no pipeline cache", info.backend));
            return (None, status);
        };
        let dir = match folder() {
            Ok(d) => d,
            Err(why) => {
                status.off = Some(why);
                return (None, status);
            }
        };
        let path = dir.join(format!("{key}.bin"));
        let owner = format!("{} / {} {}", info.name, info.driver, info.driver_info);
        let data = match read(&path, &owner) {
            Ok(d) => Some(d),
            Err(note) => {
                // A missing file is the normal first run, not worth a note.
                if path.exists() {
                    status.ignored = Some(note);
                }
                None
            }
        };
        status.loaded_bytes = data.as_ref().map_or(0, Vec::len);
        // SAFETY: the data is what `get_data` returned on a device of this adapter and driver
        // (checked by the header above); with `fallback` wgpu validates it again and starts empty
        // where the driver refuses it.
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("efficientnet-wgpu pipelines"),
                data: data.as_deref(),
                fallback: true,
            })
        };
        status.path = Some(path.clone());
        let saved = Mutex::new(status.loaded_bytes);
        (Some(PersistentCache { cache, path, owner, saved }), status)
    }

    /// Writes the cache to its file (atomically, creating the folder) when it holds more than
    /// was last written. Returns whether it wrote.
    pub(super) fn save(&self) -> Result<bool> {
        let Some(data) = self.cache.get_data() else { return Ok(false) };
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        if data.len() <= *saved {
            return Ok(false);
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir, e))?;
        }
        let mut file = Vec::with_capacity(data.len() + 64);
        file.extend_from_slice(MAGIC);
        for v in [data.len() as u64, fnv1a(&data), self.owner.len() as u64] {
            file.extend_from_slice(&v.to_le_bytes());
        }
        file.extend_from_slice(self.owner.as_bytes());
        file.extend_from_slice(&data);
        crate::fsio::write_atomic(&self.path, &file)?;
        *saved = data.len();
        Ok(true)
    }
}
