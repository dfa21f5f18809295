//! f16 inference against f32 on real photos: a trained model classifies the Fashion-MNIST test
//! set (photographs of clothing) in both precisions; prints top-1 agreement, each accuracy, the
//! logit differences and each precision's time.
//!
//!     cargo run --release --example train_b0 -- --out runs/b0
//!     cargo run --release --example f16_agreement -- --weights runs/b0/final.safetensors

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use efficientnet_wgpu::data::{self, Augment, Loader, Normalize};
use efficientnet_wgpu::error::Result;
use efficientnet_wgpu::gpu::{Dtype, Gpu};
use efficientnet_wgpu::model::{Config, EfficientNet, Variant, Weights};
use efficientnet_wgpu::train::argmax;

#[derive(Parser, Debug)]
#[command(about = "Top-1 agreement of f16 and f32 inference on the Fashion-MNIST test photos")]
struct Args {
    /// Trained weights (train_b0's final.safetensors, or any supported format).
    #[arg(long)]
    weights: PathBuf,
    #[arg(long, default_value = "b0")]
    model: String,
    /// Fashion-MNIST folder.
    #[arg(long, default_value = "/usr/share/datasets/fashion-mnist")]
    data: PathBuf,
    /// The resolution the model was trained at (images are resized to it on the GPU).
    #[arg(long, default_value_t = 32)]
    resolution: usize,
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Use only the first N test images.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long)]
    json: bool,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let (_, mut test) = data::load_fashion_mnist(&args.data)?;
    if let Some(n) = args.limit {
        test.truncate(n);
    }
    let config = Config::new(Variant::parse(&args.model)?, test.num_classes());
    let (weights, format) = Weights::load(&args.weights, &config, None)?;
    let gpu = std::sync::Arc::new(Gpu::new()?);
    eprintln!("adapter: {}", gpu.describe());
    let r = args.resolution;
    let model = |store| -> Result<EfficientNet> {
        Ok(EfficientNet::new_with_store(gpu.clone(), config.clone(), &weights, store)?.with_input_size(Some((r, r))))
    };
    let (m32, m16) = (model(Dtype::F32)?, model(Dtype::F16)?);

    let (mut n, mut agree, mut right32, mut right16) = (0usize, 0usize, 0usize, 0usize);
    let (mut max_diff, mut sum_diff, mut max_logit) = (0f32, 0f64, 0f32);
    let (mut t32, mut t16) = (0f64, 0f64);
    let norm = Normalize::FASHION_MNIST;
    for b in Loader::start(&test, args.batch, 0, 0, 0, false, false, Augment::None, norm, r)? {
        let b = b?;
        let t = Instant::now();
        let o32 = m32.forward(&b.input, b.len(), b.h, b.w)?;
        t32 += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let o16 = m16.forward(&b.input, b.len(), b.h, b.w)?;
        t16 += t.elapsed().as_secs_f64();
        let k = config.num_classes;
        for ((l32, l16), &target) in o32.logits.chunks(k).zip(o16.logits.chunks(k)).zip(&b.targets) {
            let (c32, c16) = (argmax(l32), argmax(l16));
            n += 1;
            agree += (c32 == c16) as usize;
            right32 += (c32 == target as usize) as usize;
            right16 += (c16 == target as usize) as usize;
            for (a, b) in l32.iter().zip(l16) {
                max_diff = max_diff.max((a - b).abs());
                sum_diff += (a - b).abs() as f64;
                max_logit = max_logit.max(a.abs());
            }
        }
    }
    let pct = |x: usize| 100.0 * x as f64 / n.max(1) as f64;
    if args.json {
        let j = serde_json::json!({
            "adapter": gpu.describe(), "model": config.name, "weights": format!("{format:?}"), "images": n,
            "resolution": r, "top1_agreement": agree as f64 / n.max(1) as f64,
            "accuracy_f32": right32 as f64 / n.max(1) as f64, "accuracy_f16": right16 as f64 / n.max(1) as f64,
            "max_abs_logit_diff": max_diff, "mean_abs_logit_diff": sum_diff / (n * config.num_classes).max(1) as f64,
            "max_abs_logit": max_logit, "seconds_f32": t32, "seconds_f16": t16,
        });
        println!("{j}");
    } else {
        println!("{} on {n} Fashion-MNIST test photos at {r}x{r}:", config.name);
        println!("  top-1 agreement f16 vs f32: {:.2}% ({} of {n} differ)", pct(agree), n - agree);
        println!("  accuracy: f32 {:.2}%, f16 {:.2}%", pct(right32), pct(right16));
        println!(
            "  logits: max |f16 - f32| {max_diff:.4}, mean {:.5} (max |logit| {max_logit:.2})",
            sum_diff / (n * config.num_classes).max(1) as f64
        );
        println!("  forward time: f32 {t32:.2} s, f16 {t16:.2} s (uploads and readbacks included)");
    }
    Ok(())
}
