//! A run end to end through the runtime, with the command line a user types: `synth`, `train`
//! (a small model, one epoch), `compress` for FP32/U8/U4, `export`. The runtime, reading the run's
//! test images from disk with its own decoder, gets exactly the per-group results the compressor
//! reported, and each file carries them: for a quantized export, those of its 8-bit activations
//! (the export's default), and with `--activations f32` forced, those of the float model.

use crate::common;

use fq_compress::run::report::Report;
use fq_eval::Evaluate;
use fq_runtime::classify::Classifier;
use fq_runtime::{ActivationChoice, Activations, BackendChoice, LoadOptions};

#[test]
fn exported_models_reproduce_the_report_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let (_, run) = common::trained_run(dir.path(), 300, 8);
    let run_s = run.to_str().unwrap();
    let cli = common::cli;
    for m in ["fp32", "ptq-u8", "ptq-u4"] {
        cli(&["compress", "--run-dir", run_s, "--method", m]);
    }
    cli(&["export", run_s, "--method", "ptq-u4"]);
    cli(&["export", run_s, "--method", "ptq-u8"]);
    cli(&[
        "export",
        run_s,
        "--method",
        "fp32",
        "-o",
        &format!("{run_s}/deploy/fp32.fqm"),
    ]);

    cli(&[
        "export",
        run_s,
        "--method",
        "ptq-u4",
        "--activations",
        "f32",
        "-o",
        &format!("{run_s}/deploy/u4-f32.fqm"),
    ]);
    let f32_file = Classifier::load(&run.join("deploy/u4-f32.fqm")).unwrap();
    assert_eq!(f32_file.activations(), Activations::F32);

    // The U4 file's scales are the executor's calibration on exactly the images its named
    // calibration draws from the training split (recomputed here from the run on disk).
    let u4 = fq_runtime::PackedModel::load(&run.join("model-u4.fqm")).unwrap();
    let stored = u4.activations.clone().unwrap();
    let cfg = fq_compress::run::config::RunConfig::load(&run.join("config.toml")).unwrap();
    let seed = cfg.train.seed;
    let opened = fq_compress::run::run_dir::Run::open(&run, cfg, false).unwrap();
    use fq_compress::run::activations::{calibration_indices, Calibration, CALIBRATION_IMAGES};
    let how = match stored.calibration.as_str() {
        "plain" => Calibration::Plain,
        "group-balanced" => Calibration::GroupBalanced,
        other => panic!("unknown calibration {other}"),
    };
    let idx = calibration_indices(&opened.train, how, CALIBRATION_IMAGES, seed);
    assert_eq!(stored.images as usize, idx.len());
    let images: Vec<Vec<f32>> = idx
        .iter()
        .map(|&i| fq_runtime::preprocess::to_chw(&opened.train.images[i], &opened.preprocess))
        .collect();
    let exec = fq_runtime::exec::Executor::from_model(&mut u4.clone()).unwrap();
    let recomputed = exec.calibrate(images.iter().map(Vec::as_slice)).unwrap();
    assert_eq!(stored.input_scales, recomputed);
    assert!(recomputed.iter().flatten().count() > 10);

    let test = common::test_split(&run);
    let report = Report::load(&run.join("report.json")).unwrap();
    // Each quantized export evaluated f32, A8 plain and A8 group-balanced activations; the f32
    // row, computed by fq-runtime, is the compressor's own row of the method.
    for label in ["U4", "U8"] {
        let rows: Vec<_> = report
            .activations
            .iter()
            .filter(|a| a.method.label() == label)
            .collect();
        assert_eq!(rows.len(), 3, "{label}");
        assert_eq!(rows.iter().filter(|a| a.deployed).count(), 1, "{label}");
        let own = &report.get(&rows[0].id()).unwrap().metrics;
        assert_eq!(rows[0].calibration, None);
        assert_eq!(
            (&rows[0].metrics.group_count, &rows[0].metrics.group_correct),
            (&own.group_count, &own.group_correct),
            "{label}: fq-runtime's f32 path and the compressor disagree"
        );
    }
    for (file, label) in [
        ("model-u4.fqm", "U4"),
        ("model-u8.fqm", "U8"),
        ("deploy/fp32.fqm", "FP32"),
    ] {
        let c = Classifier::load(&run.join(file)).unwrap();
        let float = &report
            .results
            .iter()
            .find(|r| r.method.label() == label)
            .unwrap()
            .metrics;
        // A quantized export runs 8-bit activations by default; the report's deployed
        // activation row is what the file carries and what the runtime must reproduce.
        let deployed = report
            .activations
            .iter()
            .find(|a| a.method.label() == label && a.deployed);
        assert_eq!(deployed.is_some(), label != "FP32", "{label}");
        let reported = deployed.map_or(float, |a| &a.metrics);
        let expected = if deployed.is_some() {
            Activations::Int8Static
        } else {
            Activations::F32
        };
        assert_eq!(c.activations(), expected, "{label}");
        assert_eq!(c.summary().method_label, label);
        assert_eq!(c.summary().test_metrics.as_ref(), Some(reported));
        let as_float = Classifier::load_with(
            &run.join(file),
            LoadOptions {
                backend: BackendChoice::Cpu,
                activations: ActivationChoice::F32,
            },
        )
        .unwrap();
        for (c, reported, what) in [(&c, reported, "as loaded"), (&as_float, float, "f32")] {
            let ev = c.evaluate_dataset(&test).unwrap();
            assert!(ev.predictions.len() == test.len() && test.len() > 20);
            assert_eq!(
                (&ev.metrics.group_count, &ev.metrics.group_correct),
                (&reported.group_count, &reported.group_correct),
                "{label} ({what}): the runtime's per-group results differ from the compressor's"
            );
        }
    }
}
