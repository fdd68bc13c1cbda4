//! On a tiny run, from the command line: the FairGRAPE baseline (pruned: 0/32 bits counted in the
//! report, refused by `export`; the script form: FQ-QAT with `max` and no fairness loss), the
//! mitigations recorded in a method's config, and `diagnose` (JSON, charts, and accuracies/FVO
//! that agree with the report's evaluation of the same models).

use clap::Parser;
use fq_compress::cli::{dispatch, Cli};
use fq_compress::data::sampler::{GroupWeights, Sampler};
use fq_compress::methods::config::CompressConfig;
use fq_compress::methods::{Method, MethodId};
use fq_compress::run::report::Report;

fn cli(args: &[&str]) -> anyhow::Result<()> {
    let mut argv = vec!["fq-compress", "--quiet"];
    argv.extend_from_slice(args);
    dispatch(Cli::try_parse_from(argv).unwrap())
}

#[test]
fn fairgrape_mitigations_and_diagnose_on_a_tiny_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = dir.path().join("run");
    let (d, r) = (data.to_str().unwrap(), run.to_str().unwrap());
    #[rustfmt::skip]
    cli(&["synth", "--out", d, "--num-images", "200", "--image-size", "32"]).unwrap();
    let (csv, images) = (format!("{d}/fitzpatrick17k.csv"), format!("{d}/images"));
    #[rustfmt::skip]
    cli(&[
        "train", "--run-dir", r, "--csv", &csv, "--images", &images,
        "--width", "4", "--input-size", "32", "--epochs", "1", "--batch-size", "64",
    ])
    .unwrap();
    let quick = ["--epochs", "1", "--calib-batches", "1"];

    // FairGRAPE, pruned: 15% of every layer kept at FP32 -> AvgBits 4.80.
    let mut args = vec!["compress", "--run-dir", r, "--method", "fairgrape"];
    args.extend_from_slice(&quick);
    cli(&args).unwrap();
    let report = Report::load(&run.join("report.json")).unwrap();
    let fg = report.get(&Method::Fairgrape.into()).unwrap();
    assert!(fg.pruned);
    assert!((fg.avg_bits - 4.80).abs() < 0.05, "AvgBits {}", fg.avg_bits);
    let mdir = run.join("methods/fairgrape");
    let w =
        candle_core::safetensors::load(mdir.join("weights.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let m =
        candle_core::safetensors::load(mdir.join("mask.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    for (name, mask) in &m {
        let wv: Vec<f32> = w[&format!("{name}.weight")]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mv: Vec<f32> = mask.flatten_all().unwrap().to_vec1().unwrap();
        // Pruned weights stay exactly zero through the masked fine-tuning.
        assert!(
            wv.iter().zip(&mv).all(|(w, m)| *m == 1.0 || *w == 0.0),
            "{name}"
        );
        let kept = mv.iter().filter(|&&v| v == 1.0).count() as f64 / mv.len() as f64;
        assert!(
            (kept - 0.15).abs() <= 1.0 / mv.len() as f64 + 1e-9,
            "{name}: kept {kept}"
        );
    }
    let cfg = CompressConfig::load(&mdir.join("config.toml")).unwrap();
    assert_eq!(cfg.finetune.lambda_fair, 0.0);
    let err = cli(&["export", r, "--method", "fairgrape"]).unwrap_err();
    assert!(
        format!("{err:#}").contains(".fqm format stores 2-8-bit weights only"),
        "{err:#}"
    );

    // The script form: a `script` row with 2/4/8-bit FQ-QAT and the `max` reducer.
    let mut args = vec![
        "compress",
        "--run-dir",
        r,
        "--method",
        "fairgrape",
        "--preset",
        "fairgrape-script",
    ];
    args.extend_from_slice(&quick);
    cli(&args).unwrap();
    let sdir = run.join("methods/fairgrape-script");
    assert!(sdir.join("bits.json").exists());
    let cfg = CompressConfig::load(&sdir.join("config.toml")).unwrap();
    assert_eq!(
        cfg.importance.reducer,
        fq_compress::methods::importance::Reducer::Max
    );
    assert_eq!(cfg.finetune.lambda_fair, 0.0);
    assert_eq!(cfg.allocation.palette, vec![2, 4, 8]);
    cli(&["export", r, "--method", "fairgrape", "--variant", "script"]).unwrap();

    // Mitigations are recorded in the method's config.
    #[rustfmt::skip]
    let mut args = vec![
        "compress", "--run-dir", r, "--method", "fq-qat", "--variant", "mitigated",
        "--sampler", "group-balanced", "--group-weights", "inverse-frequency",
    ];
    args.extend_from_slice(&quick);
    cli(&args).unwrap();
    let cfg = CompressConfig::load(&run.join("methods/fq-qat-mitigated/config.toml")).unwrap();
    assert_eq!(cfg.finetune.sampler, Sampler::GroupBalanced);
    assert_eq!(cfg.finetune.group_weights, GroupWeights::InverseFrequency);

    // Diagnose FP32 and U4 (they get report rows first, to compare with).
    for m in ["fp32", "ptq-u4"] {
        cli(&["compress", "--run-dir", r, "--method", m]).unwrap();
    }
    #[rustfmt::skip]
    cli(&[
        "diagnose", r, "--methods", "fp32,ptq-u4,fq-qat-mitigated",
        "--samples-per-group", "8", "--power-iters", "3",
    ])
    .unwrap();
    let out = run.join("diagnostics");
    assert!(out.join("groups.png").exists() && out.join("logit_variance.png").exists());
    let dj: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("diagnostics.json")).unwrap()).unwrap();
    let variants = dj["variants"].as_array().unwrap();
    let names: Vec<&str> = variants
        .iter()
        .map(|v| v["method"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fp32", "ptq-u4", "fq-qat-mitigated"]);
    let report = Report::load(&run.join("report.json")).unwrap();
    for v in variants {
        let id = match v["method"].as_str().unwrap() {
            "fp32" => MethodId::from(Method::Fp32),
            "ptq-u4" => MethodId::from(Method::PtqU4),
            _ => MethodId::new(Method::FqQat, Some("mitigated")).unwrap(),
        };
        let row = report.get(&id).unwrap();
        // The same model on the same split: the report's per-group accuracy and gap.
        assert!((v["fvo"].as_f64().unwrap() - row.metrics.gap).abs() < 1e-9);
        for (g, gd) in v["groups"].as_array().unwrap().iter().enumerate() {
            if let Some(acc) = row.metrics.group_accuracy[g] {
                assert!((gd["accuracy"].as_f64().unwrap() - acc).abs() < 1e-9);
            }
            assert!(gd["grad_norm"].as_f64().unwrap() > 0.0);
            assert!(gd["logit_variance"].as_f64().unwrap() >= 0.0);
            assert!(gd["hessian"]["iterations"].as_u64().unwrap() <= 3);
        }
    }
    assert_eq!(dj["claim"]["variant"], "U4");
}
