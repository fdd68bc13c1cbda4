//! Command line of `fq-validate`.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::Parser;
use fq_runtime::BackendChoice;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "fq-validate",
    version,
    about = "Check on this hardware that every patient group is still served as well as the \
             model's compression report promised",
    after_help = "Exit status: 0 the worst group is within the tolerance; 1 it fell below (FAIL); \
                  2 the model, the data or the command line could not be used."
)]
pub struct Args {
    /// The packed model file (carries the compression-time per-group figures).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Directory for validation.json, validation.md and validation.png.
    #[arg(long, default_value = "validation")]
    pub out: PathBuf,
    /// FAIL when the worst group's field accuracy is more than this (a fraction, 0.05 = 5
    /// percentage points) below the compression-time worst-group accuracy.
    #[arg(long, default_value_t = 0.05)]
    pub tolerance: f64,
    /// Significance level of the per-group two-proportion z-tests.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Confidence level of the Wilson and Newcombe intervals.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Leave out images that cannot be decoded (listed in the report) instead of stopping.
    #[arg(long)]
    pub skip_bad_images: bool,
    /// Compute backend [default: $FQ_BACKEND, else auto].
    #[arg(long, value_parser = backend_parser())]
    pub backend: Option<BackendChoice>,
    /// Hide the progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The held-out labelled set, in any of the formats the compressor reads.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    #[command(flatten)]
    pub source: fq_eval::dataset::DataArgs,
    /// An `id,split` CSV (a run's split.csv) to take one split of the data set from.
    #[arg(long)]
    pub split_csv: Option<PathBuf>,
    /// The split to validate on, with --split-csv.
    #[arg(long, default_value = "test")]
    pub split: String,
}

/// `--backend`'s values, listed in `--help` and parsed by the runtime ([`BackendChoice::parse`]).
fn backend_parser() -> impl TypedValueParser<Value = BackendChoice> {
    PossibleValuesParser::new([
        PossibleValue::new("auto")
            .help("A real GPU when there is one, else the CPU (never a software rasteriser)"),
        PossibleValue::new("cpu"),
        PossibleValue::new("gpu")
            .alias("wgpu")
            .help("The best GPU adapter, a software rasteriser included; an error without one"),
    ])
    .try_map(|s| BackendChoice::parse(&s))
}
