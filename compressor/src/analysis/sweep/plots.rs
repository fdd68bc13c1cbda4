//! The sweep's pictures: the frontier of the main table's methods, a radar of their scores and
//! one chart per ablated parameter.

use super::grid::{fmt_value, Param};
use super::summary::Aggregate;
use crate::run::report::Report;
use anyhow::Result;
use fq_eval::plots::{
    ablation_chart, frontier_chart, radar_chart, AblationPoint, Estimate, FrontierPoint,
    RadarSeries,
};
use std::path::Path;

/// `frontier.png`, `radar.png` and `ablation_<param>.png` in `dir`.
pub fn draw(dir: &Path, report: &Report, aggs: &[Aggregate]) -> Result<()> {
    let main: Vec<&Aggregate> = aggs.iter().filter(|a| a.ablation.is_none()).collect();
    let points: Vec<FrontierPoint> = main
        .iter()
        .map(|a| FrontierPoint {
            label: a.label.clone(),
            avg_bits: a.avg_bits.mean,
            worst_acc: a.worst_acc.mean,
            avg_acc: a.avg_acc.mean,
            worst_err: a.worst_acc.std,
            avg_err: a.avg_acc.std,
        })
        .collect();
    let name = format!("{} on {}", report.arch, report.dataset);
    frontier_chart(
        &dir.join("frontier.png"),
        &format!("Accuracy vs size — {name} (mean ± std over seeds)"),
        &points,
    )?;
    let axes: Vec<String> = [
        "AvgAcc",
        "WorstAcc",
        "1 − Gap",
        "1 − EOdd",
        "1 − AvgBits/32",
    ]
    .map(String::from)
    .to_vec();
    let series: Vec<RadarSeries> = main
        .iter()
        .map(|a| {
            let v = [
                a.avg_acc.mean,
                a.worst_acc.mean,
                1.0 - a.gap.mean,
                1.0 - a.eodd.mean,
                1.0 - a.avg_bits.mean / 32.0,
            ];
            RadarSeries {
                name: a.label.clone(),
                values: v.map(|x| x.clamp(0.0, 1.0)).to_vec(),
            }
        })
        .collect();
    radar_chart(
        &dir.join("radar.png"),
        &format!("Scores per method — {name} (larger is better)"),
        &axes,
        &series,
        0.0,
    )?;
    for p in Param::ALL {
        let rows: Vec<&Aggregate> = aggs
            .iter()
            .filter(|a| a.ablation.is_some_and(|(q, _)| q == p))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let ci = |s: &super::stats::Summary| Estimate::new(s.mean, s.ci95.unwrap_or(0.0));
        let points: Vec<AblationPoint> = rows
            .iter()
            .map(|a| AblationPoint {
                value: a.ablation.map_or(String::new(), |(_, v)| fmt_value(v)),
                avg_acc: ci(&a.avg_acc),
                worst_acc: ci(&a.worst_acc),
                avg_bits: ci(&a.avg_bits),
            })
            .collect();
        ablation_chart(
            &dir.join(format!("ablation_{}.png", p.name())),
            &format!(
                "Ablation of the {} — {} {name} (mean, 95% CI)",
                p.title(),
                rows[0].method
            ),
            p.title(),
            &points,
        )?;
    }
    Ok(())
}
