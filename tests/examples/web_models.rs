//! The models and photo of the browser benchmark (`bench/web.sh`, issue 20): ResNet18 at
//! 224x224 with 1000 classes, seed-0 random weights, uniform 4-bit per channel, written as
//! `resnet18-u4.fqm` (the runtime's file, for the page and `fq-classify`) and
//! `resnet18-u4.onnx` (the same packed model through the ONNX export, int8 codes dequantized
//! per channel, for onnxruntime-web), plus a 224x224 photo `photo-224.png` of random pixels.
//! Latency does not depend on the weights' values, so no training is needed.
//!
//!   cargo run --release -p fq-e2e --example web_models -- OUT_DIR

use anyhow::{Context, Result};
use fq_compress::methods::Method;
use fq_compress::nn::params::ParamStore;
use fq_compress::nn::quant::BitAssignment;
use fq_compress::run::export::{pack_model, ExportMeta};
use fq_compress::run::onnx::{self, OnnxOptions};
use fq_models::{Arch, ArchSpec};
use fq_runtime::preprocess::PreprocessConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() -> Result<()> {
    let out = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: web_models OUT_DIR")?,
    );
    std::fs::create_dir_all(&out).with_context(|| format!("{}", out.display()))?;
    let graph = ArchSpec::new(Arch::ResNet18, 64, 224, 1000).graph()?;
    let params = ParamStore::init(&graph, 0, &candle_core::Device::Cpu)?;
    let bits = BitAssignment::uniform(&graph.quant_layers()?, 4);
    let meta = ExportMeta {
        method: Method::PtqU4.into(),
        classes: (0..1000).map(|i| format!("class{i}")).collect(),
        groups: vec!["all".into()],
        preprocess: PreprocessConfig {
            width: 224,
            height: 224,
            ..PreprocessConfig::default()
        },
        test_metrics: None,
    };
    let packed = pack_model(&graph, &params, Some(&bits), meta)?;
    let fqm = out.join("resnet18-u4.fqm");
    // Written to a temporary name and renamed: a reader never sees half a file.
    let tmp = out.join("resnet18-u4.fqm.tmp");
    std::fs::write(&tmp, packed.to_bytes()?)?;
    std::fs::rename(&tmp, &fqm)?;
    let onnx_path = out.join("resnet18-u4.onnx");
    let n = onnx::save(&packed, &onnx_path, OnnxOptions::default())?;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let img = image::RgbImage::from_fn(224, 224, |_, _| image::Rgb(rng.random::<[u8; 3]>()));
    let png = out.join("photo-224.png");
    img.save(&png)
        .with_context(|| format!("{}", png.display()))?;
    println!(
        "{} ({:.2} MB), {} ({:.2} MB), {}",
        fqm.display(),
        std::fs::metadata(&fqm)?.len() as f64 / 1e6,
        onnx_path.display(),
        n as f64 / 1e6,
        png.display()
    );
    Ok(())
}
