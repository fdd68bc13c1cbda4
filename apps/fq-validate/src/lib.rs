//! `fq-validate`: the field team's tool. Runs a packed model on a held-out labelled set on this
//! hardware and checks per group that accuracy is still what the compression report (carried in
//! the model file) promised; writes JSON, markdown and a chart, and exits non-zero on FAIL.
//!
//! The library holds everything but `main`, so the end-to-end tests call [`run`] directly.

pub mod args;
pub mod compare;
pub mod data;
pub mod engine;
pub mod evaluate;
pub mod progress;
pub mod report;

use std::io::Write;

use anyhow::{bail, Context, Result};
pub use args::Args;
use engine::Engine;

use compare::Settings;
use report::{ValidationReport, Written};

/// Exit status: the worst group is within the tolerance.
pub const EXIT_PASS: i32 = 0;
/// Exit status: the worst group fell below the tolerance.
pub const EXIT_FAIL: i32 = 1;
/// Exit status: the model, the data or the arguments could not be used.
pub const EXIT_ERROR: i32 = 2;

/// A finished validation: the report, where it was written and the field predictions.
pub struct Outcome {
    pub report: ValidationReport,
    pub written: Written,
    pub predictions: Vec<usize>,
}

impl Outcome {
    pub fn exit_code(&self) -> i32 {
        if self.report.verdict.pass {
            EXIT_PASS
        } else {
            EXIT_FAIL
        }
    }
}

/// Validates and writes the reports; errors are [`EXIT_ERROR`] cases.
pub fn validate(a: &Args) -> Result<Outcome> {
    let settings = Settings {
        tolerance: a.tolerance,
        alpha: a.alpha,
        confidence: a.confidence,
    };
    if !(0.0..1.0).contains(&a.tolerance) {
        bail!(
            "--tolerance must be a fraction in [0, 1), got {}",
            a.tolerance
        );
    }
    let open_unit = |v: f64| v > 0.0 && v < 1.0;
    if !open_unit(a.alpha) || !open_unit(a.confidence) {
        bail!("--alpha and --confidence must be in (0, 1)");
    }
    let engine = Engine::load(&a.model, a.backend)?;
    if let Some(w) = &engine.warning {
        eprintln!("warning: {w}");
    }
    let summary = engine.classifier.summary().clone();
    let Some(promised) = summary.test_metrics.clone() else {
        bail!(
            "{}: the model file carries no compression-time per-group figures to compare with \
             (export it from a run whose report has results for {})",
            a.model.display(),
            summary.method_label
        );
    };
    let ds = data::load(&a.data)?;
    let field = evaluate::run(&engine, &ds, a.skip_bad_images, a.quiet)?;
    let (groups, verdict) = compare::compare(&promised, &field.metrics, &settings)
        .map_err(anyhow::Error::msg)
        .with_context(|| a.model.display().to_string())?;
    let report = ValidationReport {
        model: a.model.display().to_string(),
        method: summary.method.clone(),
        method_label: summary.method_label.clone(),
        avg_bits: summary.avg_bits,
        backend: engine.backend_name(),
        backend_reason: engine.reason.clone(),
        dataset: ds.name.clone(),
        samples: field.predictions.len(),
        mean_inference_ms: field.mean_inference_ms,
        settings,
        statistics: report::statistics_text(&settings),
        groups,
        compression_metrics: promised,
        field_metrics: field.metrics,
        verdict,
        skipped_rows: ds.skipped.len(),
        bad_images: field.bad_images,
    };
    let written = report::write(&a.out, &report)?;
    Ok(Outcome {
        report,
        written,
        predictions: field.predictions,
    })
}

/// Runs the tool: the markdown report and the verdict on `out`, errors on `err`; returns the exit
/// status.
pub fn run(a: &Args, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match validate(a) {
        Ok(o) => {
            let _ = write!(
                out,
                "{}",
                report::markdown(&o.report, &o.written.chart.display().to_string())
            );
            let _ = writeln!(
                out,
                "\nwrote {}, {} and {}\n{}",
                o.written.json.display(),
                o.written.markdown.display(),
                o.written.chart.display(),
                o.report.verdict.message
            );
            o.exit_code()
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            EXIT_ERROR
        }
    }
}
