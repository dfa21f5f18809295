//! Files the library writes: atomic replacement (a failed write keeps the old content and leaves
//! no temporary), links, devices and directories at the path, stale temporaries, the metrics
//! CSV, the safetensors bytes of `Weights::save`, and checkpoints that a resume must refuse
//! (wrong element types, shapes, counters and configs), each made by editing a real checkpoint.
//! The file-system tests need no GPU; the checkpoint tests run a small `Trainer` on lavapipe.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use efficientnet_wgpu::fsio;
use efficientnet_wgpu::model::{Config, Weights};
use efficientnet_wgpu::ops::OptimizerKind;
use efficientnet_wgpu::train::report::{append_metrics, read_metrics, MetricsRow};
use efficientnet_wgpu::train::{Schedule, TrainConfig, Trainer};
use efficientnet_wgpu::{Error, Gpu};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// A fresh, empty folder for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("effnet-files-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn a_write_that_fails_midway_keeps_the_old_content_and_no_temporary() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("fail");
    let target = dir.join("weights.safetensors");
    std::fs::write(&target, b"old content").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();

    // The writer has written part of the new content when it fails.
    let e = fsio::write_atomic_with(&target, |w| {
        w.write_all(&[7u8; 100_000]).map_err(|e| Error::io(&target, e))?;
        Err(Error::invalid("the serialiser failed"))
    })
    .unwrap_err();
    assert!(e.to_string().contains("the serialiser failed"), "{e}");
    assert_eq!(std::fs::read(&target).unwrap(), b"old content");
    assert_eq!(listing(&dir), ["weights.safetensors"], "no temporary is left");

    // A panicking writer leaves no temporary either.
    let panicked = std::panic::catch_unwind(|| {
        let _ = fsio::write_atomic_with(&target, |w| {
            w.write_all(b"half").unwrap();
            panic!("writer panicked");
        });
    });
    assert!(panicked.is_err());
    assert_eq!(std::fs::read(&target).unwrap(), b"old content");
    assert_eq!(listing(&dir), ["weights.safetensors"]);

    // A failed write to a new path creates nothing.
    let fresh = dir.join("new.bin");
    assert!(fsio::write_atomic_with(&fresh, |_| Err(Error::invalid("no"))).is_err());
    assert_eq!(listing(&dir), ["weights.safetensors"]);

    // A successful one replaces the content and keeps the file's permissions.
    fsio::write_atomic(&target, b"new content").unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"new content");
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(listing(&dir), ["weights.safetensors"]);

    // A read-only file is not replaced.
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o444)).unwrap();
    let e = fsio::write_atomic(&target, b"newer").unwrap_err().to_string();
    assert!(e.contains("weights.safetensors") && e.contains("read-only"), "{e}");
    assert_eq!(std::fs::read(&target).unwrap(), b"new content");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn writing_to_a_symlink_replaces_its_target_and_keeps_the_link() {
    let dir = scratch("symlink");
    std::fs::create_dir(dir.join("data")).unwrap();
    let real = dir.join("data/real.safetensors");
    std::fs::write(&real, b"old").unwrap();
    let link = dir.join("latest.safetensors");
    std::os::unix::fs::symlink("data/real.safetensors", &link).unwrap();

    fsio::write_atomic(&link, b"new").unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("data/real.safetensors"));
    assert_eq!(std::fs::read(&real).unwrap(), b"new");
    assert_eq!(listing(&dir), ["data", "latest.safetensors"]);
    assert_eq!(listing(&dir.join("data")), ["real.safetensors"]);

    // A link to a file not yet there creates the file and keeps the link.
    let dangling = dir.join("next.safetensors");
    std::os::unix::fs::symlink("data/next-real.safetensors", &dangling).unwrap();
    Weights::init_random(&Config::custom(0.25, 0.25, 16, 0.2, 2), 1)
        .save(&dangling, &Config::custom(0.25, 0.25, 16, 0.2, 2), HashMap::new())
        .unwrap();
    assert!(std::fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink());
    assert!(
        Weights::load(dir.join("data/next-real.safetensors"), &Config::custom(0.25, 0.25, 16, 0.2, 2), None).is_ok()
    );
    assert_eq!(listing(&dir.join("data")), ["next-real.safetensors", "real.safetensors"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn devices_and_fifos_are_written_through_and_stay_what_they_are() {
    let config = Config::custom(0.25, 0.25, 16, 0.2, 2);
    let weights = Weights::init_random(&config, 1);
    // Renaming a temporary over /dev/null would replace the device with a plain file.
    fsio::write_atomic("/dev/null", b"discarded").unwrap();
    weights.save("/dev/null", &config, HashMap::new()).unwrap();
    fsio::append("/dev/null", b"row\n").unwrap();
    let meta = std::fs::metadata("/dev/null").unwrap();
    assert!(meta.file_type().is_char_device(), "/dev/null must stay a character device");
    assert!(!listing(Path::new("/dev")).iter().any(|n| n.starts_with(".null")), "no temporary in /dev");

    // A full device: the write fails and says where.
    let e = fsio::write_atomic("/dev/full", vec![1u8; 1 << 16]).unwrap_err().to_string();
    assert!(e.contains("/dev/full"), "{e}");
    assert!(std::fs::metadata("/dev/full").unwrap().file_type().is_char_device());

    // A FIFO: a reader gets every byte, and the FIFO stays a FIFO.
    let dir = scratch("fifo");
    let fifo = dir.join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo (coreutils)");
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    fsio::write_atomic(&fifo, &payload).unwrap();
    assert_eq!(reader.join().unwrap(), payload);
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(listing(&dir), ["pipe"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_directory_at_the_path_is_an_error_naming_it() {
    let dir = scratch("directory");
    let target = dir.join("checkpoint.safetensors");
    std::fs::create_dir(&target).unwrap();
    let config = Config::custom(0.25, 0.25, 16, 0.2, 2);
    let errors = [
        fsio::write_atomic(&target, b"x").unwrap_err(),
        fsio::append(&target, b"x").unwrap_err(),
        Weights::init_random(&config, 1).save(&target, &config, HashMap::new()).unwrap_err(),
        append_metrics(&target, &row(1)).unwrap_err(),
    ];
    for e in errors {
        let e = e.to_string();
        assert!(e.contains(&target.display().to_string()) && e.contains("directory"), "{e}");
    }
    assert!(std::fs::metadata(&target).unwrap().is_dir());
    assert_eq!(listing(&dir), ["checkpoint.safetensors"]);
    assert!(listing(&target).is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn stale_temporaries_are_removed_and_nothing_else() {
    let dir = scratch("stale");
    let target = dir.join("checkpoint.safetensors");
    std::fs::write(&target, b"the checkpoint").unwrap();
    // Left by killed processes (pids above Linux's pid_max, so certainly not running).
    let stale = [".checkpoint.safetensors.effnet-4000000000-0.tmp", ".checkpoint.safetensors.effnet-4000000001-17.tmp"];
    let own = format!(".checkpoint.safetensors.effnet-{}-99.tmp", std::process::id());
    let keep = [
        "checkpoint.safetensors",
        "checkpoint.safetensors.tmp",
        ".checkpoint.safetensors.effnet-4000000000-0.tmp.bak",
        ".checkpoint.safetensors.effnet-4000000000.tmp",
        ".checkpoint.safetensors.effnet-x-0.tmp",
        ".other.safetensors.effnet-4000000000-0.tmp",
        "notes.txt",
        own.as_str(),
    ];
    for name in stale.iter().chain(&keep[1..]) {
        std::fs::write(dir.join(name), b"x").unwrap();
    }
    // A folder with a temporary's name is not a temporary.
    std::fs::create_dir(dir.join(".checkpoint.safetensors.effnet-4000000002-0.tmp")).unwrap();

    let removed = fsio::remove_stale_temporaries(&target).unwrap();
    let want: Vec<PathBuf> = stale.iter().map(|n| dir.join(n)).collect();
    assert_eq!(removed, want);
    let mut left: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
    left.push(".checkpoint.safetensors.effnet-4000000002-0.tmp".into());
    left.sort();
    assert_eq!(listing(&dir), left);
    assert_eq!(std::fs::read(&target).unwrap(), b"the checkpoint");
    // Nothing to remove the second time, and a folder that is not there has nothing stale.
    assert!(fsio::remove_stale_temporaries(&target).unwrap().is_empty());
    assert!(fsio::remove_stale_temporaries(dir.join("absent/checkpoint.safetensors")).unwrap().is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

fn row(step: u64) -> MetricsRow {
    MetricsRow {
        step,
        epoch: step as f64 / 10.0,
        lr: 0.01,
        train_loss: 1.0,
        train_accuracy: 0.5,
        test_accuracy: None,
        images_per_second: 10.0,
        loader_images_per_second: 0.0,
        data_wait: 0.0,
    }
}

#[test]
fn metrics_appends_are_checked_and_an_empty_file_gets_the_header() {
    let dir = scratch("metrics");
    let csv = dir.join("metrics.csv");
    // A file that exists but is empty (a run killed before its first row) still gets the header.
    std::fs::write(&csv, b"").unwrap();
    append_metrics(&csv, &row(10)).unwrap();
    append_metrics(&csv, &row(20)).unwrap();
    let rows = read_metrics(&csv).unwrap();
    assert_eq!(rows.iter().map(|r| r.step).collect::<Vec<_>>(), [10, 20]);
    // A full disk: the append fails, naming the file.
    let e = append_metrics(Path::new("/dev/full"), &row(30)).unwrap_err().to_string();
    assert!(e.contains("/dev/full"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn saved_weights_are_byte_for_byte_what_safetensors_serialises() {
    let dir = scratch("bytes");
    let config = Config::custom(0.25, 0.25, 16, 0.2, 2);
    let weights = Weights::init_random(&config, 3);
    let path = dir.join("w.safetensors");
    let extra = vec![("train.optimizer.slot0".to_string(), vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])];
    weights.save_with(&path, &config, HashMap::new(), &extra).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, TensorView<'_>)> = st.tensors();
    let again = safetensors::serialize(views, Some(HashMap::from([("format".to_string(), "pt".to_string())]))).unwrap();
    assert!(again == bytes, "the streamed file differs from safetensors::serialize's");
    assert!(Weights::load(&path, &config, None).unwrap().0 == weights);

    // Extra tensors whose shape does not hold their values, or outside `train.`, write nothing.
    let fresh = dir.join("bad.safetensors");
    let bad_shape = vec![("train.x".to_string(), vec![3], vec![1.0, 2.0])];
    assert!(weights
        .save_with(&fresh, &config, HashMap::new(), &bad_shape)
        .unwrap_err()
        .to_string()
        .contains("train.x"));
    let bad_name = vec![("features.0.0.weight".to_string(), vec![1], vec![1.0])];
    assert!(weights.save_with(&fresh, &config, HashMap::new(), &bad_name).is_err());
    assert_eq!(listing(&dir), ["w.safetensors"]);
    std::fs::remove_dir_all(&dir).ok();
}

// --- Checkpoints ---------------------------------------------------------------------------

fn shared_gpu() -> Arc<Gpu> {
    static GPU: std::sync::OnceLock<Arc<Gpu>> = std::sync::OnceLock::new();
    GPU.get_or_init(|| Arc::new(Gpu::new().expect("a wgpu adapter (apt-get install -y mesa-vulkan-drivers)"))).clone()
}

fn small_config() -> Config {
    Config::custom(0.25, 0.25, 16, 0.2, 2)
}

fn adamw() -> OptimizerKind {
    OptimizerKind::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 }
}

fn train_config() -> TrainConfig {
    let mut c = TrainConfig::default();
    c.epochs = 3;
    c.batch_size = 4;
    c.lr = 1e-3;
    c.schedule = Schedule::Constant;
    c.warmup_epochs = 0.0;
    c.optimizer = adamw();
    c.ema = Some(0.9);
    c.resolution = 16;
    c
}

/// A trainer of the small model with AdamW and EMA, 5 steps an epoch, from weights of `seed`.
fn trainer(seed: u64) -> Trainer {
    let config = small_config();
    Trainer::new(shared_gpu(), config.clone(), &Weights::init_random(&config, seed), train_config(), 5).unwrap()
}

/// A checkpoint's tensors (name, dtype, shape, bytes) and metadata, to edit.
struct Edit {
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    metadata: HashMap<String, String>,
}

/// Writes `from` edited by `change` to `to`.
fn edited(from: &Path, to: &Path, change: impl FnOnce(&mut Edit)) {
    let bytes = std::fs::read(from).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut edit = Edit {
        tensors: st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect(),
        metadata: meta.metadata().clone().unwrap_or_default(),
    };
    change(&mut edit);
    let views: Vec<(String, TensorView<'_>)> =
        edit.tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(to, safetensors::serialize(views, Some(edit.metadata)).unwrap()).unwrap();
}

impl Edit {
    fn tensor(&mut self, name: &str) -> &mut (String, Dtype, Vec<usize>, Vec<u8>) {
        self.tensors.iter_mut().find(|t| t.0 == name).unwrap()
    }
}

/// Little-endian f32 bytes as values.
fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// A malformed checkpoint: its file name, the edit that makes it, what its error must say.
type Case = (&'static str, Box<dyn FnOnce(&mut Edit)>, Vec<String>);

#[test]
fn malformed_checkpoints_are_refused_naming_the_problem_and_change_nothing() {
    let dir = scratch("checkpoints");
    let good = dir.join("good.safetensors");
    trainer(1).save_checkpoint(&good).unwrap();
    eprintln!("a checkpoint of the small model is {} bytes", std::fs::metadata(&good).unwrap().len());

    let mut cases: Vec<Case> = Vec::new();
    // An f16 optimizer state: the right number of values, half the bytes; never converted.
    cases.push((
        "f16-slot",
        Box::new(|e: &mut Edit| {
            let t = e.tensor("train.optimizer.slot1");
            t.3 = f32s(&t.3).iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
            t.1 = Dtype::F16;
        }),
        vec!["train.optimizer.slot1".into(), "F16".into()],
    ));
    // An i32 optimizer state has the bytes of an f32 one: it must not be reinterpreted.
    cases.push((
        "i32-slot",
        Box::new(|e: &mut Edit| e.tensor("train.optimizer.slot0").1 = Dtype::I32),
        vec!["train.optimizer.slot0".into(), "I32".into()],
    ));
    // The right number of values in the wrong shape.
    cases.push((
        "shape",
        Box::new(|e: &mut Edit| {
            let t = e.tensor("train.ema");
            t.2 = vec![1, t.2[0]];
        }),
        vec!["train.ema".into(), "shape".into()],
    ));
    // A weight of the wrong shape (same byte count).
    cases.push((
        "weight-shape",
        Box::new(|e: &mut Edit| {
            let t = e.tensor("classifier.1.weight");
            t.2 = vec![t.2[1], t.2[0]];
        }),
        vec!["classifier.1.weight".into(), "shape".into()],
    ));
    // A step counter that would overflow the next step.
    cases.push((
        "step",
        Box::new(|e: &mut Edit| {
            e.metadata.insert("effnet.step".into(), u64::MAX.to_string());
        }),
        vec!["effnet.step".into(), u64::MAX.to_string()],
    ));
    // An epoch the run does not have.
    cases.push((
        "epoch",
        Box::new(|e: &mut Edit| {
            e.metadata.insert("effnet.epoch".into(), "7".into());
        }),
        vec!["effnet.epoch".into(), "7".into()],
    ));
    // More batches in the epoch than steps taken.
    cases.push((
        "batch",
        Box::new(|e: &mut Edit| {
            e.metadata.insert("effnet.batch_in_epoch".into(), "3".into());
        }),
        vec!["effnet.batch_in_epoch".into(), "3".into()],
    ));
    // Another model's config (the tensors are unchanged): the error says which fields differ.
    cases.push((
        "config",
        Box::new(|e: &mut Edit| {
            let mut other = small_config();
            other.bn_eps = 1e-3;
            other.drop_connect = 0.3;
            e.metadata.insert("effnet.config".into(), serde_json::to_string(&other).unwrap());
        }),
        vec![
            "bn_eps (checkpoint 0.001, this run 0.00001)".into(),
            "drop_connect (checkpoint 0.3, this run 0.2)".into(),
        ],
    ));
    // The same optimizer with other hyper-parameters.
    cases.push((
        "optimizer",
        Box::new(|e: &mut Edit| {
            let mut tc = train_config();
            tc.optimizer = OptimizerKind::AdamW { beta1: 0.9, beta2: 0.99, eps: 1e-8 };
            e.metadata.insert("effnet.train_config".into(), serde_json::to_string(&tc).unwrap());
        }),
        vec!["beta2 0.99".into(), "beta2 0.999".into()],
    ));
    // A missing EMA, and a NaN in the second moments.
    cases.push((
        "no-ema",
        Box::new(|e: &mut Edit| e.tensors.retain(|t| t.0 != "train.ema")),
        vec!["train.ema".into(), "missing".into()],
    ));
    cases.push((
        "nan",
        Box::new(|e: &mut Edit| e.tensor("train.optimizer.slot1").3[8..12].copy_from_slice(&f32::NAN.to_le_bytes())),
        vec!["train.optimizer.slot1".into(), "NaN at index 2".into()],
    ));

    let mut t = trainer(2);
    let before = t.weights().unwrap();
    for (name, change, wanted) in cases {
        let path = dir.join(format!("{name}.safetensors"));
        edited(&good, &path, change);
        let e = t.resume(&path).unwrap_err().to_string();
        eprintln!("{name}: {e}");
        assert!(e.contains(&format!("{name}.safetensors")), "{name}: the error names the file: {e}");
        for w in &wanted {
            assert!(e.contains(w.as_str()), "{name}: the error should say {w:?}: {e}");
        }
        assert_eq!((t.step, t.epoch, t.batch_in_epoch), (0, 0, 0), "{name}: the counters are unchanged");
    }
    let after = t.weights().unwrap();
    assert!(before == after, "a refused checkpoint changes no weight");

    // The unedited checkpoint (rewritten by the same editor) resumes, counters and all.
    let same = dir.join("same.safetensors");
    edited(&good, &same, |e| {
        e.metadata.insert("effnet.step".into(), "7".into());
        e.metadata.insert("effnet.epoch".into(), "1".into());
        e.metadata.insert("effnet.batch_in_epoch".into(), "2".into());
    });
    t.resume(&same).unwrap();
    assert_eq!((t.step, t.epoch, t.batch_in_epoch), (7, 1, 2));
    assert!(t.weights().unwrap() != before);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_same_weights_and_metadata_make_the_same_bytes() {
    // Metadata is a HashMap, whose order differs from map to map: the header sorts it.
    let dir = scratch("same-bytes");
    let config = Config::custom(0.25, 0.25, 16, 0.2, 2);
    let weights = Weights::init_random(&config, 3);
    let files: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let meta: HashMap<String, String> = (0..12).map(|k| (format!("key{k}"), format!("value {k}"))).collect();
            let path = dir.join(format!("w{i}.safetensors"));
            weights.save(&path, &config, meta).unwrap();
            std::fs::read(&path).unwrap()
        })
        .collect();
    assert!(files.windows(2).all(|w| w[0] == w[1]), "saves of the same weights differ");
    std::fs::remove_dir_all(&dir).ok();
}
