//! A small real model file for the apps' binary tests: a width-4 ResNet18 on 32x32 inputs with
//! deterministic pseudo-random weights, packed at 4 bits by the runtime's own `assemble`.
#![allow(dead_code)]

use std::path::Path;

use fq_models::{Arch, ArchSpec, Op};
use fq_runtime::format::{assemble, BatchNormParams, LayerParams, LayerSource, ModelMeta};
use fq_runtime::metrics::FairnessMetrics;
use fq_runtime::preprocess::PreprocessConfig;
use image::{Rgb, RgbImage};

pub const CLASSES: [&str; 3] = ["benign", "malignant", "other"];
pub const GROUPS: [&str; 2] = ["I-III", "IV-VI"];

/// Uniform in [-1, 1) from a 64-bit LCG.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Writes the model to `path` with `test_metrics` as its compression-time figures.
pub fn write_model(path: &Path, test_metrics: Option<FairnessMetrics>) {
    let graph = ArchSpec::new(Arch::ResNet18, 4, 32, CLASSES.len())
        .graph()
        .unwrap();
    let mut rng = Lcg(7);
    let biased: Vec<String> = graph
        .nodes
        .iter()
        .filter(|n| {
            matches!(&n.op, Op::Conv2d(c) if c.bias) || matches!(&n.op, Op::Linear(l) if l.bias)
        })
        .map(|n| n.name.clone())
        .collect();
    let bn_channels = |name: &str| {
        graph
            .nodes
            .iter()
            .find(|n| n.name == name)
            .and_then(|n| match n.op {
                Op::BatchNorm2d { channels, .. } => Some(channels),
                _ => None,
            })
    };
    let meta = ModelMeta {
        classes: CLASSES.map(String::from).to_vec(),
        groups: GROUPS.map(String::from).to_vec(),
        preprocess: PreprocessConfig {
            width: 32,
            height: 32,
            ..PreprocessConfig::default()
        },
        method: "ptq-u4".into(),
        method_label: "U4".into(),
        test_metrics,
    };
    let model = assemble(
        &graph,
        meta,
        |name, rows, cols| {
            let bias = biased.iter().any(|b| b == name);
            let codes: Vec<i8> = (0..rows * cols)
                .map(|_| (rng.next() * 7.0).round() as i8)
                .collect();
            let scale = 1.0 / (cols as f32).sqrt() / 4.0;
            Ok(LayerParams {
                weights: LayerSource::Quantized {
                    bits: vec![4; rows],
                    codes,
                    scales: vec![scale; rows],
                },
                bias: bias.then(|| (0..rows).map(|_| rng.next() * 0.1).collect()),
            })
        },
        |name| {
            let c = bn_channels(name).ok_or("no such batch norm")?;
            Ok(BatchNormParams {
                weight: vec![1.0; c],
                bias: vec![0.0; c],
                running_mean: vec![0.0; c],
                running_var: vec![1.0; c],
            })
        },
    )
    .unwrap();
    model.save(path).unwrap();
}

/// A varied test image.
pub fn photo(seed: u32) -> RgbImage {
    RgbImage::from_fn(40, 36, |x, y| {
        let v = (x * 7 + y * 13 + seed * 31) % 256;
        Rgb([
            v as u8,
            ((v * 3 + seed * 17) % 256) as u8,
            ((x * y + seed * 5) % 256) as u8,
        ])
    })
}
