//! The charts of a diagnosis: per-group bars of every metric for each model (FP32 beside the
//! quantized ones) and the distribution of per-sample logit variances.

use super::{Diagnostics, GroupDiagnostics};
use anyhow::Result;
use fq_eval::plots::{distribution_chart, group_metric_panels, MetricPanel};
use std::path::Path;

/// Write `groups.png` and `logit_variance.png` into `dir`.
pub fn draw(d: &Diagnostics, dir: &Path) -> Result<()> {
    type Get = fn(&GroupDiagnostics) -> Option<f64>;
    let metrics: [(&str, Get); 5] = [
        ("Accuracy", |g| g.accuracy),
        ("Mean logit variance (over classes)", |g| g.logit_variance),
        ("Mean loss", |g| g.mean_loss),
        ("Gradient norm ||∇L_g||", |g| g.grad_norm),
        // Left out where most products crossed a kink on both sides: not a curvature estimate.
        (
            "Top Hessian eigenvalue of L_g (kink-dominated runs left out)",
            |g| {
                g.hessian
                    .as_ref()
                    .filter(|h| 2 * g.hvp_one_sided <= h.iterations)
                    .map(|h| h.eigenvalue)
            },
        ),
    ];
    let panels: Vec<MetricPanel> = metrics
        .iter()
        .map(|(title, get)| MetricPanel {
            title: title.to_string(),
            series: d
                .variants
                .iter()
                .map(|v| {
                    (
                        v.label.clone(),
                        v.groups
                            .iter()
                            .map(|g| get(g).unwrap_or(f64::NAN))
                            .collect(),
                    )
                })
                .collect(),
        })
        .collect();
    let title = format!(
        "Per-group diagnostics before and after quantization — {} on {}",
        d.arch, d.dataset
    );
    group_metric_panels(&dir.join("groups.png"), &title, &d.groups, &panels)?;
    let series: Vec<(String, Vec<f64>)> = d
        .variants
        .iter()
        .flat_map(|v| {
            v.groups.iter().map(|g| {
                (
                    format!("{} [{}]", v.label, g.group),
                    g.logit_variances.clone(),
                )
            })
        })
        .collect();
    distribution_chart(
        &dir.join("logit_variance.png"),
        "Per-sample logit variance (over the classes), by model and group",
        "logit variance",
        &series,
    )?;
    Ok(())
}
