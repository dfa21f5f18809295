//! Config tests: the scaling rules must reproduce the reference networks exactly (parameter counts
//! equal torchvision/timm's), and the B0 blocks must equal the paper's stage table.

use efficientnet_wgpu::model::{conv_padding, BlockPart, Config, Layer, Padding, Variant, WeightFormat};
use efficientnet_wgpu::{Activation, Error};

#[test]
fn param_counts_match_reference_for_all_variants() {
    let expected = [
        (Variant::B0, 5_288_548),
        (Variant::B1, 7_794_184),
        (Variant::B2, 9_109_994),
        (Variant::B3, 12_233_232),
        (Variant::B4, 19_341_616),
        (Variant::B5, 30_389_784),
        (Variant::B6, 43_040_704),
        (Variant::B7, 66_347_960),
        (Variant::Lite0, 4_652_008),
        (Variant::Lite1, 5_416_680),
        (Variant::Lite2, 6_092_072),
        (Variant::Lite3, 8_197_096),
        (Variant::Lite4, 13_006_568),
    ];
    assert_eq!(expected.len(), Variant::ALL.len());
    for (variant, params) in expected {
        let cfg = Config::new(variant, 1000);
        assert_eq!(cfg.param_count(), params, "{variant}");
        // The spec (what files hold) must agree with the closed-form count.
        let from_spec: usize = cfg
            .state_dict_spec(WeightFormat::Torchvision)
            .iter()
            .filter(|t| t.field.is_learnable())
            .map(|t| t.numel())
            .sum();
        assert_eq!(from_spec, params, "{variant} spec");
    }
    assert_eq!(Config::b0(10).param_count(), 4_020_358);
}

#[test]
fn block_counts_and_widths_match_reference_table() {
    let table = [
        (Variant::B0, 16, 32, 1280),
        (Variant::B1, 23, 32, 1280),
        (Variant::B2, 23, 32, 1408),
        (Variant::B3, 26, 40, 1536),
        (Variant::B4, 32, 48, 1792),
        (Variant::B5, 39, 48, 2048),
        (Variant::B6, 45, 56, 2304),
        (Variant::B7, 55, 64, 2560),
    ];
    for (variant, blocks, stem, head) in table {
        let cfg = Config::new(variant, 1000);
        assert_eq!(cfg.blocks().len(), blocks, "{variant}");
        assert_eq!(cfg.stem_channels(), stem, "{variant}");
        assert_eq!(cfg.head_channels(), head, "{variant}");
    }
    for variant in [Variant::Lite0, Variant::Lite4] {
        let cfg = Config::new(variant, 1000);
        assert_eq!((cfg.stem_channels(), cfg.head_channels()), (32, 1280), "{variant}");
        let blocks = cfg.blocks();
        // First and last stage are not depth-scaled.
        assert_eq!(blocks.iter().filter(|b| b.stage == 1).count(), 1);
        assert_eq!(blocks.iter().filter(|b| b.stage == 7).count(), 1);
        assert!(blocks.iter().all(|b| b.se_ch == 0));
    }
    // Lite4: depth 1.8 scales the middle stages: 2,2,3,3,4 → 4,4,6,6,8.
    let lite4 = Config::lite4(1000).blocks();
    assert_eq!(lite4.len(), 1 + 4 + 4 + 6 + 6 + 8 + 1);
    assert_eq!(lite4[0].in_ch, 32, "Lite stage 1 reads the fixed 32-channel stem");
}

#[test]
fn b0_blocks_match_stage_table() {
    let blocks = Config::b0(1000).blocks();
    assert_eq!(blocks.len(), 16);
    // (stage, in, out, expand, kernel, stride, se)
    let expected = [
        (1, 32, 16, 1, 3, 1, 8),
        (2, 16, 24, 6, 3, 2, 4),
        (2, 24, 24, 6, 3, 1, 6),
        (3, 24, 40, 6, 5, 2, 6),
        (3, 40, 40, 6, 5, 1, 10),
        (4, 40, 80, 6, 3, 2, 10),
        (4, 80, 80, 6, 3, 1, 20),
        (4, 80, 80, 6, 3, 1, 20),
        (5, 80, 112, 6, 5, 1, 20),
        (5, 112, 112, 6, 5, 1, 28),
        (5, 112, 112, 6, 5, 1, 28),
        (6, 112, 192, 6, 5, 2, 28),
        (6, 192, 192, 6, 5, 1, 48),
        (6, 192, 192, 6, 5, 1, 48),
        (6, 192, 192, 6, 5, 1, 48),
        (7, 192, 320, 6, 3, 1, 48),
    ];
    let mut per_stage = [0usize; 8];
    for (i, (b, e)) in blocks.iter().zip(expected).enumerate() {
        let (stage, in_ch, out_ch, expand, kernel, stride, se) = e;
        assert_eq!(b.index, i);
        assert_eq!(b.stage, stage, "block {i}");
        assert_eq!(b.index_in_stage, per_stage[stage], "block {i}");
        per_stage[stage] += 1;
        assert_eq!((b.in_ch, b.out_ch), (in_ch, out_ch), "block {i}");
        assert_eq!(b.expand_ratio, expand, "block {i}");
        assert_eq!(b.expanded_ch, in_ch * expand, "block {i}");
        assert_eq!((b.kernel, b.stride), (kernel, stride), "block {i}");
        assert_eq!(b.se_ch, se, "block {i}");
        assert_eq!(b.residual, stride == 1 && in_ch == out_ch, "block {i}");
        let survival = 1.0 - 0.2 * i as f32 / 16.0;
        assert!((b.survival_prob - survival).abs() < 1e-6, "block {i}: {}", b.survival_prob);
    }
    assert_eq!(blocks[0].survival_prob, 1.0);
    assert!((blocks[15].survival_prob - 0.8125).abs() < 1e-6);
}

#[test]
fn b0_macs_close_to_paper() {
    // B0 at 224×224 gives 385,814,752 MACs (the paper's 0.39 B "FLOPs", REFERENCE 0.386 G).
    let macs = Config::b0(1000).macs(224, 224);
    assert_eq!(macs, 385_814_752);
    let reference = 0.386e9;
    assert!(((macs as f64 - reference) / reference).abs() < 0.03, "{macs}");
    // Bigger variants cost more, roughly as the table says (B1 0.687 G, B7 37.75 G).
    let b1 = Config::b1(1000).macs(240, 240) as f64;
    assert!((b1 / 0.687e9 - 1.0).abs() < 0.05, "{b1}");
    let b7 = Config::b7(1000).macs(600, 600) as f64;
    assert!((b7 / 37.75e9 - 1.0).abs() < 0.05, "{b7}");
}

#[test]
fn stage_summary_resolutions_and_totals() {
    let cfg = Config::b0(1000);
    let rows = cfg.stage_summary(224, 224);
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["stem", "stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "stage7", "head", "classifier"]
    );
    let res: Vec<usize> = rows.iter().map(|r| r.out_h).collect();
    assert_eq!(res, [112, 112, 56, 28, 14, 14, 7, 7, 7, 1]);
    let blocks: Vec<usize> = rows[1..8].iter().map(|r| r.blocks).collect();
    assert_eq!(blocks, [1, 2, 2, 3, 3, 4, 1]);
    assert_eq!(rows.iter().map(|r| r.params).sum::<usize>(), cfg.param_count());
    assert_eq!(rows.iter().map(|r| r.macs).sum::<u64>(), cfg.macs(224, 224));
    // Odd sizes: TF-SAME gives ceil(in/s) at every stride-2 layer, symmetric k3 also here.
    let mut tf = cfg.clone();
    tf.padding = Padding::TfSame;
    let odd: Vec<usize> = tf.stage_summary(225, 225).iter().map(|r| r.out_h).collect();
    assert_eq!(odd, [113, 113, 57, 29, 15, 15, 8, 8, 8, 1]);
    // The optional input resize happens before the stem.
    let mut scaled = cfg.clone();
    scaled.scale = Some(2.0);
    assert_eq!(scaled.stage_summary(112, 112)[0].out_h, 112);
    assert_eq!(scaled.macs(112, 112), cfg.macs(224, 224));
}

#[test]
fn conv_padding_covers_both_rules() {
    assert_eq!(conv_padding(Padding::Symmetric, 7, 3, 2), (4, 1));
    assert_eq!(conv_padding(Padding::TfSame, 7, 3, 2), (4, 1));
    assert_eq!(conv_padding(Padding::TfSame, 8, 3, 2), (4, 0));
    assert_eq!(conv_padding(Padding::TfSame, 8, 5, 1), (8, 2));
}

#[test]
fn variant_names_parse() {
    for v in Variant::ALL {
        assert_eq!(v.name().parse::<Variant>().unwrap(), v);
        assert_eq!(Variant::parse(&format!("efficientnet-{}", v.name())).unwrap(), v);
        assert_eq!(Variant::parse(&format!("efficientnet_{}", v.name())).unwrap(), v);
        assert_eq!(Variant::parse(&v.name().to_uppercase()).unwrap(), v);
        assert_eq!(Config::new(v, 1000).variant(), Some(v));
    }
    for bad in ["b8", "lite5", "resnet50", "", "efficientnet-", "efficientnet-b0x"] {
        assert!(matches!(Variant::parse(bad), Err(Error::UnknownModel(_))), "{bad:?}");
    }
}

#[test]
fn defaults_per_variant() {
    let b0 = Config::b0(1000);
    assert_eq!((b0.activation, b0.padding, b0.se, b0.lite), (Activation::Swish, Padding::Symmetric, true, false));
    assert_eq!(b0.bn_eps, 1e-5);
    assert_eq!(b0.drop_connect, 0.2);
    assert_eq!(b0.scale, None);
    assert_eq!(Config::b5(1000).bn_eps, 1e-3);
    assert_eq!(Config::b4(1000).bn_eps, 1e-5);
    let lite = Config::lite2(1000);
    assert_eq!((lite.activation, lite.se, lite.lite, lite.resolution), (Activation::Relu6, false, true, 260));
    assert_eq!(efficientnet_wgpu::model::efficientnet_b3(7), Config::b3(7));
    assert_eq!(Config::b3(7).dropout, 0.3);

    let custom = Config::custom(1.0, 1.0, 224, 0.2, 1000);
    assert_eq!(custom.param_count(), b0.param_count());
    assert!(custom.validate().is_ok());
    assert!(Config::custom(0.0, 1.0, 224, 0.2, 10).validate().is_err());
    assert!(Config::custom(1.0, f64::NAN, 224, 0.2, 10).validate().is_err());
    assert!(Config::custom(1.0, 1.0, 224, 0.2, 0).validate().is_err());

    let mut tf = Config::lite0(1000);
    WeightFormat::TimmTf.adjust_config(&mut tf);
    assert_eq!((tf.padding, tf.bn_eps), (Padding::TfSame, 1e-3));
    let mut tv = Config::b0(1000);
    WeightFormat::Torchvision.adjust_config(&mut tv);
    assert_eq!(tv, Config::b0(1000));
}

#[test]
fn config_serializes_to_json() {
    let json = serde_json::to_value(Config::b0(10)).unwrap();
    assert_eq!(json["name"], "efficientnet-b0");
    assert_eq!(json["num_classes"], 10);
    assert_eq!(json["padding"], "Symmetric");
    let rows = serde_json::to_value(Config::b0(10).stage_summary(224, 224)).unwrap();
    assert_eq!(rows[0]["out_channels"], 32);
}

#[test]
fn layers_are_named_by_stage_as_in_the_paper_table() {
    // B0: block 0 is stage 1's only block, blocks 1-2 are stage 2, block 15 is stage 7.
    let blocks = Config::new(Variant::B0, 10).blocks();
    let name = |index, part| Layer::Block { index, part }.describe(&blocks);
    assert_eq!(name(0, BlockPart::Depthwise), "stage1.0 depthwise");
    assert_eq!(name(2, BlockPart::Expand), "stage2.1 expand");
    assert_eq!(name(3, BlockPart::SeReduce), "stage3.0 se reduce");
    assert_eq!(name(15, BlockPart::Project), "stage7.0 project");
    assert_eq!(name(16, BlockPart::Project), "block 16 project");
    assert_eq!(Layer::Stem.describe(&blocks), "stem");
    assert_eq!(Layer::Head.describe(&blocks), "head");
}
