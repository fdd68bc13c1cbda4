//! FairQuant on the transformers, unchanged: a narrow DeiT-Tiny and TinyViT-5M go through the
//! command line a user types (`train`, `compress` FQ-QAT and FQ-BAQ with importance and allocation,
//! `export`), and the runtime, reading the run's test images itself, reproduces the compressor's
//! per-group results from the packed file.

mod common;

use fq_compress::report::Report;
use fq_runtime::classify::Classifier;

fn run_zoo(arch: &str, width: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (_, run) = common::trained_run_arch(dir.path(), 240, arch, width);
    let r = run.to_str().unwrap();
    let cli = common::cli;
    for m in ["fq-qat", "fq-baq"] {
        let args = ["--method", m, "--epochs", "1", "--calib-batches", "2"];
        cli(&[&["compress", "--run-dir", r][..], &args[..]].concat());
    }
    let report = Report::load(&run.join("report.json")).unwrap();
    let test = common::test_split(&run);
    for (m, label) in [("fq-qat", "FQ-QAT"), ("fq-baq", "FQ-BAQ")] {
        let out = run.join(format!("{m}.fqm"));
        cli(&["export", r, "--method", m, "-o", out.to_str().unwrap()]);
        let reported = report
            .results
            .iter()
            .find(|x| x.method.label() == label)
            .unwrap();
        // Mixed precision really happened: 2–8 bits, not a uniform width.
        assert!(
            reported.avg_bits > 2.0 && reported.avg_bits < 8.0,
            "{arch} {label}: {} bits",
            reported.avg_bits
        );
        let c = Classifier::load(&out).unwrap();
        assert!(c.summary().avg_bits < 8.0);
        let ev = c.evaluate_dataset(&test).unwrap();
        assert_eq!(
            (&ev.metrics.group_count, &ev.metrics.group_correct),
            (
                &reported.metrics.group_count,
                &reported.metrics.group_correct
            ),
            "{arch} {label}: the runtime's per-group results differ from the compressor's"
        );
    }
}

#[test]
fn deit_tiny_compresses_and_runs_packed() {
    run_zoo("deit-tiny", 8);
}

#[test]
fn tiny_vit_compresses_and_runs_packed() {
    run_zoo("tinyvit-5m", 8);
}
