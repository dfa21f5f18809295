//! CIFAR-10's binary format: records of one label byte and 32x32x3 pixels (R, G, B planes), in
//! `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`; class names in `batches.meta.txt`.

use std::path::Path;

use super::{Dataset, InMemory, Source};
use crate::error::{Error, Result};

const RECORD: usize = 1 + 3 * 32 * 32;
const DEFAULT_NAMES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

fn read_batches(dir: &Path, files: &[String], names: &[String]) -> Result<Dataset> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for f in files {
        let path = dir.join(f);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(Error::file(
                &path,
                format!("{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records (truncated?)", bytes.len()),
            ));
        }
        for rec in bytes.chunks(RECORD) {
            if rec[0] as usize >= names.len() {
                return Err(Error::file(
                    &path,
                    format!("label {} is out of range for {} classes", rec[0], names.len()),
                ));
            }
            labels.push(rec[0] as u32);
            pixels.extend_from_slice(&rec[1..]);
        }
    }
    Ok(Dataset {
        name: format!("cifar-10 ({})", dir.display()),
        source: Source::Memory(InMemory { channels: 3, h: 32, w: 32, pixels, labels }),
        class_names: names.to_vec(),
    })
}

/// CIFAR-10's train (the `data_batch_*.bin` present) and test splits from `dir`.
pub fn load_cifar10(dir: &Path) -> Result<(Dataset, Dataset)> {
    let names: Vec<String> = match std::fs::read_to_string(dir.join("batches.meta.txt")) {
        Ok(s) => s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
        Err(_) => DEFAULT_NAMES.iter().map(|s| s.to_string()).collect(),
    };
    let train: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).filter(|f| dir.join(f).exists()).collect();
    if train.is_empty() {
        return Err(Error::file(dir, "no CIFAR-10 data_batch_*.bin files in this folder"));
    }
    Ok((read_batches(dir, &train, &names)?, read_batches(dir, &["test_batch.bin".to_string()], &names)?))
}
