//! The committed corpus of malformed files (tests/corpus/weights, tests/corpus/tensors; the data
//! formats' corpus runs in tests/data.rs): each goes through the library and the `effnet` binary
//! and must give an error that names the file — never a panic, a zero exit or an output file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use efficientnet_wgpu::model::{Config, Weights};

fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 5, "{}: the corpus is missing", dir.display());
    files
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("effnet-corpus-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `effnet args`: (exit status success, stderr).
fn effnet(args: &[&Path]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_effnet")).args(args).output().expect("run effnet");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn every_malformed_weight_file_is_an_error_naming_it() {
    let mut failures = Vec::new();
    for file in corpus("weights") {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let loaded = std::panic::catch_unwind(|| Weights::load(&file, &Config::b0(10), None).map(|_| ()));
        match loaded {
            Err(_) => failures.push(format!("{name}: Weights::load panicked")),
            Ok(Ok(())) => failures.push(format!("{name}: Weights::load accepted it")),
            Ok(Err(e)) if !e.to_string().contains(&name) => {
                failures.push(format!("{name}: error without the file: {e}"))
            }
            Ok(Err(_)) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_cli_refuses_every_malformed_weight_and_tensor_file_without_panicking() {
    let dir = tmp("cli");
    let config = Config::b0(10);
    let weights = dir.join("b0.safetensors");
    Weights::init_random(&config, 1).save(&weights, &config, Default::default()).unwrap();
    let good_input = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/timm_b_io.safetensors");
    let mut failures = Vec::new();
    let runs = corpus("weights").into_iter().map(|f| (f.clone(), [f, good_input.clone()]));
    let runs = runs.chain(corpus("tensors").into_iter().map(|f| (f.clone(), [weights.clone(), f])));
    for (file, [w, input]) in runs {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let out = dir.join(format!("{name}.out"));
        let run = Path::new("run");
        let (ok, err) =
            effnet(&[run, Path::new("--weights"), &w, Path::new("--input"), &input, Path::new("--output"), &out]);
        if ok || out.exists() {
            failures.push(format!("{name}: accepted"));
        } else if err.contains("panicked") {
            failures.push(format!("{name}: panicked: {err}"));
        } else if !err.contains(&name) && !err.contains("batch item") {
            failures.push(format!("{name}: the error names neither the file nor the batch item: {err}"));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
