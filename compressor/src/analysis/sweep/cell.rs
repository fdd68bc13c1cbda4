//! Running one cell of a plan, safely beside other cells of the same run (on other nodes of a
//! shared file system). A cell writes only
//! - its method's directory `RUN/methods/<variant>/` (no other cell has the same variant),
//! - the importance cache, which the calibration claims and locks (see `calibrate::calibrated`),
//! - its own row, `OUT/cells/<variant>.json`, atomically, as the sign that it finished.
//!
//! It never writes `report.json`: cells appending their rows to it at once would lose rows (a
//! read-modify-write race), so `--collect` rebuilds it from the row files. A cell that fails
//! leaves `OUT/cells/<variant>.failed` with its error for `--collect` to show.

use super::plan::Cell;
use crate::nn::model::Model;
use crate::run::report::Report;
use crate::run::run_dir::Run;
use crate::support::run_files::RunFiles;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Where a finished cell's row is: a one-row report.
pub fn row_path(out: &Path, cell: &Cell) -> PathBuf {
    out.join("cells").join(format!("{}.json", cell.id.name()))
}

/// Where a failed cell's error is.
pub fn failure_path(out: &Path, cell: &Cell) -> PathBuf {
    out.join("cells").join(format!("{}.failed", cell.id.name()))
}

/// How far a cell got.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Done,
    /// It stopped with this error.
    Failed(String),
    /// It has not run, is running, or was killed (no error recorded).
    Missing,
}

pub fn status(out: &Path, cell: &Cell) -> Status {
    if row_path(out, cell).exists() {
        Status::Done
    } else if let Ok(e) = std::fs::read_to_string(failure_path(out, cell)) {
        Status::Failed(e.trim().to_string())
    } else {
        Status::Missing
    }
}

/// Train (when the cell has a config) and evaluate the cell, then record its row. A finished
/// cell is left as it is: `Ok(false)`.
pub fn run(run: &Run, fp32: &Model, out: &Path, cell: &Cell) -> Result<bool> {
    let row = row_path(out, cell);
    if row.exists() {
        return Ok(false);
    }
    let failure = failure_path(out, cell);
    // The same training cell started twice (a requeued array task beside the original) would
    // train into one directory; the second stops, naming the first.
    let _lock = cell
        .config
        .as_ref()
        .map(|_| {
            crate::support::run_lock::RunLock::exclusive(
                &crate::methods::method_dir(&run.dir, cell.id.clone()),
                &format!("sweep cell {}", cell.id.name()),
            )
        })
        .transpose()?;
    match compute(run, fp32, cell) {
        Ok(report) => {
            fq_runtime::atomic::write_json_atomic(&row, &report)?;
            if failure.exists() {
                std::fs::remove_file(&failure)
                    .with_context(|| format!("{}: cannot remove", failure.display()))?;
            }
            Ok(true)
        }
        Err(e) => {
            // Best effort: the error is returned (and logged by the caller) either way.
            let _ = fq_runtime::atomic::write_atomic(&failure, format!("{e:#}\n").as_bytes());
            Err(e)
        }
    }
}

fn compute(run: &Run, fp32: &Model, cell: &Cell) -> Result<Report> {
    if let Some(c) = &cell.config {
        crate::methods::runner::compress(&run.method_inputs(), fp32, &cell.id, c, true)
            .with_context(|| format!("sweep run {}", cell.id.name()))?;
    }
    // A row the run's report already has (e.g. the plain method, run by `compress` before the
    // sweep and reused by the plan) is kept, as the sequential sweep always did.
    let path = RunFiles::new(&run.dir).report();
    let existing = if path.exists() {
        Report::load(&path)?.get(&cell.id).cloned()
    } else {
        None
    };
    let r = match existing {
        Some(r) => r,
        None => run.evaluate_method(fp32, &cell.id)?,
    };
    let mut report = run.empty_report();
    report.results.push(r);
    Ok(report)
}
