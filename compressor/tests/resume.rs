//! Faults: SIGKILL of the real binary at random points of training and of export (resumed or rerun,
//! the final files equal an uninterrupted run's), and two processes on one run directory.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fq-compress");

fn train_cmd(data: &Path, run: &Path) -> Command {
    train_cmd_epochs(data, run, 4)
}

fn train_cmd_epochs(data: &Path, run: &Path, epochs: u32) -> Command {
    let mut c = Command::new(BIN);
    c.args(["--quiet", "train", "--run-dir"]).arg(run);
    c.args(["--dataset", "fitzpatrick17k", "--csv"])
        .arg(data.join("fitzpatrick17k.csv"));
    c.arg("--images").arg(data.join("images"));
    c.args([
        "--width",
        "4",
        "--input-size",
        "32",
        "--epochs",
        &epochs.to_string(),
        "--batch-size",
        "16",
        "--lr",
        "1e-3",
        "--seed",
        "7",
    ]);
    c
}

fn weights(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("fp32.safetensors")).unwrap()
}

#[test]
fn killed_mid_epoch_then_resumed_equals_uninterrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data);

    let a = tmp.path().join("a");
    assert!(train_cmd(&data, &a).status().unwrap().success());

    let b = tmp.path().join("b");
    let mut child = train_cmd(&data, &b).spawn().unwrap();
    // Wait for the first epoch's checkpoint, then kill during a later epoch.
    let ckpt = b.join("checkpoint.safetensors");
    let start = Instant::now();
    while !ckpt.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(60));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ckpt.exists(), "no checkpoint was written");
    let killed_before_end = !b.join("fp32.safetensors").exists();

    let mut resume = train_cmd(&data, &b);
    resume.arg("--resume");
    assert!(resume.status().unwrap().success());
    assert_eq!(
        weights(&a),
        weights(&b),
        "resumed run differs from the uninterrupted one"
    );
    assert!(
        killed_before_end,
        "the run finished before it could be killed; the test proved nothing"
    );
}

// ---------------------------------------------------------------------------------------------
// Faults beyond one kill: SIGKILL at random points of training and of export, and two processes
// on one run directory.

use rand::{Rng, SeedableRng};
use std::process::{Child, Output};

/// The seed of the kill points: fixed so that a failure can be replayed, overridable to explore
/// (`FQ_KILL_SEED=123 cargo test ...`). Printed by every test that uses it.
fn kill_rng() -> rand_chacha::ChaCha8Rng {
    let seed = std::env::var("FQ_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261201u64);
    eprintln!("kill points from FQ_KILL_SEED={seed}");
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

fn synth(data: &Path) {
    let ok = Command::new(BIN)
        .args([
            "--quiet",
            "synth",
            "--num-images",
            "240",
            "--image-size",
            "32",
            "--out",
        ])
        .arg(data)
        .status()
        .unwrap();
    assert!(ok.success());
}

fn run_ok(c: &mut Command) -> Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// SIGKILL after `after`; true when the process was still running (the kill interrupted it).
fn kill_after(mut child: Child, after: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    running
}

/// Every file a complete run may hold is either absent or complete: what a reader finds at an
/// expected path is never a torn write (temporary files beside it do not count).
fn assert_no_torn_files(run: &Path, complete: &Path) {
    let text = |name: &str| std::fs::read_to_string(run.join(name)).ok();
    if let Some(t) = text("config.toml") {
        toml::from_str::<toml::Value>(&t).expect("config.toml is torn");
    }
    if let Some(t) = text("split.csv") {
        let want = std::fs::read_to_string(complete.join("split.csv")).unwrap();
        assert_eq!(t, want, "split.csv is torn");
    }
    if let Some(t) = text("report.json") {
        serde_json::from_str::<serde_json::Value>(&t).expect("report.json is torn");
    }
    for name in ["checkpoint.safetensors", "fp32.safetensors"] {
        if let Ok(bytes) = std::fs::read(run.join(name)) {
            safetensors::SafeTensors::deserialize(&bytes)
                .unwrap_or_else(|e| panic!("{name} is torn: {e}"));
        }
    }
}

#[test]
fn killed_at_random_points_of_training_then_resumed_equals_uninterrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data);
    let a = tmp.path().join("a");
    let start = Instant::now();
    run_ok(&mut train_cmd_epochs(&data, &a, 8));
    let full = start.elapsed();

    let mut rng = kill_rng();
    let b = tmp.path().join("b");
    let mut interrupted = 0;
    for k in 0..4 {
        // A point in the first 40% of an uninterrupted run's time: start-up, data loading, an
        // epoch or a checkpoint write (a resumed run needs less time, so a late kill may land
        // after the end: that case must be fine too).
        let at = full.mul_f64(rng.random_range(0.05..0.4));
        let mut c = train_cmd_epochs(&data, &b, 8);
        c.arg("--resume")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let was_running = kill_after(c.spawn().unwrap(), at);
        eprintln!(
            "kill {k} at {:.0} ms: interrupted {was_running}",
            at.as_secs_f64() * 1e3
        );
        interrupted += usize::from(was_running);
        assert_no_torn_files(&b, &a);
    }
    assert!(
        interrupted >= 2,
        "only {interrupted} kills interrupted training"
    );
    let mut resume = train_cmd_epochs(&data, &b, 8);
    resume.arg("--resume");
    run_ok(&mut resume);
    assert!(
        weights(&a) == weights(&b),
        "resumed run differs from the uninterrupted one"
    );
}

/// The files `export -o DIR/model.fqm` writes into DIR, by name; the model card names its own
/// path, which is replaced by `OUT` so that exports into different folders compare equal.
fn export_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let own = dir.to_string_lossy().into_owned();
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let mut bytes = std::fs::read(&p).unwrap();
                if name.ends_with(".md") {
                    bytes = String::from_utf8(bytes)
                        .unwrap()
                        .replace(&own, "OUT")
                        .into_bytes();
                }
                (name, bytes)
            })
            .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn names(files: &[(String, Vec<u8>)]) -> Vec<&str> {
    files.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn killed_at_random_points_of_export_then_rerun_equals_uninterrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data);
    let run = tmp.path().join("run");
    run_ok(&mut train_cmd(&data, &run));
    run_ok(
        Command::new(BIN)
            .args(["--quiet", "compress", "--method", "ptq-u4", "--run-dir"])
            .arg(&run),
    );
    let export = |out: &Path| {
        let mut c = Command::new(BIN);
        c.args(["--quiet", "export", "--method", "ptq-u4"])
            .arg(&run)
            .arg("-o")
            .arg(out.join("model.fqm"));
        c
    };
    // The fastest of three exports: the other tests of this binary load the cores, and kill
    // points relative to a slow measurement would mostly land after a fast export's end.
    let clean = tmp.path().join("clean");
    let full = (0..3)
        .map(|_| {
            let start = Instant::now();
            run_ok(&mut export(&clean));
            start.elapsed()
        })
        .min()
        .unwrap();
    let expected = export_files(&clean);
    assert!(expected.iter().any(|(n, _)| n == "model.fqm"));

    let mut rng = kill_rng();
    let mut interrupted = 0;
    for k in 0..8 {
        let out = tmp.path().join(format!("killed{k}"));
        let at = full.mul_f64(rng.random_range(0.05..0.8));
        let mut c = export(&out);
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        interrupted += usize::from(kill_after(c.spawn().unwrap(), at));
        // Whatever is at the expected paths is complete.
        for (name, bytes) in export_files(&out) {
            if name.starts_with('.') {
                continue; // an atomic write's temporary file
            }
            let want = expected.iter().find(|(n, _)| *n == name);
            assert!(
                want.is_some_and(|(_, b)| *b == bytes),
                "kill {k}: {name} is partial or unexpected"
            );
        }
        run_ok(&mut export(&out));
        let again: Vec<_> = export_files(&out)
            .into_iter()
            .filter(|(n, _)| !n.starts_with('.'))
            .collect();
        assert_eq!(names(&again), names(&expected), "kill {k}");
        for ((name, a), (_, b)) in again.iter().zip(&expected) {
            assert!(
                a == b,
                "kill {k}: {name} of the rerun differs from an uninterrupted export"
            );
        }
    }
    eprintln!("{interrupted} of 8 kills interrupted an export of {full:?}");
    assert!(
        interrupted >= 2,
        "only {interrupted} kills interrupted the export"
    );
}

#[test]
fn two_processes_on_one_run_and_a_stale_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data);
    let run = tmp.path().join("run");
    // A long training (many epochs) that is still running while the others try the run.
    let mut first = train_cmd_epochs(&data, &run, 400);
    first
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = first.spawn().unwrap();
    let lock = run.join(".fq-lock");
    let pid_line = format!("pid={}", child.id());
    let start = Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&pid_line)) {
        assert!(start.elapsed() < Duration::from_secs(60), "no lock taken");
        std::thread::sleep(Duration::from_millis(10));
    }
    let run_s = run.to_str().unwrap();
    for args in [
        vec!["compress", "--method", "ptq-u4", "--run-dir", run_s],
        vec!["export", run_s],
        vec!["diagnose", run_s],
        vec!["sweep", "--run-dir", run_s],
    ] {
        let out = Command::new(BIN)
            .arg("--quiet")
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran beside a training");
        assert!(
            err.contains(&format!("in use by pid {}", child.id())) && err.contains("train"),
            "{args:?}: {err}"
        );
    }
    let out = train_cmd(&data, &run).arg("--resume").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by pid"));

    // SIGKILL leaves the pid in the lock file; the next process recognises it and goes on.
    let killed = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(std::fs::read_to_string(&lock).unwrap().contains(&pid_line));
    let out = Command::new(BIN)
        .args(["--quiet", "export"])
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("taking over the lock left by pid {killed}")),
        "{err}"
    );
    // It got past the lock: it fails on what the killed run never wrote (its config, when it
    // was killed while still reading the data, else its report).
    assert!(
        err.contains("no report") || err.contains("config.toml: cannot read"),
        "{err}"
    );
}

/// FQ-BAQ's fixed-bit phase (docs/BAQ_SHIPPING.md) checkpoints and resumes like any training: a
/// compress killed inside that phase, then rerun, leaves the files of an uninterrupted one. And
/// `shipping_gap.json`'s plain-quantizer accuracy after the phase is the report's: the figures
/// the report gives are those of the model the last steps trained.
#[test]
fn baq_killed_in_its_fixed_bit_phase_then_resumed_equals_uninterrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data);
    let a = tmp.path().join("a");
    run_ok(&mut train_cmd_epochs(&data, &a, 1));
    let b = tmp.path().join("b");
    std::fs::create_dir_all(&b).unwrap();
    for f in ["config.toml", "split.csv", "fp32.safetensors"] {
        std::fs::copy(a.join(f), b.join(f)).unwrap();
    }
    let compress = |run: &Path| {
        let mut c = Command::new(BIN);
        c.args(["--quiet", "compress", "--method", "fq-baq", "--run-dir"])
            .arg(run);
        #[rustfmt::skip]
        c.args([
            "--epochs", "1", "--final-fixed-epochs", "4", "--calib-batches", "1",
            "--batch-size", "16",
        ]);
        c
    };
    run_ok(&mut compress(&a));

    let mut child = compress(&b)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dir = b.join("methods/fq-baq");
    let fixed = dir.join("checkpoint-fixed.safetensors");
    let start = Instant::now();
    while !fixed.exists() && start.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(fixed.exists(), "the fixed-bit phase wrote no checkpoint");
    assert!(
        !dir.join("bits.json").exists(),
        "the method finished before it could be killed; the test proved nothing"
    );
    run_ok(&mut compress(&b));
    for f in ["weights.safetensors", "bits.json", "shipping_gap.json"] {
        let (x, y) = (a.join("methods/fq-baq").join(f), dir.join(f));
        assert!(
            std::fs::read(&x).unwrap() == std::fs::read(&y).unwrap(),
            "{f}: the resumed method differs from the uninterrupted one"
        );
    }
    // The histories agree but for the measured speed.
    let epochs = |run: &Path| {
        let p = run.join("methods/fq-baq/history.json");
        let mut h: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        for e in h["history"].as_array_mut().unwrap() {
            e.as_object_mut().unwrap().remove("images_per_sec");
        }
        h
    };
    assert_eq!(epochs(&a), epochs(&b), "history.json");
    let gap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("shipping_gap.json")).unwrap()).unwrap();
    assert_eq!(gap["final_fixed_epochs"], 4);
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("history.json")).unwrap()).unwrap();
    assert_eq!(history["history"].as_array().unwrap().len(), 1 + 4);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("report.json")).unwrap()).unwrap();
    let row = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == "fq-baq")
        .unwrap();
    for (g, after) in gap["after"].as_array().unwrap().iter().enumerate() {
        let want = row["metrics"]["group_accuracy"][g].as_f64().unwrap();
        let got = after["acc_plain"].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-12,
            "group {g}: {got} vs report {want}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The training controls (QAT-U4, FP32-FT) and the PTQ widths, from the command line.

fn compress_cmd(run: &Path, method: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["--quiet", "compress", "--method", method, "--run-dir"])
        .arg(run)
        .args(extra);
    c
}

fn toml_at(p: &Path) -> toml::Value {
    toml::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn json_at(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The report row of `method` (its command-line name) as JSON.
fn report_row(run: &Path, method: &str) -> serde_json::Value {
    let r = json_at(&run.join("report.json"));
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["method"] == method && x.get("variant").is_none())
        .unwrap_or_else(|| panic!("no {method} row in {r}"))
        .clone()
}

/// QAT-U4 and FP32-FT fine-tune with exactly FQ-QAT's budget from the same compress flags (the
/// same `finetune` config but λ_fair = 0, the same calibration, epochs and rates); QAT-U4 is
/// 4 bits everywhere, FP32-FT has no bit assignment and reports 32 bits; both resume after a
/// SIGKILL to the weights of an uninterrupted run.
#[test]
fn training_controls_keep_fq_qat_budget_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data);
    let run = tmp.path().join("run");
    run_ok(&mut train_cmd_epochs(&data, &run, 1));
    let budget = ["--epochs", "3", "--lr", "2e-3", "--calib-batches", "1"];
    for m in ["fp32", "fq-qat", "qat-u4", "fp32-ft"] {
        run_ok(&mut compress_cmd(&run, m, &budget));
    }
    let methods = run.join("methods");
    let cfg = |m: &str| toml_at(&methods.join(m).join("config.toml"));
    let mut qat = cfg("fq-qat")["finetune"].clone();
    assert_eq!(qat["lambda_fair"].as_float(), Some(0.5));
    assert_eq!(qat["epochs"].as_integer(), Some(3));
    assert_eq!(qat["lr"].as_float(), Some(2e-3));
    assert_eq!(qat["grad_clip"].as_float(), Some(1.0));
    // Everything but the fairness loss is FQ-QAT's, and so is the calibration.
    qat["lambda_fair"] = toml::Value::Float(0.0);
    for c in ["qat-u4", "fp32-ft"] {
        assert_eq!(cfg(c)["finetune"], qat, "{c}'s fine-tuning");
        assert_eq!(cfg(c)["importance"], cfg("fq-qat")["importance"], "{c}");
    }
    // The same epochs at the same rates.
    let schedule = |m: &str| -> Vec<(u64, f64)> {
        json_at(&methods.join(m).join("history.json"))["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["epoch"].as_u64().unwrap(), e["lr"].as_f64().unwrap()))
            .collect()
    };
    assert_eq!(schedule("fq-qat"), [(0, 2e-3), (1, 2e-3), (2, 2e-3)]);
    assert_eq!(schedule("qat-u4"), schedule("fq-qat"));
    assert_eq!(schedule("fp32-ft"), schedule("fq-qat"));
    // QAT-U4: 4 bits in every scope; FP32-FT: unquantized, weights of its own.
    let bits = json_at(&methods.join("qat-u4/bits.json"));
    let all: Vec<u64> = bits["layers"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|v| v.as_array().unwrap().iter().map(|b| b.as_u64().unwrap()))
        .collect();
    assert!(!all.is_empty() && all.iter().all(|&b| b == 4), "{bits}");
    assert!(!methods.join("fp32-ft/bits.json").exists());
    assert_ne!(
        std::fs::read(methods.join("fp32-ft/weights.safetensors")).unwrap(),
        weights(&run)
    );
    let (u4, ft, fp32) = (
        report_row(&run, "qat-u4"),
        report_row(&run, "fp32-ft"),
        report_row(&run, "fp32"),
    );
    assert_eq!(u4["avg_bits"].as_f64(), Some(4.0));
    assert_eq!(ft["avg_bits"].as_f64(), Some(32.0));
    assert_eq!(ft["gbops"], fp32["gbops"]);
    // On the same batches from the same start, 4-bit weights cost loss that FP32 ones do not.
    let loss0 = |m: &str| {
        json_at(&methods.join(m).join("history.json"))["history"][0]["loss"]
            .as_f64()
            .unwrap()
    };
    eprintln!(
        "epoch-0 loss: FP32-FT {}, QAT-U4 {}",
        loss0("fp32-ft"),
        loss0("qat-u4")
    );
    assert!(
        loss0("fp32-ft") < loss0("qat-u4"),
        "epoch-0 loss: FP32-FT {} vs QAT-U4 {}",
        loss0("fp32-ft"),
        loss0("qat-u4")
    );
    // A control without allocation refuses one.
    let o = compress_cmd(
        &run,
        "qat-u4",
        &["--allocation", "x.json", "--variant", "a"],
    )
    .output()
    .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--allocation does not apply"));

    // Killed after its first checkpoint, then resumed: the uninterrupted run's weights.
    let long = ["--epochs", "6", "--lr", "2e-3", "--calib-batches", "1"];
    for m in ["qat-u4", "fp32-ft"] {
        let with = |v: &str| {
            let mut a = long.to_vec();
            a.extend(["--variant", v]);
            compress_cmd(&run, m, &a)
        };
        let dir = methods.join(format!("{m}-killed"));
        let mut c = with("killed");
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        let start = Instant::now();
        while !dir.join("checkpoint.safetensors").exists()
            && start.elapsed() < Duration::from_secs(120)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            !dir.join("weights.safetensors").exists(),
            "{m} finished before it could be killed; the test proved nothing"
        );
        let ck = safetensors::SafeTensors::deserialize(
            &std::fs::read(dir.join("checkpoint.safetensors")).unwrap(),
        )
        .map(|_| ())
        .is_ok();
        assert!(ck, "{m}: torn checkpoint");
        run_ok(&mut with("killed"));
        run_ok(&mut with("whole"));
        assert!(
            std::fs::read(dir.join("weights.safetensors")).unwrap()
                == std::fs::read(methods.join(format!("{m}-whole/weights.safetensors"))).unwrap(),
            "{m}: the resumed run differs from the uninterrupted one"
        );
    }
}

/// PTQ at 3 and 16 bits: report rows with their bits (U16 costs half FP32's GBOPs); U16 is for
/// the report only (export refuses it, naming the packed format's 2-8 bits), and the default
/// export never picks U16 or an unquantized model.
#[test]
fn ptq_widths_in_the_report_and_u16_not_exported() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data);
    let run = tmp.path().join("run");
    run_ok(&mut train_cmd_epochs(&data, &run, 1));
    for m in ["fp32", "ptq-u3", "ptq-u16"] {
        run_ok(&mut compress_cmd(&run, m, &[]));
    }
    let (fp32, u3, u16) = (
        report_row(&run, "fp32"),
        report_row(&run, "ptq-u3"),
        report_row(&run, "ptq-u16"),
    );
    assert_eq!(u3["avg_bits"].as_f64(), Some(3.0));
    assert_eq!(u16["avg_bits"].as_f64(), Some(16.0));
    let g = |r: &serde_json::Value| r["gbops"].as_f64().unwrap();
    assert!((g(&u16) - g(&fp32) / 2.0).abs() <= 1e-12 * g(&fp32));
    let table = String::from_utf8(run_ok(&mut compress_cmd(&run, "ptq-u16", &[])).stdout).unwrap();
    assert!(
        table.contains("| U3 | 3.00 |") && table.contains("| U16 | 16.00 |"),
        "{table}"
    );

    let export = |extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(["--quiet", "export"]).arg(&run).args(extra);
        c.output().unwrap()
    };
    let o = export(&["--method", "ptq-u16"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("U16") && err.contains("2-8-bit"), "{err}");
    // U16 is the closest to FP32 here, yet the default export takes U3 (the only packable one).
    let o = export(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(run.join("model-u3.fqm").exists());
}
