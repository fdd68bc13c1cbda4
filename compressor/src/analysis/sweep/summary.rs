//! A sweep's results: one row per run from the run's report, aggregated over seeds into the
//! paper's Table 1 layout (mean ± std) and the ablation tables (mean with a 95% CI).

use super::grid::{fmt_value, Param};
use super::plan::PlannedRow;
use super::stats::Summary;
use crate::methods::Method;
use crate::run::report::{MethodResult, Report};
use serde::{Deserialize, Serialize};

/// One run's test metrics.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    /// The method's paper name (`FQ-BAQ`).
    pub method: String,
    /// `paper`, `official-code`, `lambda_bit=0.001`; `single` for FP32/U8/U4 (no seed).
    pub setting: String,
    pub ablation: Option<(Param, f64)>,
    pub seed: Option<u64>,
    /// `methods/<variant dir>` the run lives in.
    pub run: String,
    pub avg_bits: f64,
    pub gbops: f64,
    pub avg_acc: f64,
    pub worst_acc: f64,
    pub gap: f64,
    pub eopp0: f64,
    pub eodd: f64,
}

impl Row {
    /// A report row under the setting its plan row aggregates it by.
    pub fn new(r: &MethodResult, p: &PlannedRow) -> Self {
        let m = &r.metrics;
        Self {
            method: r.method.label().to_string(),
            setting: p.setting.clone(),
            ablation: p.ablation,
            seed: p.seed,
            run: r.id().name(),
            avg_bits: r.avg_bits,
            gbops: r.gbops,
            avg_acc: m.avg_acc,
            worst_acc: m.worst_acc,
            gap: m.gap,
            eopp0: m.eopp0,
            eodd: m.eodd,
        }
    }
}

/// The rows of one (method, setting), summarised over seeds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Aggregate {
    /// `FQ-BAQ`, or `FQ-BAQ (official code)` for a non-paper setting of the main table.
    pub label: String,
    pub method: String,
    pub setting: String,
    pub ablation: Option<(Param, f64)>,
    pub seeds: Vec<u64>,
    pub avg_bits: Summary,
    pub gbops: Summary,
    pub avg_acc: Summary,
    pub worst_acc: Summary,
    pub gap: Summary,
    pub eopp0: Summary,
    pub eodd: Summary,
}

/// Group rows by (method, setting) in first-seen order and summarise each group.
pub fn aggregate(rows: &[Row]) -> Vec<Aggregate> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in rows {
        let k = (r.method.clone(), r.setting.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(method, setting)| {
            let g: Vec<&Row> = rows
                .iter()
                .filter(|r| r.method == method && r.setting == setting)
                .collect();
            let s = |f: fn(&Row) -> f64| {
                Summary::of(&g.iter().map(|r| f(r)).collect::<Vec<_>>())
                    .expect("a group has at least one row")
            };
            let label = match setting.as_str() {
                "single" | "paper" => method.clone(),
                "official-code" => format!("{method} (official code)"),
                other => format!("{method} ({other})"),
            };
            Aggregate {
                label,
                ablation: g[0].ablation,
                seeds: g.iter().filter_map(|r| r.seed).collect(),
                avg_bits: s(|r| r.avg_bits),
                gbops: s(|r| r.gbops),
                avg_acc: s(|r| r.avg_acc),
                worst_acc: s(|r| r.worst_acc),
                gap: s(|r| r.gap),
                eopp0: s(|r| r.eopp0),
                eodd: s(|r| r.eodd),
                method,
                setting,
            }
        })
        .collect()
}

/// The main table in the layout of the paper's Table 1 (accuracies in percent, mean ± std over
/// seeds where there are several).
pub fn table1(report: &Report, aggs: &[Aggregate]) -> String {
    let mut s = String::from(
        "| Dataset | Model | Method | AvgBits | GBOPs | AvgAcc | WorstAcc | Gap | EOpp0 | EOdd | Seeds |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for a in aggs.iter().filter(|a| a.ablation.is_none()) {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            report.dataset,
            report.arch,
            a.label,
            a.avg_bits.mean_std(1.0, 2),
            a.gbops.mean_std(1.0, 4),
            a.avg_acc.mean_std(100.0, 2),
            a.worst_acc.mean_std(100.0, 2),
            a.gap.mean_std(100.0, 2),
            a.eopp0.mean_std(1.0, 3),
            a.eodd.mean_std(1.0, 3),
            seeds_cell(&a.seeds),
        );
    }
    s
}

/// One table per ablated parameter: each value's mean and 95% CI over seeds.
pub fn ablation_tables(aggs: &[Aggregate]) -> String {
    let mut s = String::new();
    for p in Param::ALL {
        let rows: Vec<&Aggregate> = aggs
            .iter()
            .filter(|a| a.ablation.is_some_and(|(q, _)| q == p))
            .collect();
        let Some(first) = rows.first() else { continue };
        s += &format!(
            "### {} ({}, mean [95% CI] over seeds)\n\n| {} | Seeds | AvgBits | AvgAcc | WorstAcc | Gap |\n|---|---|---|---|---|---|\n",
            p.title(),
            first.method,
            p.name()
        );
        for a in rows {
            let v = a.ablation.map_or(String::new(), |(_, v)| fmt_value(v));
            s += &format!(
                "| {v} | {} | {} | {} | {} | {} |\n",
                seeds_cell(&a.seeds),
                a.avg_bits.mean_ci(1.0, 2),
                a.avg_acc.mean_ci(100.0, 2),
                a.worst_acc.mean_ci(100.0, 2),
                a.gap.mean_ci(100.0, 2),
            );
        }
        s += "\n";
    }
    s
}

fn seeds_cell(seeds: &[u64]) -> String {
    if seeds.is_empty() {
        "—".into()
    } else {
        seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether a method's row in the main table needs no seed (deterministic given the FP32 model).
pub fn is_single(m: Method) -> bool {
    m == Method::Fp32 || m.ptq_width().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: &str, setting: &str, seed: Option<u64>, worst: f64) -> Row {
        Row {
            method: method.into(),
            setting: setting.into(),
            ablation: None,
            seed,
            run: String::new(),
            avg_bits: 4.0,
            gbops: 0.1,
            avg_acc: worst + 0.05,
            worst_acc: worst,
            gap: 0.1,
            eopp0: 0.003,
            eodd: 0.2,
        }
    }

    #[test]
    fn groups_by_method_and_setting_in_order() {
        let rows = vec![
            row("U4", "single", None, 0.3),
            row("FQ-BAQ", "paper", Some(2), 0.40),
            row("FQ-BAQ", "official-code", Some(2), 0.35),
            row("FQ-BAQ", "paper", Some(42), 0.42),
        ];
        let a = aggregate(&rows);
        let labels: Vec<&str> = a.iter().map(|a| a.label.as_str()).collect();
        assert_eq!(labels, ["U4", "FQ-BAQ", "FQ-BAQ (official code)"]);
        assert_eq!(a[1].seeds, [2, 42]);
        assert!((a[1].worst_acc.mean - 0.41).abs() < 1e-12);
        let report = Report {
            dataset: "fitzpatrick17k".into(),
            arch: "resnet18".into(),
            classes: vec![],
            groups: vec![],
            test_samples: 0,
            results: vec![],
            activations: vec![],
        };
        let t = table1(&report, &a);
        assert!(
            t.contains("| fitzpatrick17k | resnet18 | FQ-BAQ | 4.00±0.00 |"),
            "{t}"
        );
        assert!(t.contains("| 41.00±1.41 |"), "{t}");
        assert!(t.contains("| U4 | 4.00 | 0.1000 | 35.00 | 30.00 |"), "{t}");
    }
}
