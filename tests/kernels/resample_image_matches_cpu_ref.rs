//! resample_image_h and resample_image_v against their CPU twins, on an 8-bit texture in linear
//! and sRGB formats. Both sides compute in f32 with the same order; a GPU may contract a multiply
//! and add into one FMA, which can move a sum across a rounding boundary: the tolerance is one
//! 8-bit level, on at most 1% of the values.

use crate::common::*;
use efficientnet_wgpu::cpu_ref;
use efficientnet_wgpu::gpu::Gpu;
use efficientnet_wgpu::infer::Preprocess;
use efficientnet_wgpu::ops::{resample_image_h, resample_image_v};

fn texture(gpu: &Gpu, rgba: &[u8], w: u32, h: u32, format: wgpu::TextureFormat) -> wgpu::Texture {
    let size = wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 };
    let t = gpu.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("test image"),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    let layout = wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(4 * w), rows_per_image: Some(h) };
    gpu.queue.write_texture(t.as_image_copy(), rgba, layout, size);
    t
}

/// (across, y) from the GPU for the given format.
fn run(pre: &Preprocess, rgba: &[u8], w: usize, h: usize, format: wgpu::TextureFormat) -> (Vec<f32>, Vec<f32>) {
    let gpu = gpu();
    let (mut p, ht, vt) = pre.image_tables(h, w).unwrap();
    p.srgb = format.is_srgb();
    let t = texture(gpu, rgba, w as u32, h as u32, format);
    let view = t.create_view(&Default::default());
    let affine = [1.0 / 0.229, 1.0 / 0.224, 1.0 / 0.225, -0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225];
    let (htg, vtg, ag) = (upload(&ht), upload(&vt), upload(&affine));
    let (across, y) = (empty(p.across_len()), empty(p.output_len()));
    let dh = resample_image_h(gpu, &p, &htg, &across, &view).unwrap();
    let dv = resample_image_v(gpu, &p, &across, &vtg, &ag, &y).unwrap();
    let got_y = run_and_read(&[dh, dv], &y);
    let got_across = gpu.read(&across).unwrap();
    let want_across = cpu_ref::resample_image_h(&p, rgba, w, &ht);
    // The vertical pass from the same rows on both sides, so each pass is checked on its own.
    let want_y = cpu_ref::resample_image_v(&p, &got_across, &vt, &affine);
    check_levels("resample_image_h", &got_across, &want_across, 1.0);
    check_levels("resample_image_v", &got_y, &want_y, 1.0 / 0.225 / 255.0 * 1.0001);
    (got_across, got_y)
}

fn check_levels(what: &str, got: &[f32], want: &[f32], level: f32) {
    assert_eq!(got.len(), want.len());
    let off = got.iter().zip(want).filter(|(g, w)| (*g - *w).abs() > 1e-5 * w.abs().max(1.0)).count();
    let worst = got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
    assert!(worst <= level * 1.0001 + 1e-5, "{what}: off by {worst} (one level is {level})");
    assert!(off * 100 <= got.len(), "{what}: {off} of {} values differ", got.len());
}

#[test]
fn both_passes_match_for_linear_and_srgb_textures() {
    let (w, h) = (97, 61);
    let rgba: Vec<u8> = rand_vec(w * h * 4, 130).iter().map(|v| ((v + 1.0) * 127.9) as u8).collect();
    let mut exact = Preprocess::imagenet(40);
    exact.round_between_passes = false;
    for pre in [Preprocess::imagenet(32), exact] {
        let (a_lin, y_lin) = run(&pre, &rgba, w, h, wgpu::TextureFormat::Rgba8Unorm);
        // The same bytes as sRGB: textureLoad decodes, the kernel encodes back to the same levels.
        let (a_srgb, y_srgb) = run(&pre, &rgba, w, h, wgpu::TextureFormat::Rgba8UnormSrgb);
        assert_eq!(a_lin, a_srgb, "sRGB levels must round-trip exactly");
        assert_eq!(y_lin, y_srgb);
    }
}
