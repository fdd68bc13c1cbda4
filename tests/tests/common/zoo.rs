//! The narrow ResNets, DeiT and TinyViT of the timm fixtures (`tools/reference/resnet_ref.py`,
//! `transformer_ref.py`), and
//! what their parity tests share: export metadata, the comparison of logits, a per-channel bit mix.

use fq_compress::methods::Method;
use fq_compress::nn::params::ParamStore;
use fq_compress::nn::quant::{BitAssignment, Granularity};
use fq_compress::run::export::ExportMeta;
use fq_models::{Arch, ArchSpec, Graph, TinyVitConfig, VitConfig};
use fq_runtime::preprocess::PreprocessConfig;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;

/// The transformer fixture stems, DeiT first.
pub const STEMS: [&str; 2] = ["deit_tiny_w16", "tiny_vit_w16"];
/// The ResNet fixture stems of `tools/reference/resnet_ref.py`.
pub const RESNET_STEMS: [&str; 2] = ["resnet18_w8", "resnet50_w4"];

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/reference/fixtures")
        .join(name)
}

/// The narrow timm models of the fixtures, by stem.
pub fn narrow(stem: &str) -> Graph {
    match stem {
        "resnet18_w8" => ArchSpec::new(Arch::ResNet18, 8, 64, 5).graph().unwrap(),
        "resnet50_w4" => ArchSpec::new(Arch::ResNet50, 4, 64, 5).graph().unwrap(),
        "deit_tiny_w16" => VitConfig {
            dim: 48,
            depth: 2,
            input_size: 64,
            ..VitConfig::deit_tiny(5)
        }
        .build("deit_tiny_patch16_224-w16-d2".into()),
        _ => TinyVitConfig {
            embed_dims: [16, 32, 40, 80],
            depths: [1, 1, 2, 1],
            input_size: 64,
            ..TinyVitConfig::tiny_vit_5m(5)
        }
        .build("tiny_vit_5m_224-w16-d1122".into()),
    }
}

/// The narrow model of `stem` with the fixture's timm weights (on the CPU).
pub fn load(stem: &str) -> (Graph, ParamStore) {
    let g = narrow(stem);
    let file = fixture(&format!("{stem}.safetensors"));
    let p = ParamStore::load_safetensors(&g, &file, 0, &candle_core::Device::Cpu, false).unwrap();
    (g, p)
}

pub fn meta(g: &Graph) -> ExportMeta {
    ExportMeta {
        method: Method::PtqU4.into(),
        classes: (0..g.num_classes).map(|i| format!("c{i}")).collect(),
        groups: vec!["light".into(), "dark".into()],
        preprocess: PreprocessConfig {
            width: g.input_size as u32,
            height: g.input_size as u32,
            ..PreprocessConfig::default()
        },
        test_metrics: None,
    }
}

/// The largest difference relative to the largest reference value.
pub fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

/// An independent width in 2..=8 for every output channel of every quantized layer.
pub fn random_mix(g: &Graph, rng: &mut ChaCha8Rng) -> BitAssignment {
    BitAssignment {
        granularity: Some(Granularity::PerChannel),
        layers: g
            .quant_layers()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l.name.clone(),
                    (0..l.out_channels)
                        .map(|_| rng.random_range(2..=8))
                        .collect(),
                )
            })
            .collect(),
    }
}

/// The predicted class of each row of `classes` logits.
pub fn argmax(logits: &[f32], classes: usize) -> Vec<usize> {
    fq_eval::metrics::argmax_rows(logits, classes)
}
