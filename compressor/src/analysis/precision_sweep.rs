//! Bellam & Kim's precision sweep (`fq-compress diagnose RUN --precision-sweep`): the run's FP32
//! model quantized after training, uniformly per channel at each weight width of `--bits`
//! (default int2 … int8 and int16), with FP32 as the reference point; for each width the
//! disparity measures of [`crate::analysis::diagnose`] (FVO, worst-group and average accuracy, and per
//! group the logit variance, loss, gradient norm and top Hessian eigenvalue), written to
//! `precision_sweep.json` and plotted against the bit-width in `precision_sweep.png` — the
//! figure of their paper ("int2 extreme, int8/int16 moderate disparity").
//!
//! The quantized models are built here from [`BitAssignment::uniform`], not from methods of the
//! run, so the sweep needs nothing but `fp32.safetensors`. Every width is measured by the same
//! [`diagnose_model`] as `diagnose`'s methods, on the same fixed per-group subsets (seeded by
//! `--seed`), so the points differ only by the quantization.
//!
//! Not resumable: on the demo run the nine points took 478 s wall (42–80 s each, 2.3 min of CPU)
//! on a shared 2-core machine at a load average of ~21, so an interrupted sweep is simply run
//! again; both files are written (atomically) at the end.

use crate::analysis::diagnose::{diagnose_model, materialize, DiagnoseConfig, VariantDiagnostics};
use crate::nn::model::Model;
use crate::nn::params::ParamStore;
use crate::nn::quant::{BitAssignment, Granularity};
use crate::run::run_dir::Run;
use crate::support::run_files::RunFiles;
use anyhow::{bail, Context, Result};
use fq_eval::plots::{line_panels, LinePanel};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The widths of the paper's sweep: int2 ("extreme" disparity) … int8, and int16.
pub const DEFAULT_BITS: [u8; 8] = [2, 3, 4, 5, 6, 7, 8, 16];

/// One point of the sweep: a width (or FP32) and its measures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PrecisionPoint {
    /// Weight bit-width of every Conv2d/Linear channel; `None` for the FP32 reference.
    pub bits: Option<u8>,
    /// `int4`, …, `FP32`.
    pub label: String,
    /// Fairness Violation Observed: max − min group accuracy (a fraction).
    pub fvo: f64,
    /// The group with the lowest accuracy (the first such when tied).
    pub worst_group: String,
    pub worst_group_accuracy: f64,
    /// Unweighted mean of the group accuracies (spec §8 AvgAcc).
    pub average_accuracy: f64,
    /// Plain accuracy over all test samples.
    pub overall_accuracy: f64,
    /// Per group: accuracy, logit variance, loss, gradient norm, top Hessian eigenvalue.
    pub diagnostics: VariantDiagnostics,
}

/// `precision_sweep.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PrecisionSweep {
    pub dataset: String,
    pub arch: String,
    pub groups: Vec<String>,
    pub train_group_counts: Vec<usize>,
    /// Always per channel (one scale per output channel), as the run's PTQ rows.
    pub granularity: Granularity,
    pub config: DiagnoseConfig,
    /// The swept widths, ascending; the points follow them, then FP32.
    pub bits: Vec<u8>,
    pub points: Vec<PrecisionPoint>,
    pub seconds: f64,
}

/// The widths to sweep, sorted: each in 2..=16 (1 bit has no scale and 0 none at all in the
/// quantizer; above 16 bits is FP32 for every purpose here), without repeats.
pub fn check_bits(bits: &[u8]) -> Result<Vec<u8>> {
    if bits.is_empty() {
        bail!("--bits: no widths to sweep (e.g. --bits 2,4,8)");
    }
    let mut out = bits.to_vec();
    out.sort_unstable();
    for w in out.windows(2) {
        if w[0] == w[1] {
            bail!("--bits: {} is listed twice", w[0]);
        }
    }
    if let Some(b) = out.iter().find(|b| !(2..=16).contains(*b)) {
        bail!("--bits: {b} is not a width the sweep can run (each must be 2..=16)");
    }
    Ok(out)
}

/// Accuracy summary of one diagnosed model: (worst group, its accuracy, unweighted mean, overall).
fn summary(v: &VariantDiagnostics) -> Result<(String, f64, f64, f64)> {
    let with: Vec<_> = v
        .groups
        .iter()
        .filter_map(|g| g.accuracy.map(|a| (g, a)))
        .collect();
    let Some(worst) = with.iter().min_by(|a, b| a.1.total_cmp(&b.1)) else {
        bail!("{}: no group has test samples", v.label);
    };
    let avg = with.iter().map(|(_, a)| a).sum::<f64>() / with.len() as f64;
    let n: usize = with.iter().map(|(g, _)| g.samples).sum();
    let correct: f64 = with.iter().map(|(g, a)| a * g.samples as f64).sum();
    Ok((worst.0.group.clone(), worst.1, avg, correct / n as f64))
}

/// Run the sweep on `run` at `bits` (checked by [`check_bits`]) plus FP32; writes
/// `precision_sweep.json` and `precision_sweep.png` into `out` (default
/// `RUN_DIR/diagnostics/`). Prints one line per width as it finishes.
pub fn precision_sweep(
    run: &Run,
    bits: &[u8],
    cfg: &DiagnoseConfig,
    out: Option<&Path>,
) -> Result<(PrecisionSweep, PathBuf)> {
    let start = std::time::Instant::now();
    let bits = check_bits(bits)?;
    let fp32 = RunFiles::new(&run.dir).fp32();
    if !fp32.exists() {
        bail!(
            "{}: no trained FP32 model (run `fq-compress train` or `demo` first)",
            fp32.display()
        );
    }
    let params = ParamStore::load_safetensors(&run.graph, &fp32, 0, &run.device, false)?;
    let model = Model::new(run.graph.clone(), params, run.device.clone());
    let layers = run.graph.quant_layers()?;
    let groups_with_samples = crate::analysis::diagnose::grad_subsets(&run.test, cfg)
        .iter()
        .filter(|s| !s.is_empty())
        .count();
    let widths: Vec<Option<u8>> = bits.iter().copied().map(Some).chain([None]).collect();
    let share = (groups_with_samples * cfg.power_iters) as u64;
    let bar = crate::support::progress::bar(
        run.progress,
        widths.len() as u64 * share,
        "precision sweep [{elapsed_precise}] {bar:30} {pos}/{len} HVPs (at most) {msg}",
    );
    let mut points = Vec::new();
    for (i, &b) in widths.iter().enumerate() {
        let label = b.map_or_else(|| "FP32".to_string(), |b| format!("int{b}"));
        let quantized;
        let (method, m) = match b {
            Some(b) => {
                quantized = materialize(&model, &BitAssignment::uniform(&layers, b))?;
                (format!("ptq-u{b}"), &quantized)
            }
            None => ("fp32".to_string(), &model),
        };
        let before = bar.position();
        let d = diagnose_model(run, m, (method, label.clone()), cfg, &bar)
            .with_context(|| format!("precision sweep at {label}"))?;
        bar.set_position(before + share);
        let (worst_group, worst, avg, overall) = summary(&d)?;
        let line = format!(
            "precision sweep {}/{}: {label:>5}: FVO {:.1} pp, worst group `{worst_group}` {:.1}%, average {:.1}%, {:.1} s",
            i + 1,
            widths.len(),
            100.0 * d.fvo,
            100.0 * worst,
            100.0 * avg,
            d.seconds
        );
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
        points.push(PrecisionPoint {
            bits: b,
            label,
            fvo: d.fvo,
            worst_group,
            worst_group_accuracy: worst,
            average_accuracy: avg,
            overall_accuracy: overall,
            diagnostics: d,
        });
    }
    bar.finish_and_clear();
    let sweep = PrecisionSweep {
        dataset: run.dataset.name.clone(),
        arch: run.graph.arch.clone(),
        groups: run.dataset.groups.clone(),
        train_group_counts: run.train.group_counts(),
        granularity: Granularity::PerChannel,
        config: cfg.clone(),
        bits,
        points,
        seconds: start.elapsed().as_secs_f64(),
    };
    let dir = out.map_or_else(|| run.dir.join("diagnostics"), Path::to_path_buf);
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    fq_runtime::atomic::write_json_atomic(&dir.join("precision_sweep.json"), &sweep)?;
    draw(&sweep, &dir.join("precision_sweep.png"))?;
    Ok((sweep, dir))
}

/// The figure: x = the widths then FP32; panels FVO, accuracy (average, worst group, each group),
/// and per group the logit variance, loss, gradient norm and top Hessian eigenvalue.
pub fn draw(s: &PrecisionSweep, path: &Path) -> Result<()> {
    let x: Vec<String> = s.points.iter().map(|p| p.label.clone()).collect();
    let per_group = |get: &dyn Fn(&crate::analysis::diagnose::GroupDiagnostics) -> Option<f64>| {
        s.groups
            .iter()
            .enumerate()
            .map(|(g, name)| {
                let v = s
                    .points
                    .iter()
                    .map(|p| {
                        p.diagnostics
                            .groups
                            .get(g)
                            .and_then(get)
                            .unwrap_or(f64::NAN)
                    })
                    .collect();
                (name.clone(), v)
            })
            .collect::<Vec<_>>()
    };
    let pct = |f: &dyn Fn(&PrecisionPoint) -> f64| s.points.iter().map(|p| 100.0 * f(p)).collect();
    // The groups first, so each keeps its colour of the other panels.
    let mut accuracy = per_group(&|g| g.accuracy.map(|a| 100.0 * a));
    accuracy.push(("average".to_string(), pct(&|p| p.average_accuracy)));
    let panel = |title: &str, y: &str, series| LinePanel {
        title: title.into(),
        y_desc: y.into(),
        series,
        overlay: None,
    };
    let panels = [
        panel(
            "Fairness Violation Observed (max − min group accuracy)",
            "percentage points",
            vec![("FVO".to_string(), pct(&|p| p.fvo))],
        ),
        LinePanel {
            overlay: Some(("worst group".into(), pct(&|p| p.worst_group_accuracy))),
            ..panel("Accuracy", "%", accuracy)
        },
        panel(
            "Mean logit variance (over classes), per group",
            "variance",
            per_group(&|g| g.logit_variance),
        ),
        panel(
            "Mean loss, per group",
            "cross-entropy",
            per_group(&|g| g.mean_loss),
        ),
        panel(
            "Gradient norm ||∇L_g||, per group",
            "L2 norm",
            per_group(&|g| g.grad_norm),
        ),
        // As in `groups.png`: left out where most products crossed a kink on both sides.
        panel(
            "Top Hessian eigenvalue of L_g, per group (kink-dominated left out)",
            "λ_max",
            per_group(&|g| {
                g.hessian
                    .as_ref()
                    .filter(|h| 2 * g.hvp_one_sided <= h.iterations)
                    .map(|h| h.eigenvalue)
            }),
        ),
    ];
    let title = format!(
        "Precision sweep: uniform per-channel PTQ — {} on {}",
        s.arch, s.dataset
    );
    line_panels(path, &title, &x, &panels)?;
    Ok(())
}

/// The table printed after a sweep: one row per width.
pub fn table(s: &PrecisionSweep) -> String {
    let mut out = String::from("| Weights | FVO | Worst group | Avg acc |");
    for g in &s.groups {
        out += &format!(" LogitVar {g} | GradNorm {g} | λ_max {g} |");
    }
    out += "\n|---|---|---|---|";
    out += &"---|---|---|".repeat(s.groups.len());
    out += "\n";
    let f = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |x| format!("{x:.p$}"));
    for p in &s.points {
        out += &format!(
            "| {} | {:.1} | {} {:.1}% | {:.1}% |",
            p.label,
            100.0 * p.fvo,
            p.worst_group,
            100.0 * p.worst_group_accuracy,
            100.0 * p.average_accuracy
        );
        for g in &p.diagnostics.groups {
            out += &format!(
                " {} | {} | {} |",
                f(g.logit_variance, 3),
                f(g.grad_norm, 3),
                f(g.hessian.as_ref().map(|h| h.eigenvalue), 1)
            );
        }
        out += "\n";
    }
    out
}
