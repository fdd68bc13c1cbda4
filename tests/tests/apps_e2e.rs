//! The deployment side end to end: a small run built with the command line (synth, train,
//! compress, export) -> the model card and its charts -> `fq-classify` on a few photos in three
//! formats plus two broken files -> `fq-validate` on the run's held-out split (PASS, figures equal
//! to the runtime's own evaluation and to the compressor's report) and on a set made to fail
//! (FAIL, exit status 1).

use crate::common;

use clap::Parser;

use fq_eval::dataset::Dataset;
use fq_eval::Evaluate;
use fq_runtime::classify::Classifier;
use std::path::{Path, PathBuf};

/// Synth 300 images at 32 px, train a width-8 ResNet18 for one epoch, compress FP32 and U4,
/// export U4. Returns (data dir, run dir).
fn small_run(root: &Path) -> (PathBuf, PathBuf) {
    let (data, run) = common::trained_run(root, 300, 8);
    let run_s = run.to_str().unwrap();
    for m in ["fp32", "ptq-u4"] {
        common::cli(&["compress", "--run-dir", run_s, "--method", m]);
    }
    common::cli(&["export", run_s, "--method", "ptq-u4"]);
    (data, run)
}

fn check_model_card(run: &Path) {
    let card = std::fs::read_to_string(run.join("model-u4.md")).unwrap();
    for section in [
        "## Intended use",
        "## Data",
        "## Groups",
        "## Per-group results on the test split",
        "## Bit allocation",
        "## Limitations",
        "| I-III |",
        "| IV-VI |",
        "4 bits: ",
        "model-u4-bits.png",
        "model-u4-frontier.png",
        "model-u4-radar.png",
    ] {
        assert!(
            card.contains(section),
            "model card lacks `{section}`:\n{card}"
        );
    }
    for png in [
        "model-u4-bits.png",
        "model-u4-frontier.png",
        "model-u4-radar.png",
    ] {
        image::open(run.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
    }
}

fn photos(data: &Path, test: &Dataset, dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let src: Vec<image::RgbImage> = test.samples[..3]
        .iter()
        .map(|s| image::open(&s.image).unwrap().into_rgb8())
        .collect();
    let png = dir.join("a.png");
    src[0].save(&png).unwrap();
    let jpg = dir.join("b.jpg");
    src[1].save(&jpg).unwrap();
    let webp = dir.join("c.webp");
    src[2].save(&webp).unwrap();
    let broken = dir.join("broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff\xe0 truncated").unwrap();
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a photo").unwrap();
    assert!(data.join("images").is_dir());
    vec![png, broken, jpg, text, webp]
}

fn classify(model: &Path, photos: &[PathBuf]) {
    let mut argv: Vec<String> = vec!["fq-classify".into(), "--model".into()];
    argv.push(model.display().to_string());
    argv.extend(photos.iter().map(|p| p.display().to_string()));
    // The CPU, whose probabilities the runtime's classifier reproduces bit for bit (the GPU's
    // agreement with the CPU is `gpu_demo.rs`'s subject).
    argv.extend(["--json", "--quiet", "-k", "2", "--backend", "cpu"].map(String::from));
    let args = fq_classify::Args::try_parse_from(&argv).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (code, _) = fq_classify::run(&args, &mut out, &mut err);
    let err = String::from_utf8(err).unwrap();
    // Documented: a photo that cannot be classified makes the status 1; the others are reported.
    assert_eq!(code, fq_classify::EXIT_SOME_FAILED, "{err}");
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        (json["classified"].as_u64(), json["failed"].as_u64()),
        (Some(3), Some(2))
    );
    assert!(
        json["backend"].as_str().unwrap().starts_with("CPU ("),
        "{json}"
    );
    let c = Classifier::load(model).unwrap();
    for (i, p) in photos.iter().enumerate() {
        let entry = &json["photos"][i];
        assert_eq!(entry["file"], p.display().to_string());
        let name = p.file_name().unwrap().to_str().unwrap();
        if name == "broken.jpg" || name == "notes.txt" {
            let line = err
                .lines()
                .find(|l| l.contains(name))
                .unwrap_or_else(|| panic!("{err}"));
            assert!(
                line.starts_with("error: ") && line.contains("cannot decode image"),
                "{line}"
            );
            assert!(entry["error"].as_str().unwrap().contains(name));
            continue;
        }
        // The app's top-1 is the runtime's prediction for the same file, with its probability.
        let want = c.classify_path(p).unwrap();
        let top = entry["top"].as_array().unwrap();
        assert_eq!(top.len(), 2);
        assert_eq!(top[0]["class"], c.classes()[want.class]);
        let prob = top[0]["probability"].as_f64().unwrap();
        // Equal up to serde_json's float parsing, which may be off in the last bit.
        assert!((prob - f64::from(want.probabilities[want.class])).abs() < 1e-12);
        assert!(top[1]["probability"].as_f64().unwrap() <= prob);
        assert!(entry["latency_ms"]["total"].as_f64().unwrap() > 0.0);
    }
}

fn validate_args(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> fq_validate::Args {
    let mut argv: Vec<String> = [
        "fq-validate",
        "--quiet",
        "--model",
        model.to_str().unwrap(),
        "--images",
        data.join("images").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    argv.extend(extra.iter().map(|s| s.to_string()));
    fq_validate::Args::try_parse_from(argv).unwrap()
}

#[test]
fn classify_and_validate_an_exported_model() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = small_run(dir.path());
    let model = run.join("model-u4.fqm");
    check_model_card(&run);
    let test = common::test_split(&run);
    classify(&model, &photos(&data, &test, &dir.path().join("photos")));

    // The held-out split, Fitzpatrick17k format: same data, same CPU kernels -> PASS, drop 0.
    let csv = data.join("fitzpatrick17k.csv");
    let split = run.join("split.csv");
    let out = dir.path().join("validation");
    #[rustfmt::skip]
    let args = validate_args(&model, &data, &out, &[
        "--dataset", "fitzpatrick17k", "--csv", csv.to_str().unwrap(),
        "--split-csv", split.to_str().unwrap(), "--split", "test",
    ]);
    let o = fq_validate::validate(&args).unwrap();
    assert_eq!(
        o.exit_code(),
        fq_validate::EXIT_PASS,
        "{}",
        o.report.verdict.message
    );
    assert!(o.report.verdict.pass && o.report.verdict.drop == 0.0);
    // The reported field figures are the runtime's own evaluation of the same images ...
    let c = Classifier::load(&model).unwrap();
    let ev = c.evaluate_dataset(&test).unwrap();
    assert_eq!(o.predictions, ev.predictions);
    assert_eq!(o.report.field_metrics, ev.metrics);
    for (g, row) in o.report.groups.iter().enumerate() {
        let f = row.field.unwrap();
        assert_eq!(
            (f.correct, f.count),
            (ev.metrics.group_correct[g], ev.metrics.group_count[g])
        );
        assert_eq!(Some(f.accuracy), ev.metrics.group_accuracy[g]);
    }
    // ... and the compression-time figures are the compressor's report
    // (the export's 8-bit activation row, which the file carries).
    let u4 = &common::deployed_metrics(&run, "U4");
    assert_eq!(&o.report.compression_metrics, u4);
    assert_eq!(o.report.field_metrics.group_correct, u4.group_correct);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&o.written.json).unwrap()).unwrap();
    assert_eq!(json["verdict"]["pass"], true);
    let md = std::fs::read_to_string(&o.written.markdown).unwrap();
    assert!(md.contains("**PASS**") && md.contains("Wilson") && md.contains("two-proportion"));
    image::open(&o.written.chart).unwrap();

    // A folder + CSV set built to fail: group I-III only with images the model gets wrong.
    let promised_worst = u4.worst_acc;
    assert!(
        promised_worst > 0.02,
        "the tiny model's worst group is at {promised_worst}"
    );
    let mut rows = String::from("image,label,group\n");
    let mut kept = 0;
    for (s, &p) in test.samples.iter().zip(&ev.predictions) {
        let group = &test.groups[s.group];
        if group == "I-III"
            && p == c
                .classes()
                .iter()
                .position(|x| *x == test.classes[s.label])
                .unwrap()
        {
            continue;
        }
        kept += 1;
        let rel = s.image.strip_prefix(data.join("images")).unwrap();
        rows += &format!("{},{},{group}\n", rel.display(), test.classes[s.label]);
    }
    let fail_csv = dir.path().join("hard.csv");
    std::fs::write(&fail_csv, rows).unwrap();
    let out = dir.path().join("validation-hard");
    #[rustfmt::skip]
    let args = validate_args(&model, &data, &out, &[
        "--dataset", "folder", "--csv", fail_csv.to_str().unwrap(), "--tolerance", "0.02",
    ]);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let code = fq_validate::run(&args, &mut stdout, &mut stderr);
    let stdout = String::from_utf8(stdout).unwrap();
    assert_eq!(
        code,
        fq_validate::EXIT_FAIL,
        "{stdout}{}",
        String::from_utf8_lossy(&stderr)
    );
    assert!(
        stdout.contains("FAIL: worst group in the field `I-III` at 0.0%"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("validation.json")).unwrap())
            .unwrap();
    assert_eq!(json["verdict"]["pass"], false);
    assert_eq!(json["samples"].as_u64(), Some(kept));
    assert_eq!(json["groups"][0]["beyond_tolerance"], true);
}
