//! Weight files: names and shapes of the three formats, loading the torchvision fixture,
//! round trips, dtype conversion and every error a user can run into.

use std::collections::HashMap;
use std::path::PathBuf;

use efficientnet_wgpu::model::{BlockPart, Config, Field, Layer, Variant, WeightFormat, Weights};
use efficientnet_wgpu::Error;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

fn fixtures() -> PathBuf {
    match std::env::var_os("EFFNET_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"),
    }
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("weights_tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// One tensor to write in a test file: name, dtype, shape, raw little-endian bytes.
type Entry = (String, Dtype, Vec<usize>, Vec<u8>);

fn write_entries(path: &std::path::Path, entries: &[Entry]) {
    let views: Vec<(String, TensorView<'_>)> =
        entries.iter().map(|(k, d, s, b)| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// `weights` written under `format`'s names as F32 (counters I64), like the format's own tooling.
fn entries_in_format(weights: &Weights, cfg: &Config, format: WeightFormat) -> Vec<Entry> {
    let spec = cfg.state_dict_spec(format);
    assert_eq!(spec.len(), weights.len());
    spec.iter()
        .zip(weights.iter())
        .map(|(s, (_, t))| {
            if s.field == Field::NumBatchesTracked {
                (s.key.clone(), Dtype::I64, vec![], (t.data[0] as i64).to_le_bytes().to_vec())
            } else {
                let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (s.key.clone(), Dtype::F32, s.shape.clone(), bytes)
            }
        })
        .collect()
}

fn mismatch_details(err: Error) -> String {
    match err {
        Error::WeightsMismatch { details, .. } => details,
        other => panic!("expected WeightsMismatch, got {other:?}"),
    }
}

#[test]
#[ignore = "needs the full-size PyTorch fixtures ($EFFNET_FIXTURES, default ../shared/fixtures); scripts/test.sh includes it when they exist"]
fn torchvision_b0_spec_equals_fixture_key_list() {
    let path = fixtures().join("torchvision-b0/tv_b0_keys.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set EFFNET_FIXTURES to the fixtures folder)", path.display()));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let spec = Config::b0(1000).state_dict_spec(WeightFormat::Torchvision);
    assert_eq!(spec.len(), lines.len());
    for (t, line) in spec.iter().zip(&lines) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 3, "{line}");
        assert_eq!(t.key, cols[0]);
        let shape: Vec<usize> = cols[1]
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse().unwrap())
            .collect();
        assert_eq!(t.shape, shape, "{}", t.key);
        let dtype = if t.field == Field::NumBatchesTracked { "int64" } else { "float32" };
        assert_eq!(dtype, cols[2], "{}", t.key);
    }
}

#[test]
fn formats_map_one_to_one() {
    for variant in [Variant::B0, Variant::B3, Variant::B7, Variant::Lite0, Variant::Lite4] {
        let cfg = Config::new(variant, 1000);
        let tv = cfg.state_dict_spec(WeightFormat::Torchvision);
        for format in WeightFormat::ALL {
            let other = cfg.state_dict_spec(format);
            assert_eq!(other.len(), tv.len(), "{variant} {format}");
            for (a, b) in tv.iter().zip(&other) {
                assert_eq!((a.layer, a.field, &a.shape), (b.layer, b.field, &b.shape), "{variant} {format}");
            }
            let mut keys: Vec<&str> = other.iter().map(|t| t.key.as_str()).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), other.len(), "{variant} {format}: duplicate keys");
        }
    }
    // Spot checks against the names the libraries use.
    let b0 = Config::b0(1000);
    let lm: Vec<String> = b0.state_dict_spec(WeightFormat::Lukemelas).into_iter().map(|t| t.key).collect();
    for key in [
        "_conv_stem.weight",
        "_bn0.num_batches_tracked",
        "_blocks.0._depthwise_conv.weight",
        "_blocks.0._se_reduce.bias",
        "_blocks.15._expand_conv.weight",
        "_blocks.15._bn2.running_var",
        "_conv_head.weight",
        "_bn1.weight",
        "_fc.weight",
    ] {
        assert!(lm.iter().any(|k| k == key), "lukemelas {key}");
    }
    assert!(!lm.iter().any(|k| k == "_blocks.0._expand_conv.weight"));
    let timm: Vec<String> = b0.state_dict_spec(WeightFormat::Timm).into_iter().map(|t| t.key).collect();
    assert_eq!(timm[0], "conv_stem.weight");
    assert_eq!(timm[timm.len() - 1], "classifier.bias");
    for key in ["blocks.6.0.conv_pwl.weight", "blocks.5.3.se.conv_expand.bias", "conv_head.weight", "bn2.running_mean"]
    {
        assert!(timm.iter().any(|k| k == key), "timm {key}");
    }
    // Lite in torchvision naming: no SE module, so project moves to block.2.
    let lite: Vec<String> =
        Config::lite0(1000).state_dict_spec(WeightFormat::Torchvision).into_iter().map(|t| t.key).collect();
    assert!(lite.iter().any(|k| k == "features.2.0.block.2.0.weight"));
    assert!(lite.iter().any(|k| k == "features.1.0.block.1.0.weight"));
    assert!(!lite.iter().any(|k| k.contains("fc1")));
}

#[test]
#[ignore = "needs the full-size PyTorch fixtures ($EFFNET_FIXTURES, default ../shared/fixtures); scripts/test.sh includes it when they exist"]
fn loads_torchvision_fixture_with_autodetect() {
    let path = fixtures().join("torchvision-b0/tv_b0.safetensors");
    let cfg = Config::b0(1000);
    let (w, format) = Weights::load(&path, &cfg, None).unwrap();
    assert_eq!(format, WeightFormat::Torchvision);
    assert_eq!(w.len(), 360);
    assert_eq!(w.param_count(), 5_288_548);

    // Values must be the file's, byte for byte.
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for key in ["features.0.0.weight", "features.3.1.block.1.1.running_var", "classifier.1.bias"] {
        let view = st.tensor(key).unwrap();
        let want: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let got = w.get_by_key(key).unwrap();
        assert_eq!(got.shape, view.shape());
        assert_eq!(got.data, want, "{key}");
    }
    let nbt = st.tensor("features.0.1.num_batches_tracked").unwrap();
    let count = i64::from_le_bytes(nbt.data().try_into().unwrap());
    assert_eq!(w.get(Layer::Stem, Field::NumBatchesTracked).unwrap().data, vec![count as f32]);
    // Role lookup and key lookup agree.
    let dw = w.get(Layer::Block { index: 3, part: BlockPart::Depthwise }, Field::RunningVar).unwrap();
    assert_eq!(dw, w.get_by_key("features.3.0.block.1.1.running_var").unwrap());
}

#[test]
fn init_random_is_deterministic_and_scaled() {
    let cfg = Config::b0(10);
    let a = Weights::init_random(&cfg, 42);
    let b = Weights::init_random(&cfg, 42);
    let c = Weights::init_random(&cfg, 43);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.param_count(), 4_020_358);

    let std = |v: &[f32]| (v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    // Stem: fan_out = 3·3·32.
    let stem = a.get(Layer::Stem, Field::Weight).unwrap();
    let want = (2.0f64 / (9.0 * 32.0)).sqrt();
    assert!((std(&stem.data) / want - 1.0).abs() < 0.15, "{} vs {want}", std(&stem.data));
    // Head 1x1 conv: fan_out = 1280, plenty of samples.
    let head = a.get(Layer::Head, Field::Weight).unwrap();
    let want = (2.0f64 / 1280.0).sqrt();
    assert!((std(&head.data) / want - 1.0).abs() < 0.02);
    // Depthwise: fan_out = kh·kw.
    let dw = a.get(Layer::Block { index: 15, part: BlockPart::Depthwise }, Field::Weight).unwrap();
    let want = (2.0f64 / 9.0).sqrt();
    assert!((std(&dw.data) / want - 1.0).abs() < 0.05);
    // Classifier U(±1/sqrt(10)).
    let fc = a.get(Layer::Classifier, Field::Weight).unwrap();
    let bound = 1.0 / 10f32.sqrt();
    assert!(fc.data.iter().all(|x| x.abs() <= bound));
    assert!(fc.data.iter().any(|x| x.abs() > 0.9 * bound));
    assert!(a.get(Layer::Classifier, Field::Bias).unwrap().data.iter().all(|&x| x == 0.0));
    assert!(a.get(Layer::Head, Field::BnWeight).unwrap().data.iter().all(|&x| x == 1.0));
    assert!(a.get(Layer::Head, Field::RunningVar).unwrap().data.iter().all(|&x| x == 1.0));
    let se_bias = a.get(Layer::Block { index: 0, part: BlockPart::SeReduce }, Field::Bias).unwrap();
    assert_eq!(se_bias.data, vec![0.0; 8]);
}

#[test]
fn save_load_roundtrip_torchvision() {
    let cfg = Config::b0(10);
    let mut w = Weights::init_random(&cfg, 1);
    w.set("features.0.1.num_batches_tracked", efficientnet_wgpu::model::HostTensor::new(vec![], vec![123.0]).unwrap())
        .unwrap();
    let path = tmp("roundtrip_tv.safetensors");
    let meta = HashMap::from([("epoch".to_string(), "3".to_string())]);
    w.save(&path, &cfg, meta).unwrap();
    assert!(!tmp("roundtrip_tv.safetensors.tmp").exists(), "temporary file left behind");

    let (back, format) = Weights::load(&path, &cfg, None).unwrap();
    assert_eq!(format, WeightFormat::Torchvision);
    assert_eq!(back, w);

    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    assert_eq!(meta.get("epoch").map(String::as_str), Some("3"));
    assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let nbt = st.tensor("features.0.1.num_batches_tracked").unwrap();
    assert_eq!((nbt.dtype(), nbt.shape()), (Dtype::I64, &[][..]));
    assert_eq!(i64::from_le_bytes(nbt.data().try_into().unwrap()), 123);
    assert_eq!(st.tensor("classifier.1.weight").unwrap().dtype(), Dtype::F32);

    // Saving against a config the weights were not made for is refused.
    let err = w.save(tmp("wrong_cfg.safetensors"), &Config::b1(10), HashMap::new()).unwrap_err();
    assert!(matches!(err, Error::WeightsMismatch { .. }), "{err}");
}

#[test]
fn timm_and_lukemelas_files_roundtrip_with_autodetect() {
    let cfg = Config::b0(10);
    let w = Weights::init_random(&cfg, 5);
    for (format, detected) in [
        (WeightFormat::Timm, WeightFormat::Timm),
        (WeightFormat::TimmTf, WeightFormat::Timm),
        (WeightFormat::Lukemelas, WeightFormat::Lukemelas),
    ] {
        let path = tmp(&format!("roundtrip_{format}.safetensors"));
        write_entries(&path, &entries_in_format(&w, &cfg, format));
        let (back, got) = Weights::load(&path, &cfg, None).unwrap();
        assert_eq!(got, detected);
        assert_eq!(back, w, "{format}");
        let (back, got) = Weights::load(&path, &cfg, Some(format)).unwrap();
        assert_eq!(got, format);
        assert_eq!(back, w, "{format}");
    }
    // Lite through timm names.
    let lite = Config::lite1(10);
    let w = Weights::init_random(&lite, 6);
    let path = tmp("roundtrip_lite_timm.safetensors");
    write_entries(&path, &entries_in_format(&w, &lite, WeightFormat::Timm));
    assert_eq!(Weights::load(&path, &lite, None).unwrap().0, w);
}

#[test]
fn half_precision_files_load() {
    let cfg = Config::b0(10);
    let w = Weights::init_random(&cfg, 9);
    let spec = cfg.state_dict_spec(WeightFormat::Torchvision);
    for dtype in [Dtype::F16, Dtype::BF16] {
        let entries: Vec<Entry> = spec
            .iter()
            .zip(w.iter())
            .map(|(s, (_, t))| {
                if s.field == Field::NumBatchesTracked {
                    // Counters as I32 exercise the other integer type.
                    (s.key.clone(), Dtype::I32, vec![], 4i32.to_le_bytes().to_vec())
                } else {
                    let bytes = t
                        .data
                        .iter()
                        .flat_map(|&v| match dtype {
                            Dtype::F16 => half::f16::from_f32(v).to_le_bytes(),
                            _ => half::bf16::from_f32(v).to_le_bytes(),
                        })
                        .collect();
                    (s.key.clone(), dtype, s.shape.clone(), bytes)
                }
            })
            .collect();
        let path = tmp(&format!("half_{dtype:?}.safetensors"));
        write_entries(&path, &entries);
        let (back, _) = Weights::load(&path, &cfg, None).unwrap();
        let rel = if dtype == Dtype::F16 { 1e-3 } else { 8e-3 };
        for ((s, a), (_, b)) in w.iter().zip(back.iter()) {
            if s.field == Field::NumBatchesTracked {
                assert_eq!(b.data, vec![4.0]);
                continue;
            }
            for (x, y) in a.data.iter().zip(&b.data) {
                assert!((x - y).abs() <= rel * x.abs() + 1e-6, "{dtype:?} {}: {x} vs {y}", s.key);
            }
        }
        // Not a bit-exact copy: the conversion really happened.
        assert_ne!(back, w);
    }
}

#[test]
fn missing_num_batches_tracked_is_optional() {
    let cfg = Config::b0(10);
    let w = Weights::init_random(&cfg, 2);
    let entries: Vec<Entry> = entries_in_format(&w, &cfg, WeightFormat::Lukemelas)
        .into_iter()
        .filter(|e| !e.0.ends_with("num_batches_tracked"))
        .collect();
    let path = tmp("no_nbt.safetensors");
    write_entries(&path, &entries);
    let (back, _) = Weights::load(&path, &cfg, None).unwrap();
    assert_eq!(back, w);
}

#[test]
fn missing_and_unexpected_keys_are_listed() {
    let cfg = Config::b0(10);
    let w = Weights::init_random(&cfg, 3);
    let mut entries = entries_in_format(&w, &cfg, WeightFormat::Torchvision);
    entries.retain(|e| e.0 != "features.4.1.block.3.0.weight");
    entries.push(("features.9.extra".to_string(), Dtype::F32, vec![1], 1f32.to_le_bytes().to_vec()));
    let path = tmp("missing_extra.safetensors");
    write_entries(&path, &entries);
    let details = mismatch_details(Weights::load(&path, &cfg, None).unwrap_err());
    assert!(details.contains("1 missing: features.4.1.block.3.0.weight"), "{details}");
    assert!(details.contains("1 unexpected: features.9.extra"), "{details}");
}

#[test]
fn wrong_variant_suggests_the_right_one() {
    let b1 = Config::b1(1000);
    let path = tmp("b1.safetensors");
    Weights::init_random(&b1, 4).save(&path, &b1, HashMap::new()).unwrap();
    let err = Weights::load(&path, &Config::b0(1000), None).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("efficientnet b1 with 1000 classes: pass --model b1"), "{text}");

    // Same depth as B1 but wider: B2 weights loaded as B1 fail on shapes and name both shapes.
    let b2 = Config::b2(1000);
    let path = tmp("b2.safetensors");
    Weights::init_random(&b2, 4).save(&path, &b2, HashMap::new()).unwrap();
    let details = mismatch_details(Weights::load(&path, &b1, None).unwrap_err());
    assert!(
        details.contains(
            "334 tensors with the wrong shape: features.3.0.block.3.0.weight expected \
             [40, 144, 1, 1], file has [48, 144, 1, 1]"
        ),
        "{details}"
    );
    assert!(details.contains("pass --model b2"), "{details}");

    // Other class count: suggest --classes; other variant and classes: both flags.
    let b0_10 = Config::b0(10);
    let path = tmp("b0_10.safetensors");
    Weights::init_random(&b0_10, 4).save(&path, &b0_10, HashMap::new()).unwrap();
    let details = mismatch_details(Weights::load(&path, &Config::b0(1000), None).unwrap_err());
    assert!(details.contains("classifier.1.weight expected [1000, 1280], file has [10, 1280]"), "{details}");
    assert!(details.contains("pass --classes 10"), "{details}");
    assert!(!details.contains("--model"), "{details}");
    let details = mismatch_details(Weights::load(&path, &Config::lite0(1000), None).unwrap_err());
    assert!(details.contains("pass --model b0 --classes 10"), "{details}");
}

#[test]
#[ignore = "needs the full-size PyTorch fixtures ($EFFNET_FIXTURES, default ../shared/fixtures); scripts/test.sh includes it when they exist"]
fn wrong_explicit_format_is_pointed_out() {
    let path = fixtures().join("torchvision-b0/tv_b0.safetensors");
    let details = mismatch_details(Weights::load(&path, &Config::b0(1000), Some(WeightFormat::Lukemelas)).unwrap_err());
    assert!(details.contains("--weights-format torchvision"), "{details}");
}

#[test]
fn unknown_naming_is_an_error_listing_keys() {
    let path = tmp("unknown_names.safetensors");
    write_entries(&path, &[("model.conv1.weight".to_string(), Dtype::F32, vec![1], vec![0; 4])]);
    let details = mismatch_details(Weights::load(&path, &Config::b0(1000), None).unwrap_err());
    assert!(details.contains("model.conv1.weight"), "{details}");
}

#[test]
fn unreadable_and_corrupt_files_are_typed_errors() {
    let missing = tmp("does_not_exist.safetensors");
    let _ = std::fs::remove_file(&missing);
    assert!(matches!(Weights::load(&missing, &Config::b0(1000), None), Err(Error::Io { .. })));

    // Deterministic "random" bytes (a small LCG), and a truncated real file.
    let mut x: u64 = 0x1234_5678;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect();
    let path = tmp("junk.safetensors");
    std::fs::write(&path, &junk).unwrap();
    let err = Weights::load(&path, &Config::b0(1000), None).unwrap_err();
    assert!(matches!(err, Error::Safetensors { .. }), "{err:?}");

    let cfg = Config::b0(10);
    let good = tmp("to_truncate.safetensors");
    Weights::init_random(&cfg, 8).save(&good, &cfg, HashMap::new()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let path = tmp("truncated.safetensors");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = Weights::load(&path, &cfg, None).unwrap_err();
    assert!(matches!(err, Error::Safetensors { .. }), "{err:?}");
}

#[test]
fn integer_weights_are_a_dtype_error() {
    let cfg = Config::b0(10);
    let w = Weights::init_random(&cfg, 3);
    let mut entries = entries_in_format(&w, &cfg, WeightFormat::Torchvision);
    let stem = entries.iter_mut().find(|e| e.0 == "features.0.0.weight").unwrap();
    stem.1 = Dtype::I32; // same byte size, wrong type
    let path = tmp("int_weight.safetensors");
    write_entries(&path, &entries);
    match Weights::load(&path, &cfg, None).unwrap_err() {
        Error::DType { name, dtype, .. } => {
            assert_eq!(name, "features.0.0.weight");
            assert_eq!(dtype, "I32");
        }
        other => panic!("expected DType, got {other:?}"),
    }
}

#[test]
fn set_checks_shapes() {
    let cfg = Config::b0(10);
    let mut w = Weights::init_random(&cfg, 0);
    let bad = efficientnet_wgpu::model::HostTensor::zeros(vec![3]);
    assert!(matches!(w.set("classifier.1.bias", bad), Err(Error::Shape { .. })));
    assert!(w.set("no.such.key", efficientnet_wgpu::model::HostTensor::zeros(vec![10])).is_err());
    w.set("classifier.1.bias", efficientnet_wgpu::model::HostTensor::full(vec![10], 0.5)).unwrap();
    assert_eq!(w.get(Layer::Classifier, Field::Bias).unwrap().data, vec![0.5; 10]);
}

#[test]
fn format_names_parse() {
    for f in WeightFormat::ALL {
        assert_eq!(f.name().parse::<WeightFormat>().unwrap(), f);
    }
    assert!("keras".parse::<WeightFormat>().is_err());
}
