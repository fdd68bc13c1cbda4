//! Command line of `fq-classify`.

use std::path::PathBuf;

use clap::Parser;

use crate::backend::BackendChoice;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "fq-classify",
    version,
    about = "Classify skin photos with a packed FairQuant model (.fqm), on this device",
    after_help = "Exit status: 0 every photo classified; 1 some photo could not be read or decoded \
                  (the others are still classified and reported); 2 the model could not be loaded \
                  or the command line is wrong."
)]
pub struct Args {
    /// The packed model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Photos to classify (JPEG, PNG or WebP; EXIF orientation is honoured).
    #[arg(required = true)]
    pub photos: Vec<PathBuf>,
    /// How many diagnoses to list per photo (at most the number of classes).
    #[arg(long, short = 'k', default_value_t = 3)]
    pub top_k: usize,
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Compute backend [default: $FQ_BACKEND, else auto].
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Hide the progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}
