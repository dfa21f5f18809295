//! The one place that writes files. Every write is checked, and a file is replaced atomically: a
//! crash, a full disk or a failing serialiser leaves either the old content or the new one under
//! the path, never a mix, and no stray temporary.
//!
//! What [`write_atomic`] does depends on what is at the path (links followed):
//!
//! - **a regular file, or nothing yet**: the content goes to a temporary in the same folder
//!   (`.<name>.effnet-<pid>-<n>.tmp`, created exclusively), which is written in full, flushed,
//!   `sync_all`ed, given the old file's permissions, and renamed over the path; then the folder is
//!   synced so the rename survives a power cut (best effort: not every OS can open a folder). On
//!   any error the temporary is removed and the old file is untouched. A read-only file is refused
//!   rather than replaced. Other hard links to the old file keep the old content.
//! - **a symbolic link**: the file it points to is replaced as above (the temporary goes beside
//!   that file); the link stays a link. A dangling link creates the file it names.
//! - **anything else** (a device such as `/dev/null` or `/dev/stdout`, a FIFO): written through
//!   directly, with no temporary and no rename — renaming over a device would replace the device
//!   node with a plain file, and a pipe cannot be written twice. Every write and the flush are
//!   checked; `sync_all` is skipped, as devices and pipes do not support it. (Opening a FIFO
//!   waits for a reader, as any writer of a FIFO does.)
//! - **a directory**: an error naming it.
//!
//! A process killed mid-write leaves its temporary behind; [`remove_stale_temporaries`] removes
//! those beside a path (and nothing else). [`append`] adds to a file (the metrics CSV) with every
//! write checked, and cuts a failed append back so that the file never ends in half a record.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Marks a temporary as this crate's: `.<name>` + `TEMP_MARK` + `<pid>-<n>` + `TEMP_SUFFIX`.
const TEMP_MARK: &str = ".effnet-";
const TEMP_SUFFIX: &str = ".tmp";
/// Symbolic links followed before giving up (Linux's own limit).
const MAX_LINKS: usize = 40;

/// Replaces the file at `path` with `bytes`, atomically (see the module documentation).
pub fn write_atomic(path: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> Result<()> {
    let path = path.as_ref();
    write_atomic_with(path, |w| w.write_all(bytes.as_ref()).map_err(|e| Error::io(path, e)))
}

/// Replaces the file at `path` with what `write` writes into the writer it is given (buffered),
/// atomically (see the module documentation). An error from `write` is returned as it is, and
/// the old content stays. The writer's I/O errors are `std::io::Error`s: map them with
/// `Error::io(path, e)`.
pub fn write_atomic_with(path: impl AsRef<Path>, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let path = path.as_ref();
    match resolve(path)? {
        Target::Replace(target) => replace(path, &target, write),
        Target::WriteThrough => write_through(path, write),
    }
}

/// Appends `bytes` to the file at `path`, creating it if needed. Every write and the flush are
/// checked; when one fails, the file is cut back to its old length (best effort) so that it
/// does not end in a partial record. Returns the length the file had before.
pub fn append(path: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> Result<u64> {
    let path = path.as_ref();
    if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(is_a_directory(path));
    }
    let mut file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    let before = meta.len();
    let result = file.write_all(bytes.as_ref()).and_then(|()| file.flush());
    if let Err(e) = result {
        // Only a regular file can be cut back; a device or pipe has no length to restore.
        if meta.is_file() {
            let _ = file.set_len(before);
        }
        return Err(Error::io(path, e));
    }
    Ok(before)
}

/// Removes the temporaries that a killed process left beside `path` (beside the file a link
/// points to) and returns them. Only names of exactly this module's form for this file name are
/// touched, and only those of processes no longer running: this process's own and, on Linux,
/// those of live processes (another writer's in-flight file) are kept. A missing folder has
/// nothing to remove.
pub fn remove_stale_temporaries(path: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let path = path.as_ref();
    let target = match resolve(path)? {
        Target::Replace(target) => target,
        Target::WriteThrough => return Ok(Vec::new()),
    };
    let (dir, name) = split(&target)?;
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let Some(pid) = temporary_pid(&name, &entry.file_name()) else { continue };
        if process_is_running(pid) {
            continue;
        }
        // A folder or link with a temporary's name is not one of ours.
        let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        if !kind.is_file() {
            continue;
        }
        std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        removed.push(entry.path());
    }
    removed.sort();
    Ok(removed)
}

/// Where the bytes for a path go.
enum Target {
    /// A regular file or a new one, at this path (links resolved): replace by rename.
    Replace(PathBuf),
    /// A device, FIFO or socket: write to the path itself.
    WriteThrough,
}

fn is_a_directory(path: &Path) -> Error {
    Error::invalid(format!("{} is a directory; give a file path to write to", path.display()))
}

/// Follows `path` to what it names: a directory is an error, a special file is written through,
/// a regular file is replaced where it really lives, and a dangling link creates its target.
fn resolve(path: &Path) -> Result<Target> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(is_a_directory(path)),
        Ok(m) if m.is_file() => Ok(Target::Replace(std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?)),
        // Devices and pipes; opening `path` itself also follows /proc's magic links such as
        // /dev/stdout → /proc/self/fd/1 → pipe:[...].
        Ok(_) => Ok(Target::WriteThrough),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Nothing there, or a link to nothing: follow the links by hand to the name to create.
            let mut at = path.to_path_buf();
            for _ in 0..MAX_LINKS {
                match std::fs::symlink_metadata(&at) {
                    Ok(m) if m.file_type().is_symlink() => {
                        let link = std::fs::read_link(&at).map_err(|e| Error::io(&at, e))?;
                        at = match at.parent() {
                            Some(dir) => dir.join(link),
                            None => link,
                        };
                    }
                    _ => return Ok(Target::Replace(at)),
                }
            }
            Err(Error::invalid(format!("{}: more than {MAX_LINKS} symbolic links to follow", path.display())))
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The folder (`.` for a bare name) and the file name of `path`.
fn split(path: &Path) -> Result<(PathBuf, OsString)> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{} does not name a file", path.display())))?
        .to_os_string();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

/// `.<name>.effnet-<pid>-<n>.tmp`.
fn temporary_name(name: &OsStr, pid: u32, n: u64) -> OsString {
    let mut s = OsString::from(".");
    s.push(name);
    s.push(format!("{TEMP_MARK}{pid}-{n}{TEMP_SUFFIX}"));
    s
}

/// The process id in `candidate` when it is exactly a temporary of `name`.
fn temporary_pid(name: &OsStr, candidate: &OsStr) -> Option<u32> {
    let rest = candidate.as_encoded_bytes().strip_prefix(b".")?;
    let rest = rest.strip_prefix(name.as_encoded_bytes())?;
    let rest = rest.strip_prefix(TEMP_MARK.as_bytes())?;
    let rest = rest.strip_suffix(TEMP_SUFFIX.as_bytes())?;
    let rest = std::str::from_utf8(rest).ok()?;
    let (pid, n) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    // A number too large for a pid or counter is not a name this module made.
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

fn process_is_running(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    // Elsewhere there is no portable check: a temporary is then taken as stale.
    cfg!(target_os = "linux") && Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes the temporary when dropped unless it was renamed: on errors and on a panic in the
/// caller's writer alike.
struct Temporary {
    path: PathBuf,
    renamed: bool,
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates a temporary beside `target` that no one else has (exclusive create, fresh counter).
fn create_temporary(path: &Path, target: &Path) -> Result<(File, Temporary)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (dir, name) = split(target)?;
    let mut last = None;
    for _ in 0..100 {
        let tmp = dir.join(temporary_name(&name, std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((file, Temporary { path: tmp, renamed: false })),
            // Left by an earlier process with the same pid: try the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Err(Error::io(path, last.unwrap_or_else(|| std::io::Error::other("no free temporary name"))))
}

fn replace(path: &Path, target: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let old = match std::fs::metadata(target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(path, e)),
    };
    if let Some(old) = &old {
        if old.permissions().readonly() {
            let e =
                std::io::Error::new(std::io::ErrorKind::PermissionDenied, "the file is read-only; not replacing it");
            return Err(Error::io(path, e));
        }
    }
    let (file, mut tmp) = create_temporary(path, target)?;
    // The old file's permissions before any byte is written, so a private file never has a
    // readable copy.
    if let Some(old) = &old {
        file.set_permissions(old.permissions()).map_err(|e| Error::io(path, e))?;
    }
    let mut out = std::io::BufWriter::new(file);
    write(&mut out)?;
    let file = out.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(path, e))?;
    drop(file);
    std::fs::rename(&tmp.path, target).map_err(|e| Error::io(path, e))?;
    tmp.renamed = true;
    // Make the rename itself durable. Not every OS can open a folder: best effort.
    if let Ok((dir, _)) = split(target) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn write_through(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let file = OpenOptions::new().write(true).open(path).map_err(|e| Error::io(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    write(&mut out)?;
    let mut file = out.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
    file.flush().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_parse_back_exactly() {
        let name = OsStr::new("checkpoint.safetensors");
        let tmp = temporary_name(name, 1234, 7);
        assert_eq!(tmp, ".checkpoint.safetensors.effnet-1234-7.tmp");
        assert_eq!(temporary_pid(name, &tmp), Some(1234));
        for other in [
            "checkpoint.safetensors",
            "checkpoint.safetensors.tmp",
            ".checkpoint.safetensors.effnet-1234.tmp",
            ".checkpoint.safetensors.effnet-1234-7.tmp.bak",
            ".checkpoint.safetensors.effnet--7.tmp",
            ".checkpoint.safetensors.effnet-12a-7.tmp",
            ".checkpoint.safetensors.effnet-99999999999-7.tmp",
            ".checkpoint.safetensors.x.effnet-1234-7.tmp",
            ".other.effnet-1234-7.tmp",
        ] {
            assert_eq!(temporary_pid(name, OsStr::new(other)), None, "{other}");
        }
    }
}
