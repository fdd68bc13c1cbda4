//! FairQuant evaluation: everything that measures a model on labelled data rather than runs it on
//! a device. Dataset loaders (Fitzpatrick17k, ISIC 2019, UTKFace, a folder + CSV) and their
//! train/val/test splits, decoding a whole set up front, per-group metrics with confidence
//! intervals, evaluation of a packed model on a labelled set, PNG charts and the benchmark
//! results file.
//!
//! Used by the compressor and `fq-validate`, never by a device app: it brings CSV parsing, random
//! splits, plotters with an embedded font and (feature `cli`) clap, which the device runtime
//! `fq-runtime` keeps out so that it stays small and builds for the browser.

pub mod dataset;
pub mod evaluation;
pub mod images;
pub mod metrics;
#[cfg(feature = "plots")]
pub mod plots;
pub mod sections;

pub use evaluation::{BadImage, DatasetRun, EvalError, EvalOptions, Evaluate, Evaluation};
