//! Command line of `fq-validate`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use fq_classify::backend::BackendChoice;

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
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Hide the progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Dataset format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DatasetKind {
    Fitzpatrick17k,
    Isic2019,
    Folder,
}

/// The held-out labelled set, in any of the formats the compressor reads.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    #[arg(long, value_enum, default_value = "fitzpatrick17k")]
    pub dataset: DatasetKind,
    /// Metadata CSV (Fitzpatrick17k `fitzpatrick17k.csv`, or the folder dataset's CSV).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Image directory.
    #[arg(long)]
    pub images: PathBuf,
    /// Fitzpatrick17k grouping: `binary` (I-III vs IV-VI) or `six`.
    #[arg(long, default_value = "binary")]
    pub grouping: String,
    /// Fitzpatrick17k label: `label` (fine), `nine` or `three`; folder: the label column's name.
    #[arg(long)]
    pub label_column: Option<String>,
    /// Fitzpatrick17k: keep unknown skin type as a group instead of dropping the rows.
    #[arg(long)]
    pub keep_unknown: bool,
    /// ISIC2019 one-hot ground-truth CSV.
    #[arg(long)]
    pub isic_ground_truth: Option<PathBuf>,
    /// ISIC2019 metadata CSV (sex).
    #[arg(long)]
    pub isic_metadata: Option<PathBuf>,
    /// ISIC2019 groups: 3 (unknown/female/male) or 2 (female/male).
    #[arg(long, default_value_t = 3)]
    pub isic_groups: u8,
    /// Folder dataset: image column name.
    #[arg(long, default_value = "image")]
    pub image_column: String,
    /// Folder dataset: group column name.
    #[arg(long, default_value = "group")]
    pub group_column: String,
    /// Skip bad CSV rows (reporting how many and why) instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// An `id,split` CSV (a run's split.csv) to take one split of the data set from.
    #[arg(long)]
    pub split_csv: Option<PathBuf>,
    /// The split to validate on, with --split-csv.
    #[arg(long, default_value = "test")]
    pub split: String,
}
