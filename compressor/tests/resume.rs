//! Kill training mid-epoch (SIGKILL of the real binary) and resume: the final weights equal those
//! of an uninterrupted run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fq-compress");

fn train_cmd(data: &Path, run: &Path) -> Command {
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
        "4",
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
        .arg(&data)
        .status()
        .unwrap();
    assert!(ok.success());

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
