//! Parameter and MAC counts against torchvision's models.

use fq_models::{ArchSpec, Op, ResNetConfig};

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
    let g = ArchSpec::new("resnet18", 16, 64, 6).graph().unwrap();
    assert_eq!(g.arch, "resnet18-w16");
    let fc = g.quant_layers().unwrap().pop().unwrap();
    assert_eq!(fc.weight_shape, vec![6, 128]);
}

#[test]
fn bad_specs_are_rejected_with_a_reason() {
    assert!(ArchSpec::new("vgg", 64, 224, 2)
        .graph()
        .unwrap_err()
        .to_string()
        .contains("unknown"));
    assert!(ArchSpec::new("resnet18", 64, 16, 2)
        .graph()
        .unwrap_err()
        .to_string()
        .contains("32"));
}
