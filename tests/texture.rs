//! Classification straight from a `wgpu::Texture` the app already has: the GPU preprocessing
//! (resample_image_h/v) against the CPU-decoded file path, on the committed photos.
//! Tolerances: the inputs within one 8-bit level (f32 against f64 sums can round a pixel the
//! other way), and the logits within 1e-5 + 1e-4 * max|file path's| as for PyTorch parity.

mod common;
use common::*;

use std::path::PathBuf;

use efficientnet_wgpu::infer::{image_texture, load_image, Classifier, Preprocess, RgbPlanes};
use efficientnet_wgpu::model::{Config, EfficientNet, Variant, WeightFormat, Weights};

fn photo(name: &str) -> image::DynamicImage {
    load_image(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/photos/{name}.jpg"))).unwrap()
}

#[test]
fn a_texture_classifies_as_its_file_does() {
    let gpu = gpu();
    let config = Config::new(Variant::Lite0, 1000);
    let model = EfficientNet::new(gpu.clone(), config.clone(), &Weights::init_random(&config, 11)).unwrap();
    let mut classifier = Classifier::new(model);
    for (preprocess, photos) in [
        (Preprocess::preset(WeightFormat::Timm, Variant::Lite0), ["chelsea", "coffee"]),
        // torchvision's (no rounding between the passes), on a portrait photo.
        (Preprocess::preset(WeightFormat::Torchvision, Variant::B0), ["astronaut", "chelsea"]),
    ] {
        classifier.preprocess = preprocess.clone();
        let images: Vec<image::DynamicImage> = photos.iter().map(|p| photo(p)).collect();
        let planes: Vec<RgbPlanes> = images.iter().map(RgbPlanes::from_image).collect();
        let textures: Vec<wgpu::Texture> = images.iter().map(|i| image_texture(gpu, &i.to_rgba8()).unwrap()).collect();
        let refs: Vec<&wgpu::Texture> = textures.iter().collect();

        let from_file = preprocess.apply(gpu, &planes).unwrap();
        let from_texture = preprocess.apply_textures(gpu, &refs).unwrap();
        let level = 1.0 / 255.0 / preprocess.std.iter().fold(f32::MAX, |a, &b| a.min(b));
        let worst = from_file.iter().zip(&from_texture).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let off = from_file.iter().zip(&from_texture).filter(|(a, b)| a != b).count();
        assert!(worst <= level * 1.0001, "{photos:?}: inputs differ by {worst}, one level is {level}");
        assert!(off * 1000 <= from_file.len(), "{photos:?}: {off} of {} input values differ", from_file.len());

        let r = preprocess.resolution;
        let want = classifier.model.forward(&from_file, photos.len(), r, r).unwrap().logits;
        let got = classifier.model.forward(&from_texture, photos.len(), r, r).unwrap().logits;
        assert_close(&format!("{photos:?} logits"), &got, &want, 1e-5 + 1e-4 * max_abs(&want), 0.0);

        // The classifier's own texture path: the same answer as its file path.
        let by_file = classifier.probabilities(&planes).unwrap();
        let by_texture = classifier.texture_probabilities(&refs).unwrap();
        for (a, b) in by_file.iter().zip(&by_texture) {
            assert_close(&format!("{photos:?} probabilities"), b, a, 1e-5 + 1e-4 * max_abs(a), 0.0);
        }
        let top_file = classifier.classify(&planes, 5).unwrap();
        let top_texture = pollster::block_on(gpu_driven(classifier.classify_textures_async(&refs, 5)));
        let classes = |t: &Vec<Vec<efficientnet_wgpu::infer::Prediction>>| -> Vec<Vec<usize>> {
            t.iter().map(|p| p.iter().map(|p| p.class).collect()).collect()
        };
        assert_eq!(classes(&top_file), classes(&top_texture.unwrap()));
    }
}

/// Awaits `fut` while polling the test GPU, as a host's frame loop would.
async fn gpu_driven<T>(fut: impl std::future::Future<Output = T>) -> T {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let _ = gpu().device.poll(wgpu::PollType::wait_indefinitely());
        fut.as_mut().poll(cx)
    })
    .await
}

#[test]
fn textures_the_classifier_cannot_read_are_errors_naming_why() {
    let gpu = gpu();
    let config = Config::b0(10);
    let classifier =
        Classifier::new(EfficientNet::new(gpu.clone(), config.clone(), &Weights::init_random(&config, 12)).unwrap());
    let make = |format, usage| {
        gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: None,
            size: wgpu::Extent3d { width: 8, height: 8, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage,
            view_formats: &[],
        })
    };
    let depth = make(wgpu::TextureFormat::R32Float, wgpu::TextureUsages::TEXTURE_BINDING);
    let msg = classifier.classify_textures(&[&depth], 1).unwrap_err().to_string();
    assert!(msg.contains("R32Float") && msg.contains("Rgba8Unorm"), "{msg}");
    let copy_only = make(wgpu::TextureFormat::Rgba8Unorm, wgpu::TextureUsages::COPY_DST);
    let msg = classifier.classify_textures(&[&copy_only], 1).unwrap_err().to_string();
    assert!(msg.contains("TEXTURE_BINDING"), "{msg}");
}
