//! Start-up times of the three first things a user runs, each with empty shader caches (Mesa's
//! `MESA_SHADER_CACHE_DIR` and this library's `EFFNET_PIPELINE_CACHE`, fresh folders) and then
//! again with the caches the first run left: the first Lite0
//! classification (`effnet classify`), the first B0 `effnet run`, and the first training step
//! of `train_b0`. Run by scripts/startup.sh after a release build; it prints a table.
//!
//! cargo run --release --example startup -- [--runs 3]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Parser;
use efficientnet_wgpu::model::{Config, Variant, Weights};

#[derive(Parser)]
struct Args {
    /// Cold and warm runs of each command (the table shows each run).
    #[arg(long, default_value_t = 2)]
    runs: usize,
}

/// Runs `cmd` with its caches in `caches` and returns the wall time, or for train_b0 the time its
/// first step is done (it prints it).
fn time(cmd: &mut Command, caches: &Path) -> f64 {
    for sub in ["mesa", "effnet"] {
        std::fs::create_dir_all(caches.join(sub)).unwrap();
    }
    cmd.env("MESA_SHADER_CACHE_DIR", caches.join("mesa"))
        .env("EFFNET_PIPELINE_CACHE", caches.join("effnet"))
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    let start = Instant::now();
    let out = cmd.output().expect("the command starts");
    let wall = start.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("first training step done ").and_then(|r| r.split(' ').next()?.parse().ok()))
        .unwrap_or(wall)
}

fn main() {
    let args = Args::parse();
    let exe = std::env::current_exe().unwrap();
    let bin_dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let effnet = bin_dir.join("effnet");
    let train_b0 = bin_dir.join("examples/train_b0");
    assert!(effnet.exists() && train_b0.exists(), "build first: cargo build --release --bins --examples");
    let dir = std::env::temp_dir().join(format!("effnet-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // Random weights stand in for downloaded ones: start-up does not depend on their values.
    let lite0 = dir.join("lite0.safetensors");
    let b0 = dir.join("b0.safetensors");
    for (variant, path) in [(Variant::Lite0, &lite0), (Variant::B0, &b0)] {
        let config = Config::new(variant, 1000);
        Weights::init_random(&config, 0).save(path, &config, HashMap::new()).unwrap();
    }
    let input = dir.join("input.safetensors");
    let data: Vec<u8> = (0..3 * 224 * 224).flat_map(|i| ((i % 255) as f32 / 255.0).to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, 3, 224, 224], &data).unwrap();
    std::fs::write(&input, safetensors::serialize([("input", view)], None).unwrap()).unwrap();
    let photo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos/chelsea.jpg");

    type Make = Box<dyn Fn() -> Command>;
    let cases: Vec<(&str, Make)> = vec![
        ("first Lite0 classification (effnet classify)", {
            let (effnet, lite0, photo) = (effnet.clone(), lite0.clone(), photo.clone());
            Box::new(move || {
                let mut c = Command::new(&effnet);
                c.args(["classify", "--model", "lite0", "--weights"]).arg(&lite0).arg(&photo);
                c
            })
        }),
        ("first B0 effnet run", {
            let (effnet, b0, input, out) = (effnet.clone(), b0.clone(), input.clone(), dir.join("out.safetensors"));
            Box::new(move || {
                let mut c = Command::new(&effnet);
                c.args(["run", "--model", "b0", "--weights"])
                    .arg(&b0)
                    .arg("--input")
                    .arg(&input)
                    .arg("--output")
                    .arg(&out);
                c
            })
        }),
        ("first training step of train_b0", {
            let (train_b0, out) = (train_b0.clone(), dir.join("run"));
            Box::new(move || {
                let mut c = Command::new(&train_b0);
                c.args(["--max-steps", "1", "--out"]).arg(&out);
                c
            })
        }),
    ];
    println!("| command | cold (s) | warm (s) |");
    println!("|---|---|---|");
    for (name, make) in &cases {
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for run in 0..args.runs {
            let caches = dir.join(format!("caches-{run}"));
            let _ = std::fs::remove_dir_all(&caches);
            cold.push(time(&mut make(), &caches));
            warm.push(time(&mut make(), &caches));
        }
        let show = |v: &[f64]| v.iter().map(|t| format!("{t:.2}")).collect::<Vec<_>>().join(", ");
        println!("| {name} | {} | {} |", show(&cold), show(&warm));
    }
    std::fs::remove_dir_all(&dir).ok();
}
