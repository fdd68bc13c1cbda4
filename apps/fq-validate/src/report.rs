//! The validation report in three forms: JSON (machines), markdown (people) and a PNG chart of
//! per-group accuracy at compression time and in the field, with intervals. All written
//! atomically.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use fq_eval::metrics::FairnessMetrics;
use fq_eval::plots::{group_accuracy_interval_chart, IntervalSeries};
use fq_runtime::atomic::{write_atomic, write_json_atomic};
use serde::Serialize;

use crate::compare::{GroupComparison, Settings, Verdict};
use crate::evaluate::BadImage;

/// Everything `validation.json` holds.
#[derive(Clone, Debug, Serialize)]
pub struct ValidationReport {
    pub model: String,
    pub method: String,
    pub method_label: String,
    pub avg_bits: f64,
    /// The hardware the field figures were measured on.
    pub backend: String,
    /// Why that backend (`auto: only a software GPU adapter …`).
    pub backend_reason: String,
    pub dataset: String,
    pub samples: usize,
    pub mean_inference_ms: f64,
    pub settings: Settings,
    /// How the statistics were computed, in words.
    pub statistics: String,
    pub groups: Vec<GroupComparison>,
    pub compression_metrics: FairnessMetrics,
    pub field_metrics: FairnessMetrics,
    pub verdict: Verdict,
    pub skipped_rows: usize,
    pub bad_images: Vec<BadImage>,
}

/// The statistics sentence of every report.
pub fn statistics_text(s: &Settings) -> String {
    format!(
        "Accuracies with {c:.0}% Wilson score intervals; the difference (field - compression time) \
         with Newcombe's {c:.0}% hybrid score interval; 'significant' = pooled two-proportion \
         z-test, two-sided, p < {a}. The z-test's normal approximation is rough when a group has \
         fewer than about 5 errors or 5 correct answers.",
        c = 100.0 * s.confidence,
        a = s.alpha
    )
}

/// Paths of the written files.
pub struct Written {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub chart: PathBuf,
}

/// Writes `validation.json`, `validation.md` and `validation.png` into `dir`.
pub fn write(dir: &Path, r: &ValidationReport) -> Result<Written> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let w = Written {
        json: dir.join("validation.json"),
        markdown: dir.join("validation.md"),
        chart: dir.join("validation.png"),
    };
    write_json_atomic(&w.json, r)?;
    write_atomic(&w.markdown, markdown(r, "validation.png").as_bytes())?;
    chart(&w.chart, r)?;
    Ok(w)
}

fn chart(path: &Path, r: &ValidationReport) -> Result<()> {
    let names: Vec<String> = r.groups.iter().map(|g| g.group.clone()).collect();
    let series =
        |name: &str, pick: fn(&GroupComparison) -> Option<crate::compare::Rate>| IntervalSeries {
            name: name.to_string(),
            values: r
                .groups
                .iter()
                .map(|g| pick(g).map_or(f64::NAN, |x| x.accuracy))
                .collect(),
            intervals: r
                .groups
                .iter()
                .map(|g| pick(g).map(|x| x.interval))
                .collect(),
        };
    let title = format!(
        "{} ({}) per-group accuracy: compression time vs field",
        r.model, r.method_label
    );
    group_accuracy_interval_chart(
        path,
        &title,
        &names,
        &[
            series("compression time", |g| g.compression),
            series("field", |g| g.field),
        ],
        &format!("{:.0}% Wilson interval", 100.0 * r.settings.confidence),
    )?;
    Ok(())
}

fn pct(v: f64) -> String {
    format!("{:.1}", 100.0 * v)
}

/// The markdown report; `chart` is the chart's path relative to the report.
pub fn markdown(r: &ValidationReport, chart: &str) -> String {
    let v = &r.verdict;
    let mut s = format!(
        "# Field validation of `{}` ({})\n\n\
         **{}**\n\n{}.\n\n\
         - Model: `{}`, method {} ({:.2} bits/weight)\n\
         - Measured on: {} — {} (mean {:.1} ms per image)\n\
         - Held-out set: {}, {} images{}{}\n\
         - Tolerance: the worst group may lose at most {} percentage points\n\n",
        r.model,
        r.method_label,
        if v.pass { "PASS" } else { "FAIL" },
        v.message,
        r.model,
        r.method,
        r.avg_bits,
        r.backend,
        r.backend_reason,
        r.mean_inference_ms,
        r.dataset,
        r.samples,
        if r.skipped_rows > 0 {
            format!(", {} CSV rows skipped", r.skipped_rows)
        } else {
            String::new()
        },
        if r.bad_images.is_empty() {
            String::new()
        } else {
            format!(", {} undecodable images left out", r.bad_images.len())
        },
        pct(r.settings.tolerance),
    );
    let ci = format!("{:.0}% CI", 100.0 * r.settings.confidence);
    s += &format!(
        "## Per group\n\n\
         | Group | Compression time: acc % ({ci}) | n | Field: acc % ({ci}) | n | Difference, points ({ci}) | z | p | Significant (p < {}) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        r.settings.alpha
    );
    let rate = |x: &Option<crate::compare::Rate>| match x {
        Some(x) => (
            format!(
                "{} ({}–{})",
                pct(x.accuracy),
                pct(x.interval.lo),
                pct(x.interval.hi)
            ),
            x.count.to_string(),
        ),
        None => ("—".to_string(), "0".to_string()),
    };
    for g in &r.groups {
        let (ca, cn) = rate(&g.compression);
        let (fa, fn_) = rate(&g.field);
        let diff = match (g.difference, g.difference_interval) {
            (Some(d), Some(i)) => format!(
                "{:+.1} ({:+.1} to {:+.1})",
                100.0 * d,
                100.0 * i.lo,
                100.0 * i.hi
            ),
            _ => "—".into(),
        };
        let opt = |x: Option<f64>, p: usize| x.map_or("—".into(), |v| format!("{v:.p$}"));
        let sig = match g.significant {
            Some(true) => "yes",
            Some(false) => "no",
            None => "—",
        };
        s += &format!(
            "| {}{} | {ca} | {cn} | {fa} | {fn_} | {diff} | {} | {} | {sig} |\n",
            g.group,
            if g.beyond_tolerance { " ⚠" } else { "" },
            opt(g.z, 2),
            opt(g.p_value, 4),
        );
    }
    s += "\n⚠: the group lost more than the tolerance against its own compression-time accuracy.\n\n";
    s += &format!("{}\n\n", statistics_text(&r.settings));
    let (c, f) = (&r.compression_metrics, &r.field_metrics);
    s += "## Summary metrics\n\n| Metric | Compression time | Field |\n|---|---|---|\n";
    for (name, a, b, percent) in [
        ("Mean group accuracy (AvgAcc)", c.avg_acc, f.avg_acc, true),
        (
            "Worst group accuracy (WorstAcc)",
            c.worst_acc,
            f.worst_acc,
            true,
        ),
        ("Gap (best - worst)", c.gap, f.gap, true),
        ("Overall accuracy", c.overall_acc, f.overall_acc, true),
        ("EOpp0", c.eopp0, f.eopp0, false),
        ("EOpp1", c.eopp1, f.eopp1, false),
        ("EOdd", c.eodd, f.eodd, false),
    ] {
        let show = |v: f64| {
            if percent {
                format!("{}%", pct(v))
            } else {
                format!("{v:.3}")
            }
        };
        s += &format!("| {name} | {} | {} |\n", show(a), show(b));
    }
    s += &format!("\n![Per-group accuracy, compression time vs field]({chart})\n");
    if !r.bad_images.is_empty() {
        s += "\n## Images left out\n\n";
        for b in &r.bad_images {
            s += &format!("- {} (`{}`): {}\n", b.row, b.image, b.error);
        }
    }
    s
}
