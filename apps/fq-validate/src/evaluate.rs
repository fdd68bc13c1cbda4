//! Runs the model over the held-out set on this machine's backend with the shared evaluation
//! ([`fq_eval::Evaluate`]: a chunk of images decoded in parallel at a time, several images per
//! GPU submit, the per-group metrics in the model's class and group numbering) and keeps what the
//! report needs: undecodable images left out, and the mean inference time.

use anyhow::Result;
use fq_eval::dataset::Dataset;
use fq_eval::metrics::FairnessMetrics;
use fq_eval::{EvalOptions, Evaluate};
use serde::Serialize;

use crate::engine::Engine;

/// An image left out with `--skip-bad-images`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BadImage {
    /// `file:line` of its CSV row.
    pub row: String,
    pub image: String,
    pub error: String,
}

/// What the model did on the field set.
pub struct FieldRun {
    pub metrics: FairnessMetrics,
    /// Predicted class per evaluated sample, in data-set order (bad images left out).
    pub predictions: Vec<usize>,
    pub bad_images: Vec<BadImage>,
    /// Mean inference (preprocess + forward) time per image, in milliseconds.
    pub mean_inference_ms: f64,
}

/// Classifies every sample of `ds`. A corrupt image is an error naming its CSV row, or with
/// `skip_bad` a [`BadImage`] entry.
pub fn run(engine: &Engine, ds: &Dataset, skip_bad: bool, quiet: bool) -> Result<FieldRun> {
    let pb = crate::progress::bar(ds.len(), "validating", quiet);
    let opts = EvalOptions {
        skip_bad_images: skip_bad,
    };
    let run = engine
        .classifier
        .evaluate_dataset_with(ds, opts, &|done| pb.set_position(done as u64))?;
    pb.finish_and_clear();
    let bad_images = run
        .bad_images
        .iter()
        .map(|b| {
            let s = &ds.samples[b.index];
            BadImage {
                row: format!("{}:{}", s.origin.file.display(), s.origin.line),
                image: s.image.display().to_string(),
                error: b.error.to_string(),
            }
        })
        .collect();
    let evaluated = run.evaluation.predictions.len();
    Ok(FieldRun {
        metrics: run.evaluation.metrics,
        predictions: run.evaluation.predictions,
        bad_images,
        mean_inference_ms: run.inference_ms / evaluated.max(1) as f64,
    })
}
