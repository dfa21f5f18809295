//! The IDX format of MNIST and Fashion-MNIST (big-endian header, then u8 data), plain or gzipped.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Dataset, InMemory, Source};
use crate::error::{Error, Result};

/// Fashion-MNIST's ten class names, indexed by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// The file's bytes, gunzipped when it starts with the gzip magic.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::file(path, format!("corrupt or truncated gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn header(path: &Path, bytes: &[u8], magic: u32, dims: usize) -> Result<Vec<usize>> {
    let need = 4 + 4 * dims;
    if bytes.len() < need {
        return Err(Error::file(path, format!("truncated IDX header: {} bytes, need {need}", bytes.len())));
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if be(0) != magic {
        return Err(Error::file(
            path,
            format!("not an IDX file of {dims}-d u8 data: magic 0x{:08x}, expected 0x{magic:08x}", be(0)),
        ));
    }
    let shape: Vec<usize> = (0..dims).map(|d| be(4 + 4 * d) as usize).collect();
    let expected = need + shape.iter().product::<usize>();
    if bytes.len() < expected {
        return Err(Error::file(
            path,
            format!("truncated IDX file: {} bytes, the header {shape:?} needs {expected}", bytes.len()),
        ));
    }
    Ok(shape)
}

/// Images of an IDX3 file: (n, h, w) and the pixels.
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let bytes = read_maybe_gz(path)?;
    let s = header(path, &bytes, 0x0000_0803, 3)?;
    Ok((s[0], s[1], s[2], bytes[16..16 + s[0] * s[1] * s[2]].to_vec()))
}

/// Labels of an IDX1 file.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u32>> {
    let bytes = read_maybe_gz(path)?;
    let s = header(path, &bytes, 0x0000_0801, 1)?;
    Ok(bytes[8..8 + s[0]].iter().map(|&b| b as u32).collect())
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = dir.join(&name);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(Error::file(
        dir.join(stem),
        "Fashion-MNIST file not found (plain or .gz). On Debian: `apt-get install dataset-fashion-mnist`, or pass --data DIR",
    ))
}

fn split(dir: &Path, prefix: &str, name: &str) -> Result<Dataset> {
    let img_path = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lbl_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (n, h, w, pixels) = read_idx_images(&img_path)?;
    let labels = read_idx_labels(&lbl_path)?;
    if labels.len() != n {
        return Err(Error::file(
            &lbl_path,
            format!("{} labels for {n} images in {}", labels.len(), img_path.display()),
        ));
    }
    let ds = Dataset {
        name: format!("{name} ({})", lbl_path.display()),
        source: Source::Memory(InMemory { channels: 1, h, w, pixels, labels }),
        class_names: FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect(),
    };
    ds.validate()?;
    Ok(ds)
}

/// Fashion-MNIST's train and test splits from `dir` (Debian: /usr/share/datasets/fashion-mnist).
pub fn load_fashion_mnist(dir: &Path) -> Result<(Dataset, Dataset)> {
    Ok((split(dir, "train", "fashion-mnist train")?, split(dir, "t10k", "fashion-mnist test")?))
}
