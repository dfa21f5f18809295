//! Preprocessing against the libraries the weights came from: `Preprocess::preset` against the
//! presets torchvision and timm report, and our resize + crop + normalisation of three committed
//! JPEGs against the tensors torchvision's B0 transform and timm's `tf_efficientnet_b0` /
//! `tf_efficientnet_lite0` eval transforms made from the same files
//! (baselines/make_preprocess_fixtures.py).

mod common;

use std::path::PathBuf;

use efficientnet_wgpu::infer::{load_image, Interpolation, Preprocess, RgbPlanes};
use efficientnet_wgpu::model::{Variant, WeightFormat};
use safetensors::tensor::{Dtype, SafeTensors};

const PHOTOS: [&str; 3] = ["astronaut", "coffee", "chelsea"];

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn photo(name: &str) -> RgbPlanes {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/photos/{name}.jpg"));
    RgbPlanes::from_image(&load_image(&path).unwrap())
}

fn f32s(st: &SafeTensors, name: &str) -> Vec<f32> {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), Dtype::F32, "{name}");
    t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

fn u8s(st: &SafeTensors, name: &str, shape: &[usize]) -> Vec<u8> {
    let t = st.tensor(name).unwrap();
    assert_eq!((t.dtype(), t.shape()), (Dtype::U8, shape), "{name}");
    t.data().to_vec()
}

/// The library's normalised tensor from its 8-bit crop: both libraries round to 8 bits before
/// normalising, and the script checks this reproduces their f32 output to 1e-6.
fn normalised(pixels: &[u8], mean: &[f32], std: &[f32]) -> Vec<f32> {
    let plane = pixels.len() / 3;
    pixels.iter().enumerate().map(|(i, &v)| (v as f32 / 255.0 - mean[i / plane]) / std[i / plane]).collect()
}

/// (mean, max) absolute difference of two normalised (3, h, w) tensors in 8-bit levels: the
/// difference times `std * 255`, so that one bound fits ImageNet's std and 0.5 alike.
fn errors_in_levels(got: &[f32], want: &[f32], std: &[f32; 3]) -> (f64, f64) {
    assert_eq!(got.len(), want.len());
    let plane = got.len() / 3;
    let d = got.iter().zip(want).enumerate().map(|(i, (a, b))| ((a - b).abs() * std[i / plane] * 255.0) as f64);
    let (sum, max) = d.fold((0.0, 0f64), |(s, m), v| (s + v, m.max(v)));
    (sum / got.len() as f64, max)
}

#[test]
fn presets_match_what_torchvision_and_timm_report() {
    let bytes = fixture("preprocess_torchvision_b0.safetensors");
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["presets"]).expect("presets JSON");
    assert_eq!(rows.len(), 8 + 13 + 13 + 8, "torchvision B0-7, timm and timm-tf B0-7 + Lite0-4, lukemelas B0-7");
    for row in &rows {
        let format: WeightFormat = row["format"].as_str().unwrap().parse().unwrap();
        let variant = Variant::parse(row["variant"].as_str().unwrap()).unwrap();
        let p = Preprocess::preset(format, variant);
        let what = format!("{format:?} {variant:?} ({})", row["source"]);
        assert_eq!(p.resolution as u64, row["resolution"].as_u64().unwrap(), "{what}");
        assert_eq!(p.resize_size as u64, row["resize_size"].as_u64().unwrap(), "{what}");
        assert_eq!(p.keep_aspect, row["keep_aspect"].as_bool().unwrap(), "{what}");
        let interpolation = match row["interpolation"].as_str().unwrap() {
            "bicubic" => Interpolation::Bicubic,
            "bilinear" => Interpolation::Bilinear,
            other => panic!("{what}: interpolation {other}"),
        };
        assert_eq!(p.interpolation, interpolation, "{what}");
        assert_eq!(p.antialias, row["antialias"].as_bool().unwrap(), "{what}");
        for c in 0..3 {
            assert!((p.mean[c] as f64 - row["mean"][c].as_f64().unwrap()).abs() < 1e-6, "{what}: mean");
            assert!((p.std[c] as f64 - row["std"][c].as_f64().unwrap()).abs() < 1e-6, "{what}: std");
        }
    }
    // Weights nobody publishes fall back to REFERENCE.md's ImageNet rule at the variant's size.
    assert_eq!(Preprocess::preset(WeightFormat::Torchvision, Variant::Lite0), Preprocess::imagenet(224));
    assert_eq!(Preprocess::preset(WeightFormat::Lukemelas, Variant::Lite3), Preprocess::imagenet(280));
}

struct Case {
    preset: Preprocess,
    /// The library's normalised (3, 224, 224) tensor.
    want: Vec<f32>,
    label: String,
}

/// For each photo: the image crate's decode of the JPEG, and the three presets with the tensors
/// torchvision / timm made from the same file.
fn photo_cases() -> Vec<(RgbPlanes, Vec<Case>)> {
    let tv = fixture("preprocess_torchvision_b0.safetensors");
    let tv = SafeTensors::deserialize(&tv).unwrap();
    let tm = fixture("preprocess_timm_b0.safetensors");
    let tm = SafeTensors::deserialize(&tm).unwrap();
    let presets = [
        ("torchvision b0", WeightFormat::Torchvision, Variant::B0, &tv, ""),
        ("tf_efficientnet_b0", WeightFormat::TimmTf, Variant::B0, &tm, ".tf_efficientnet_b0"),
        ("tf_efficientnet_lite0", WeightFormat::TimmTf, Variant::Lite0, &tm, ".tf_efficientnet_lite0"),
    ];
    PHOTOS
        .iter()
        .map(|&name| {
            let cases = presets
                .iter()
                .map(|&(label, format, variant, st, suffix)| {
                    let (mean, std) = (f32s(st, &format!("mean{suffix}")), f32s(st, &format!("std{suffix}")));
                    let preset = Preprocess::preset(format, variant);
                    // The fixture's normalisation is the preset's: checked here, used below.
                    assert_eq!((&mean[..], &std[..]), (&preset.mean[..], &preset.std[..]), "{label}");
                    Case {
                        preset,
                        want: normalised(&u8s(st, name, &[3, 224, 224]), &mean, &std),
                        label: format!("{name} {label}"),
                    }
                })
                .collect();
            (photo(name), cases)
        })
        .collect()
}

// Tolerance on the photos, in 8-bit levels (one level is 0.0171-0.0174 in ImageNet-normalised
// units, 0.0078 with std 0.5). The resampler itself agrees with the libraries to within one level
// when fed PIL's decode of the same JPEG (measured while making this test, and pinned without a
// decoder by `resampling_matches_torch_and_pil_without_a_jpeg_decoder`). What is left is JPEG
// decoding: PIL (libjpeg-turbo) and the image crate (zune-jpeg) differ in 12-16% of the decoded
// values of these photos by up to 4 levels (mean 0.17-0.22 levels): chroma upsampling and IDCT
// rounding. A resize averages that noise and cannot amplify it past the sum of |weights| over two
// passes (about 1.3 for bicubic) plus one level of rounding: at most ~6 levels. Measured over the
// 9 cases: mean 0.17-0.25 levels, max 3.0 levels. A wrong filter is far outside: bilinear or
// bicubic without antialiasing, or bilinear with it, give 0.8-2.0 levels mean and 11-70 max.
const MEAN_TOL_LEVELS: f64 = 0.4;
const MAX_TOL_LEVELS: f64 = 6.0;

#[test]
fn preprocessing_matches_torchvision_and_timm_on_three_photos() {
    let gpu = common::gpu();
    for (img, cases) in photo_cases() {
        for c in cases {
            let got = c.preset.apply(gpu, std::slice::from_ref(&img)).unwrap();
            let (mean, max) = errors_in_levels(&got, &c.want, &c.preset.std);
            // The GPU resize kernel's own preprocessing before presets: bilinear, no antialiasing.
            let mut wrong = c.preset.clone();
            wrong.interpolation = Interpolation::Bilinear;
            wrong.antialias = false;
            let (wrong_mean, wrong_max) =
                errors_in_levels(&wrong.apply(gpu, std::slice::from_ref(&img)).unwrap(), &c.want, &c.preset.std);
            eprintln!(
                "{}: mean {mean:.3} max {max:.2} levels; bilinear without antialias: mean {wrong_mean:.3} max {wrong_max:.2}",
                c.label
            );
            assert!(mean <= MEAN_TOL_LEVELS && max <= MAX_TOL_LEVELS, "{}: mean {mean} max {max} levels", c.label);
            assert!(
                wrong_mean > MEAN_TOL_LEVELS && wrong_mean > 2.0 * mean && wrong_max > MAX_TOL_LEVELS,
                "{}: the wrong filter is not measurably worse: mean {wrong_mean} max {wrong_max}",
                c.label
            );
        }
    }
}

/// The image `synthetic()` of baselines/make_preprocess_fixtures.py: (3, 451, 300), 0/255 blocks
/// on the left half, wrapping gradients on the right.
fn synthetic() -> RgbPlanes {
    let (h, w) = (451, 300);
    let mut data = vec![0f32; 3 * h * w];
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let v = if x < w / 2 { ((x / (3 + c) + y / 5) % 2) * 255 } else { (x * 7 + y * 3 + c * 50) % 256 };
                data[(c * h + y) * w + x] = v as f32 / 255.0;
            }
        }
    }
    RgbPlanes { h, w, data }
}

#[test]
fn resampling_matches_torch_and_pil_without_a_jpeg_decoder() {
    // The same integers on both sides, so only the resamplers differ. Tolerance: one level, where
    // PIL's 22-bit fixed-point weights (and torch's) round a value at .5 the other way than our
    // f64 weights. Torch (torchvision on a uint8 tensor) and PIL (timm) differ from each other by
    // up to 13 levels here: PIL rounds and clips to 8 bits between its two passes, so the bicubic
    // undershoot at the black/white edges is lost; `round_between_passes` picks the behaviour.
    let gpu = common::gpu();
    let img = synthetic();
    for (file, format, variant) in [
        ("preprocess_torchvision_b0.safetensors", WeightFormat::Torchvision, Variant::B0),
        ("preprocess_timm_b0.safetensors", WeightFormat::TimmTf, Variant::B0),
    ] {
        let bytes = fixture(file);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let want = u8s(&st, "synthetic", &[3, 32, 32]); // every 7th row and column of the crop
        let preset = Preprocess::preset(format, variant);
        let levels = |p: &Preprocess| -> (f64, f64) {
            let crop = p.resample(&img).unwrap();
            assert_eq!((crop.h, crop.w), (224, 224));
            let mut d = Vec::new();
            for c in 0..3 {
                for y in 0..32 {
                    for x in 0..32 {
                        let got = crop.data[(c * 224 + 7 * y) * 224 + 7 * x] * 255.0;
                        d.push((got - want[(c * 32 + y) * 32 + x] as f32).abs() as f64);
                    }
                }
            }
            (d.iter().sum::<f64>() / d.len() as f64, d.iter().cloned().fold(0.0, f64::max))
        };
        let (mean, max) = levels(&preset);
        let mut other = preset.clone();
        other.round_between_passes = !other.round_between_passes;
        let (other_mean, other_max) = levels(&other);
        eprintln!("synthetic {format:?} {variant:?}: mean {mean:.4} max {max} levels; other rounding: mean {other_mean:.4} max {other_max}");
        assert!(max <= 1.0 && mean <= 0.05, "{format:?}: mean {mean} max {max} levels");
        assert!(other_max > 3.0, "{format:?}: the rounding between passes is not measurably different");
        // The GPU's normalisation of the crop is exact: `apply` equals `resample` normalised.
        let got = preset.apply(gpu, std::slice::from_ref(&img)).unwrap();
        let crop = preset.resample(&img).unwrap();
        let plane = 224 * 224;
        for (i, (&g, &v)) in got.iter().zip(&crop.data).enumerate() {
            let c = i / plane;
            let want = (v - preset.mean[c]) / preset.std[c];
            assert!((g - want).abs() <= 1e-5 * (1.0 + want.abs()), "{format:?} value {i}: {g} vs {want}");
        }
    }
}

#[test]
fn sizes_follow_torchvision() {
    let p = Preprocess::preset(WeightFormat::Torchvision, Variant::B0);
    // Short side to 256, long side truncated: 256 * 451 / 300 = 384.85 -> 384.
    assert_eq!(p.resized_size(300, 451), (256, 384));
    assert_eq!(p.resized_size(451, 300), (384, 256));
    assert_eq!(p.resized_size(2, 3), (256, 384));
    assert!((p.crop_fraction() - 0.875).abs() < 1e-6);
    // timm's B5 squashes both sides.
    assert_eq!(Preprocess::preset(WeightFormat::Timm, Variant::B5).resized_size(300, 451), (448, 448));
    // Tiny and odd images still give the crop (upscaled, as the libraries do).
    let tiny = RgbPlanes { h: 2, w: 3, data: (0..18).map(|v| v as f32 / 17.0).collect() };
    let out = p.resample(&tiny).unwrap();
    assert_eq!((out.h, out.w, out.data.len()), (224, 224, 3 * 224 * 224));
    assert!(out.data.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn impossible_settings_are_errors() {
    let gpu = common::gpu();
    let img = synthetic();
    let mut p = Preprocess::imagenet(224);
    p.resize_size = 200;
    assert!(p.resample(&img).unwrap_err().to_string().contains("resize_size"));
    let mut p = Preprocess::imagenet(224);
    p.std[1] = 0.0;
    assert!(p.apply(gpu, &[img]).is_err());
    let empty = RgbPlanes { h: 0, w: 5, data: vec![] };
    assert!(Preprocess::imagenet(224).resample(&empty).is_err());
    let short = RgbPlanes { h: 4, w: 4, data: vec![0.5; 47] };
    assert!(Preprocess::imagenet(224).resample(&short).is_err());
}
