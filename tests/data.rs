//! Data formats read from small files the tests write, the loader's reproducibility, and clear
//! errors for bad input (naming the file and the problem).

use std::io::Write;
use std::path::{Path, PathBuf};

use efficientnet_wgpu::data::*;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("effnet-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn idx_images(n: usize, h: usize, w: usize) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for d in [n, h, w] {
        b.extend_from_slice(&(d as u32).to_be_bytes());
    }
    b.extend((0..n * h * w).map(|i| (i % 251) as u8));
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 1];
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write_fashion(dir: &Path, train_labels: &[u8], gzipped: bool) {
    let n = train_labels.len();
    let files = [
        ("train-images-idx3-ubyte", idx_images(n, 28, 28)),
        ("train-labels-idx1-ubyte", idx_labels(train_labels)),
        ("t10k-images-idx3-ubyte", idx_images(3, 28, 28)),
        ("t10k-labels-idx1-ubyte", idx_labels(&[1, 2, 3])),
    ];
    for (name, bytes) in files {
        if gzipped {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

#[test]
fn fashion_mnist_idx_plain_and_gz() {
    for gzipped in [false, true] {
        let d = tmp(&format!("fm{gzipped}"));
        write_fashion(&d, &[0, 9, 4, 4, 2], gzipped);
        let (train, test) = load_fashion_mnist(&d).unwrap();
        assert_eq!((train.len(), test.len(), train.num_classes()), (5, 3, 10));
        assert_eq!(train.label(1), 9);
        match &train.source {
            Source::Memory(m) => {
                assert_eq!((m.channels, m.h, m.w), (1, 28, 28));
                assert_eq!(m.image(1)[0], (784 % 251) as u8);
            }
            _ => panic!("in memory"),
        }
    }
}

#[test]
fn truncated_idx_and_bad_labels_name_the_file() {
    let d = tmp("trunc");
    write_fashion(&d, &[0, 1, 2], false);
    let img = d.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&img).unwrap();
    std::fs::write(&img, &bytes[..bytes.len() - 10]).unwrap();
    let e = load_fashion_mnist(&d).unwrap_err().to_string();
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("truncated"), "{e}");

    write_fashion(&d, &[0, 1, 12], false);
    let e = load_fashion_mnist(&d).unwrap_err().to_string();
    assert!(e.contains("label 12") && e.contains("out of range"), "{e}");

    let e = load_fashion_mnist(&tmp("none")).unwrap_err().to_string();
    assert!(e.contains("dataset-fashion-mnist"), "{e}");
}

#[test]
fn cifar10_binary_batches() {
    let d = tmp("cifar");
    let rec = |label: u8| -> Vec<u8> { std::iter::once(label).chain((0..3072).map(|i| (i % 200) as u8)).collect() };
    std::fs::write(d.join("data_batch_1.bin"), [rec(3), rec(9)].concat()).unwrap();
    std::fs::write(d.join("test_batch.bin"), rec(0)).unwrap();
    let (train, test) = load_cifar10(&d).unwrap();
    assert_eq!((train.len(), test.len()), (2, 1));
    assert_eq!(train.class_names[3], "cat");
    assert_eq!(train.label(1), 9);
    std::fs::write(d.join("test_batch.bin"), &rec(0)[..100]).unwrap();
    let e = load_cifar10(&d).unwrap_err().to_string();
    assert!(e.contains("test_batch.bin") && e.contains("records"), "{e}");
}

#[test]
fn image_folder_split_and_errors() {
    let d = tmp("folder");
    for (class, n) in [("cat", 12), ("dog", 9)] {
        std::fs::create_dir_all(d.join(class)).unwrap();
        for i in 0..n {
            image::RgbImage::from_fn(40 + i, 30, |x, y| image::Rgb([x as u8, y as u8, i as u8]))
                .save(d.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let (train, test) = load_image_folder(&d, FolderSplit { held_out: 0.25 }).unwrap();
    assert_eq!(train.len() + test.len(), 21);
    assert!(!test.is_empty() && !train.is_empty());
    assert_eq!(train.class_names, vec!["cat", "dog"]);
    // Deterministic: the same split again.
    let (train2, _) = load_image_folder(&d, FolderSplit { held_out: 0.25 }).unwrap();
    assert_eq!(train.len(), train2.len());
    // Batches of 24x24 random-resized crops.
    let b =
        Loader::start(&train, 4, 0, 0, 1, true, true, Augment::RandomResizedCrop { size: 24 }, Normalize::IMAGENET, 24)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
    assert_eq!((b.len(), b.h, b.w, b.input.len()), (4, 24, 24, 4 * 3 * 24 * 24));

    std::fs::create_dir_all(d.join("empty_class")).unwrap();
    let e = load_image_folder(&d, FolderSplit { held_out: 0.1 }).unwrap_err().to_string();
    assert!(e.contains("empty_class") && e.contains("no .jpg"), "{e}");
    let e = load_image_folder(&tmp("nothing"), FolderSplit { held_out: 0.1 }).unwrap_err().to_string();
    assert!(e.contains("no class subfolders"), "{e}");

    // An unreadable image fails the batch that holds it, naming the file.
    std::fs::remove_dir_all(d.join("empty_class")).unwrap();
    std::fs::write(d.join("dog").join("broken.png"), b"not a png").unwrap();
    let (all, _) = load_image_folder(&d, FolderSplit { held_out: 0.0 }).unwrap();
    let errors: Vec<String> = Loader::start(&all, 64, 0, 0, 1, false, false, Augment::None, Normalize::IMAGENET, 16)
        .unwrap()
        .filter_map(|b| b.err().map(|e| e.to_string()))
        .collect();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("broken.png"), "{}", errors[0]);
}

#[test]
fn loader_is_reproducible_and_resumable() {
    let d = tmp("repro");
    write_fashion(&d, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1], false);
    let (train, _) = load_fashion_mnist(&d).unwrap();
    let run = |skip| -> Vec<Batch> {
        Loader::start(&train, 4, 3, skip, 77, true, true, Augment::CropFlip { pad: 2 }, Normalize::FASHION_MNIST, 0)
            .unwrap()
            .map(|b| b.unwrap())
            .collect()
    };
    let (a, b) = (run(0), run(0));
    assert_eq!(a.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.input, &x.targets), (&y.input, &y.targets));
    }
    // Resuming at batch 1 yields exactly the remaining batches.
    let c = run(1);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].input, a[1].input);
    // A different epoch shuffles differently.
    let other: Vec<Batch> = Loader::start(&train, 4, 4, 0, 77, true, true, Augment::None, Normalize::FASHION_MNIST, 0)
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    assert_ne!(
        other.iter().map(|b| b.targets.clone()).collect::<Vec<_>>(),
        a.iter().map(|b| b.targets.clone()).collect::<Vec<_>>()
    );
}

// ---- Hostile input: every bad file is a typed error naming the file, never a panic. ----

/// Runs `f`, turning a panic into a test failure that says what panicked.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
            panic!("{what} panicked: {}", msg.unwrap_or_default())
        }
    }
}

fn idx_header(magic: u8, dims: &[u32]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, magic];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b
}

#[test]
fn idx_headers_that_overflow_or_are_empty_are_errors_naming_the_file() {
    let d = tmp("idx-hostile");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // n·h·w = 2^16 · 2^24 · 2^24 = 2^64 wraps to 0: a 16-byte file must not pass as 65,536 images.
        ("wrap-images-idx3-ubyte", idx_header(3, &[1 << 16, 1 << 24, 1 << 24]), "overflow"),
        ("max-images-idx3-ubyte", idx_header(3, &[u32::MAX, u32::MAX, u32::MAX]), "overflow"),
        // 10^12 bytes claimed by a 16-byte file: an error before any allocation of that size.
        ("huge-images-idx3-ubyte", idx_header(3, &[1_000_000, 1000, 1000]), "truncated"),
        ("zero-side-images-idx3-ubyte", idx_header(3, &[2, 0, 0]), "0x0"),
        ("zero-count-images-idx3-ubyte", idx_header(3, &[0, 28, 28]), "no images"),
        ("trailing-images-idx3-ubyte", [idx_header(3, &[1, 2, 2]), vec![7; 4 + 3]].concat(), "longer"),
        ("short-header-images-idx3-ubyte", idx_header(3, &[1]), "truncated"),
    ];
    for (name, bytes, what) in cases {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = no_panic(name, || read_idx_images(&p)).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(what), "{name}: expected {what:?}: {e}");
    }
    let p = d.join("zero-labels-idx1-ubyte");
    std::fs::write(&p, idx_header(1, &[0])).unwrap();
    let e = no_panic("zero labels", || read_idx_labels(&p)).unwrap_err().to_string();
    assert!(e.contains("zero-labels-idx1-ubyte") && e.contains("no labels"), "{e}");
    let p = d.join("huge-labels-idx1-ubyte.gz");
    std::fs::write(&p, gz(&idx_header(1, &[u32::MAX]))).unwrap();
    let e = no_panic("huge gz labels", || read_idx_labels(&p)).unwrap_err().to_string();
    assert!(e.contains("huge-labels-idx1-ubyte.gz") && e.contains("truncated"), "{e}");

    // Images and labels that disagree in number: the error names both files.
    let fm = tmp("idx-count");
    write_fashion(&fm, &[0, 1, 2], false);
    std::fs::write(fm.join("train-labels-idx1-ubyte"), idx_labels(&[0, 1])).unwrap();
    let e = no_panic("count mismatch", || load_fashion_mnist(&fm)).unwrap_err().to_string();
    assert!(e.contains("train-labels-idx1-ubyte") && e.contains("train-images-idx3-ubyte"), "{e}");
}

#[test]
fn cifar10_bad_files_are_errors_naming_the_file_and_split() {
    let d = tmp("cifar-hostile");
    let rec = |label: u8| -> Vec<u8> { std::iter::once(label).chain(std::iter::repeat_n(9, 3072)).collect() };
    std::fs::write(d.join("data_batch_1.bin"), [rec(1), rec(2)].concat()).unwrap();
    std::fs::write(d.join("test_batch.bin"), rec(0)).unwrap();
    let (train, test) = load_cifar10(&d).unwrap();
    assert!(train.name.contains("train") && test.name.contains("test"), "{} / {}", train.name, test.name);

    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("data_batch_1.bin", [rec(1), rec(200)].concat(), "label 200"),
        ("data_batch_1.bin", [rec(1), rec(10)].concat(), "label 10"),
        ("data_batch_1.bin", Vec::new(), "0 bytes"),
        ("data_batch_1.bin", [rec(1), vec![3; 100]].concat(), "truncated"),
    ];
    cases.push(("test_batch.bin", rec(0)[..3000].to_vec(), "truncated"));
    for (file, bytes, what) in cases {
        std::fs::write(d.join("data_batch_1.bin"), [rec(1), rec(2)].concat()).unwrap();
        std::fs::write(d.join("test_batch.bin"), rec(0)).unwrap();
        std::fs::write(d.join(file), &bytes).unwrap();
        let e = no_panic(file, || load_cifar10(&d)).unwrap_err().to_string();
        assert!(e.contains(file) && e.contains(what), "{file}: expected {what:?}: {e}");
    }
    // A missing test split names the file it looked for.
    std::fs::write(d.join("data_batch_1.bin"), rec(1)).unwrap();
    std::fs::remove_file(d.join("test_batch.bin")).unwrap();
    let e = load_cifar10(&d).unwrap_err().to_string();
    assert!(e.contains("test_batch.bin"), "{e}");
    // A class-name file that lists no classes is named, not taken for zero classes.
    std::fs::write(d.join("test_batch.bin"), rec(0)).unwrap();
    std::fs::write(d.join("batches.meta.txt"), "\n\n").unwrap();
    let e = load_cifar10(&d).unwrap_err().to_string();
    assert!(e.contains("batches.meta.txt"), "{e}");
    // An empty folder says what it expected.
    let e = load_cifar10(&tmp("cifar-none")).unwrap_err().to_string();
    assert!(e.contains("data_batch_1.bin"), "{e}");
}

/// Every batch of a loader, or the first error; a loader that ends early without an error fails.
fn drain(loader: Result<Loader, efficientnet_wgpu::Error>) -> Result<usize, String> {
    let loader = loader.map_err(|e| e.to_string())?;
    let mut n = 0;
    for b in loader {
        b.map_err(|e| e.to_string())?;
        n += 1;
    }
    Ok(n)
}

#[test]
fn a_loader_whose_data_is_inconsistent_fails_instead_of_ending_the_epoch_early() {
    // Pixels shorter than (n, channels, h, w) claim: the worker would index past the end.
    let short = Dataset {
        name: "short-pixels".into(),
        source: Source::Memory(InMemory { channels: 1, h: 4, w: 4, pixels: vec![0; 16 * 5], labels: vec![0; 8] }),
        class_names: vec!["a".into()],
    };
    let start = || Loader::start(&short, 2, 0, 0, 1, false, false, Augment::None, Normalize::FASHION_MNIST, 0);
    let e = no_panic("short pixels", || drain(start())).unwrap_err();
    assert!(e.contains("short-pixels") && e.contains("pixels"), "{e}");

    // Two channels: neither grayscale nor RGB.
    let two = Dataset {
        name: "two-channels".into(),
        source: Source::Memory(InMemory { channels: 2, h: 2, w: 2, pixels: vec![0; 8 * 3], labels: vec![0; 3] }),
        class_names: vec!["a".into()],
    };
    let e =
        drain(Loader::start(&two, 2, 0, 0, 1, false, false, Augment::None, Normalize::FASHION_MNIST, 0)).unwrap_err();
    assert!(e.contains("two-channels") && e.contains("channels"), "{e}");

    // Fewer files than labels.
    let files = Dataset {
        name: "few-files".into(),
        source: Source::Files { paths: vec![PathBuf::from("a.png")], labels: vec![0, 0, 0] },
        class_names: vec!["a".into()],
    };
    let e = drain(Loader::start(&files, 2, 0, 0, 1, false, false, Augment::None, Normalize::IMAGENET, 8)).unwrap_err();
    assert!(e.contains("few-files"), "{e}");

    // A file that turns unreadable after the folder was listed fails the run, naming the file.
    let d = tmp("vanish");
    std::fs::create_dir_all(d.join("c")).unwrap();
    for i in 0..6 {
        image::RgbImage::from_pixel(9, 7, image::Rgb([i * 20, 3, 4]))
            .save(d.join("c").join(format!("{i}.png")))
            .unwrap();
    }
    let (all, _) = load_image_folder(&d, FolderSplit { held_out: 0.0 }).unwrap();
    std::fs::write(d.join("c").join("4.png"), b"\x89PNG\r\n\x1a\n cut").unwrap();
    std::fs::remove_file(d.join("c").join("5.png")).unwrap();
    let e = drain(Loader::start(&all, 2, 0, 0, 1, false, false, Augment::None, Normalize::IMAGENET, 8)).unwrap_err();
    assert!(e.contains("4.png"), "{e}");
}

/// A JPEG of `w` x `h` with smooth content, encoded by the `image` crate.
fn jpeg_bytes(w: u32, h: u32) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) / 2) as u8]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85).encode_image(&img).unwrap();
    out
}

#[test]
fn large_photos_are_downscaled_by_the_smallest_integer_factor_that_fits() {
    // A phone photo: 4032 x 3024 = 12.2 MP.
    assert_eq!(downscale_factor(4032, 3024, DEFAULT_MAX_PIXELS), 3); // 1344 x 1008 = 1.35 MP
    assert_eq!(downscale_factor(4032, 3024, 1_000_000), 4); // 1008 x 756; 3 gives 1.35 MP
    assert_eq!(downscale_factor(4032, 3024, u64::MAX), 1);
    assert_eq!(downscale_factor(640, 480, 640 * 480), 1);
    assert_eq!(downscale_factor(640, 480, 640 * 480 - 1), 2);
    assert_eq!(downscale_factor(u32::MAX, u32::MAX, 1), u32::MAX);
    for (w, h, max) in [(4032, 3024, 2_000_000), (1001, 3, 100), (7, 7000, 999), (1, 1, 1), (5000, 5000, 7)] {
        let k = downscale_factor(w, h, max) as u64;
        let px = |k: u64| (w as u64).div_ceil(k) * (h as u64).div_ceil(k);
        assert!(px(k) <= max && (k == 1 || px(k - 1) > max), "{w}x{h} max {max}: k {k}");
    }

    let d = tmp("bounded");
    let p = d.join("photo.jpg");
    std::fs::write(&p, jpeg_bytes(1000, 750)).unwrap();
    let l = load_image_bounded(&p, 200_000).unwrap();
    assert_eq!((l.file_size, l.downscale, l.image.width(), l.image.height()), ((1000, 750), 2, 500, 375));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    // The triangle filter averages: a downscaled pixel is near the mean of the block it covers.
    let full = load_image(&p).unwrap().to_rgb8();
    let small = l.image.to_rgb8();
    let block_mean = (0..2)
        .flat_map(|dy| (0..2).map(move |dx| (dx, dy)))
        .map(|(dx, dy)| full.get_pixel(200 + dx, 100 + dy)[0] as f32)
        .sum::<f32>()
        / 4.0;
    assert!((small.get_pixel(100, 50)[0] as f32 - block_mean).abs() <= 3.0);
    let same = load_image_bounded(&p, u64::MAX).unwrap();
    assert_eq!((same.downscale, same.image.width()), (1, 1000));
    let e = load_image_bounded(&p, 0).unwrap_err().to_string();
    assert!(e.contains("photo.jpg") && e.contains("max_pixels"), "{e}");
}

#[test]
fn a_truncated_jpeg_decodes_with_a_warning_and_a_sound_one_without() {
    let d = tmp("jpeg-trunc");
    let jpeg = jpeg_bytes(64, 48);
    let sound = d.join("sound.jpg");
    std::fs::write(&sound, &jpeg).unwrap();
    assert!(image_warnings(&sound).unwrap().is_empty());
    // Bytes after the end-of-image marker (camera trailers, a Motion Photo's video) are no reason to warn,
    // even when they hold what looks like JPEG markers.
    let trailer = d.join("trailer.jpg");
    std::fs::write(&trailer, [&jpeg[..], b"\xFF\xD8\xFF\xDA\x00\x08 MP4 ftyp..."].concat()).unwrap();
    assert!(image_warnings(&trailer).unwrap().is_empty());
    assert!(load_image_bounded(&trailer, u64::MAX).unwrap().warnings.is_empty());

    // Cut anywhere after the first bytes: an error, or an image and a warning naming the file — never
    // an image without a word.
    let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let cut = d.join("cut.jpg");
    for len in (4..jpeg.len() - 1).step_by(7).chain([sos + 20, jpeg.len() - 2, jpeg.len() - 1]) {
        std::fs::write(&cut, &jpeg[..len]).unwrap();
        match no_panic(&format!("cut at {len}"), || load_image_bounded(&cut, u64::MAX)) {
            Ok(l) => {
                assert_eq!(l.warnings.len(), 1, "cut at {len} of {}: decoded without a warning", jpeg.len());
                let w = l.warnings[0].to_string();
                assert!(w.contains("cut.jpg") && w.contains("truncated"), "{w}");
                assert_eq!(image_warnings(&cut).unwrap(), l.warnings);
            }
            Err(e) => assert!(e.to_string().contains("cut.jpg"), "{e}"),
        }
    }
    // The loader decodes such a file, and hands its warning to the caller; a data set can leave it out.
    std::fs::create_dir_all(d.join("c")).unwrap();
    std::fs::write(d.join("c").join("a.jpg"), &jpeg).unwrap();
    std::fs::write(d.join("c").join("b.jpg"), &jpeg[..sos + (jpeg.len() - sos) / 2]).unwrap();
    let (mut all, _) = load_image_folder(&d, FolderSplit { held_out: 0.0 }).unwrap();
    let loader = Loader::start(&all, 2, 0, 0, 1, false, false, Augment::None, Normalize::IMAGENET, 8).unwrap();
    let warnings = loader.warnings();
    assert_eq!(drain(Ok(loader)), Ok(1));
    assert_eq!(warnings.total(), 1);
    let taken = warnings.take();
    assert!(taken.len() == 1 && taken[0].path.ends_with("b.jpg"), "{taken:?}");
    assert!(warnings.take().is_empty() && warnings.total() == 1);
    let removed = all.remove_images_with_warnings().unwrap();
    assert_eq!((removed.len(), all.len()), (1, 1));
    match &all.source {
        Source::Files { paths, .. } => assert!(paths[0].ends_with("a.jpg")),
        _ => panic!("files"),
    }
}

/// Every file of tests/corpus/data through its loader (see its README): a typed error naming the
/// file (or a warning, for `warn-` images), and no panic. Failures are collected, so one run lists
/// every file that misbehaves.
#[test]
fn corpus_of_malformed_data_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/data");
    let mut failures = Vec::new();
    let mut checked = 0;
    for kind in ["idx", "fashion-mnist", "cifar", "image"] {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(root.join(kind)).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        assert!(!entries.is_empty(), "no corpus files in {kind}/");
        for p in entries {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let run = || -> Result<(), String> {
                let err = |r: Result<String, efficientnet_wgpu::Error>| match r {
                    Ok(what) => Err(format!("loaded without an error: {what}")),
                    Err(e) if e.to_string().contains(&name) => {
                        println!("{kind}/{name}: {e}");
                        Ok(())
                    }
                    Err(e) => Err(format!("the error does not name the file: {e}")),
                };
                match kind {
                    "idx" if name.contains("labels") => err(read_idx_labels(&p).map(|l| format!("{} labels", l.len()))),
                    "idx" => err(read_idx_images(&p).map(|(n, h, w, _)| format!("{n} images of {h}x{w}"))),
                    "fashion-mnist" => err(load_fashion_mnist(&p).map(|(a, b)| format!("{} + {}", a.len(), b.len()))),
                    "cifar" => err(load_cifar10(&p).map(|(a, b)| format!("{} + {}", a.len(), b.len()))),
                    _ => {
                        let one = Dataset {
                            name: name.clone(),
                            source: Source::Files { paths: vec![p.clone()], labels: vec![0] },
                            class_names: vec!["x".into()],
                        };
                        let loader =
                            Loader::start(&one, 1, 0, 0, 1, false, false, Augment::None, Normalize::IMAGENET, 8)
                                .map_err(|e| e.to_string())?;
                        let loader_warnings = loader.warnings();
                        let from_loader = drain(Ok(loader));
                        let plain = load_image(&p).map(|_| String::new());
                        if name.starts_with("warn-") || name.starts_with("ok-") {
                            let l = load_image_bounded(&p, DEFAULT_MAX_PIXELS).map_err(|e| e.to_string())?;
                            let want = usize::from(name.starts_with("warn-"));
                            let got = (l.warnings.len(), loader_warnings.total(), from_loader.clone());
                            if got != (want, want, Ok(1)) || plain.is_err() {
                                return Err(format!("expected {want} warning(s): got {:?}, {plain:?}", got));
                            }
                            l.warnings.iter().for_each(|w| println!("{kind}/{name}: warning: {w}"));
                            Ok(())
                        } else {
                            match from_loader {
                                Err(e) if e.contains(&name) => {}
                                other => return Err(format!("the loader gave {other:?}")),
                            }
                            err(plain)?;
                            err(load_image_bounded(&p, DEFAULT_MAX_PIXELS).map(|_| String::new()))
                        }
                    }
                }
            };
            checked += 1;
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
                Ok(Ok(())) => {}
                Ok(Err(why)) => failures.push(format!("{kind}/{name}: {why}")),
                Err(_) => failures.push(format!("{kind}/{name}: PANICKED")),
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} corpus files misbehave:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 25, "only {checked} corpus files");
}

// ---- The parallel loader: the same batches whatever the workers, errors in order, figures. ----

/// Every item of an epoch with `options`: the batches (input and targets) up to the first error,
/// that error's message, and the warnings in the order the loader handed them out.
type Epoch = (Vec<(Vec<f32>, Vec<u32>)>, Option<String>, Vec<String>);

#[allow(clippy::too_many_arguments)]
fn epoch_with(
    ds: &Dataset,
    batch: usize,
    epoch: u64,
    skip: usize,
    augment: Augment,
    norm: Normalize,
    size: usize,
    options: LoaderOptions,
) -> Epoch {
    let loader = Loader::start_with(ds, batch, epoch, skip, 7, true, false, augment, norm, size, options).unwrap();
    let warnings = loader.warnings();
    let (mut batches, mut error) = (Vec::new(), None);
    for b in loader {
        match b {
            Ok(b) => {
                assert_eq!(b.input.len(), b.len() * 3 * b.h * b.w);
                batches.push((b.input, b.targets));
            }
            Err(e) => {
                assert!(error.is_none(), "a second Err after {e}");
                error = Some(e.to_string());
            }
        }
    }
    (batches, error, warnings.take().iter().map(|w| w.to_string()).collect())
}

/// `root/<class>/` with `n` small images of different sizes, JPEG and PNG alternately.
fn small_image_folder(name: &str, n: u32) -> PathBuf {
    let d = tmp(name);
    for i in 0..n {
        let class = d.join(["apple", "pear", "plum"][i as usize % 3]);
        std::fs::create_dir_all(&class).unwrap();
        let (w, h) = (23 + 9 * i, 61 - 2 * i);
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 11 + i * 7) as u8, (y * 5 + x * x) as u8, ((x ^ y) * 3 + i) as u8])
        });
        if i % 2 == 0 {
            img.save(class.join(format!("{i:02}.png"))).unwrap();
        } else {
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&img).unwrap();
            std::fs::write(class.join(format!("{i:02}.jpg")), jpeg).unwrap();
        }
    }
    d
}

fn options(workers: usize, prefetch: usize) -> LoaderOptions {
    LoaderOptions::default().with_workers(workers).with_prefetch(prefetch)
}

#[test]
fn loader_batches_are_bit_identical_for_any_workers_and_prefetch() {
    // Image files: random-resized crops and flips, with one truncated JPEG (its warning must come
    // out in the same place too) and a partial last batch (21 images, batches of 4).
    let d = small_image_folder("parallel-files", 20);
    let jpeg = jpeg_bytes(50, 40);
    let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    std::fs::write(d.join("pear").join("cut.jpg"), &jpeg[..sos + (jpeg.len() - sos) / 2]).unwrap();
    let (files, _) = load_image_folder(&d, FolderSplit { held_out: 0.0 }).unwrap();
    assert_eq!(files.len(), 21);
    let crop = Augment::RandomResizedCrop { size: 16 };

    // In memory: 3-channel 9x7 images with crop-and-flip.
    let (n, c, h, w) = (37, 3, 9, 7);
    let memory = Dataset {
        name: "memory".into(),
        source: Source::Memory(InMemory {
            channels: c,
            h,
            w,
            pixels: (0..n * c * h * w).map(|i| (i * 31 % 251) as u8).collect(),
            labels: (0..n as u32).map(|i| i % 5).collect(),
        }),
        class_names: (0..5).map(|i| i.to_string()).collect(),
    };
    let flip = Augment::CropFlip { pad: 2 };

    for epoch in [0, 3] {
        let reference = epoch_with(&files, 4, epoch, 0, crop, Normalize::IMAGENET, 16, options(1, 1));
        assert_eq!((reference.0.len(), reference.1.as_ref()), (6, None));
        assert_eq!(reference.0.iter().map(|b| b.1.len()).sum::<usize>(), 21);
        assert_eq!(reference.2.len(), 1, "{:?}", reference.2);
        let memory_reference = epoch_with(&memory, 8, epoch, 0, flip, Normalize::CIFAR10, 0, options(1, 1));
        assert_eq!(memory_reference.0.len(), 5);
        for (workers, prefetch) in [(4, 1), (4, 4), (1, 4), (2, 2), (16, 3)] {
            let o = options(workers, prefetch);
            // `==` on f32 vectors: bit-identical here, as no value is NaN.
            let got = epoch_with(&files, 4, epoch, 0, crop, Normalize::IMAGENET, 16, o);
            assert!(got == reference, "image files, epoch {epoch}: {workers} workers, prefetch {prefetch} differ");
            let got = epoch_with(&memory, 8, epoch, 0, flip, Normalize::CIFAR10, 0, o);
            assert!(got == memory_reference, "in memory, epoch {epoch}: {workers} workers, prefetch {prefetch} differ");
        }
        // Resuming at batch 2 with other options yields exactly the remaining batches.
        let resumed = epoch_with(&files, 4, epoch, 2, crop, Normalize::IMAGENET, 16, options(3, 2));
        assert!(resumed.0 == reference.0[2..], "resumed epoch {epoch}");
        // The default options (`Loader::start`) give the same batches again.
        let loader =
            Loader::start(&memory, 8, epoch, 0, 7, true, false, flip, Normalize::CIFAR10, 0).unwrap().map(|b| {
                let b = b.unwrap();
                (b.input, b.targets)
            });
        assert!(loader.collect::<Vec<_>>() == memory_reference.0, "default options, epoch {epoch}");
    }
    // Different epochs do differ (a check that the comparison above can fail).
    let (a, b) = (
        epoch_with(&files, 4, 0, 0, crop, Normalize::IMAGENET, 16, options(2, 2)),
        epoch_with(&files, 4, 1, 0, crop, Normalize::IMAGENET, 16, options(2, 2)),
    );
    assert!(a.0 != b.0);
}

#[test]
fn a_failing_image_fails_the_epoch_at_its_place_for_any_workers() {
    // Two broken files: the consumer gets every batch before the first one in epoch order, then
    // its error naming it, then the end — whichever worker met which failure first.
    let d = small_image_folder("parallel-broken", 24);
    std::fs::write(d.join("apple").join("broken-a.png"), b"not a png").unwrap();
    std::fs::write(d.join("plum").join("broken-b.jpg"), b"\xFF\xD8 not a jpeg either").unwrap();
    let (files, _) = load_image_folder(&d, FolderSplit { held_out: 0.0 }).unwrap();
    let crop = Augment::RandomResizedCrop { size: 8 };
    for epoch in 0..4 {
        let reference = epoch_with(&files, 3, epoch, 0, crop, Normalize::IMAGENET, 8, options(1, 1));
        let e = reference.1.clone().expect("an Err for the broken files");
        assert!(e.contains("broken-a.png") != e.contains("broken-b.jpg"), "{e}");
        assert!(reference.0.len() < 9);
        for (workers, prefetch) in [(4, 1), (4, 4), (8, 2)] {
            let got = epoch_with(&files, 3, epoch, 0, crop, Normalize::IMAGENET, 8, options(workers, prefetch));
            assert!(got == reference, "epoch {epoch}, {workers} workers, prefetch {prefetch}: {:?}", got.1);
        }
    }
}

#[test]
fn loader_stats_count_the_images_and_the_prefetch_bounds_them() {
    let d = small_image_folder("parallel-stats", 18);
    let (files, _) = load_image_folder(&d, FolderSplit { held_out: 0.0 }).unwrap();
    let (batch, prefetch) = (4, 2);
    let mut loader = Loader::start_with(
        &files,
        batch,
        0,
        0,
        1,
        true,
        false,
        Augment::RandomResizedCrop { size: 12 },
        Normalize::IMAGENET,
        12,
        options(3, prefetch),
    )
    .unwrap();
    let meter = loader.meter();
    assert_eq!(loader.stats().workers, 3);
    let mut batches = 0;
    while let Some(b) = loader.next() {
        assert_eq!(b.unwrap().len(), if batches < 4 { 4 } else { 2 });
        batches += 1;
        // Let the workers run ahead as far as they may: never past `prefetch` batches in flight.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let s = loader.stats();
        assert_eq!(s.batches, batches);
        assert!(s.images <= ((batches + prefetch as u64) * batch as u64).min(18), "{s:?}");
    }
    assert_eq!(batches, 5);
    let s = loader.stats();
    assert_eq!((s.images, s.batches, s.workers), (18, 5, 3), "{s:?}");
    assert!(s.worker_seconds > 0.0 && s.capacity_images_per_s() > 0.0 && s.images_per_s() > 0.0, "{s:?}");
    // The consumer waited at least for the first batch, and never longer than the loader lived.
    assert!(s.wait_seconds > 0.0 && s.wait_seconds <= s.elapsed_seconds, "{s:?}");
    assert!((0.0..=1.0).contains(&s.wait_fraction()));
    drop(loader);
    // The meter outlives the loader (a `for` loop consumes it).
    assert_eq!(meter.stats().images, 18);

    // A consumer slower than the workers waits for nothing after the first batch.
    let loader =
        Loader::start_with(&files, 6, 0, 0, 1, false, false, Augment::None, Normalize::IMAGENET, 12, options(2, 3))
            .unwrap();
    let meter = loader.meter();
    let mut first_wait = 0.0;
    for (k, b) in loader.enumerate() {
        b.unwrap();
        if k == 0 {
            first_wait = meter.stats().wait_seconds;
        }
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    let s = meter.stats();
    assert!(s.wait_seconds - first_wait < 0.1, "{s:?}");

    // Options out of range are errors naming the option.
    for (o, what) in [(options(0, 2), "workers"), (options(2, 0), "prefetch")] {
        let e = Loader::start_with(&files, 4, 0, 0, 1, false, false, Augment::None, Normalize::IMAGENET, 8, o)
            .err()
            .expect("an error")
            .to_string();
        assert!(e.contains(what), "{e}");
    }
    assert!(LoaderOptions::default().workers >= 1 && LoaderOptions::default().prefetch == 2);
}
