//! CPU latency of the model zoo at 224x224, 1000 classes, batch 1: ResNet50, DeiT-Tiny and
//! TinyViT-5M in fq-runtime (packed U4, and FP32) and in the compressor's candle model, next to
//! PyTorch/timm and onnxruntime from `bench/zoo_reference.json` (`bench/zoo_reference.py`, run
//! just before by `bench/zoo.sh`). The fq-runtime/candle variants of a model are timed
//! round-robin. Writes the "Model zoo" section of `bench/results.md`. Not part of `cargo test`.

mod bench_common;
use bench_common::time_rounds;

use anyhow::Result;
use candle_core::{Device, Tensor};
use fq_compress::nn::model::{Mode, Model};
use fq_compress::nn::params::ParamStore;
use fq_compress::nn::quant::BitAssignment;
use fq_compress::run::export::pack_model;
use fq_models::ArchSpec;
use fq_runtime::classify::Classifier;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

const MODELS: &[(&str, &str)] = &[
    ("resnet50", "ResNet50"),
    ("deit_tiny_patch16_224", "DeiT-Tiny"),
    ("tiny_vit_5m_224", "TinyViT-5M"),
];

fn main() -> Result<()> {
    let args = bench_common::Args::parse("bench/zoo_reference.json")?;
    let (out, refs) = (args.out, args.reference);
    let budget = if args.quick { 0.2 } else { 3.0 };
    // Best seconds of `tool` on `model` from the reference file.
    let r = |tool: &str, model: &str| -> Option<f64> {
        refs.as_ref()?.get(tool)?.get(model)?.get(0)?.as_f64()
    };
    let ms = |s: Option<f64>| s.map_or("–".into(), |v| format!("{:.1}", v * 1e3));

    let mut md = String::from("## Model zoo on the CPU, 224×224, 1000 classes, batch 1\n\n");
    md += &format!(
        "Random-init weights; best of repeated runs (median in parentheses), ms. \
         `bench/zoo.sh`; reference: {}. The last column is PyTorch's time over fq-runtime U4's.\n\n",
        refs.as_ref()
            .and_then(|v| v.get("versions"))
            .and_then(Value::as_str)
            .unwrap_or("none (no bench/zoo_reference.json)")
    );
    md += "| model | params | fq-runtime U4 | fq-runtime FP32 | candle f32 (compressor) | \
           PyTorch (timm) | onnxruntime | PyTorch ÷ U4 |\n|---|---|---|---|---|---|---|---|\n";
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x: Vec<f32> = (0..3 * 224 * 224)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let xt = Tensor::from_vec(x.clone(), (1, 3, 224, 224), &dev)?;
    for &(arch, label) in MODELS {
        let graph = ArchSpec::new(arch.parse()?, 64, 224, 1000).graph()?;
        let params = ParamStore::init(&graph, 0, &dev)?;
        let layers = graph.quant_layers()?;
        let mut runtimes = Vec::new();
        for bits in [Some(BitAssignment::uniform(&layers, 4)), None] {
            let meta = bench_common::imagenet_meta();
            let packed = pack_model(&graph, &params, bits.as_ref(), meta)?;
            runtimes.push(Classifier::from_bytes(&packed.to_bytes()?)?);
        }
        let candle = Model::new(graph.clone(), params, dev.clone());
        let mut fs: Vec<Box<dyn FnMut() + '_>> = runtimes
            .iter()
            .map(|c| -> Box<dyn FnMut() + '_> {
                Box::new(|| {
                    c.logits(&x).expect("input size");
                })
            })
            .collect();
        fs.push(Box::new(|| {
            candle
                .forward(&xt, Mode::Eval, None)
                .expect("candle forward");
        }));
        let t = time_rounds(&mut fs, 5, 200, budget * 3.0);
        let cell = |(b, m): (f64, f64)| format!("{:.1} ({:.1})", b * 1e3, m * 1e3);
        let torch = r("torch", arch);
        eprintln!(
            "{label}: U4 {:.1} ms, FP32 {:.1} ms, candle {:.1} ms, torch {}",
            t[0].0 * 1e3,
            t[1].0 * 1e3,
            t[2].0 * 1e3,
            ms(torch)
        );
        md += &format!(
            "| {label} | {:.2}M | {} | {} | {} | {} | {} | {} |\n",
            graph.param_count() as f64 / 1e6,
            cell(t[0]),
            cell(t[1]),
            cell(t[2]),
            ms(torch),
            ms(r("onnxruntime", arch)),
            torch.map_or("–".into(), |p| format!("{:.2}×", p / t[0].0)),
        );
    }
    fq_eval::sections::write_keeping_sections(&out, &md, &[])?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
