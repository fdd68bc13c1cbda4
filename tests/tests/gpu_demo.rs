//! The packed demo model on the wgpu backend gives the CPU's predicted class on every test image:
//! a small run made with the command line a user types (`synth`, `train` one epoch at 32px,
//! width 8, `compress`, `export` U4 and FP32), then every test image of the run classified by
//! `Classifier::load_on` a GPU backend and by the CPU path. Logits agree within 1e-4 of the
//! largest (f32 sums in another order). Skips with a message without an adapter, unless
//! `FQ_REQUIRE_GPU=1`.

use crate::common;

use std::sync::Arc;

use clap::Parser;
use fq_compress::cli::{dispatch, Cli};
use fq_eval::Evaluate;
use fq_runtime::backend::Backend;
use fq_runtime::classify::Classifier;
use fq_runtime::gpu::GpuDevice;

const TOL: f32 = 1e-4;

#[test]
fn demo_model_on_wgpu_predicts_like_the_cpu() {
    let dev = match GpuDevice::new() {
        Ok(d) => Arc::new(d),
        Err(e) if std::env::var("FQ_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("FQ_REQUIRE_GPU=1 but {e}")
        }
        Err(e) => {
            eprintln!("skipping the wgpu demo-model test: {e}");
            return;
        }
    };
    let gpu = Backend::Wgpu(dev);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = dir.path().join("run");
    let (data_s, run_s) = (data.to_str().unwrap(), run.to_str().unwrap());
    let cli = |args: &[&str]| {
        let mut argv = vec!["fq-compress", "--quiet"];
        argv.extend_from_slice(args);
        dispatch(Cli::try_parse_from(argv).unwrap()).unwrap();
    };
    #[rustfmt::skip]
    cli(&["synth", "--out", data_s, "--num-images", "300", "--image-size", "32"]);
    let csv = format!("{data_s}/fitzpatrick17k.csv");
    let images = format!("{data_s}/images");
    #[rustfmt::skip]
    cli(&[
        "train", "--run-dir", run_s, "--csv", &csv, "--images", &images,
        "--width", "8", "--input-size", "32", "--epochs", "1", "--batch-size", "64",
    ]);
    for m in ["fp32", "ptq-u4"] {
        cli(&["compress", "--run-dir", run_s, "--method", m]);
    }
    cli(&["export", run_s, "--method", "ptq-u4"]);
    let fp32 = format!("{run_s}/deploy/fp32.fqm");
    cli(&["export", run_s, "--method", "fp32", "-o", &fp32]);

    let test = common::test_split(&run);
    assert!(test.len() > 20);
    for file in [run.join("model-u4.fqm"), fp32.into()] {
        // The GPU computes in f32: the CPU reference is the f32 path.
        let cpu = common::load_f32(&file);
        let on_gpu = Classifier::load_on(&file, &gpu).unwrap();
        assert!(on_gpu.backend().is_gpu(), "{}", on_gpu.backend().name());
        let pre = cpu.preprocess().clone();
        let imgs: Vec<_> = test
            .samples
            .iter()
            .map(|s| fq_runtime::preprocess::load_resized(&s.image, pre.width, pre.height).unwrap())
            .collect();
        let want = cpu.classify_images(&imgs).unwrap();
        let got = on_gpu.classify_images(&imgs).unwrap();
        let scale = want
            .iter()
            .flat_map(|p| &p.logits)
            .fold(0f32, |m, v| m.max(v.abs()));
        let mut err = 0f32;
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.class, b.class, "{}: test image {i}", file.display());
            for (x, y) in a.logits.iter().zip(&b.logits) {
                err = err.max((x - y).abs() / scale);
            }
        }
        assert!(
            err < TOL,
            "{}: relative logit error {err:.2e}",
            file.display()
        );
        // The dataset path (decode, batch, metrics) gives the same per-group results.
        let (e_cpu, e_gpu) = (
            cpu.evaluate_dataset(&test).unwrap(),
            on_gpu.evaluate_dataset(&test).unwrap(),
        );
        assert_eq!(e_cpu.predictions, e_gpu.predictions);
        assert_eq!(e_cpu.metrics, e_gpu.metrics);
        eprintln!(
            "{}: {} test images, same classes, relative logit error {err:.2e}",
            file.display(),
            test.len()
        );
    }
}
