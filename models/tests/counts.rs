//! Parameter and MAC counts against torchvision's models.

use fq_models::{Arch, ArchSpec, Op, ResNetConfig};

#[test]
fn resnet18_matches_torchvision_parameter_count() {
    let g = ResNetConfig::resnet18(1000).build();
    assert_eq!(g.param_count(), 11_689_512);
    g.shapes().unwrap();
}

#[test]
fn resnet50_matches_torchvision_parameter_count() {
    let g = ResNetConfig::resnet50(1000).build();
    assert_eq!(g.param_count(), 25_557_032);
}

#[test]
fn resnet_macs_match_the_spec_gbops() {
    // Spec §8: FP32 GBOPs = 2 * MACs / 1e9 = 3.63 (ResNet18) and 8.17 (ResNet50) at 224x224.
    let r18 = ResNetConfig::resnet18(1000).build().macs().unwrap();
    let r50 = ResNetConfig::resnet50(1000).build().macs().unwrap();
    assert_eq!(format!("{:.2}", 2.0 * r18 as f64 / 1e9), "3.63");
    // torchvision ResNet50: 4,089,184,256 MACs; the table prints 8.17 (truncated, not rounded).
    assert_eq!(r50, 4_089_184_256);
    assert_eq!(
        format!("{:.2}", (2.0 * r50 as f64 / 1e7).floor() / 100.0),
        "8.17"
    );
}

#[test]
fn quantizable_layers_are_every_conv_and_linear_in_registration_order() {
    let g = ResNetConfig::resnet18(7).build();
    let names: Vec<String> = g
        .quant_layers()
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names.len(), 21);
    assert_eq!(names[0], "conv1");
    assert_eq!(&names[1..3], ["layer1.0.conv1", "layer1.0.conv2"]);
    assert_eq!(
        &names[5..8],
        ["layer2.0.conv1", "layer2.0.conv2", "layer2.0.downsample.0"]
    );
    assert_eq!(names[20], "fc");
    let convs = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv2d(_) | Op::Linear(_)))
        .count();
    assert_eq!(convs, names.len());
}

#[test]
fn narrow_variant_scales_channels() {
    let g = ArchSpec::new(Arch::ResNet18, 16, 64, 6).graph().unwrap();
    assert_eq!(g.arch, "resnet18-w16");
    let fc = g.quant_layers().unwrap().pop().unwrap();
    assert_eq!(fc.weight_shape, vec![6, 128]);
}

#[test]
fn bad_specs_are_rejected_with_a_reason() {
    let err = "vgg".parse::<Arch>().unwrap_err().to_string();
    assert!(err.contains("unknown architecture `vgg`"), "{err}");
    assert!(
        err.contains("resnet18") && err.contains("tiny_vit_5m_224"),
        "{err}"
    );
    assert!(ArchSpec::new(Arch::ResNet18, 64, 16, 2)
        .graph()
        .unwrap_err()
        .to_string()
        .contains("32"));
}

#[test]
fn deit_tiny_matches_timm_parameter_count_and_gbops() {
    let g = ArchSpec::new(Arch::DeitTiny, 64, 224, 1000)
        .graph()
        .unwrap();
    assert_eq!(g.arch, "deit_tiny_patch16_224");
    // timm.create_model("deit_tiny_patch16_224", num_classes=1000): 5,717,416 parameters.
    assert_eq!(g.param_count(), 5_717_416);
    let layers = g.quant_layers().unwrap();
    // Patch embedding + 12 x (qkv, proj, fc1, fc2) + head.
    assert_eq!(layers.len(), 1 + 12 * 4 + 1);
    assert_eq!(layers[0].name, "patch_embed.proj");
    assert_eq!(layers[1].name, "blocks.0.attn.qkv");
    assert_eq!(layers[49].name, "head");
    // Linears count 2 * in * out once (11,000,832 BOPs in timm's model), the patch conv per
    // position: the paper's table prints 0.07 GBOPs for FP32 DeiT-Tiny.
    let linear_bops: u64 = layers[1..].iter().map(|l| l.bops).sum();
    assert_eq!(linear_bops, 11_000_832);
    assert_eq!(format!("{:.2}", g.fp32_gbops().unwrap()), "0.07");
    // The qkv Linear runs on 197 tokens.
    assert_eq!(layers[1].macs, 197 * 192 * 576);
    assert!(g.attention_macs().unwrap() > 0);
}

#[test]
fn tiny_vit_5m_matches_timm_parameter_count_and_gbops() {
    let g = ArchSpec::new(Arch::TinyVit5m, 64, 224, 1000)
        .graph()
        .unwrap();
    assert_eq!(g.arch, "tiny_vit_5m_224");
    // timm's default tag is the 21841-class in22k model; at 1000 classes it has 5,392,764.
    assert_eq!(g.param_count(), 5_392_764);
    let layers = g.quant_layers().unwrap();
    let linear_bops: u64 = layers
        .iter()
        .filter(|l| l.weight_shape.len() == 2)
        .map(|l| l.bops)
        .sum();
    assert_eq!(linear_bops, 10_028_032);
    // The paper's table: 0.75 GBOPs for FP32 TinyViT.
    assert_eq!(format!("{:.2}", g.fp32_gbops().unwrap()), "0.75");
    // Stage 1 has 28x28 tokens in 16 windows of 7x7; stage 2 is one 14x14 window.
    let attn: Vec<&fq_models::Attention> = g
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Attention(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(attn.len(), 2 + 6 + 2);
    assert_eq!(attn[0].group, Some(49));
    assert_eq!(attn[2].group, None);
    assert_eq!(attn[2].bias_window, Some(14));
}

#[test]
fn narrow_transformers_build_at_small_inputs() {
    let d = ArchSpec::new(Arch::DeitTiny, 16, 64, 2).graph().unwrap();
    assert_eq!(d.arch, "deit_tiny_patch16_224-w16");
    assert_eq!(d.quant_layers().unwrap()[1].weight_shape, vec![144, 48]);
    // 64 px: stage grids 8, 4, 2 are padded to whole windows of 7, 14, 7.
    let t = ArchSpec::new(Arch::TinyVit5m, 16, 64, 2).graph().unwrap();
    assert_eq!(t.shapes().unwrap()[t.output], fq_models::Shape::Flat(2));
    assert!(ArchSpec::new(Arch::TinyVit5m, 15, 64, 2).graph().is_err());
    assert!(ArchSpec::new(Arch::DeitTiny, 16, 72, 2)
        .graph()
        .unwrap_err()
        .to_string()
        .contains("16-pixel"));
}

#[test]
fn transformers_quantize_exactly_the_spec_layers() {
    // Spec §1: every Conv2d and Linear weight (patch embedding, qkv, proj, fc1, fc2, the head,
    // TinyViT's depthwise convs); never norms, position embedding, class token or bias tables.
    for arch in ["deit-tiny", "tinyvit-5m"] {
        let g = ArchSpec::new(arch.parse().unwrap(), 64, 224, 7)
            .graph()
            .unwrap();
        let quantized: Vec<String> = g
            .params()
            .into_iter()
            .filter(|p| p.quantizable)
            .map(|p| p.name)
            .collect();
        let layers: Vec<String> = g
            .quant_layers()
            .unwrap()
            .into_iter()
            .map(|l| format!("{}.weight", l.name))
            .collect();
        assert_eq!(quantized, layers, "{arch}");
        for p in g.params().iter().filter(|p| !p.quantizable) {
            let ok = p.name.ends_with(".bias")
                || p.name.ends_with("norm.weight")
                || p.name.ends_with("norm1.weight")
                || p.name.ends_with("norm2.weight")
                || p.name.ends_with(".bn.weight")
                || p.name.ends_with("running_mean")
                || p.name.ends_with("running_var")
                || p.name.ends_with("attention_biases")
                || p.name == "cls_token"
                || p.name == "pos_embed";
            assert!(ok, "{arch}: `{}` is not quantized but unexpected", p.name);
        }
    }
    let g = ArchSpec::new(Arch::TinyVit5m, 64, 224, 7).graph().unwrap();
    let names: Vec<String> = g
        .quant_layers()
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    for n in [
        "patch_embed.conv1.conv",
        "stages.0.blocks.0.conv2.conv",
        "stages.1.downsample.conv2.conv",
        "stages.1.blocks.0.attn.qkv",
        "stages.1.blocks.0.local_conv.conv",
        "stages.3.blocks.1.mlp.fc2",
        "head.fc",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} is not quantized");
    }
}

/// Names on the command line and in saved files (run configs, JSON) map to the enum through the
/// same aliases the old string matching accepted; the enum is saved as its canonical timm name;
/// an unknown name is an error, not ResNet.
#[test]
fn architecture_names_parse_with_aliases_and_save_canonically() {
    let cases = [
        ("resnet18", Arch::ResNet18),
        ("ResNet50", Arch::ResNet50),
        ("deit-tiny", Arch::DeitTiny),
        ("deit_tiny_patch16_224", Arch::DeitTiny),
        ("tinyvit", Arch::TinyVit5m),
        ("tinyvit-5m", Arch::TinyVit5m),
        ("tiny-vit-5m", Arch::TinyVit5m),
        ("tiny_vit_5m_224", Arch::TinyVit5m),
    ];
    for (name, arch) in cases {
        assert_eq!(name.parse::<Arch>(), Ok(arch), "{name}");
        let json = serde_json::to_string(&name).unwrap();
        assert_eq!(serde_json::from_str::<Arch>(&json).unwrap(), arch, "{name}");
    }
    for arch in Arch::ALL {
        assert_eq!(arch.to_string().parse::<Arch>(), Ok(arch));
        assert_eq!(
            serde_json::to_string(&arch).unwrap(),
            format!("\"{}\"", arch.name())
        );
    }
    assert_eq!(Arch::DeitTiny.to_string(), "deit_tiny_patch16_224");
    assert_eq!(Arch::TinyVit5m.to_string(), "tiny_vit_5m_224");
    for bad in ["vgg", "resnet", "resnet34", ""] {
        assert!(bad.parse::<Arch>().is_err(), "{bad}");
        let err = serde_json::from_str::<Arch>(&format!("\"{bad}\"")).unwrap_err();
        assert!(err.to_string().contains("unknown architecture"), "{err}");
    }
    assert_eq!(
        Arch::ALL.map(Arch::name).to_vec(),
        fq_models::KNOWN.to_vec()
    );
}
