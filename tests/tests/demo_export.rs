//! A run end to end through the runtime, with the command line a user types: `synth`, `train`
//! (a small model, one epoch), `compress` for FP32/U8/U4, `export`. The runtime, reading the run's
//! test images from disk with its own decoder, gets exactly the per-group results the compressor
//! reported, and each file carries them.

use crate::common;

use fq_compress::run::report::Report;
use fq_eval::Evaluate;
use fq_runtime::classify::Classifier;

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

    let test = common::test_split(&run);
    let report = Report::load(&run.join("report.json")).unwrap();
    for (file, label) in [
        ("model-u4.fqm", "U4"),
        ("model-u8.fqm", "U8"),
        ("deploy/fp32.fqm", "FP32"),
    ] {
        let c = Classifier::load(&run.join(file)).unwrap();
        let reported = &report
            .results
            .iter()
            .find(|r| r.method.label() == label)
            .unwrap()
            .metrics;
        assert_eq!(c.summary().method_label, label);
        assert_eq!(c.summary().test_metrics.as_ref(), Some(reported));
        let ev = c.evaluate_dataset(&test).unwrap();
        assert!(ev.predictions.len() == test.len() && test.len() > 20);
        assert_eq!(
            (&ev.metrics.group_count, &ev.metrics.group_correct),
            (&reported.group_count, &reported.group_correct),
            "{label}: the runtime's per-group results differ from the compressor's"
        );
    }
}
