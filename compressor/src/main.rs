//! `fq-compress`: fairness-aware mixed-precision compression of medical image classifiers.

use anyhow::Result;
use clap::Parser;
use fq_compress::cli::Cli;

fn main() {
    fq_compress::support::process::tune_for_training();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    fq_compress::cli::dispatch(cli)
}
