//! The `fq-classify` binary as a user runs it: text and JSON output, a corrupt file reported on
//! stderr while the other photos are classified, the documented exit statuses.

use crate::common;

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fq-classify"))
}

#[test]
fn classifies_photos_and_reports_a_corrupt_one() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.fqm");
    common::write_model(&model, None);
    let a = dir.path().join("a.png");
    common::photo(1).save(&a).unwrap();
    let b = dir.path().join("b.jpg");
    common::photo(2).save(&b).unwrap();
    let bad = dir.path().join("bad.webp");
    std::fs::write(&bad, b"RIFF\0\0\0\0WEBPgarbage").unwrap();

    let out = bin()
        .arg("--model")
        .arg(&model)
        .args([&a, &bad, &b])
        .args(["--backend", "cpu"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("backend: CPU ("), "{stdout}");
    assert!(
        stdout.contains("U4, 4.00 bits/weight, 3 classes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 photo(s) classified, 1 failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("a.png") && stdout.contains("b.jpg") && stdout.contains("latency"),
        "{stdout}"
    );
    assert!(stdout.contains("  3. "), "top-3 listed: {stdout}");
    // The CPU kernels this machine runs (issue 23), e.g. `cpu kernels: f32 avx2+fma (x86_64); ...`.
    let f32_path = fq_runtime::exec::kernel::path().name();
    let int8_path = fq_runtime::exec::kernel::int8_path().name();
    assert!(
        stdout.contains(&format!("cpu kernels: f32 {f32_path} (")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("; int8 {int8_path} (")),
        "{stdout}"
    );
    let line = stderr
        .lines()
        .find(|l| l.contains("bad.webp"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.starts_with("error: "), "{line}");

    // JSON, only good photos: status 0 and probabilities that sum to at most 1.
    let out = bin()
        .arg("--model")
        .arg(&model)
        .args([&a, &b])
        .args(["--json", "-k", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top = json["photos"][1]["top"].as_array().unwrap();
    let sum: f64 = top.iter().map(|d| d["probability"].as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-5, "all 3 classes listed: {sum}");
    assert_eq!(json["model"]["classes"].as_array().unwrap().len(), 3);
    assert_eq!(json["kernels"]["f32"], f32_path);
    assert_eq!(json["kernels"]["int8"], int8_path);
    assert_eq!(json["kernels"]["arch"], std::env::consts::ARCH);
    // The logits, one per class, whose softmax is the listed probabilities.
    let logits: Vec<f64> = json["photos"][1]["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(logits.len(), 3);
    let z: f64 = logits.iter().map(|l| l.exp()).sum();
    let best = logits.iter().cloned().fold(f64::MIN, f64::max);
    assert!((best.exp() / z - top[0]["probability"].as_f64().unwrap()).abs() < 1e-5);

    // The GPU backend, where an adapter exists (CI installs lavapipe and sets FQ_REQUIRE_GPU):
    // named in the output, the same diagnoses as the CPU.
    let run = |backend: &str| {
        bin()
            .arg("--model")
            .arg(&model)
            .args([&a, &b])
            .args(["--json", "--backend", backend])
            .output()
            .unwrap()
    };
    let gpu = run("wgpu");
    if gpu.status.code() != Some(0) && std::env::var("FQ_REQUIRE_GPU").is_err() {
        eprintln!(
            "skipping the wgpu run: {}",
            String::from_utf8_lossy(&gpu.stderr)
        );
        return;
    }
    assert_eq!(
        gpu.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&gpu.stderr)
    );
    let (g, c): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&gpu.stdout).unwrap(),
        serde_json::from_slice(&run("cpu").stdout).unwrap(),
    );
    assert!(g["backend"].as_str().unwrap().starts_with("wgpu ("), "{g}");
    for p in 0..2 {
        let top = |v: &serde_json::Value| v["photos"][p]["top"][0]["class"].clone();
        assert_eq!(top(&g), top(&c));
    }
}

#[test]
fn model_and_backend_errors_exit_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.fqm");
    let a = dir.path().join("a.png");
    common::photo(1).save(&a).unwrap();
    let out = bin().arg("--model").arg(&missing).arg(&a).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.fqm"));

    let model = dir.path().join("model.fqm");
    common::write_model(&model, None);
    let out = bin()
        .arg("--model")
        .arg(&model)
        .arg(&a)
        .env("FQ_BACKEND", "tpu")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FQ_BACKEND=`tpu`"));
    let out = bin()
        .arg("--model")
        .arg(&model)
        .arg(&a)
        .env("FQ_BACKEND", "cpu")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}
