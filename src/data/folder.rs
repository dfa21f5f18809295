//! Image folders: `root/<class>/<image>.{jpg,jpeg,png}`, classes in sorted order (as torchvision's
//! ImageFolder), with a deterministic held-out split by a hash of each file's relative path.

use std::path::{Path, PathBuf};

use super::{Dataset, Source};
use crate::error::{Error, Result};
use crate::ops::rng::hash_u32;

/// How much of each class is held out for evaluation.
#[derive(Clone, Copy, Debug)]
pub struct FolderSplit {
    /// Fraction in [0, 1) of the images held out.
    pub held_out: f32,
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref(),
        Some("jpg" | "jpeg" | "png")
    )
}

fn path_hash(rel: &str) -> f32 {
    let h = rel.bytes().fold(0x811c_9dc5u32, |h, b| hash_u32(h ^ b as u32));
    (h >> 8) as f32 / 16_777_216.0
}

/// (train, held-out) splits of the folder. Errors name the folder when it is missing, empty, has
/// no class subfolders, or a class has no images. (Training needs two classes or more: the
/// trainer checks that.)
pub fn load_image_folder(root: &Path, split: FolderSplit) -> Result<(Dataset, Dataset)> {
    let entries = std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    let mut classes: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    classes.sort();
    if classes.is_empty() {
        return Err(Error::file(root, "no class subfolders: expected root/<class>/<image>.jpg|png"));
    }
    let names: Vec<String> =
        classes.iter().map(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()).collect();
    let (mut train, mut test) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for (label, dir) in classes.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_image(p))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::file(dir, "class folder has no .jpg/.jpeg/.png images"));
        }
        for f in files {
            let rel = f.strip_prefix(root).unwrap_or(&f).to_string_lossy().into_owned();
            let target = if path_hash(&rel) < split.held_out { &mut test } else { &mut train };
            target.0.push(f);
            target.1.push(label as u32);
        }
    }
    let make = |(paths, labels): (Vec<PathBuf>, Vec<u32>), which: &str| Dataset {
        name: format!("{} ({which})", root.display()),
        source: Source::Files { paths, labels },
        class_names: names.clone(),
    };
    Ok((make(train, "train"), make(test, "held out")))
}
