//! `fq-compress sweep --plan / --cell / --collect` with real processes: the cells of a tiny grid
//! run two at a time (separate `fq-compress` processes sharing one run directory, its importance
//! cache included) and give exactly the tables of the sequential sweep on a copy of the run;
//! `--collect` refuses while a cell is missing or failed and names it (with the failure's
//! error); a finished cell is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const EXE: &str = env!("CARGO_BIN_EXE_fq-compress");

/// `fq-compress --quiet ARGS`, which must succeed; returns stdout.
fn fq(args: &[&str]) -> String {
    let o = Command::new(EXE)
        .arg("--quiet")
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "fq-compress {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Run the shell commands with `workers` at a time; each must succeed.
fn run_parallel(cmds: &[String], workers: usize) {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(c) = cmds.get(i) else { break };
                let o = Command::new("sh").arg("-c").arg(c).output().unwrap();
                if !o.status.success() {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{c}\n{}", String::from_utf8_lossy(&o.stderr)));
                }
            });
        }
    });
    let f = failures.into_inner().unwrap();
    assert!(f.is_empty(), "cells failed:\n{}", f.join("\n"));
}

/// `sweep --collect` on `run`, which must fail; returns its stderr.
fn fq_collect_err(run: &str) -> String {
    let o = Command::new(EXE)
        .args(["--quiet", "sweep", "--run-dir", run, "--collect"])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "collect passed with an unfinished cell"
    );
    String::from_utf8(o.stderr).unwrap()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The markdown without its first line (`# Sweep of <run dir>`, which names the directory).
fn body(p: &Path) -> String {
    let t = std::fs::read_to_string(p).unwrap();
    t.split_once('\n').unwrap().1.to_string()
}

#[test]
fn cells_in_parallel_processes_equal_the_sequential_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    let d = data.to_str().unwrap();
    fq(&[
        "synth",
        "--out",
        d,
        "--num-images",
        "200",
        "--image-size",
        "32",
    ]);
    let (csv, images) = (format!("{d}/fitzpatrick17k.csv"), format!("{d}/images"));
    #[rustfmt::skip]
    fq(&[
        "train", "--run-dir", run.to_str().unwrap(), "--csv", &csv, "--images", &images,
        "--arch", "resnet18", "--width", "4", "--input-size", "32", "--epochs", "1",
        "--batch-size", "64",
    ]);
    let seq = dir.path().join("seq");
    copy_dir(&run, &seq);
    let (r, s) = (run.to_str().unwrap(), seq.to_str().unwrap());
    // Seeds 3 and 4 calibrate with different settings: two cells claim the importance cache
    // at once; a seed's paper and official-code runs share one calibration (the lock).
    let grid = [
        "--seeds",
        "3,4",
        "--methods",
        "fq-baq",
        "--lambda-bit",
        "0.001",
        "--epochs",
        "1",
        "--calib-batches",
        "1",
    ];
    let with = |run: &str, extra: &[&str]| {
        let mut v = vec!["sweep", "--run-dir", run];
        v.extend_from_slice(&grid);
        v.extend_from_slice(extra);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    fq(&refs(&with(s, &[])));

    // A cell before the plan: a clear error.
    let o = Command::new(EXE)
        .args(["sweep", "--run-dir", r, "--cell", "0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--plan"));

    fq(&refs(&with(
        r,
        &["--plan", "--exe", EXE, "--slurm-cpus", "1"],
    )));
    let out = run.join("sweep");
    let plan = json(&out.join("plan.json"));
    let cells = plan["cells"].as_array().unwrap();
    // FP32, U8, U4, then fq-baq s3/s4, official code s3/s4, λ_bit=0.001 s3/s4.
    assert_eq!(cells.len(), 9);
    let txt = std::fs::read_to_string(out.join("plan.txt")).unwrap();
    let cmds: Vec<String> = txt.lines().map(str::to_string).collect();
    assert_eq!(cmds.len(), 9);
    assert!(cmds[4].ends_with(" --cell 4"), "{}", cmds[4]);
    let sbatch = std::fs::read_to_string(out.join("sweep.sbatch")).unwrap();
    assert!(sbatch.contains("#SBATCH --array=0-8\n"), "{sbatch}");

    // A cell that fails for real: cell 3 (fq-baq-s3) finds a checkpoint made with other
    // settings. It records its error, and --collect shows it.
    let m3 = run.join("methods/fq-baq-s3");
    std::fs::create_dir_all(&m3).unwrap();
    let cfg = std::fs::read_to_string(seq.join("methods/fq-baq-s3/config.toml")).unwrap();
    assert!(cfg.contains("\nepochs = 1\n"));
    std::fs::write(
        m3.join("config.toml"),
        cfg.replace("\nepochs = 1\n", "\nepochs = 2\n"),
    )
    .unwrap();
    std::fs::write(m3.join("checkpoint.safetensors"), b"").unwrap();
    let o = Command::new("sh").arg("-c").arg(&cmds[3]).output().unwrap();
    assert!(!o.status.success());
    let err = fq_collect_err(r);
    assert!(
        err.contains("cell 3 (fq-baq-s3): failed: sweep run fq-baq-s3: ")
            && err.contains("other settings"),
        "{err}"
    );
    std::fs::remove_dir_all(&m3).unwrap();

    // All but the last cell, two processes at a time; then --collect must name the last.
    run_parallel(&cmds[..8], 2);
    let err = fq_collect_err(r);
    let last = cells[8]["id"]["variant"].as_str().unwrap();
    assert!(
        err.contains("1 of 9 cells")
            && err.contains(&format!("cell 8 (fq-baq-{last}): not finished")),
        "{err}"
    );
    assert!(!out.join("table1.md").exists());
    run_parallel(&cmds[8..], 1);
    // Again: every cell is finished, nothing is trained.
    let w: PathBuf = run.join("methods/fq-baq-s4/weights.safetensors");
    let before = std::fs::metadata(&w).unwrap().modified().unwrap();
    let again = fq(&["sweep", "--run-dir", r, "--cell", "4"]);
    assert!(again.contains("finished already"), "{again}");
    assert_eq!(std::fs::metadata(&w).unwrap().modified().unwrap(), before);
    fq(&["sweep", "--run-dir", r, "--collect"]);
    // The failed cell ran again and succeeded: its error is gone.
    assert!(!run.join("sweep/cells/fq-baq-s3.failed").exists());
    assert!(run.join("sweep/cells/fq-baq-s3.json").exists());

    let (a, b) = (out, seq.join("sweep"));
    assert_eq!(json(&a.join("results.json")), json(&b.join("results.json")));
    for f in ["table1.md", "ablations.md"] {
        assert_eq!(body(&a.join(f)), body(&b.join(f)), "{f}");
    }
    let rows = |p: &Path| {
        let mut v: Vec<String> = json(&p.join("report.json"))["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(rows(&run), rows(&seq));
    assert_eq!(rows(&run).len(), 9);
    for f in ["frontier.png", "radar.png", "ablation_lambda_bit.png"] {
        assert!(a.join(f).exists(), "{f}");
    }
}
