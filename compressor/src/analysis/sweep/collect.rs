//! `sweep --collect` (and the end of every sequential sweep): the finished cells' rows merged
//! into the run's `report.json`, then `results.json`, `table1.md`, `ablations.md` and the plots.
//! It refuses to write tables while cells are missing, and names each one with why (its error,
//! or that it has not finished) and the command that runs it.

use super::cell::{self, Status};
use super::plan::Plan;
use super::summary::{self, aggregate, Aggregate, Row};
use super::{plots, SweepOutput};
use crate::run::report::Report;
use crate::support::run_files::RunFiles;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;

/// What `results.json` holds.
#[derive(Serialize)]
struct Results<'a> {
    dataset: &'a str,
    arch: &'a str,
    rows: &'a [Row],
    aggregates: &'a [Aggregate],
}

/// The cells that have not finished, one line each.
pub fn unfinished(plan: &Plan, out: &Path) -> Vec<String> {
    plan.cells
        .iter()
        .filter_map(|c| {
            let why = match cell::status(out, c) {
                Status::Done => return None,
                Status::Failed(e) => {
                    format!("failed: {}", e.lines().next().unwrap_or("(no message)"))
                }
                Status::Missing => format!(
                    "not finished (not run yet, still running, or killed; its Slurm log is {})",
                    out.join("logs")
                        .join(format!("cell-{}.out", c.index))
                        .display()
                ),
            };
            Some(format!("cell {} ({}): {why}", c.index, c.id.name()))
        })
        .collect()
}

/// Merge the cells' rows into `run_dir/report.json` and write the sweep's tables and plots.
pub fn collect(run_dir: &Path, out: &Path, plan: &Plan) -> Result<SweepOutput> {
    let missing = unfinished(plan, out);
    if !missing.is_empty() {
        bail!(
            "{} of {} cells of {} have not finished; run them (`fq-compress sweep --run-dir {} --cell N`, a finished cell is skipped) and collect again:\n  {}",
            missing.len(),
            plan.cells.len(),
            out.join(super::plan::PLAN_FILE).display(),
            run_dir.display(),
            missing.join("\n  ")
        );
    }
    let report_path = RunFiles::new(run_dir).report();
    let mut report: Option<Report> = if report_path.exists() {
        Some(Report::load(&report_path)?)
    } else {
        None
    };
    for c in &plan.cells {
        let path = cell::row_path(out, c);
        let one = Report::load(&path)?;
        let [r] = one.results.as_slice() else {
            bail!(
                "{}: a cell's row file holds exactly one result",
                path.display()
            );
        };
        if r.id() != c.id {
            bail!(
                "{}: holds {}, not cell {}'s {}",
                path.display(),
                r.id().name(),
                c.index,
                c.id.name()
            );
        }
        let merged = report.get_or_insert_with(|| Report {
            results: Vec::new(),
            activations: Vec::new(),
            ..one.clone()
        });
        if (
            &merged.dataset,
            &merged.arch,
            &merged.groups,
            merged.test_samples,
        ) != (&one.dataset, &one.arch, &one.groups, one.test_samples)
        {
            bail!(
                "{}: dataset, model, groups or test split differ from {}'s; was it made on another run?",
                path.display(),
                report_path.display()
            );
        }
        merged.upsert(r.clone());
    }
    let report = report.context("the plan has no cells")?;
    report.write(run_dir)?;

    let rows: Vec<Row> = plan
        .rows
        .iter()
        .map(|p| {
            let id = &plan.cells[p.cell].id;
            let r = report.get(id).expect("every cell's row was merged above");
            Row::new(r, p)
        })
        .collect();
    let aggs = aggregate(&rows);
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    fq_runtime::atomic::write_json_atomic(
        &out.join("results.json"),
        &Results {
            dataset: &report.dataset,
            arch: &report.arch,
            rows: &rows,
            aggregates: &aggs,
        },
    )?;
    let table1 = summary::table1(&report, &aggs);
    let ablations = summary::ablation_tables(&aggs);
    let seeds = plan
        .seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let controls = if plan
        .cells
        .iter()
        .any(|c| crate::methods::is_control(c.id.method))
    {
        " QAT-U4 and FP32-FT are the controls for the extra training: FQ-QAT's fine-tuning (same start, epochs, rates, seed) without the importance allocation and the fairness loss, at uniform 4 bits and unquantized."
    } else {
        ""
    };
    let md = format!(
        "# Sweep of {}\n\nTest split, {} samples. FP32, U8 and U4 are single runs; the other rows are mean ± std over seeds {seeds}.{controls}\n\n{table1}",
        run_dir.display(),
        report.test_samples
    );
    fq_runtime::atomic::write_atomic(&out.join("table1.md"), md.as_bytes())?;
    if !ablations.is_empty() {
        let md = format!("# Ablations of {}\n\n{ablations}", run_dir.display());
        fq_runtime::atomic::write_atomic(&out.join("ablations.md"), md.as_bytes())?;
    }
    plots::draw(out, &report, &aggs)?;
    Ok(SweepOutput {
        dir: out.to_path_buf(),
        table1,
        ablations,
    })
}
