//! The zoo through the whole chain: timm weights (the narrow fixtures of
//! `tools/reference/transformer_ref.py` and `resnet_ref.py`) → the compressor's candle model → the packed `.fqm`
//! → the runtime's CPU executor. The FP32 export must reproduce timm's logits; quantized exports
//! must reproduce the compressor's fake-quantized logits (U8, U4, a random per-channel 2–8 mix).

use candle_core::{Device, Tensor};
use fq_compress::export::{pack_model, ExportMeta};
use fq_compress::methods::Method;
use fq_compress::model::{Mode, Model};
use fq_compress::params::ParamStore;
use fq_compress::quant::{BitAssignment, Granularity};
use fq_models::{ArchSpec, Graph, TinyVitConfig, VitConfig};
use fq_runtime::classify::Classifier;
use fq_runtime::preprocess::PreprocessConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;

const TOL: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/reference/fixtures")
        .join(name)
}

/// The narrow timm models of the fixtures, by stem.
pub fn narrow(stem: &str) -> Graph {
    match stem {
        "resnet18_w8" => ArchSpec::new("resnet18", 8, 64, 5).graph().unwrap(),
        "resnet50_w4" => ArchSpec::new("resnet50", 4, 64, 5).graph().unwrap(),
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

fn meta(g: &Graph) -> ExportMeta {
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

fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

/// Packs, serializes, reloads and runs `x` (`n` images) on the runtime's CPU executor.
fn runtime_logits(
    g: &Graph,
    p: &ParamStore,
    bits: Option<&BitAssignment>,
    x: &[f32],
    n: usize,
) -> Vec<f32> {
    let packed = pack_model(g, p, bits, meta(g)).unwrap();
    let c = Classifier::from_bytes(&packed.to_bytes().unwrap()).unwrap();
    c.logits_batch(x, n).unwrap()
}

#[test]
fn fp32_export_reproduces_timm_logits() {
    let dev = Device::Cpu;
    for stem in [
        "resnet18_w8",
        "resnet50_w4",
        "deit_tiny_w16",
        "tiny_vit_w16",
    ] {
        let g = narrow(stem);
        let p = ParamStore::load_safetensors(
            &g,
            &fixture(&format!("{stem}.safetensors")),
            0,
            &dev,
            false,
        )
        .unwrap();
        let io = candle_core::safetensors::load(fixture(&format!("{stem}_io.safetensors")), &dev)
            .unwrap();
        let x: Vec<f32> = io["input"].flatten_all().unwrap().to_vec1().unwrap();
        let want: Vec<f32> = io["logits_eval"].flatten_all().unwrap().to_vec1().unwrap();
        let got = runtime_logits(&g, &p, None, &x, 2);
        let e = rel_err(&got, &want);
        eprintln!("{stem}: runtime FP32 vs timm, relative logit error {e:.2e}");
        assert!(e < TOL, "{stem}: runtime logits differ from timm by {e}");
    }
}

#[test]
fn quantized_exports_match_the_fake_quant_model() {
    let dev = Device::Cpu;
    for stem in ["resnet50_w4", "deit_tiny_w16", "tiny_vit_w16"] {
        let g = narrow(stem);
        let p = ParamStore::load_safetensors(
            &g,
            &fixture(&format!("{stem}.safetensors")),
            0,
            &dev,
            false,
        )
        .unwrap();
        let layers = g.quant_layers().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mix = BitAssignment {
            granularity: Some(Granularity::PerChannel),
            layers: layers
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
        };
        let n = 4;
        let x: Vec<f32> = (0..n * 3 * 64 * 64)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let xt = Tensor::from_vec(x.clone(), (n, 3, 64, 64), &dev).unwrap();
        let model = Model::new(g.clone(), p.duplicate().unwrap(), dev.clone());
        for (what, bits) in [
            ("U8", BitAssignment::uniform(&layers, 8)),
            ("U4", BitAssignment::uniform(&layers, 4)),
            ("mix 2-8", mix.clone()),
        ] {
            let want: Vec<f32> = model
                .forward(&xt, Mode::Eval, Some(&bits))
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got = runtime_logits(&g, &p, Some(&bits), &x, n);
            let e = rel_err(&got, &want);
            eprintln!("{stem} {what}: packed vs fake-quant, relative logit error {e:.2e}");
            assert!(e < TOL, "{stem} {what}: packed logits differ by {e}");
            for (gr, wr) in got.chunks(5).zip(want.chunks(5)) {
                let am = |r: &[f32]| fq_runtime::metrics::argmax_rows(r, r.len())[0];
                assert_eq!(am(gr), am(wr), "{stem} {what}: a prediction changed");
            }
        }
    }
}
