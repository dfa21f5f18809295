//! Property tests of the parsers and the option checks, on seeded random cases (bounded, so CI
//! stays quick and every failure reproduces): valid files mutated by truncation, byte flips and
//! splices go through each parser, which must return a typed error or a sound result and never
//! panic; random option values are accepted exactly when they are finite and in range.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use efficientnet_wgpu::data::{load_image_bounded, read_idx_images};
use efficientnet_wgpu::model::{Config, Weights};
use efficientnet_wgpu::train::{TrainConfig, TrainOptions};

/// xorshift64*: the cases are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `valid` changed in one of four ways: truncated, bytes flipped near the start (headers) or
/// anywhere, or a slice repeated.
fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut b = valid.to_vec();
    match rng.below(4) {
        0 => b.truncate(rng.below(b.len())),
        1 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len().min(64));
                b[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
        }
        _ => {
            let (a, len) = (rng.below(b.len()), 1 + rng.below(32));
            let piece: Vec<u8> = b[a..(a + len).min(b.len())].to_vec();
            let at = rng.below(b.len());
            b.splice(at..at, piece);
        }
    }
    b
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("effnet-properties-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `parse` on `cases` mutations of `valid` written to a file; `check` judges an Ok result.
fn fuzz<T>(
    name: &str,
    valid: &[u8],
    cases: usize,
    seed: u64,
    parse: impl Fn(&Path) -> efficientnet_wgpu::Result<T>,
    check: impl Fn(&T) -> bool,
) {
    let dir = tmp(name);
    let path = dir.join(name);
    let mut rng = Rng(seed);
    let (mut errors, mut oks) = (0, 0);
    for case in 0..cases {
        let bytes = mutate(&mut rng, valid);
        std::fs::write(&path, &bytes).unwrap();
        match catch_unwind(AssertUnwindSafe(|| parse(&path))) {
            Err(_) => panic!("{name}: case {case} (seed {seed}) panicked; {} bytes", bytes.len()),
            Ok(Ok(v)) => {
                assert!(check(&v), "{name}: case {case} (seed {seed}) parsed to an unsound result");
                oks += 1;
            }
            Ok(Err(e)) => {
                let msg = e.to_string();
                assert!(msg.contains(name), "{name}: case {case}: the error does not name the file: {msg}");
                errors += 1;
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(errors > cases / 4, "{name}: only {errors} of {cases} mutations were refused ({oks} parsed)");
}

#[test]
fn mutated_weight_files_are_refused_or_load_finite() {
    let config = Config::custom(0.25, 0.5, 32, 0.2, 10);
    let dir = tmp("weights-src");
    let path = dir.join("valid.safetensors");
    Weights::init_random(&config, 1).save(&path, &config, Default::default()).unwrap();
    let valid = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    fuzz(
        "weights.safetensors",
        &valid,
        150,
        11,
        |p| Weights::load(p, &config, None),
        |(w, _)| w.param_count() == config.param_count(),
    );
}

#[test]
fn mutated_idx_files_are_refused_or_parse_consistently() {
    let (n, h, w) = (3usize, 5usize, 4usize);
    let mut valid = vec![0, 0, 8, 3];
    for d in [n, h, w] {
        valid.extend((d as u32).to_be_bytes());
    }
    valid.extend((0..n * h * w).map(|i| i as u8));
    fuzz("images-idx3-ubyte", &valid, 400, 12, read_idx_images, |(n, h, w, px)| px.len() == n * h * w && n * h * w > 0);
}

#[test]
fn mutated_images_are_refused_or_decode_within_bounds() {
    let dir = tmp("image-src");
    let img = image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([(x * 10) as u8, (y * 15) as u8, 128]));
    for (name, seed) in [("img.png", 13), ("img.jpg", 14)] {
        let path = dir.join(name);
        img.save(&path).unwrap();
        let valid = std::fs::read(&path).unwrap();
        // 4096 pixels at most: anything larger that a mutated header claims is downscaled.
        fuzz(
            name,
            &valid,
            200,
            seed,
            |p| load_image_bounded(p, 4096),
            |l| (l.image.width() as u64) * (l.image.height() as u64) <= 4096,
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Special and ordinary values an option may be given.
const VALUES: [f32; 12] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1.0, -0.0, 0.0, 1e-8, 0.1, 0.5, 1.0, 2.0, 1e30];

#[test]
fn training_options_are_accepted_exactly_when_finite_and_in_range() {
    let mut rng = Rng(15);
    for case in 0..2000 {
        let v = |rng: &mut Rng| VALUES[rng.below(VALUES.len())];
        let mut tc = TrainConfig::default();
        tc.lr = v(&mut rng);
        tc.bn_momentum = v(&mut rng);
        tc.weight_decay = v(&mut rng);
        tc.label_smoothing = v(&mut rng);
        tc.warmup_epochs = v(&mut rng);
        tc.max_norm = v(&mut rng);
        tc.ema = (rng.below(2) == 0).then(|| v(&mut rng));
        let ok = catch_unwind(|| tc.validate().is_ok()).unwrap_or_else(|_| panic!("case {case} panicked"));
        let finite_nonneg = |x: f32| x.is_finite() && x >= 0.0;
        let want = finite_nonneg(tc.lr)
            && finite_nonneg(tc.bn_momentum)
            && tc.bn_momentum <= 1.0
            && finite_nonneg(tc.weight_decay)
            && finite_nonneg(tc.label_smoothing)
            && tc.label_smoothing < 1.0
            && finite_nonneg(tc.warmup_epochs)
            && finite_nonneg(tc.max_norm)
            && tc.ema.is_none_or(|d| finite_nonneg(d) && d < 1.0);
        assert_eq!(ok, want, "case {case}: {tc:?}");

        let mut o = TrainOptions::default();
        o.bn_momentum = v(&mut rng);
        o.label_smoothing = v(&mut rng);
        let want = finite_nonneg(o.bn_momentum)
            && o.bn_momentum <= 1.0
            && finite_nonneg(o.label_smoothing)
            && o.label_smoothing < 1.0;
        assert_eq!(o.validate().is_ok(), want, "case {case}: {o:?}");
    }
}

#[test]
fn configs_validate_without_panicking_and_valid_ones_have_sound_sizes() {
    let mut rng = Rng(16);
    let dims = [f64::NAN, f64::INFINITY, -1.0, 0.0, 1e-9, 0.1, 1.0, 2.0, 3.1, 10.0, 11.0, 1e12];
    let classes = [0usize, 1, 10, 1000, 1 << 20, (1 << 20) + 1, usize::MAX];
    for case in 0..500 {
        let mut c = Config::b0(classes[rng.below(classes.len())]);
        c.width = dims[rng.below(dims.len())];
        c.depth = dims[rng.below(dims.len())];
        let result = catch_unwind(|| c.validate().map(|_| (c.param_count(), c.largest_activation(64, 64))));
        match result {
            Err(_) => panic!("case {case} panicked: width {} depth {} classes {}", c.width, c.depth, c.num_classes),
            Ok(Ok((params, largest))) => {
                assert!(params > c.num_classes && largest > 0, "case {case}");
                assert!(c.width > 0.0 && c.width <= 10.0 && c.depth > 0.0 && c.depth <= 10.0, "case {case}");
            }
            Ok(Err(_)) => {}
        }
    }
}
