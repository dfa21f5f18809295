//! Image files: decoding that names the file in every error, a bounded variant that downscales
//! large photos on the CPU, and warnings for what the decoders let pass (a truncated JPEG).

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader};

use crate::error::{Error, Result};

/// A bound for [`load_image_bounded`] that suits classification: 2 megapixels keeps more than
/// any EfficientNet resolution needs (B7: 600x600 = 0.36 MP) and is 24 MB as f32 RGB, far under
/// wgpu's default 128 MiB storage-binding limit. A 4032x3024 phone photo is divided by 3.
pub const DEFAULT_MAX_PIXELS: u64 = 2_000_000;

/// Largest file this reads: the `image` crate refuses to allocate more than 512 MiB for a decoded
/// image, so no image worth loading is stored in more.
const MAX_FILE_BYTES: u64 = 512 << 20;

/// Something a decoder let pass: the image loaded, but part of it is not what the file meant.
/// Shown as `FILE: message`; a CLI prints it as `warning: FILE: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageWarning {
    /// The file.
    pub path: PathBuf,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for ImageWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// An image decoded by [`load_image_bounded`], with its size in the file and its warnings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LoadedImage {
    /// The pixels, downscaled by `downscale`.
    pub image: DynamicImage,
    /// (width, height) in the file, before any downscale.
    pub file_size: (u32, u32),
    /// The integer factor each side was divided by (1: the file's own size).
    pub downscale: u32,
    /// What the decoder let pass (empty for a sound file).
    pub warnings: Vec<ImageWarning>,
}

/// The file's bytes, refusing files too large to be an image this can decode.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if len > MAX_FILE_BYTES {
        return Err(Error::file(
            path,
            format!("{len} bytes is more than any image this decodes ({MAX_FILE_BYTES} bytes); is it an image file?"),
        ));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Decodes `bytes` as the format its content shows, or else its extension says (as
/// `ImageReader::open` does), under the `image` crate's default memory limit (512 MiB).
fn decode(path: &Path, bytes: &[u8]) -> Result<DynamicImage> {
    if bytes.is_empty() {
        return Err(Error::file(path, "the file is empty (0 bytes), not an image; re-copy or re-export it"));
    }
    let reader = || -> Result<ImageReader<Cursor<&[u8]>>> {
        let mut reader = ImageReader::new(Cursor::new(bytes));
        if let Ok(format) = ImageFormat::from_path(path) {
            reader.set_format(format);
        }
        reader.with_guessed_format().map_err(|e| Error::io(path, e))
    };
    reader()?.decode().map_err(|e| match e {
        // Say how large: the header alone gives the size (the decoder refused before allocating).
        image::ImageError::Limits(_) => {
            let size = reader().ok().and_then(|r| r.into_dimensions().ok());
            let size = size.map_or(String::new(), |(w, h)| format!(" ({w}x{h} pixels)"));
            Error::file(
                path,
                format!(
                    "the image{size} needs more memory to decode than the 512 MiB the decoder allows; \
                     downscale the file (e.g. to a few thousand pixels a side)"
                ),
            )
        }
        e => Error::Image { path: path.to_path_buf(), source: e },
    })
}

/// Opens and decodes a JPEG or PNG file, naming the file in any error. A truncated JPEG decodes
/// (its missing part gray) without a word; [`image_warnings`] or [`load_image_bounded`] say so.
pub fn load_image(path: impl AsRef<Path>) -> Result<DynamicImage> {
    let path = path.as_ref();
    decode(path, &read_file(path)?)
}

/// Opens and decodes a JPEG or PNG file and, if it has more than `max_pixels` pixels, downscales
/// it on the CPU by the smallest integer factor that fits ([`downscale_factor`]) with a triangle
/// (bilinear, widened to the factor) filter. Pass [`DEFAULT_MAX_PIXELS`], or `u64::MAX` to keep the
/// file's size. Errors name the file; warnings (a truncated JPEG) come back with the image.
///
/// The whole image is decoded first: the `image` crate (0.25, JPEG through zune-jpeg) has no
/// reduced-scale (DCT 1/2, 1/4, 1/8) decoding.
pub fn load_image_bounded(path: impl AsRef<Path>, max_pixels: u64) -> Result<LoadedImage> {
    let path = path.as_ref();
    if max_pixels == 0 {
        return Err(Error::invalid(format!("{}: max_pixels must be at least 1", path.display())));
    }
    let bytes = read_file(path)?;
    let image = decode(path, &bytes)?;
    let warnings = warnings_of(path, &bytes);
    let (w, h) = (image.width(), image.height());
    let k = downscale_factor(w, h, max_pixels);
    let image = if k > 1 { image.resize_exact(w.div_ceil(k), h.div_ceil(k), FilterType::Triangle) } else { image };
    Ok(LoadedImage { image, file_size: (w, h), downscale: k, warnings })
}

/// The smallest integer `k >= 1` for which a `width` x `height` image divided by `k` (each side
/// rounded up) has at most `max_pixels` pixels (at least 1).
pub fn downscale_factor(width: u32, height: u32, max_pixels: u64) -> u32 {
    let (w, h, max) = (width as u64, height as u64, max_pixels.max(1));
    let fits = |k: u64| w.div_ceil(k) * h.div_ceil(k) <= max;
    // No smaller k can fit: (w/k)(h/k) <= max needs k >= sqrt(wh/max). Start just below that.
    let mut k = (((w * h) as f64 / max as f64).sqrt() as u64).max(1);
    while k > 1 && fits(k - 1) {
        k -= 1;
    }
    while !fits(k) {
        k += 1;
    }
    k.min(u32::MAX as u64) as u32
}

/// Warnings about the file at `path` without decoding it: a JPEG that ends before its
/// end-of-image marker (truncated). Errors only when the file cannot be read.
pub fn image_warnings(path: impl AsRef<Path>) -> Result<Vec<ImageWarning>> {
    let path = path.as_ref();
    Ok(warnings_of(path, &read_file(path)?))
}

fn warnings_of(path: &Path, bytes: &[u8]) -> Vec<ImageWarning> {
    let mut warnings = Vec::new();
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) && jpeg_end(bytes).is_none() {
        warnings.push(ImageWarning {
            path: path.to_path_buf(),
            message: "the JPEG data ends before its end-of-image marker (FFD9): the file is truncated and the \
                      decoder filled the missing part of the image with gray; re-copy or re-export it, or leave \
                      it out"
                .into(),
        });
    }
    warnings
}

/// Where a JPEG stream ends: the offset just past its end-of-image marker (FFD9), or None when
/// the data runs out first.
///
/// The rule: walk the stream's segments from the start-of-image marker, skipping each segment by
/// its length (so an EXIF thumbnail's own FFD9 inside APP1 does not count) and each scan's
/// entropy-coded data up to its first real marker (FF00 is a stuffed byte, FFD0–FFD7 restart
/// markers). The stream is complete when this reaches an FFD9 marker; a segment or scan that runs
/// past the end of the file, or a file that ends before FFD9, is truncated. Bytes after FFD9 are
/// not looked at: cameras append data there (maker trailers, a Motion Photo's video) and decoders
/// ignore it, so it is no reason to warn. (Checking only that the file ends in FFD9 would warn
/// on every file with such a trailer; searching its last bytes for FFD9 would be fooled by a
/// trailer or thumbnail that holds one.) A file that merely lacks the marker, complete otherwise,
/// is also warned about: rare, and a warning, not an error.
fn jpeg_end(bytes: &[u8]) -> Option<usize> {
    let mut pos = 2; // past the start-of-image marker FFD8
    loop {
        // Between segments: stray bytes (decoders skip them too), then FF fill bytes, then the marker.
        while *bytes.get(pos)? != 0xFF {
            pos += 1;
        }
        while *bytes.get(pos)? == 0xFF {
            pos += 1;
        }
        let marker = *bytes.get(pos)?;
        pos += 1;
        match marker {
            0xD9 => return Some(pos),
            // Markers without a length: restart, start-of-image, TEM; FF00 here is a stray byte.
            0xD0..=0xD8 | 0x01 | 0x00 => {}
            _ => {
                let len = u16::from_be_bytes([*bytes.get(pos)?, *bytes.get(pos + 1)?]) as usize;
                pos += len.max(2);
                if pos > bytes.len() {
                    return None;
                }
                if marker == 0xDA {
                    // A scan's entropy-coded data: up to the first FF that starts a marker.
                    loop {
                        let ff = pos + bytes.get(pos..)?.iter().position(|&b| b == 0xFF)?;
                        match *bytes.get(ff + 1)? {
                            0x00 | 0xD0..=0xD7 => pos = ff + 2,
                            _ => {
                                pos = ff;
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}
