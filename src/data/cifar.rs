//! CIFAR-10's binary format: records of one label byte and 32x32x3 pixels (R, G, B planes), in
//! `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`; class names in `batches.meta.txt`.

use std::path::Path;

use super::{Dataset, InMemory, Source};
use crate::error::{Error, Result};

const RECORD: usize = 1 + 3 * 32 * 32;
const DEFAULT_NAMES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// What every CIFAR-10 error ends with: where good files come from.
const REFETCH: &str = "use the binary version (cifar-10-binary.tar.gz, folder cifar-10-batches-bin), re-downloaded";

/// The records of `files` in `dir` as the data set `name` (`cifar-10 train` or `cifar-10 test`).
fn read_batches(dir: &Path, files: &[String], names: &[String], split: &str) -> Result<Dataset> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for f in files {
        let path = dir.join(f);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(Error::file(
                &path,
                format!(
                    "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records (truncated, or not a {split} \
                     batch file); {REFETCH}",
                    bytes.len()
                ),
            ));
        }
        for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
            if rec[0] as usize >= names.len() {
                return Err(Error::file(
                    &path,
                    format!(
                        "label {} of record {i} is out of range for {} classes (corrupt {split} batch?); {REFETCH}",
                        rec[0],
                        names.len()
                    ),
                ));
            }
            labels.push(rec[0] as u32);
            pixels.extend_from_slice(&rec[1..]);
        }
    }
    Ok(Dataset {
        name: format!("cifar-10 {split} ({})", dir.display()),
        source: Source::Memory(InMemory { channels: 3, h: 32, w: 32, pixels, labels }),
        class_names: names.to_vec(),
    })
}

/// Class names from `batches.meta.txt` (one a line), or CIFAR-10's own when the file is absent.
/// A file that is there but unreadable, or lists no class or more than a label byte can address,
/// is an error naming it.
fn class_names(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join("batches.meta.txt");
    let text = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(DEFAULT_NAMES.iter().map(|s| s.to_string()).collect())
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if names.is_empty() || names.len() > 256 {
        return Err(Error::file(
            &path,
            format!(
                "lists {} class names, expected one per line (10 for CIFAR-10); fix it or delete it to use \
                 CIFAR-10's names",
                names.len()
            ),
        ));
    }
    Ok(names)
}

/// CIFAR-10's train (the `data_batch_*.bin` present) and test splits from `dir`. Errors name the
/// file: missing, truncated (not a whole number of records), or a label beyond the classes.
pub fn load_cifar10(dir: &Path) -> Result<(Dataset, Dataset)> {
    let names = class_names(dir)?;
    let train: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).filter(|f| dir.join(f).exists()).collect();
    if train.is_empty() {
        return Err(Error::file(
            dir,
            format!("no CIFAR-10 data_batch_1.bin .. data_batch_5.bin files in this folder; {REFETCH}"),
        ));
    }
    let test = "test_batch.bin".to_string();
    if !dir.join(&test).exists() {
        return Err(Error::file(dir.join(&test), format!("CIFAR-10 test split not found; {REFETCH}")));
    }
    Ok((read_batches(dir, &train, &names, "train")?, read_batches(dir, &[test], &names, "test")?))
}
