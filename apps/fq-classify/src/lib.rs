//! `fq-classify`: the clinic app. Loads a packed model once and classifies photos on this device,
//! printing the top-k diagnoses, the backend and the latency (text or `--json`).
//!
//! The library holds everything but `main`, so the end-to-end tests call [`run`] directly.

pub mod args;
pub mod backend;
pub mod classify;
pub mod output;
pub mod progress;

use std::io::Write;

pub use args::Args;

use backend::Engine;
use output::{Kernels, ModelInfo, PhotoResult, Report};

/// Exit status: every photo classified.
pub const EXIT_OK: i32 = 0;
/// Exit status: at least one photo could not be read or decoded (the others were classified).
pub const EXIT_SOME_FAILED: i32 = 1;
/// Exit status: the model could not be loaded or the command line is wrong.
pub const EXIT_ERROR: i32 = 2;

/// Runs the app with results on `out` and errors on `err`; returns the exit status and, when the
/// model loaded, the report.
pub fn run(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> (i32, Option<Report>) {
    let loaded = backend::resolve(args.backend)
        .and_then(|c| Engine::load_with(&args.model, c, args.activations));
    let engine = match loaded {
        Ok(e) => e,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return (EXIT_ERROR, None);
        }
    };
    let c = engine.classifier();
    let model = ModelInfo {
        path: output::display(&args.model),
        method: c.summary().method.clone(),
        method_label: c.summary().method_label.clone(),
        avg_bits: c.summary().avg_bits,
        classes: c.classes().to_vec(),
    };
    let backend = engine.backend_name();
    let backend_reason = engine.backend_reason().to_string();
    let kernels = Kernels::detect(c.activations());
    if let Some(w) = engine.backend_warning() {
        let _ = writeln!(err, "warning: {w}");
    }
    if !args.json {
        let _ = write!(
            out,
            "{}",
            output::header_text(
                &model,
                &format!("{backend} — {backend_reason}"),
                &kernels,
                engine.load_ms
            )
        );
    }
    let k = args.top_k.clamp(1, c.classes().len().max(1));
    let pb = progress::bar(
        args.photos.len(),
        "classifying",
        args.quiet || args.photos.len() < 2,
    );
    let mut photos = Vec::with_capacity(args.photos.len());
    for path in &args.photos {
        let result = classify::classify_photo(&engine, path, k);
        pb.suspend(|| {
            if let Some(line) = output::error_line(&result) {
                let _ = writeln!(err, "{line}");
            }
            if !args.json {
                let _ = write!(out, "{}", output::photo_text(&result));
            }
        });
        pb.inc(1);
        photos.push(result);
    }
    pb.finish_and_clear();
    let failed = photos
        .iter()
        .filter(|p| matches!(p, PhotoResult::Failed { .. }))
        .count();
    let report = Report {
        model,
        backend,
        backend_reason,
        kernels,
        load_ms: engine.load_ms,
        classified: photos.len() - failed,
        failed,
        photos,
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => {
                let _ = writeln!(out, "{s}");
            }
            Err(e) => {
                let _ = writeln!(err, "error: cannot encode JSON: {e}");
                return (EXIT_ERROR, Some(report));
            }
        }
    } else {
        let _ = write!(out, "{}", output::summary_text(&report));
    }
    let _ = out.flush();
    let code = if failed > 0 {
        EXIT_SOME_FAILED
    } else {
        EXIT_OK
    };
    (code, Some(report))
}
