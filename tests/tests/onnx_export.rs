//! The ONNX export checked by the real onnx checker and onnxruntime (`tools/reference/onnx_check.py`
//! in the venv of `tools/reference/onnx_venv.sh`, installed on first use): for a narrow model of
//! every zoo architecture (timm weights of the fixtures, a random 2–8-bit per-channel mix, U4 as
//! int4 at opset 21, and FP32), a TinyViT at 224 px (unpadded and whole-grid windows) and for a
//! trained run exported with the command line, onnxruntime's
//! logits equal fq-runtime's CPU executor on the same `.fqm` within [`TOL`] (max |diff| relative to
//! the largest logit) with the same class for every image, every weight is a per-channel
//! `DequantizeLinear` of codes that fit its channel's bits, and the metadata carries the run's
//! classes, groups, preprocessing and per-group test metrics.

use crate::common;

use common::zoo::{load, meta, random_mix, RESNET_STEMS, STEMS};
use fq_compress::nn::quant::BitAssignment;
use fq_compress::run::export::pack_model;
use fq_compress::run::onnx::{self, OnnxOptions, INT4_OPSET};
use fq_compress::run::report::Report;
use fq_runtime::classify::Classifier;
use fq_runtime::format::PackedModel;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Largest logit difference allowed, relative to the largest |logit| of the reference: the two
/// runtimes sum in different orders (fq-runtime scales after the integer dot product,
/// onnxruntime dequantizes first), so they agree to f32 rounding, not bit for bit.
const TOL: f64 = 1e-4;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's python (created on first use by the idempotent setup script).
fn python() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo().join("tools/reference/onnx_venv.sh"))
        .output()
        .expect("run tools/reference/onnx_venv.sh");
    assert!(
        out.status.success(),
        "onnx_venv.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// One model, its input and fq-runtime's logits, for the Python checker.
fn case(name: &str, model: &Path, shape: [usize; 4], x: &[f32], logits: &[f32]) -> Value {
    json!({
        "name": name,
        "model": model,
        "shape": shape,
        "input": x,
        "logits": logits,
        "tol": TOL,
    })
}

/// Runs the checker on `cases`; fails the test (after printing every case's figures) if any
/// case fails. Returns the per-case results.
fn check(dir: &Path, cases: &[Value]) -> Vec<Value> {
    let file = dir.join("cases.json");
    std::fs::write(&file, serde_json::to_vec(cases).unwrap()).unwrap();
    let out = Command::new(python())
        .arg(repo().join("tools/reference/onnx_check.py"))
        .arg(&file)
        .output()
        .expect("run onnx_check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "onnxruntime disagrees with fq-runtime:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), cases.len());
    results
}

/// fq-runtime's CPU logits of `n` images through the serialized `.fqm` of `packed`.
fn runtime_logits(packed: &PackedModel, x: &[f32], n: usize) -> Vec<f32> {
    let c = Classifier::from_bytes(&packed.to_bytes().unwrap()).unwrap();
    c.logits_batch(x, n).unwrap()
}

#[test]
fn zoo_exports_run_in_onnxruntime_like_fq_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    let n = 4;
    for stem in RESNET_STEMS.into_iter().chain(STEMS) {
        let (g, p) = load(stem);
        let layers = g.quant_layers().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let s = g.input_size;
        let x: Vec<f32> = (0..n * 3 * s * s)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let mix = random_mix(&g, &mut rng);
        let u4 = BitAssignment::uniform(&layers, 4);
        let mut variants = vec![
            ("mix2-8", Some(&mix), onnx::DEFAULT_OPSET),
            ("u4-int4", Some(&u4), INT4_OPSET),
        ];
        if stem == "resnet18_w8" {
            variants.push(("fp32", None, onnx::DEFAULT_OPSET));
        }
        for (what, bits, opset) in variants {
            let packed = pack_model(&g, &p, bits, meta(&g)).unwrap();
            let want = runtime_logits(&packed, &x, n);
            let path = dir.path().join(format!("{stem}-{what}.onnx"));
            let bytes = onnx::save(&packed, &path, OnnxOptions { opset }).unwrap();
            let fqm = packed.to_bytes().unwrap().len();
            eprintln!("{stem} {what}: onnx {bytes} B (opset {opset}), fqm {fqm} B");
            let mut c = case(&format!("{stem} {what}"), &path, [n, 3, s, s], &x, &want);
            c["int4"] = json!(opset >= INT4_OPSET);
            c["metadata"] = json!({
                "fairquant.classes": packed.classes,
                "fairquant.groups": packed.groups,
                "fairquant.arch": g.arch,
            });
            cases.push(c);
        }
    }
    cases.push(tiny_vit_224(dir.path()));
    for r in check(dir.path(), &cases) {
        assert_eq!(r["ok"], json!(true), "{r}");
    }
}

/// TinyViT at its real 224 px geometry (width 16, random weights and attention-bias tables):
/// stage 1 in unpadded 7x7 windows, stages 2 and 3 as single whole-grid windows (14x14 and 7x7),
/// the attention-bias path the 64 px fixtures (all padded windows) do not reach.
fn tiny_vit_224(dir: &Path) -> Value {
    let dev = candle_core::Device::Cpu;
    let g = fq_models::ArchSpec::new(fq_models::Arch::TinyVit5m, 16, 224, 5)
        .graph()
        .unwrap();
    let p = fq_compress::nn::params::ParamStore::init(&g, 3, &dev).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(224);
    let mut all = p.snapshot().unwrap();
    let biases: std::collections::HashMap<String, candle_core::Tensor> = g
        .params()
        .into_iter()
        .filter(|s| s.name.ends_with("attention_biases"))
        .map(|s| {
            let n = s.shape.iter().product::<usize>();
            let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let t = candle_core::Tensor::from_vec(v, s.shape.as_slice(), &dev).unwrap();
            (s.name, t)
        })
        .collect();
    assert_eq!(biases.len(), 10);
    all.extend(biases);
    p.assign(&all).unwrap();
    let n = 2;
    let x: Vec<f32> = (0..n * 3 * 224 * 224)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let mix = random_mix(&g, &mut rng);
    let packed = pack_model(&g, &p, Some(&mix), meta(&g)).unwrap();
    let want = runtime_logits(&packed, &x, n);
    let path = dir.join("tiny_vit_224.onnx");
    onnx::save(&packed, &path, OnnxOptions::default()).unwrap();
    case(
        "tiny_vit w16 224 px mix2-8",
        &path,
        [n, 3, 224, 224],
        &x,
        &want,
    )
}

#[test]
fn cli_onnx_export_of_a_trained_run_matches_its_fqm() {
    let dir = tempfile::tempdir().unwrap();
    // The demo's architecture (ResNet18 at width 16), trained for one epoch on synthetic images.
    let (_, run) = common::trained_run(dir.path(), 300, 16);
    let run_s = run.to_str().unwrap();
    let cli = common::cli;
    cli(&["compress", "--run-dir", run_s, "--method", "ptq-u4"]);
    cli(&["export", run_s, "--method", "ptq-u4"]);
    cli(&["export", run_s, "--method", "ptq-u4", "--format", "onnx"]);
    let int4 = run.join("deploy/model-u4-int4.onnx");
    #[rustfmt::skip]
    cli(&["export", run_s, "--method", "ptq-u4", "--format", "onnx", "--opset", "21",
          "-o", int4.to_str().unwrap()]);

    let fqm = run.join("model-u4.fqm");
    // ONNX exports keep f32 activations: the reference is the .fqm's f32 path.
    let c = common::load_f32(&fqm);
    let test = common::test_split(&run);
    let cfg = c.preprocess().clone();
    let images = fq_eval::images::load_dataset_images(&test, &cfg, false).unwrap();
    let x = fq_runtime::preprocess::to_nchw(&images, &cfg);
    let n = images.len();
    let want = c.logits_batch(&x, n).unwrap();
    let report = Report::load(&run.join("report.json")).unwrap();
    let metrics = &report
        .results
        .iter()
        .find(|r| r.method.label() == "U4")
        .unwrap()
        .metrics;
    let shape = [n, 3, cfg.height as usize, cfg.width as usize];
    let metadata = json!({
        "fairquant.classes": report.classes,
        "fairquant.groups": report.groups,
        "fairquant.test_metrics": metrics,
        "fairquant.method_label": "U4",
        "fairquant.avg_bits": c.summary().avg_bits,
    });
    let mut cases = Vec::new();
    for (name, path, is_int4) in [
        ("run U4 opset 17", run.join("model-u4.onnx"), false),
        ("run U4 opset 21 int4", int4, true),
    ] {
        let size = std::fs::metadata(&path).unwrap().len();
        let fqm_size = std::fs::metadata(&fqm).unwrap().len();
        eprintln!("{name}: {} B onnx vs {fqm_size} B fqm", size);
        let mut cs = case(name, &path, shape, &x, &want);
        cs["metadata"] = metadata.clone();
        cs["int4"] = json!(is_int4);
        cases.push(cs);
    }
    assert!(n > 20, "only {n} test images");
    for r in check(dir.path(), &cases) {
        assert_eq!(r["same_classes"], json!(true), "{r}");
    }
}
