//! Image files: decoding that names the file in every error.

use std::path::Path;

use crate::error::{Error, Result};

/// Opens and decodes a JPEG or PNG file, naming the file in any error.
pub fn load_image(path: impl AsRef<Path>) -> Result<image::DynamicImage> {
    let path = path.as_ref();
    let reader = image::ImageReader::open(path).map_err(|e| Error::io(path, e))?;
    let reader = reader.with_guessed_format().map_err(|e| Error::io(path, e))?;
    reader.decode().map_err(|e| Error::Image { path: path.to_path_buf(), source: e })
}
