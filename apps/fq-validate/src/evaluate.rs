//! Runs the model over the held-out set on this machine's backend, a chunk of images at a time
//! (decoded in parallel, never the whole set in memory), and computes the per-group metrics with
//! the runtime's metric code over the model's class and group numbering.

use anyhow::{anyhow, Result};
use fq_classify::backend::Engine;
use fq_runtime::dataset::{DataError, Dataset};
use fq_runtime::metrics::FairnessMetrics;
use fq_runtime::preprocess;
use rayon::prelude::*;
use serde::Serialize;

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

/// The index in `model` of every name in `data`.
fn name_map(data: &[String], model: &[String], what: &str) -> Result<Vec<usize>> {
    data.iter()
        .map(|n| {
            model.iter().position(|m| m == n).ok_or_else(|| {
                anyhow!("the data set's {what} `{n}` is not one of the model's: {model:?}")
            })
        })
        .collect()
}

/// Classifies every sample of `ds`. A corrupt image is an error naming its CSV row, or with
/// `skip_bad` a [`BadImage`] entry.
pub fn run(engine: &Engine, ds: &Dataset, skip_bad: bool, quiet: bool) -> Result<FieldRun> {
    let c = engine.classifier();
    let class_map = name_map(&ds.classes, c.classes(), "class")?;
    let group_map = name_map(&ds.groups, c.groups(), "group")?;
    let pre = c.preprocess();
    let pb = fq_classify::progress::bar(ds.len(), "validating", quiet);
    let (mut labels, mut groups, mut predictions) = (vec![], vec![], vec![]);
    let mut bad_images = Vec::new();
    let mut inference_ms = 0.0;
    for chunk in ds.samples.chunks(64) {
        let part: Vec<_> = chunk
            .par_iter()
            .map(
                |s| match preprocess::load_resized(&s.image, pre.width, pre.height) {
                    Ok(img) => Ok(engine.classify_image(&img)),
                    Err(e) => Err(DataError::CorruptImage {
                        file: s.origin.file.clone(),
                        line: s.origin.line,
                        image: s.image.clone(),
                        source: Box::new(e),
                    }),
                },
            )
            .collect();
        for (s, r) in chunk.iter().zip(part) {
            match r {
                Ok(r) => {
                    let (p, t) = r?;
                    labels.push(class_map[s.label]);
                    groups.push(group_map[s.group]);
                    predictions.push(p.class);
                    inference_ms += t.preprocess_ms + t.inference_ms;
                }
                Err(e) if skip_bad => bad_images.push(BadImage {
                    row: format!("{}:{}", s.origin.file.display(), s.origin.line),
                    image: s.image.display().to_string(),
                    error: e.to_string(),
                }),
                Err(e) => return Err(e.into()),
            }
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    let metrics = FairnessMetrics::compute(
        &labels,
        &predictions,
        &groups,
        c.classes().len(),
        c.groups(),
    )
    .map_err(|e| anyhow!("{}: {e}", ds.name))?;
    Ok(FieldRun {
        metrics,
        mean_inference_ms: inference_ms / predictions.len().max(1) as f64,
        predictions,
        bad_images,
    })
}
