//! The IDX format of MNIST and Fashion-MNIST (big-endian header, then u8 data), plain or gzipped.
//!
//! Every size comes from the file, so every size is checked: the header's product with checked
//! arithmetic, then against the bytes really there. Nothing is allocated from the header's claim
//! alone (a 16-byte file that claims 10^12 pixels, or a gzip bomb, reads only what exists).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::{Dataset, InMemory, Source};
use crate::error::{Error, Result};

/// Fashion-MNIST's ten class names, indexed by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// What every IDX error ends with: how to get a good file.
const REFETCH: &str = "re-download it (Debian: `apt-get install dataset-fashion-mnist`) or pass --data DIR";

/// Reads `out.len()` bytes or says how many there were: Ok(n < out.len()) at the end of the data.
fn read_full(r: &mut impl Read, out: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < out.len() {
        match r.read(&mut out[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads an IDX file of `dims`-dimensional u8 data with `magic`: its shape and data, plain or
/// gzipped (detected by the gzip magic, whatever the name).
fn read_idx(path: &Path, magic: u32, dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let mut file = BufReader::new(File::open(path).map_err(|e| Error::io(path, e))?);
    let file_len = file.get_ref().metadata().map_err(|e| Error::io(path, e))?.len();
    // Peek at the first bytes (without consuming them) for the gzip magic.
    let gzipped = file.fill_buf().map_err(|e| Error::io(path, e))?.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read> = if gzipped { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) };
    // Errors of the gzip layer are the file's, not the disk's.
    let io_err = |e: std::io::Error| {
        if gzipped {
            Error::file(path, format!("corrupt or truncated gzip data: {e}; {REFETCH}"))
        } else {
            Error::io(path, e)
        }
    };

    let need = 4 + 4 * dims;
    let mut head = vec![0u8; need];
    let got = read_full(&mut reader, &mut head).map_err(io_err)?;
    if got < need {
        return Err(Error::file(path, format!("truncated IDX header: {got} bytes, need {need}; {REFETCH}")));
    }
    let be = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    if be(0) != magic {
        return Err(Error::file(
            path,
            format!(
                "not an IDX file of {dims}-d u8 data: magic 0x{:08x}, expected 0x{magic:08x} (is it the right file, \
                 images vs labels?)",
                be(0)
            ),
        ));
    }
    let shape: Vec<usize> = (0..dims).map(|d| be(4 + 4 * d) as usize).collect();
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| {
        Error::file(
            path,
            format!(
                "corrupt IDX header: the shape {shape:?} overflows (it claims more bytes than can exist); {REFETCH}"
            ),
        )
    })?;
    let expected = (need as u64).saturating_add(count as u64);
    // A plain file says its length up front: refuse a short one before reading or allocating.
    if !gzipped && file_len < expected {
        return Err(Error::file(
            path,
            format!("truncated IDX file: {file_len} bytes, the header's shape {shape:?} needs {expected}; {REFETCH}"),
        ));
    }
    // One byte more than the header claims, to tell a file with extra data from an exact one. A
    // plain file's length is checked above; a gzip stream's is known only at its end, so its
    // buffer grows with what is really read.
    let mut data = Vec::with_capacity(if gzipped { 0 } else { count });
    reader.take(count as u64 + 1).read_to_end(&mut data).map_err(io_err)?;
    if data.len() < count {
        return Err(Error::file(
            path,
            format!(
                "truncated IDX file: {} bytes of data after the header, its shape {shape:?} needs {count}; {REFETCH}",
                data.len()
            ),
        ));
    }
    if data.len() > count {
        return Err(Error::file(
            path,
            format!(
                "the file is longer than its IDX header's shape {shape:?} says ({count} bytes of data); the header is \
                 wrong or this is not an IDX file; {REFETCH}"
            ),
        ));
    }
    Ok((shape, data))
}

/// Images of an IDX3 file: (n, h, w) and the pixels. Errors name the file when it is truncated,
/// longer than its header says, holds no images, or images of 0 pixels.
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let (s, pixels) = read_idx(path, 0x0000_0803, 3)?;
    let (n, h, w) = (s[0], s[1], s[2]);
    if h == 0 || w == 0 {
        return Err(Error::file(
            path,
            format!(
                "the IDX header says images of {h}x{w} pixels; an image needs at least 1x1 (0x0 is empty); {REFETCH}"
            ),
        ));
    }
    if n == 0 {
        return Err(Error::file(path, format!("the IDX file holds no images (count 0 in its header); {REFETCH}")));
    }
    Ok((n, h, w, pixels))
}

/// Labels of an IDX1 file. Errors name the file when it is truncated, longer than its header
/// says, or holds no labels.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u32>> {
    let (_, bytes) = read_idx(path, 0x0000_0801, 1)?;
    if bytes.is_empty() {
        return Err(Error::file(path, format!("the IDX file holds no labels (count 0 in its header); {REFETCH}")));
    }
    Ok(bytes.iter().map(|&b| b as u32).collect())
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
            format!(
                "{} labels for {n} images in {}; the two files must be the same split of the same download",
                labels.len(),
                img_path.display()
            ),
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
