//! The desktop demo (examples/desktop.rs) as a user runs it: a real eframe window on eframe's own
//! wgpu device, here under Xvfb on lavapipe. It classifies the committed photos, prints what it
//! shows, saves a screenshot and closes; the test checks the answers against the library's on
//! the same model, and that the picture holds the photos and the UI.
//! Probabilities: within 1e-5 + 1e-4 * max of the library's (another device, same kernels).

mod common;
use common::*;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;

use efficientnet_wgpu::infer::{image_texture, load_image, Classifier, Preprocess};
use efficientnet_wgpu::model::{Config, EfficientNet, Variant, WeightFormat, Weights};

#[test]
fn the_desktop_demo_shows_the_librarys_top5_for_each_photo() {
    assert!(
        Command::new("xvfb-run").arg("--help").output().is_ok(),
        "xvfb-run is missing: scripts/setup.sh installs it (apt-get install -y xvfb xauth)"
    );
    let dir = std::env::temp_dir().join(format!("effnet-desktop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("desktop.png");
    let photos = ["chelsea", "coffee", "astronaut"]
        .map(|p| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/photos/{p}.jpg")));
    let out = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(example("desktop"))
        .args(["--seed", "7", "--screenshot"])
        .arg(&shot)
        .args(&photos)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "desktop failed: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));

    // The same model through the library on the test's own device.
    let config = Config::new(Variant::Lite0, 1000);
    let model = EfficientNet::new(gpu().clone(), config.clone(), &Weights::init_random(&config, 7)).unwrap();
    let mut classifier = Classifier::new(model);
    classifier.preprocess = Preprocess::for_weights(WeightFormat::Timm, &config);
    for photo in &photos {
        let name = photo.file_name().unwrap().to_string_lossy().to_string();
        let line =
            stdout.lines().find(|l| l.starts_with(&format!("{name}\t"))).unwrap_or_else(|| panic!("{name}: {stdout}"));
        let shown: Vec<(usize, f32)> = line
            .split('\t')
            .nth(1)
            .unwrap()
            .split(' ')
            .map(|p| {
                let (c, v) = p.split_once(':').unwrap();
                (c.parse().unwrap(), v.parse().unwrap())
            })
            .collect();
        let texture = image_texture(gpu(), &load_image(photo).unwrap().to_rgba8()).unwrap();
        let want = classifier.classify_textures(&[&texture], 5).unwrap().remove(0);
        assert_eq!(
            shown.iter().map(|s| s.0).collect::<Vec<_>>(),
            want.iter().map(|p| p.class).collect::<Vec<_>>(),
            "{name}"
        );
        let top = want[0].prob;
        for ((_, got), p) in shown.iter().zip(&want) {
            assert!((got - p.prob).abs() <= 1e-5 + 1e-4 * top, "{name}: shown {got}, library {}", p.prob);
        }
    }

    // The picture: the window's size, the photos' colours (a bare UI has a few dozen), and the
    // bars: egui's progress-bar fill on at least 15 rows' worth of pixels.
    let img = image::open(&shot).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (720, 600));
    let colours: HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 5000, "{} colours: the photos are not shown", colours.len());
    let fill = img.pixels().filter(|p| p.0 == [0, 92, 128]).count();
    assert!(fill > 15 * 10 * 8, "{fill} progress-bar pixels: the bars are not shown");
    std::fs::remove_dir_all(&dir).ok();
}
