//! The zoo through the whole chain: timm weights (the narrow fixtures of
//! `tools/reference/transformer_ref.py`) → the compressor's candle model → the packed `.fqm`
//! → the runtime's CPU executor. The FP32 export must reproduce timm's logits; quantized exports
//! must reproduce the compressor's fake-quantized logits (U8, U4, a random per-channel 2–8 mix).

use crate::common;

use candle_core::{Device, Tensor};
use common::zoo::{fixture, load, meta, random_mix, rel_err, RESNET_STEMS, STEMS};
use fq_compress::nn::model::{Mode, Model};
use fq_compress::nn::params::ParamStore;
use fq_compress::nn::quant::BitAssignment;
use fq_compress::run::export::pack_model;
use fq_models::Graph;
use fq_runtime::classify::Classifier;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOL: f32 = 1e-4;

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
    for stem in RESNET_STEMS.into_iter().chain(STEMS) {
        let (g, p) = load(stem);
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
    for stem in ["resnet50_w4"].into_iter().chain(STEMS) {
        let (g, p) = load(stem);
        let layers = g.quant_layers().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mix = random_mix(&g, &mut rng);
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
                let am = |r: &[f32]| fq_eval::metrics::argmax_rows(r, r.len())[0];
                assert_eq!(am(gr), am(wr), "{stem} {what}: a prediction changed");
            }
        }
    }
}
