//! Training across processes under `mpirun -np 2` (OpenMPI, cargo feature `mpi`; `.ci/run` builds
//! train_b0 with `--features mpi` and runs `cargo test --features mpi --test mpi`): two ranks, one device each, end where one
//! device running each batch as two micro-batches does (parameters bit for bit; BatchNorm running
//! statistics are each rank's own and rank 0's are saved), a resumed run where an uninterrupted
//! one does, and ranks started with different flags refuse to train.
#![cfg(feature = "mpi")]

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("effnet-mpi-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write_idx(&dir, 24, 8);
    dir
}

/// train_b0's flags for a 3-step run on `dir`'s data into `dir/name`.
fn flags(dir: &Path, name: &str, steps: &str) -> Vec<String> {
    let d = dir.to_str().unwrap().to_string();
    let out = dir.join(name).to_str().unwrap().to_string();
    ["--data", &d, "--batch-size", "4", "--resolution", "16", "--epochs", "1", "--max-steps", steps, "--out", &out]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// `mpirun` with `ranks` (each a list of train_b0 flags: one -np 1 block per rank).
fn mpirun(ranks: &[Vec<String>]) -> (bool, String) {
    let mut cmd = Command::new("mpirun");
    cmd.arg("--oversubscribe");
    for (i, f) in ranks.iter().enumerate() {
        if i > 0 {
            cmd.arg(":");
        }
        cmd.args(["-np", "1"]).arg(example("train_b0")).args(["--distributed", "mpi"]).args(f);
    }
    // CI runs as root, which OpenMPI refuses unless told.
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    cmd.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    let out = cmd.output().expect("mpirun (apt-get install -y openmpi-bin; scripts/setup.sh does with EFFNET_MPI=1)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

fn learnable(path: &Path) -> Vec<(String, Vec<u32>)> {
    let mut v: Vec<(String, Vec<u32>)> = read_safetensors(path)
        .into_iter()
        .filter(|(k, _)| !k.contains("running_") && !k.contains("num_batches"))
        .map(|(k, (_, d))| (k, d.iter().map(|x| x.to_bits()).collect()))
        .collect();
    v.sort();
    v
}

#[test]
fn two_ranks_train_as_one_device_with_two_micro_batches_and_resume_exactly() {
    let dir = data("equal");
    let one = train_b0()
        .args(flags(&dir, "one", "3"))
        .args(["--micro-batch", "2"])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(one.status.success(), "{}", String::from_utf8_lossy(&one.stderr));

    let (ok, log) = mpirun(&[flags(&dir, "two", "3"), flags(&dir, "two", "3")]);
    assert!(ok, "{log}");
    let want = learnable(&dir.join("one/final.safetensors"));
    assert!(want.len() > 100);
    assert_eq!(want, learnable(&dir.join("two/final.safetensors")), "parameters after 3 steps");

    // Stopped at step 2 and resumed to 3 with the same world size: the same final weights, bytes
    // and all (rank 0's running statistics included).
    let (ok, log) = mpirun(&[flags(&dir, "resumed", "2"), flags(&dir, "resumed", "2")]);
    assert!(ok, "{log}");
    let ck = dir.join("resumed/checkpoint.safetensors").to_str().unwrap().to_string();
    let mut again = flags(&dir, "resumed", "3");
    again.extend(["--resume".to_string(), ck]);
    let (ok, log) = mpirun(&[again.clone(), again]);
    assert!(ok, "{log}");
    let a = std::fs::read(dir.join("two/final.safetensors")).unwrap();
    let b = std::fs::read(dir.join("resumed/final.safetensors")).unwrap();
    assert!(a == b, "the resumed run's weights differ from the uninterrupted run's");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ranks_started_with_different_flags_refuse_to_train() {
    let dir = data("differ");
    let mut other = flags(&dir, "x", "3");
    other.extend(["--lr".to_string(), "0.01".to_string()]);
    let (ok, log) = mpirun(&[flags(&dir, "x", "3"), other]);
    assert!(!ok, "{log}");
    assert!(log.contains("have another configuration"), "{log}");
    std::fs::remove_dir_all(&dir).ok();
}
