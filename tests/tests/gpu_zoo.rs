//! DeiT and TinyViT on the wgpu backend: the narrow timm fixtures (`tests/tests/zoo_parity.rs`'s
//! models), exported FP32, U4 and at a random per-channel 2–8-bit mix, written to bytes and read
//! back, then run by `Classifier::from_model_on` a GPU and by the CPU executor. On the fixture's
//! two images and four random ones: logits within 1e-4 of the largest and the same predicted
//! class; the FP32 export's GPU logits also reproduce timm's `logits_eval`. Skips with a message
//! without an adapter, unless `FQ_REQUIRE_GPU=1`.

use crate::common;

use std::sync::Arc;

use candle_core::Device;
use common::zoo::{argmax, fixture, load, meta, random_mix, rel_err, STEMS};
use fq_compress::nn::quant::BitAssignment;
use fq_compress::run::export::pack_model;
use fq_runtime::backend::Backend;
use fq_runtime::classify::Classifier;
use fq_runtime::format::PackedModel;
use fq_runtime::gpu::GpuDevice;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOL: f32 = 1e-4;

fn device() -> Option<Arc<GpuDevice>> {
    match GpuDevice::new() {
        Ok(d) => Some(Arc::new(d)),
        Err(e) if std::env::var("FQ_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("FQ_REQUIRE_GPU=1 but {e}")
        }
        Err(e) => {
            eprintln!("skipping the wgpu model-zoo test: {e}");
            None
        }
    }
}

#[test]
fn zoo_models_on_the_gpu_match_the_cpu_and_timm() {
    let Some(dev) = device() else { return };
    let gpu = Backend::Wgpu(dev);
    let cpu_dev = Device::Cpu;
    for stem in STEMS {
        let (g, p) = load(stem);
        let classes = g.num_classes;
        let io =
            candle_core::safetensors::load(fixture(&format!("{stem}_io.safetensors")), &cpu_dev)
                .unwrap();
        let mut x: Vec<f32> = io["input"].flatten_all().unwrap().to_vec1().unwrap();
        let timm: Vec<f32> = io["logits_eval"].flatten_all().unwrap().to_vec1().unwrap();
        let fixture_images = x.len() / (3 * 64 * 64);
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let mix = random_mix(&g, &mut rng);
        x.extend((0..4 * 3 * 64 * 64).map(|_| rng.random_range(-2.0f32..2.0)));
        let n = fixture_images + 4;
        let layers = g.quant_layers().unwrap();
        for (what, bits) in [
            ("FP32", None),
            ("U4", Some(BitAssignment::uniform(&layers, 4))),
            ("mix 2-8", Some(mix.clone())),
        ] {
            let packed = pack_model(&g, &p, bits.as_ref(), meta(&g)).unwrap();
            let model = PackedModel::from_bytes(&packed.to_bytes().unwrap()).unwrap();
            let cpu = Classifier::from_model(model.clone()).unwrap();
            let on_gpu = Classifier::from_model_on(model, &gpu).unwrap();
            assert!(on_gpu.backend().is_gpu(), "{stem} {what}: not on the GPU");
            let want = cpu.logits_batch(&x, n).unwrap();
            let got = on_gpu.logits_batch(&x, n).unwrap();
            let e = rel_err(&got, &want);
            eprintln!("{stem} {what}: GPU vs CPU, relative logit error {e:.2e}");
            assert!(
                e < TOL,
                "{stem} {what}: GPU logits differ from the CPU's by {e}"
            );
            assert_eq!(
                argmax(&got, classes),
                argmax(&want, classes),
                "{stem} {what}: a prediction changed"
            );
            if bits.is_none() {
                let got = &got[..timm.len()];
                let e = rel_err(got, &timm);
                eprintln!("{stem} FP32: GPU vs timm, relative logit error {e:.2e}");
                assert!(e < TOL, "{stem}: GPU logits differ from timm's by {e}");
                assert_eq!(argmax(got, classes), argmax(&timm, classes));
            }
        }
    }
}
