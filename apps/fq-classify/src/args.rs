//! Command line of `fq-classify`.

use std::path::PathBuf;

use clap::Parser;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};

use crate::backend::BackendChoice;
use fq_runtime::ActivationChoice;

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
    #[arg(long, value_parser = backend_parser())]
    pub backend: Option<BackendChoice>,
    /// Hide the progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// How the CPU path's convolutions and token Linear layers take their input (a GPU backend
    /// computes in f32 whatever this says).
    #[arg(long, value_parser = activations_parser(), default_value = "auto")]
    pub activations: ActivationChoice,
}

/// `--activations`' values.
pub fn activations_parser() -> impl TypedValueParser<Value = ActivationChoice> {
    PossibleValuesParser::new([
        PossibleValue::new("auto").help(
            "What the model file says: 8-bit activations with its calibrated scales when it has \
             them (the model the compressor evaluated), else f32",
        ),
        PossibleValue::new("f32").help("f32 activations, the weight codes as f32 (the reference)"),
        PossibleValue::new("int8").help(
            "i8 activations, exact i32 sums on the integer kernels: the file's calibrated scales, \
             or scales from each tensor's range as each layer runs for a file without them",
        ),
    ])
    .map(|s| ActivationChoice::parse(&s).unwrap_or_default())
}

/// `--backend`'s values, listed in `--help` and parsed by the runtime ([`BackendChoice::parse`]).
pub fn backend_parser() -> impl TypedValueParser<Value = BackendChoice> {
    PossibleValuesParser::new([
        PossibleValue::new("auto")
            .help("A real GPU when there is one, else the CPU (never a software rasteriser)"),
        PossibleValue::new("cpu"),
        PossibleValue::new("gpu").alias("wgpu").help(
            "The GPU through wgpu (Vulkan, Metal, DX12 or GL), a software rasteriser included \
             (with a warning); an error when there is no adapter",
        ),
    ])
    .try_map(|s| BackendChoice::parse(&s))
}
