//! `fq-compress sweep`: the paper's seeds and ablations on one trained run. FP32, U8 and U4 are
//! evaluated once (they are deterministic given the FP32 model); FQ-QAT, FQ-BAQ (paper and
//! official-code presets) and the training controls QAT-U4 and FP32-FT (FQ-QAT's fine-tuning
//! without allocation and fairness loss, so the table shows what FairQuant adds beyond the
//! epochs) run once per seed, each ablated value of λ_bit, λ_fair and the logit
//! learning rate once per ablation seed. Every run is a method variant of the same run directory
//! (`methods/fq-baq-s42/`, ...), so finished runs are skipped and an interrupted sweep resumes.
//! The results go to `RUN_DIR/sweep/`: `results.json` (every run and the aggregates),
//! `table1.md` (the paper's Table 1 layout, mean ± std), `ablations.md` (mean, 95% CI) and the
//! frontier, radar and ablation plots.
//!
//! The grid is a [`plan::Plan`] of independent cells. The plain sweep runs them one after the
//! other in this process; `--plan` writes them out for a cluster (`plan.txt`, a Slurm array in
//! `sweep.sbatch`), `--cell N` runs one, `--collect` aggregates; both ways end in
//! [`collect::collect`], so they write the same tables.

pub mod cell;
pub mod collect;
pub mod grid;
pub mod plan;
mod plots;
pub mod slurm;
pub mod stats;
pub mod summary;

use crate::run::config::RunConfig;
use crate::run::run_dir::Run;
use crate::support::run_files::RunFiles;
use anyhow::{bail, Context, Result};
use grid::GridSpec;
use plan::{out_dir, Plan};
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    let plan = Plan::new(&run.dir, &run.cfg, spec)?;
    let dir = out_dir(&run.dir, out);
    plan.save(&dir)?;
    for c in &plan.cells {
        println!(
            "[{}/{}] {} at {:.0}s",
            c.index + 1,
            plan.cells.len(),
            c.id.label(),
            start.elapsed().as_secs_f64()
        );
        cell::run(run, &fp32, &dir, c)?;
    }
    collect::collect(&run.dir, &dir, &plan)
}

/// Which of `sweep --plan`, `--cell N` and `--collect` to run.
pub enum CellsAction {
    /// Write the plan of this grid and the scripts that launch it.
    Plan(GridSpec),
    /// Aggregate the finished cells.
    Collect,
    /// Run one cell of the saved plan (`None`: none was named, an error once the plan is read).
    Cell(Option<usize>),
}

/// `sweep --plan`, `--cell N` or `--collect`, with what each needs.
pub struct CellsCommand<'a> {
    pub run_dir: &'a Path,
    /// Output directory; `None`: `RUN_DIR/sweep`.
    pub out: Option<&'a Path>,
    pub action: CellsAction,
    pub slurm: slurm::SlurmResources,
}

/// `sweep --plan`, `--cell N` and `--collect`.
pub fn cells_command(a: &CellsCommand, progress: bool) -> Result<()> {
    let out = out_dir(a.run_dir, a.out);
    let cell = match &a.action {
        CellsAction::Plan(spec) => return plan_command(a, spec, &out),
        CellsAction::Collect => None,
        CellsAction::Cell(n) => Some(*n),
    };
    let plan = Plan::load(&out)?;
    if cell.is_none() {
        let o = collect::collect(a.run_dir, &out, &plan)?;
        println!("{}\n{}", o.table1, o.ablations);
        println!("wrote {}", o.dir.display());
        return Ok(());
    }
    let n = cell
        .flatten()
        .context("one of --plan, --cell N or --collect")?;
    let c = plan.cell(n)?;
    if cell::status(&out, c) == cell::Status::Done {
        println!("cell {n} ({}) has finished already", c.id.name());
        return Ok(());
    }
    let start = Instant::now();
    let fp32_path = RunFiles::new(a.run_dir).fp32();
    if !fp32_path.exists() {
        // Cells must not train the shared FP32 model: each would train its own at once.
        bail!(
            "{}: missing; the cells share the run's FP32 model: train it before running cells",
            fp32_path.display()
        );
    }
    let cfg = RunConfig::load(&RunFiles::new(a.run_dir).config())?;
    let run = Run::open(a.run_dir, cfg, progress)?;
    let fp32 = run.train_fp32(true)?;
    cell::run(&run, &fp32, &out, c)?;
    println!(
        "cell {n} ({}) finished in {:.0}s: {}",
        c.id.name(),
        start.elapsed().as_secs_f64(),
        cell::row_path(&out, c).display()
    );
    Ok(())
}

/// Write the plan and the scripts that launch it. Nothing is trained or evaluated here (a login
/// node can run it), so the shared inputs of every cell must exist already.
fn plan_command(a: &CellsCommand, spec: &GridSpec, out: &Path) -> Result<()> {
    for (f, why) in [
        (RunFiles::CONFIG, "a trained run (`fq-compress train`)"),
        (RunFiles::SPLIT, "the run's split"),
        (RunFiles::FP32, "the trained FP32 model"),
    ] {
        let p = a.run_dir.join(f);
        if !p.exists() {
            bail!(
                "{}: missing; every cell needs {why}: train the run first (`fq-compress train --run-dir {}`)",
                p.display(),
                a.run_dir.display()
            );
        }
    }
    let cfg = RunConfig::load(&RunFiles::new(a.run_dir).config())?;
    let plan = Plan::new(a.run_dir, &cfg, spec)?;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    plan.save(out)?;
    let cmd = slurm::Command::new(a.slurm.exe.as_deref(), a.run_dir, a.out)?;
    slurm::write(&plan, &cmd, out, &a.slurm)?;
    let done = plan
        .cells
        .iter()
        .filter(|c| cell::status(out, c) == cell::Status::Done)
        .count();
    println!(
        "{} cells ({done} finished already) in {}\n\
         run them with one of\n  sbatch {}\n  parallel -j 2 < {}\n  bash {}   (one after the other)\n\
         then aggregate with\n  {}",
        plan.cells.len(),
        out.join(plan::PLAN_FILE).display(),
        out.join("sweep.sbatch").display(),
        out.join("plan.txt").display(),
        out.join("plan.txt").display(),
        cmd.collect()
    );
    Ok(())
}
