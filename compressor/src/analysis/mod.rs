//! Stage 6, analysis: what is computed from finished runs: diagnostics, the precision sweep, the
//! Slurm sweep over seeds and settings, and their plots.

pub mod diagnose;
pub mod precision_sweep;
pub mod sweep;
