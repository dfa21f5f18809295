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
