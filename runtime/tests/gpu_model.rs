//! Whole models on the GPU against the CPU executor, through the deployment API
//! (`Classifier::from_model_on` with a wgpu backend): ResNet18 and a graph of odd shapes (grouped,
//! biased and 5x5 convolutions, a padded max pool, `x + x`, Linear on a [C,H,W] value), packed at
//! a random per-channel 2–8-bit mix, 4 bits and f32. Same predicted class for every image, logits
//! within 1e-4 of the largest (f32 sums in another order: ~1e-6 measured), probabilities from the
//! GPU's softmax.
#![cfg(feature = "wgpu")]

use crate::gpu_common;
use crate::packed;

use fq_models::{Arch, ArchSpec};
use fq_runtime::backend::{choose, try_select, Backend, BackendChoice};
use fq_runtime::classify::Classifier;
use gpu_common::device;
use packed::{odd_graph, random_model, Bits};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOL: f32 = 1e-4;

#[test]
fn models_on_the_gpu_predict_like_the_cpu() {
    let Some(dev) = device() else { return };
    let gpu = Backend::Wgpu(dev);
    let r18 = ArchSpec::new(Arch::ResNet18, 8, 32, 5).graph().unwrap();
    for (g, bits) in [
        (&r18, Bits::RandomMix),
        (&r18, Bits::Uniform(4)),
        (&r18, Bits::F32),
        (&odd_graph(), Bits::RandomMix),
    ] {
        let model = random_model(g, bits, 3).model;
        let cpu = Classifier::from_model(model.clone()).unwrap();
        let on_gpu = Classifier::from_model_on(model, &gpu).unwrap();
        assert!(on_gpu.backend().is_gpu());
        let n = 19;
        let per = cpu.executor().input_len();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let x: Vec<f32> = (0..n * per).map(|_| rng.random_range(-2.0..2.0)).collect();
        let want = cpu.predict_batch(&x, n).unwrap();
        let got = on_gpu.predict_batch(&x, n).unwrap();
        let scale = want
            .iter()
            .flat_map(|p| &p.logits)
            .fold(0f32, |m, v| m.max(v.abs()));
        let mut err = 0f32;
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.class, b.class, "{} {bits:?}: image {i}", g.arch);
            for (x, y) in a.logits.iter().zip(&b.logits) {
                err = err.max((x - y).abs() / scale);
            }
            for (x, y) in a.probabilities.iter().zip(&b.probabilities) {
                assert!((x - y).abs() < 1e-4, "{} {bits:?}: probabilities", g.arch);
            }
        }
        assert!(
            err < TOL,
            "{} {bits:?}: relative logit error {err:.2e}",
            g.arch
        );
        eprintln!("{} {bits:?}: relative logit error {err:.2e}", g.arch);
        // The single-image entry points go through the GPU too.
        let one = on_gpu.classify_tensor(&x[..per]).unwrap();
        assert_eq!(one.class, want[0].class);
        // A wrong input size is an error, not a panic.
        assert!(on_gpu.logits(&x[..per - 1]).is_err());
    }
}

#[test]
fn backend_selection() {
    assert!(!try_select(BackendChoice::Cpu).unwrap().is_gpu());
    let forced = try_select(BackendChoice::Gpu);
    match (&forced, device()) {
        (Ok(b), Some(_)) => {
            assert!(b.is_gpu());
            assert!(b.name().starts_with("wgpu ("), "{}", b.name());
        }
        (Err(e), None) => eprintln!("forced gpu without an adapter: {e}"),
        (r, d) => panic!(
            "forced gpu gave {:?} while the test device is {}",
            r.as_ref().map(Backend::name),
            d.map_or("absent".into(), |d| d.description())
        ),
    }
    // Auto takes a real GPU when there is one, never a software rasteriser (lavapipe here).
    let auto = choose(BackendChoice::Auto).unwrap();
    let hardware = device().is_some_and(|d| !d.is_software());
    assert_eq!(auto.backend.is_gpu(), hardware, "{}", auto.reason);
    if let Some(d) = device().filter(|d| d.is_software()) {
        assert!(
            auto.reason.contains("only a software GPU adapter") && auto.reason.contains(d.name()),
            "{}",
            auto.reason
        );
    }
}
