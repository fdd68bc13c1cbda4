//! A sweep as a list of independent cells, so that a cluster scheduler can run them at once
//! (`sweep --plan`, then one `sweep --cell N` per cell, then `sweep --collect`). A cell is one
//! method variant to train and evaluate, or, for FP32, U8 and U4, only to evaluate. The plan is
//! fixed when it is written (`OUT/plan.json`): every cell gets the exact configuration the
//! sequential sweep would use, so a cell needs no grid options and cannot drift from its siblings.

use super::grid::{self, GridSpec, Job, Param};
use crate::methods::config::CompressConfig;
use crate::methods::{Method, MethodId};
use crate::run::config::RunConfig;
use crate::support::run_files::MethodFiles;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file a plan lives in, in the sweep's output directory.
pub const PLAN_FILE: &str = "plan.json";

/// One unit of work: a method variant of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Its number: 0-based, as `SLURM_ARRAY_TASK_ID`; line `index + 1` of `plan.txt`.
    pub index: usize,
    pub id: MethodId,
    /// What to train; `None` for FP32, U8 and U4, which are only evaluated.
    pub config: Option<CompressConfig>,
}

/// One row of the tables: which cell's result it is and what it aggregates over. Several rows
/// can share a cell (an ablation value equal to the default is the main run of its seed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedRow {
    pub cell: usize,
    /// `single` (FP32, U8, U4), `paper`, `official-code`, `lambda_bit=0.001`, ...
    pub setting: String,
    pub ablation: Option<(Param, f64)>,
    pub seed: Option<u64>,
}

/// The whole grid (`OUT/plan.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The seeds of the main table (for the table's caption).
    pub seeds: Vec<u64>,
    pub cells: Vec<Cell>,
    pub rows: Vec<PlannedRow>,
}

/// A job whose settings equal those of the run's plain method (e.g. the demo's FQ-BAQ is seed
/// 2's paper run) is that finished run: no need to train it again under a variant name.
fn reuse_plain_runs(run_dir: &Path, jobs: &mut [Job]) {
    for j in jobs.iter_mut() {
        let plain = MethodId::from(j.id.method);
        let dir = crate::methods::method_dir(run_dir, plain.clone());
        let finished = crate::methods::finished(&dir, j.id.method);
        let same =
            CompressConfig::load(&MethodFiles::new(&dir).config()).is_ok_and(|c| c == j.config);
        if finished && same {
            j.id = plain;
        }
    }
}

impl Plan {
    /// The cells of `spec` on the run in `run_dir`: FP32, U8 and U4 first, then every distinct
    /// run of the grid in the sequential sweep's order.
    pub fn new(run_dir: &Path, run: &RunConfig, spec: &GridSpec) -> Result<Plan> {
        let mut jobs = grid::jobs(spec, run)?;
        reuse_plain_runs(run_dir, &mut jobs);
        let mut cells: Vec<Cell> = Vec::new();
        let mut rows: Vec<PlannedRow> = Vec::new();
        for m in [Method::Fp32, Method::PtqU8, Method::PtqU4] {
            rows.push(PlannedRow {
                cell: cells.len(),
                setting: "single".into(),
                ablation: None,
                seed: None,
            });
            cells.push(Cell {
                index: cells.len(),
                id: m.into(),
                config: None,
            });
        }
        for j in jobs {
            let cell = match cells.iter().position(|c| c.id == j.id) {
                Some(i) => i,
                None => {
                    cells.push(Cell {
                        index: cells.len(),
                        id: j.id.clone(),
                        config: Some(j.config.clone()),
                    });
                    cells.len() - 1
                }
            };
            rows.push(PlannedRow {
                cell,
                setting: j.setting,
                ablation: j.ablation,
                seed: Some(j.seed),
            });
        }
        Ok(Plan {
            seeds: spec.seeds.clone(),
            cells,
            rows,
        })
    }

    /// Write `dir/plan.json` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        fq_runtime::atomic::write_json_atomic(&dir.join(PLAN_FILE), self)?;
        Ok(())
    }

    /// Read `dir/plan.json`; a missing plan says how to make one.
    pub fn load(dir: &Path) -> Result<Plan> {
        let path = dir.join(PLAN_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: no sweep plan here; write one with `fq-compress sweep --run-dir RUN --plan` (and the same --out)",
                path.display()
            )
        })?;
        let plan: Plan = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a sweep plan", path.display()))?;
        for (i, c) in plan.cells.iter().enumerate() {
            if c.index != i {
                anyhow::bail!(
                    "{}: cells[{i}] has index {}; the cells must be numbered 0, 1, ... in order",
                    path.display(),
                    c.index
                );
            }
        }
        if let Some(r) = plan.rows.iter().find(|r| r.cell >= plan.cells.len()) {
            anyhow::bail!(
                "{}: a row names cell {}, but the plan has {} cells",
                path.display(),
                r.cell,
                plan.cells.len()
            );
        }
        Ok(plan)
    }

    /// Cell `n`, or an error naming the valid range.
    pub fn cell(&self, n: usize) -> Result<&Cell> {
        self.cells.get(n).with_context(|| {
            format!(
                "--cell {n}: the plan has {} cells, numbered 0 to {}",
                self.cells.len(),
                self.cells.len().saturating_sub(1)
            )
        })
    }
}

/// Where a sweep writes: `--out`, else `RUN_DIR/sweep`.
pub fn out_dir(run_dir: &Path, out: Option<&Path>) -> PathBuf {
    out.map_or_else(|| run_dir.join("sweep"), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::sweep::grid::Overrides;

    #[test]
    fn cells_are_the_distinct_runs_and_rows_point_at_them() {
        let run = RunConfig::embedded_default(Path::new("data"), 2);
        let default_bit = CompressConfig::for_run(Method::FqBaq, &run).baq.lambda_bit;
        let spec = GridSpec {
            seeds: vec![2, 42],
            methods: vec![Method::FqBaq],
            official_code: false,
            ablations: vec![(Param::LambdaBit, vec![1e-3, default_bit])],
            ablation_method: Method::FqBaq,
            ablation_seeds: vec![2, 42],
            mitigations: vec![],
            overrides: Overrides::default(),
        };
        let dir = tempfile::tempdir().unwrap();
        let plan = Plan::new(dir.path(), &run, &spec).unwrap();
        let names: Vec<String> = plan.cells.iter().map(|c| c.id.name()).collect();
        assert_eq!(
            names,
            [
                "fp32",
                "ptq-u8",
                "ptq-u4",
                "fq-baq-s2",
                "fq-baq-s42",
                "fq-baq-lambda_bit-0.001-s2",
                "fq-baq-lambda_bit-0.001-s42"
            ]
        );
        assert!(plan.cells[..3].iter().all(|c| c.config.is_none()));
        // 3 singles + 2 main + 2 × 2 ablation rows; the default λ_bit rows are cells 3 and 4.
        assert_eq!(plan.rows.len(), 9);
        assert_eq!((plan.rows[7].cell, plan.rows[8].cell), (3, 4));
        assert_eq!(plan.rows[7].setting, format!("lambda_bit={default_bit}"));
        plan.save(dir.path()).unwrap();
        assert_eq!(Plan::load(dir.path()).unwrap(), plan);
        let e = plan.cell(7).unwrap_err().to_string();
        assert!(e.contains("numbered 0 to 6"), "{e}");
    }

    #[test]
    fn a_missing_plan_says_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let e = format!("{:#}", Plan::load(dir.path()).unwrap_err());
        assert!(e.contains("plan.json") && e.contains("--plan"), "{e}");
    }
}
