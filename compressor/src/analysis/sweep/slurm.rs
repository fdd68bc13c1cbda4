//! The ways to launch a plan's cells: `plan.txt` (one complete shell command per line, for GNU
//! parallel, xargs or a loop) and `sweep.sbatch` (a Slurm job array, one task per cell). Paths
//! are absolute so the commands run from any directory and on any node that mounts the run.

use super::plan::Plan;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Resources of each array task (`sweep --plan`; the flags are `cli::SlurmFlags`).
#[derive(Clone, Debug)]
pub struct SlurmResources {
    /// With --plan: CPUs per array task (`--cpus-per-task`; also the cell's thread count).
    pub slurm_cpus: usize,
    /// With --plan: memory per array task (`--mem`, e.g. 16G).
    pub slurm_mem: String,
    /// With --plan: time limit per array task (`--time`, e.g. 24:00:00 or 2-00:00:00).
    pub slurm_time: String,
    /// With --plan: GPUs per array task (`--gres=gpu:N`, for a build with the `cuda` feature);
    /// 0 leaves the line commented out.
    pub slurm_gpus: usize,
    /// With --plan: the partition (`--partition`) [default: the cluster's].
    pub slurm_partition: Option<String>,
    /// With --plan: run at most this many array tasks at once (`--array=0-N%K`).
    pub slurm_max_running: Option<usize>,
    /// With --plan: the fq-compress binary the commands call [default: this one]; compute nodes
    /// must reach it at this path.
    pub exe: Option<PathBuf>,
}

impl Default for SlurmResources {
    fn default() -> Self {
        Self {
            slurm_cpus: 4,
            slurm_mem: "16G".into(),
            slurm_time: "24:00:00".into(),
            slurm_gpus: 0,
            slurm_partition: None,
            slurm_max_running: None,
            exe: None,
        }
    }
}

/// `s` quoted for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A value that goes onto an `#SBATCH` line: one word of safe characters.
fn check_word(flag: &str, v: &str) -> Result<()> {
    let ok = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '.' | '_' | ','));
    if !ok {
        bail!("{flag} `{v}`: use letters, digits, `:`, `-`, `.`, `_` or `,` (e.g. 16G, 24:00:00)");
    }
    Ok(())
}

/// An absolute form of `p` (which must exist), so the scripts work from any directory.
fn absolute(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).with_context(|| format!("{}: cannot resolve", p.display()))
}

/// How every cell command starts: the binary, `sweep`, the run and (when given) `--out`.
pub struct Command {
    exe: String,
    run_dir: String,
    out: Option<String>,
}

impl Command {
    /// `out` only when the user gave `--out` (the cell's default is the same `RUN_DIR/sweep`).
    pub fn new(exe: Option<&Path>, run_dir: &Path, out: Option<&Path>) -> Result<Self> {
        let exe = match exe {
            Some(e) => absolute(e)?,
            None => {
                std::env::current_exe().context("cannot find the running fq-compress binary")?
            }
        };
        let s = |p: PathBuf| p.to_string_lossy().into_owned();
        Ok(Self {
            exe: s(exe),
            run_dir: s(absolute(run_dir)?),
            out: out.map(absolute).transpose()?.map(s),
        })
    }

    /// The shell command of cell `n` (or of `$VAR`, given as `"$SLURM_ARRAY_TASK_ID"`).
    pub fn cell(&self, n: &str) -> String {
        self.sweep(&format!("--cell {n}"))
    }

    /// The command that aggregates the finished cells.
    pub fn collect(&self) -> String {
        self.sweep("--collect")
    }

    /// `fq-compress sweep` on this run (and output folder) with `tail` appended.
    fn sweep(&self, tail: &str) -> String {
        let mut c = format!(
            "{} sweep --run-dir {}",
            quote(&self.exe),
            quote(&self.run_dir)
        );
        if let Some(o) = &self.out {
            c += &format!(" --out {}", quote(o));
        }
        format!("{c} {tail}")
    }
}

/// `plan.txt`: line `n + 1` is cell `n`'s command.
pub fn plan_txt(plan: &Plan, cmd: &Command) -> String {
    plan.cells
        .iter()
        .map(|c| cmd.cell(&c.index.to_string()) + "\n")
        .collect()
}

/// The Slurm array script: task `n` runs cell `n`; its log is `out/logs/cell-<n>.out`.
pub fn sbatch(plan: &Plan, cmd: &Command, out: &Path, a: &SlurmResources) -> Result<String> {
    check_word("--slurm-mem", &a.slurm_mem)?;
    check_word("--slurm-time", &a.slurm_time)?;
    if let Some(p) = &a.slurm_partition {
        check_word("--slurm-partition", p)?;
    }
    if a.slurm_cpus == 0 {
        bail!("--slurm-cpus: give at least 1");
    }
    if plan.cells.is_empty() {
        bail!("the plan has no cells");
    }
    let logs = absolute(out)?.join("logs");
    let throttle = a
        .slurm_max_running
        .map_or(String::new(), |k| format!("%{k}"));
    let gres = match a.slurm_gpus {
        0 => "##SBATCH --gres=gpu:1   # the cuda build: plan with --slurm-gpus 1".to_string(),
        n => format!("#SBATCH --gres=gpu:{n}"),
    };
    let partition = a
        .slurm_partition
        .as_ref()
        .map_or(String::new(), |p| format!("#SBATCH --partition={p}\n"));
    Ok(format!(
        "#!/bin/bash\n\
         # The FairQuant sweep as a Slurm job array, written by `fq-compress sweep --plan`: task N\n\
         # runs cell N of plan.json (line N+1 of plan.txt). Submit with `sbatch {script}`;\n\
         # when every task has finished: {collect}\n\
         #SBATCH --job-name=fq-sweep\n\
         #SBATCH --array=0-{last}{throttle}\n\
         #SBATCH --cpus-per-task={cpus}\n\
         #SBATCH --mem={mem}\n\
         #SBATCH --time={time}\n\
         #SBATCH --output={log}\n\
         {gres}\n\
         {partition}\
         set -euo pipefail\n\
         # Without a CPU binding plugin the cell would see every core of the node.\n\
         export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-{cpus}}}\"\n\
         exec {cell}\n",
        script = quote(&absolute(out)?.join("sweep.sbatch").to_string_lossy()),
        collect = cmd.collect(),
        last = plan.cells.len() - 1,
        cpus = a.slurm_cpus,
        mem = a.slurm_mem,
        time = a.slurm_time,
        log = logs.join("cell-%a.out").display(),
        cell = cmd.cell("\"$SLURM_ARRAY_TASK_ID\""),
    ))
}

/// Write `plan.txt`, `sweep.sbatch` (executable) and the `logs/` folder Slurm writes into.
pub fn write(plan: &Plan, cmd: &Command, out: &Path, a: &SlurmResources) -> Result<()> {
    let script = sbatch(plan, cmd, out, a)?;
    std::fs::create_dir_all(out.join("logs"))
        .with_context(|| format!("{}: cannot create", out.join("logs").display()))?;
    fq_runtime::atomic::write_atomic(&out.join("plan.txt"), plan_txt(plan, cmd).as_bytes())?;
    let path = out.join("sweep.sbatch");
    fq_runtime::atomic::write_atomic(&path, script.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("{}: cannot make executable", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::sweep::plan::Cell;

    fn plan(n: usize) -> Plan {
        Plan {
            seeds: vec![1],
            cells: (0..n)
                .map(|i| Cell {
                    index: i,
                    id: crate::methods::Method::Fp32.into(),
                    config: None,
                })
                .collect(),
            rows: vec![],
        }
    }

    #[test]
    fn the_array_covers_every_cell_and_quotes_paths() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("my run");
        std::fs::create_dir_all(&run).unwrap();
        let exe = dir.path().join("fq'c");
        std::fs::write(&exe, "").unwrap();
        let cmd = Command::new(Some(&exe), &run, None).unwrap();
        let p = plan(5);
        let a = SlurmResources {
            slurm_gpus: 1,
            slurm_max_running: Some(2),
            ..SlurmResources::default()
        };
        let s = sbatch(&p, &cmd, &run.join("sweep"), &a).unwrap_err();
        assert!(format!("{s:#}").contains("cannot resolve"), "{s:#}");
        std::fs::create_dir_all(run.join("sweep")).unwrap();
        let s = sbatch(&p, &cmd, &run.join("sweep"), &a).unwrap();
        assert!(s.contains("#SBATCH --array=0-4%2\n"), "{s}");
        assert!(s.contains("#SBATCH --gres=gpu:1\n"), "{s}");
        assert!(
            s.contains("#SBATCH --cpus-per-task=4\n#SBATCH --mem=16G\n#SBATCH --time=24:00:00\n")
        );
        assert!(s.contains("/my run/sweep/logs/cell-%a.out\n"), "{s}");
        assert!(s.contains(r"fq'\''c' sweep --run-dir '"), "{s}");
        assert!(
            s.ends_with("/my run' --cell \"$SLURM_ARRAY_TASK_ID\"\n"),
            "{s}"
        );
        let txt = plan_txt(&p, &cmd);
        assert_eq!(txt.lines().count(), 5);
        assert!(txt.lines().nth(3).unwrap().ends_with(" --cell 3"));
        let cpu = sbatch(&p, &cmd, &run.join("sweep"), &SlurmResources::default()).unwrap();
        assert!(cpu.contains("\n##SBATCH --gres=gpu:1"), "{cpu}");
        let bad = SlurmResources {
            slurm_time: "1:00\n#SBATCH --x".into(),
            ..SlurmResources::default()
        };
        let e = sbatch(&p, &cmd, &run.join("sweep"), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--slurm-time"), "{e}");
    }
}
