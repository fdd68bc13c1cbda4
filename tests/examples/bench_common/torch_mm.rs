//! `torch.mm` timed in a child Python (`bench/reference.py --serve-mm`) on request, so that the
//! CPU bench alternates it with its own GEMM shape by shape.
//!
//! Why: the GEMM table's `torch.mm` column came from `bench/reference.py` run minutes before the
//! Rust side, and a shared VM's speed drifts by more than the 20% the table is judged by (the
//! same shape measured 224 and 308 GFLOP/s on two days of one Xeon). Alternated, one drift hits
//! both sides of each ratio.
#![allow(dead_code)] // only the CPU bench times torch.mm

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{bail, Context, Result};

/// The child Python and its pipes; killed when dropped.
pub struct TorchMm {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl TorchMm {
    /// Starts `python bench/reference.py --serve-mm` (from the repository root). The child
    /// inherits the environment, so `MKL_ENABLE_INSTRUCTIONS` and `ONEDNN_MAX_CPU_ISA`, which
    /// `bench/run.sh` sets when the runtime is capped to AVX2, cap it too.
    pub fn start(python: &str) -> Result<Self> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/reference.py");
        let mut child = Command::new(python)
            .args(["-W", "ignore::DeprecationWarning", script, "--serve-mm"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting `{python} {script} --serve-mm`"))?;
        let input = child.stdin.take().context("the child's stdin")?;
        let output = BufReader::new(child.stdout.take().context("the child's stdout")?);
        Ok(Self {
            child,
            input,
            output,
        })
    }

    /// The best GFLOP/s of `torch.mm` on `m x k` times `k x n` within `budget` seconds.
    pub fn gflops(&mut self, (m, k, n): (usize, usize, usize), budget: f64) -> Result<f64> {
        writeln!(self.input, "{m} {k} {n} {budget}").context("writing to the torch.mm child")?;
        self.input.flush()?;
        let mut line = String::new();
        if self.output.read_line(&mut line)? == 0 {
            bail!("the torch.mm child exited (see its error above)");
        }
        line.trim()
            .parse()
            .with_context(|| format!("the torch.mm child answered `{}`", line.trim()))
    }
}

impl Drop for TorchMm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
