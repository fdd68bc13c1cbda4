//! FairQuant's device runtime: what a clinic app links to run a packed `.fqm` model, and nothing
//! else — the model format, the CPU executor (and, with the `wgpu` feature, the GPU one), image
//! preprocessing and classification. No CSV, charts, fonts, command-line parsing or dataset
//! splitting: those are evaluation, in the `fq-eval` crate, which the compressor and
//! `fq-validate` use. Without default features the crate builds for `wasm32-unknown-unknown`
//! (checked by `scripts/test.sh`), so a browser or phone build can link it.
//!
//! # Usage
//!
//! ```no_run
//! use fq_runtime::{BackendChoice, Classifier, Prediction};
//!
//! # fn main() -> Result<(), fq_runtime::Error> {
//! // Load once (from a path, or `Classifier::from_bytes` for bytes already in memory); `Auto`
//! // takes a real GPU when there is one and the CPU otherwise.
//! let model = Classifier::load_with("model.fqm".as_ref(), BackendChoice::Auto)?;
//! // A file with calibrated activation scales (format v3) runs on the integer kernels; the
//! // float path is one option away.
//! let float = Classifier::load_with(
//!     "model.fqm".as_ref(),
//!     fq_runtime::LoadOptions {
//!         backend: BackendChoice::Cpu,
//!         activations: fq_runtime::ActivationChoice::F32,
//!     },
//! )?;
//! # let _ = float;
//! // Classify a photo file, encoded bytes, or a batch of decoded images.
//! let p: Prediction = model.classify_path("lesion.jpg".as_ref())?;
//! println!("{} ({:.0}%)", model.classes()[p.class], 100.0 * p.probabilities[p.class]);
//! let upload = std::fs::read("upload.png").unwrap();
//! let q = model.classify_bytes(&upload, "upload.png")?;
//! let batch = model.classify_images(&[image::RgbImage::new(224, 224)])?;
//! // The same logits-to-prediction step for logits computed elsewhere.
//! assert_eq!(Prediction::from_logits(q.logits.clone()).class, q.class);
//! # let _ = batch;
//! # Ok(())
//! # }
//! ```
//!
//! Every fallible call returns [`Error`], whose message names the model file, the image or the
//! field at fault; bad input is an error, never a panic.

pub mod atomic;
pub mod backend;
pub mod classify;
pub mod driver_env;
mod error;
pub mod exec;
pub mod format;
#[cfg(feature = "wgpu")]
pub mod gpu;
pub mod metrics;
pub mod preprocess;

pub use backend::{Backend, BackendChoice, BackendError};
pub use classify::{softmax, ActivationChoice, Classifier, LoadOptions, Prediction};
pub use error::Error;
pub use exec::Activations;
pub use format::{CompressionSummary, PackedModel};
pub use preprocess::{DecodeError, PreprocessConfig};
