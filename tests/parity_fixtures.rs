//! Forward parity with PyTorch on the small fixtures committed in tests/fixtures (made by
//! baselines/make_fixtures.py): timm `tf_` B and Lite networks (TF-SAME padding, BN eps 1e-3, ReLU6
//! without SE for Lite), timm's PyTorch-trained naming, and lukemelas' `efficientnet_pytorch`.
//! Inputs are 61x67 so TF-SAME pads asymmetrically at every stride-2 layer.
//! Tolerance (issue #2): |ours - torch| <= 1e-5 + 1e-4 * max|torch| per tensor.

mod common;
use common::*;

use efficientnet_wgpu::model::{EfficientNet, Weights};

fn check(tag: &str) {
    let gpu = gpu();
    let (config, format) = fixture_config(tag);
    let (weights, _) = Weights::load(local(&format!("{tag}_weights.safetensors")), &config, Some(format)).unwrap();
    assert_eq!(weights.param_count(), config.param_count(), "{tag}");
    let model = EfficientNet::new(gpu.clone(), config, &weights).unwrap();
    let io = read_safetensors(&local(&format!("{tag}_io.safetensors")));
    let (shape, input) = &io["input"];
    let (n, h, w) = (shape[0], shape[2], shape[3]);
    let taps = ["stem", "stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "stage7", "head"];
    let plan = model.plan(n, h, w, &taps).unwrap();
    let out = plan.run(gpu, input).unwrap();
    for (name, data, shape) in plan.read_taps(gpu).unwrap() {
        let (ref_shape, want) = &io[&format!("act.{name}")];
        assert_eq!(ref_shape, &[shape[0], shape[3], shape[1], shape[2]], "{tag} act.{name} shape");
        let got = nhwc_to_nchw(&data, shape);
        assert_close(&format!("{tag} act.{name}"), &got, want, 1e-5 + 1e-4 * max_abs(want), 0.0);
    }
    let (_, pooled) = &io["act.pooled"];
    assert_close(&format!("{tag} act.pooled"), &out.features, pooled, 1e-5 + 1e-4 * max_abs(pooled), 0.0);
    let (_, want) = &io["logits"];
    assert_close(&format!("{tag} logits"), &out.logits, want, 1e-5 + 1e-4 * max_abs(want), 0.0);
}

#[test]
fn timm_tf_b_same_padding_eps_1e3_matches_pytorch() {
    check("timm_tf_b");
}

#[test]
fn timm_tf_lite_relu6_no_se_fixed_stem_head_matches_pytorch() {
    check("timm_tf_lite");
}

#[test]
fn timm_b_matches_pytorch() {
    check("timm_b");
}

#[test]
fn lukemelas_b_matches_pytorch() {
    check("lukemelas_b");
}

/// The multi-scale feature output against timm's `features_only` model with the same weights and
/// input (baselines/make_feature_fixtures.py): levels, channels, reductions and values.
fn check_features(tag: &str) {
    let gpu = gpu();
    let (config, format) = fixture_config(tag);
    let (weights, _) = Weights::load(local(&format!("{tag}_weights.safetensors")), &config, Some(format)).unwrap();
    let model = EfficientNet::new(gpu.clone(), config, &weights).unwrap();
    let io = read_safetensors(&local(&format!("{tag}_io.safetensors")));
    let (shape, input) = &io["input"];
    let features = local(&format!("{tag}_features.safetensors"));
    let want = read_safetensors(&features);
    let info: Vec<serde_json::Value> = serde_json::from_str(&metadata(&features)["feature_info"]).unwrap();
    let maps = model.features(input, shape[0], shape[2], shape[3]).unwrap();
    assert_eq!(maps.len(), info.len(), "{tag}: one map per timm feature level");
    for (i, (map, level)) in maps.iter().zip(&info).enumerate() {
        assert_eq!(map.level.channels as u64, level["num_chs"].as_u64().unwrap(), "{tag} feature.{i} channels");
        assert_eq!(map.level.reduction as u64, level["reduction"].as_u64().unwrap(), "{tag} feature.{i} reduction");
        let (ref_shape, data) = &want[&format!("feature.{i}")];
        assert_eq!(ref_shape, &map.shape.to_vec(), "{tag} feature.{i} shape");
        assert_close(&format!("{tag} feature.{i}"), &map.data, data, 1e-5 + 1e-4 * max_abs(data), 0.0);
    }
}

#[test]
fn timm_b_feature_maps_match_timm_features_only() {
    check_features("timm_b");
}

#[test]
fn timm_tf_b_feature_maps_match_timm_features_only() {
    check_features("timm_tf_b");
}
