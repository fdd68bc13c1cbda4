//! `fq-compress sweep`: the paper's seeds and ablations on one trained run. FP32, U8 and U4 are
//! evaluated once (they are deterministic given the FP32 model); FQ-QAT, FQ-BAQ (paper and
//! official-code presets) run once per seed, each ablated value of λ_bit, λ_fair and the logit
//! learning rate once per ablation seed. Every run is a method variant of the same run directory
//! (`methods/fq-baq-s42/`, ...), so finished runs are skipped and an interrupted sweep resumes.
//! The results go to `RUN_DIR/sweep/`: `results.json` (every run and the aggregates),
//! `table1.md` (the paper's Table 1 layout, mean ± std), `ablations.md` (mean, 95% CI) and the
//! frontier, radar and ablation plots.

pub mod grid;
mod plots;
pub mod stats;
pub mod summary;

use crate::methods::{Method, MethodId};
use crate::pipeline::Run;
use anyhow::{Context, Result};
use grid::{GridSpec, Job};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use summary::{aggregate, Aggregate, Row};

/// A job whose settings equal those of the run's plain method (e.g. the demo's FQ-BAQ is seed
/// 2's paper run) is that finished run: no need to train it again under a variant name.
fn reuse_plain_runs(run_dir: &Path, jobs: &mut [Job]) {
    for j in jobs.iter_mut() {
        let plain = MethodId::from(j.id.method);
        let dir = crate::methods::method_dir(run_dir, plain.clone());
        let finished = dir.join("bits.json").exists() && dir.join("weights.safetensors").exists();
        let same = crate::fairquant::CompressConfig::load(&dir.join("config.toml"))
            .is_ok_and(|c| c == j.config);
        if finished && same {
            j.id = plain;
        }
    }
}

/// What `results.json` holds.
#[derive(Serialize)]
struct Results<'a> {
    dataset: &'a str,
    arch: &'a str,
    rows: &'a [Row],
    aggregates: &'a [Aggregate],
}

/// The files a finished sweep wrote.
pub struct SweepOutput {
    pub dir: PathBuf,
    pub table1: String,
    pub ablations: String,
}

/// Run (or resume) the grid on an open run and aggregate it into `out` (default `RUN/sweep`).
pub fn sweep(run: &Run, spec: &GridSpec, out: Option<&Path>) -> Result<SweepOutput> {
    let start = Instant::now();
    let fp32 = run.train_fp32(true)?;
    let mut jobs = grid::jobs(spec, &run.cfg)?;
    reuse_plain_runs(&run.dir, &mut jobs);
    let single: Vec<MethodId> = [Method::Fp32, Method::PtqU8, Method::PtqU4]
        .into_iter()
        .map(MethodId::from)
        .collect();
    run.evaluate_methods(&fp32, &single, true)?;
    let mut unique: Vec<&Job> = Vec::new();
    for j in &jobs {
        if !unique.iter().any(|u| u.id == j.id) {
            unique.push(j);
        }
    }
    for (k, j) in unique.iter().enumerate() {
        println!(
            "[{}/{}] {} ({}, seed {}) at {:.0}s",
            k + 1,
            unique.len(),
            j.id.label(),
            j.setting,
            j.seed,
            start.elapsed().as_secs_f64()
        );
        crate::fairquant::compress(run, &fp32, &j.id, &j.config, true)
            .with_context(|| format!("sweep run {}", j.id.name()))?;
        run.evaluate_methods(&fp32, std::slice::from_ref(&j.id), true)?;
    }
    let report = crate::report::Report::load(&run.dir.join("report.json"))?;
    let mut rows: Vec<Row> = Vec::new();
    for id in &single {
        let r = report
            .get(id)
            .with_context(|| format!("report.json has no {} row", id.label()))?;
        rows.push(Row::new(r, None));
    }
    for j in &jobs {
        let r = report
            .get(&j.id)
            .with_context(|| format!("report.json has no {} row", j.id.label()))?;
        rows.push(Row::new(r, Some(j)));
    }
    let aggs = aggregate(&rows);
    let dir = out.map_or_else(|| run.dir.join("sweep"), Path::to_path_buf);
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    fq_runtime::atomic::write_json_atomic(
        &dir.join("results.json"),
        &Results {
            dataset: &report.dataset,
            arch: &report.arch,
            rows: &rows,
            aggregates: &aggs,
        },
    )?;
    let table1 = summary::table1(&report, &aggs);
    let ablations = summary::ablation_tables(&aggs);
    let seeds = spec
        .seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let md = format!(
        "# Sweep of {}\n\nTest split, {} samples. FP32, U8 and U4 are single runs; the other rows are mean ± std over seeds {seeds}.\n\n{table1}",
        run.dir.display(),
        report.test_samples
    );
    fq_runtime::atomic::write_atomic(&dir.join("table1.md"), md.as_bytes())?;
    if !ablations.is_empty() {
        let md = format!("# Ablations of {}\n\n{ablations}", run.dir.display());
        fq_runtime::atomic::write_atomic(&dir.join("ablations.md"), md.as_bytes())?;
    }
    plots::draw(&dir, &report, &aggs)?;
    Ok(SweepOutput {
        dir,
        table1,
        ablations,
    })
}
