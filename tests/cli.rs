//! The `effnet` binary as a user runs it.

mod common;
use common::*;

use std::process::Command;

fn effnet(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_effnet")).args(args).output().expect("run effnet");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn info_prints_exact_parameter_counts_of_all_13_variants() {
    let expected = [
        ("b0", 5_288_548u64, 224u64),
        ("b1", 7_794_184, 240),
        ("b2", 9_109_994, 260),
        ("b3", 12_233_232, 300),
        ("b4", 19_341_616, 380),
        ("b5", 30_389_784, 456),
        ("b6", 43_040_704, 528),
        ("b7", 66_347_960, 600),
        ("lite0", 4_652_008, 224),
        ("lite1", 5_416_680, 240),
        ("lite2", 6_092_072, 260),
        ("lite3", 8_197_096, 280),
        ("lite4", 13_006_568, 300),
    ];
    for (model, params, res) in expected {
        let (ok, out, err) = effnet(&["info", "--model", model, "--json"]);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["params"].as_u64(), Some(params), "{model}");
        assert_eq!(v["resolution"].as_u64(), Some(res), "{model}");
        assert!(v["macs"].as_u64().unwrap() > 0);
    }
    let (ok, out, _) = effnet(&["info", "--model", "b0", "--classes", "10", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["params"].as_u64(), Some(4_020_358));
}

#[test]
fn info_train_memory_agrees_with_the_recorded_step() {
    // The CLI records the same step the bench times: its activation figure must be that step's.
    let (ok, out, err) = effnet(&[
        "info",
        "--model",
        "b0",
        "--classes",
        "10",
        "--resolution",
        "64",
        "--train-memory",
        "--batch",
        "3",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let m = &v["train_memory"];
    let config = efficientnet_wgpu::model::Config::b0(10);
    let graph = efficientnet_wgpu::train::TrainGraph::new(
        gpu(),
        config.clone(),
        &efficientnet_wgpu::model::Weights::zeros(&config),
    )
    .unwrap();
    let step = graph.record_step(gpu(), 3, 64, 64, &efficientnet_wgpu::train::TrainOptions::default()).unwrap();
    assert_eq!(m["activation_bytes"].as_u64(), Some(step.activation_bytes));
    assert_eq!(m["batch"].as_u64(), Some(3));
    // Parameters, gradients and BN statistics: at least 2 x 4 bytes per parameter.
    assert!(m["parameter_bytes"].as_u64().unwrap() >= 8 * config.param_count() as u64);
    // One image too big for any adapter's bindings (B7 at 9600 px: a 17 GiB activation) is an
    // error naming the limit.
    let (ok, _, err) = effnet(&["info", "--model", "b7", "--train-memory", "--batch", "2", "--resolution", "9600"]);
    assert!(!ok && err.contains("max_storage_buffer_binding_size"), "{err}");
}

#[test]
fn unknown_model_is_a_clear_error() {
    let (ok, _, err) = effnet(&["info", "--model", "b9"]);
    assert!(!ok);
    assert!(err.contains("b9") && err.contains("b0..b7"), "{err}");
}

#[test]
#[ignore = "needs the full-size PyTorch fixtures ($EFFNET_FIXTURES, default ../shared/fixtures); scripts/test.sh includes it when they exist"]
fn run_reproduces_pytorch_logits_on_the_shared_fixture() {
    let dir = std::env::temp_dir().join(format!("effnet-cli-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.safetensors");
    let weights = fixture("torchvision-b0/tv_b0.safetensors");
    let io = fixture("torchvision-b0/tv_b0_io.safetensors");
    let (wp, ip, op) = (weights.to_str().unwrap(), io.to_str().unwrap(), out.to_str().unwrap());
    let (ok, _, err) = effnet(&["run", "--model", "b0", "--weights", wp, "--input", ip, "--output", op]);
    assert!(ok, "{err}");
    let got = read_safetensors(&out);
    let want = read_safetensors(&io);
    assert_eq!(got["logits"].0, vec![1, 1000]);
    assert_eq!(got["features"].0, vec![1, 1280]);
    let w = &want["logits"].1;
    assert_close("logits", &got["logits"].1, w, 1e-5 + 1e-4 * max_abs(w), 0.0);
    let p = &want["act.pooled"].1;
    assert_close("features", &got["features"].1, p, 1e-5 + 1e-4 * max_abs(p), 0.0);

    // --feature-maps adds the last map at each resolution: torchvision's stage outputs 1, 2, 3,
    // 5 and 7 (1/2 .. 1/32), NCHW.
    let (ok, _, err) = effnet(&["run", "--weights", wp, "--input", ip, "--output", op, "--feature-maps"]);
    assert!(ok, "{err}");
    let got = read_safetensors(&out);
    for (i, stage) in [1, 2, 3, 5, 7].into_iter().enumerate() {
        let (shape, want) = &want[&format!("act.stage{stage}")];
        let (got_shape, data) = &got[&format!("feature.{i}")];
        assert_eq!(got_shape, shape, "feature.{i}");
        assert_close(&format!("feature.{i}"), data, want, 1e-5 + 1e-4 * max_abs(want), 0.0);
    }

    // --f16 stores weights and activations as f16: the tolerance of parity_torchvision_b0's f16
    // test (16 half-ulps of the logit scale).
    let (ok, _, err) = effnet(&["run", "--f16", "--weights", wp, "--input", ip, "--output", op]);
    assert!(ok, "{err}");
    let got = read_safetensors(&out);
    assert_close("f16 logits", &got["logits"].1, w, 16.0 / 2048.0 * max_abs(w), 0.0);

    // The wrong variant names the one that fits.
    let (ok, _, err) = effnet(&["run", "--model", "b2", "--weights", wp, "--input", ip, "--output", op]);
    assert!(!ok);
    assert!(err.contains("--model b0"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
#[ignore = "needs the full-size PyTorch fixtures ($EFFNET_FIXTURES, default ../shared/fixtures); scripts/test.sh includes it when they exist"]
fn classify_reads_png_and_jpeg_and_prints_top5_with_imagenet_names() {
    let dir = std::env::temp_dir().join(format!("effnet-cli-classify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A 300x200 gradient, saved as PNG and JPEG; and a file that is not an image.
    let img = image::RgbImage::from_fn(300, 200, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let (png, jpg, bad) = (dir.join("a.png"), dir.join("b.jpg"), dir.join("c.jpg"));
    img.save(&png).unwrap();
    img.save(&jpg).unwrap();
    std::fs::write(&bad, b"not a jpeg").unwrap();
    let weights = fixture("torchvision-b0/tv_b0.safetensors");
    let (ok, out, err) = effnet(&[
        "classify",
        "--model",
        "b0",
        "--weights",
        weights.to_str().unwrap(),
        "--json",
        png.to_str().unwrap(),
        jpg.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        let top = l["top"].as_array().unwrap();
        assert_eq!(top.len(), 5);
        let probs: Vec<f64> = top.iter().map(|t| t["prob"].as_f64().unwrap()).collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]), "sorted: {probs:?}");
        assert!(probs.iter().all(|&p| (0.0..=1.0).contains(&p)));
        let class = top[0]["class"].as_u64().unwrap() as usize;
        assert_eq!(top[0]["label"].as_str(), efficientnet_wgpu::model::imagenet_label(class));
    }
    // PNG and JPEG of the same picture mostly agree (JPEG is lossy).
    assert_eq!(lines[0]["top"][0]["class"], lines[1]["top"][0]["class"]);

    let (ok, _, err) =
        effnet(&["classify", "--model", "b0", "--weights", weights.to_str().unwrap(), bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("c.jpg") && err.contains("decoded"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_weights_file_names_the_file() {
    let (ok, _, err) = effnet(&["classify", "--weights", "/nonexistent/w.safetensors", "x.png"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/w.safetensors"), "{err}");
}

#[test]
#[ignore = "needs the full-size PyTorch fixtures ($EFFNET_FIXTURES, default ../shared/fixtures); scripts/test.sh includes it when they exist"]
fn grad_writes_every_gradient_and_running_stat_in_the_fixture_format() {
    let dir = std::env::temp_dir().join(format!("effnet-cli-grad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("grad.safetensors");
    let weights = fixture("torchvision-b0/tv_b0.safetensors");
    let step = fixture("torchvision-b0/tv_b0_grad.safetensors");
    let (ok, _, err) = effnet(&[
        "grad",
        "--model",
        "b0",
        "--weights",
        weights.to_str().unwrap(),
        "--input",
        step.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let got = read_safetensors(&out);
    let want = read_safetensors(&step);
    // Every reference tensor but the step's own input is produced, and nothing else.
    let mut expected: Vec<&String> = want.keys().filter(|k| *k != "input").collect();
    let mut produced: Vec<&String> = got.keys().collect();
    expected.sort();
    produced.sort();
    assert_eq!(produced, expected);
    assert_eq!(got["loss"].0, Vec::<usize>::new(), "loss is a scalar");
    // Tolerances of issue #3 (see tests/parity_grad.rs).
    for (k, (_, w)) in &want {
        let tol = if k.starts_with("grad.") {
            2e-6 + 1e-3 * max_abs(w)
        } else if k == "input" {
            continue;
        } else {
            1e-5 + 1e-4 * max_abs(w)
        };
        assert_close(k, &got[k].1, w, tol, 0.0);
    }
    // A target past the classifier is an error naming the class.
    let bad = dir.join("bad.safetensors");
    let input = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, 3, 8, 8], &[0u8; 768]).unwrap();
    let target_bytes = 1000i64.to_le_bytes();
    let target = safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![1], &target_bytes).unwrap();
    std::fs::write(&bad, safetensors::tensor::serialize([("input", input), ("target", target)], None).unwrap())
        .unwrap();
    let (ok, _, err) = effnet(&[
        "grad",
        "--weights",
        weights.to_str().unwrap(),
        "--input",
        bad.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("1000") && err.contains("out of range"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
