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
    // It got past the lock: it fails on what the killed run never wrote.
    assert!(err.contains("no report"), "{err}");
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
