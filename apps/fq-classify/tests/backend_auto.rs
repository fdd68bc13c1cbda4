//! The backend choice as a new user meets it, through the real `fq-classify` binary in a clean
//! environment (no `XDG_RUNTIME_DIR`, no `FQ_BACKEND`): `auto` never lands on a software
//! rasteriser (on a machine with only Mesa's lavapipe it takes the CPU path and says why),
//! `--backend gpu` still reaches the software adapter when asked for by name (with a warning),
//! and Mesa's `XDG_RUNTIME_DIR` complaint never reaches the user's terminal.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

/// Runs the binary on one photo with a clean environment; `TMPDIR` is the test's own, so the
/// private runtime directory the app makes lands (and is checked) there.
fn classify(model: &Path, photo: &Path, tmp: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fq-classify"))
        .arg("--model")
        .arg(model)
        .arg(photo)
        .args(args)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("FQ_BACKEND")
        .env("TMPDIR", tmp)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// No line of the driver's runtime-directory warning.
fn assert_quiet(what: &str, out: &Output) {
    let err = text(&out.stderr);
    assert!(
        !err.contains("XDG_RUNTIME_DIR"),
        "{what}: driver noise on stderr:\n{err}"
    );
}

#[test]
fn auto_prefers_the_cpu_over_a_software_gpu_and_the_drivers_stay_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.fqm");
    common::write_model(&model, None);
    let photo = dir.path().join("a.png");
    common::photo(1).save(&photo).unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let json = |out: &Output| -> serde_json::Value {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };

    // The GPU backend named explicitly: the best adapter of any kind.
    let gpu = classify(&model, &photo, &tmp, &["--json", "--backend", "gpu"]);
    assert_quiet("--backend gpu", &gpu);
    let auto = classify(&model, &photo, &tmp, &["--json"]);
    assert_quiet("auto", &auto);
    let a = json(&auto);
    let (a_backend, a_reason) = (
        a["backend"].as_str().unwrap(),
        a["backend_reason"].as_str().unwrap(),
    );
    eprintln!("auto: {a_backend} — {a_reason}");
    if gpu.status.code() != Some(0) {
        assert!(
            std::env::var("FQ_REQUIRE_GPU").is_err(),
            "FQ_REQUIRE_GPU is set but --backend gpu failed: {}",
            text(&gpu.stderr)
        );
        eprintln!("no GPU adapter at all: {}", text(&gpu.stderr));
        assert!(a_backend.starts_with("CPU ("), "{a_backend}");
        return;
    }
    let g = json(&gpu);
    let (g_backend, g_reason) = (
        g["backend"].as_str().unwrap(),
        g["backend_reason"].as_str().unwrap(),
    );
    eprintln!("--backend gpu: {g_backend} — {g_reason}");
    assert!(g_backend.starts_with("wgpu ("), "{g_backend}");
    // `wgpu (<name> (<type>, <api>))`: the adapter's name.
    let adapter = g_backend
        .trim_start_matches("wgpu (")
        .rsplit_once(" (")
        .unwrap()
        .0;
    let software = g_reason.contains("only a software adapter");
    if software {
        // lavapipe on the development machines and in CI: reachable by name, with a warning...
        assert!(
            text(&gpu.stderr).contains("warning: ")
                && text(&gpu.stderr).contains("software rasteriser"),
            "{}",
            text(&gpu.stderr)
        );
        // ... but never what auto picks: the CPU path, and the reason names the adapter.
        assert!(a_backend.starts_with("CPU ("), "auto chose {a_backend}");
        assert!(
            a_reason.contains("only a software GPU adapter") && a_reason.contains(adapter),
            "{a_reason}"
        );
        assert!(
            !text(&auto.stderr).contains("warning"),
            "{}",
            text(&auto.stderr)
        );
    } else {
        // A real GPU (the device machine): auto takes it.
        assert_eq!(a_backend, g_backend, "{a_reason}");
    }

    // The text output says the same in its header.
    let plain = classify(&model, &photo, &tmp, &["-q"]);
    assert_quiet("auto, text", &plain);
    let header = text(&plain.stdout);
    let line = header
        .lines()
        .find(|l| l.starts_with("backend: "))
        .unwrap_or_else(|| panic!("{header}"));
    assert!(line.contains(a_reason), "{line}");

    // The private runtime directory the app made for the drivers: the user's own, mode 0700.
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self").unwrap().uid();
        let meta = std::fs::metadata(tmp.join(format!("fq-runtime-{uid}"))).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.mode() & 0o777, 0o700);
    }
}
