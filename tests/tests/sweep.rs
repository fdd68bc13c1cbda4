//! `fq-compress sweep` on a tiny run: the grid's runs become method variants of the run, the
//! aggregates match the per-run report rows, the markdown and plots are written, the default
//! ablation value reuses the main run, and a second sweep trains nothing.

use crate::common;

use common::cli;
use fq_compress::run::report::Report;
use std::path::Path;
use std::time::SystemTime;

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn sweep_aggregates_seeds_and_ablations_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, run) = common::trained_run(dir.path(), 200, 4);
    let r = run.to_str().unwrap();
    // The plain FQ-BAQ run with seed 3's settings is the sweep's seed-3 paper run.
    #[rustfmt::skip]
    cli(&[
        "compress", "--run-dir", r, "--method", "fq-baq", "--seed", "3",
        "--epochs", "1", "--calib-batches", "1",
    ]);
    #[rustfmt::skip]
    let sweep = [
        "sweep", "--run-dir", r, "--seeds", "3,4", "--methods", "fq-baq",
        "--lambda-bit", "0.001,0.01", "--epochs", "1", "--calib-batches", "1",
    ];
    cli(&sweep);

    let out = run.join("sweep");
    for f in [
        "results.json",
        "table1.md",
        "ablations.md",
        "frontier.png",
        "radar.png",
        "ablation_lambda_bit.png",
    ] {
        assert!(out.join(f).exists(), "sweep/{f} missing");
    }
    // Seeds × (paper, official code) + the one new ablation value; 0.01 is the default; seed 3's
    // paper run is the plain `fq-baq`.
    let methods = run.join("methods");
    let mut dirs: Vec<String> = std::fs::read_dir(&methods)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    dirs.sort();
    assert_eq!(
        dirs,
        [
            "fq-baq",
            "fq-baq-lambda_bit-0.001-s3",
            "fq-baq-lambda_bit-0.001-s4",
            "fq-baq-official-code-s3",
            "fq-baq-official-code-s4",
            "fq-baq-s4",
        ]
    );

    let report = Report::load(&run.join("report.json")).unwrap();
    let worst = |variant: Option<&str>| {
        report
            .results
            .iter()
            .find(|x| {
                x.method == fq_compress::methods::Method::FqBaq && x.variant.as_deref() == variant
            })
            .unwrap()
            .metrics
            .worst_acc
    };
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let aggs = results["aggregates"].as_array().unwrap();
    let labels: Vec<&str> = aggs.iter().map(|a| a["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        [
            "FP32",
            "U8",
            "U4",
            "FQ-BAQ",
            "FQ-BAQ (official code)",
            "FQ-BAQ (lambda_bit=0.001)",
            "FQ-BAQ (lambda_bit=0.01)"
        ]
    );
    let baq = &aggs[3];
    let mean = (worst(None) + worst(Some("s4"))) / 2.0;
    assert!((baq["worst_acc"]["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
    assert_eq!(baq["seeds"], serde_json::json!([3, 4]));
    // The default ablation value is the main run: the same numbers.
    assert_eq!(aggs[6]["worst_acc"], baq["worst_acc"]);

    let table = std::fs::read_to_string(out.join("table1.md")).unwrap();
    assert!(table.contains(
        "| Dataset | Model | Method | AvgBits | GBOPs | AvgAcc | WorstAcc | Gap | EOpp0 | EOdd |"
    ));
    let baq_row = table.lines().find(|l| l.contains("| FQ-BAQ |")).unwrap();
    assert!(
        baq_row.contains('±') && baq_row.ends_with("| 3, 4 |"),
        "{baq_row}"
    );
    let abl = std::fs::read_to_string(out.join("ablations.md")).unwrap();
    assert!(
        abl.contains("| 0.001 | 3, 4 |") && abl.contains('['),
        "{abl}"
    );

    // A second sweep finds every run finished: no weights are rewritten.
    let w = methods.join("fq-baq-s4/weights.safetensors");
    let before = mtime(&w);
    cli(&sweep);
    assert_eq!(mtime(&w), before);
}
