//! A packed model's per-group results on a labelled set, computed with the same metric code as
//! the compressor's. Images go to the classifier a chunk at a time ([`CHUNK`]): decoded in
//! parallel, never the whole set in memory, and on a GPU several images per submit
//! ([`Classifier::classify_images`] batches them), never one submit per image.

use std::time::Instant;

use fq_runtime::preprocess;
use fq_runtime::Classifier;
use image::RgbImage;
use rayon::prelude::*;

use crate::dataset::{DataError, Dataset, Sample};
use crate::metrics::{FairnessMetrics, MetricsError};

/// Samples decoded and classified together: enough for full GPU batches and all CPU threads,
/// small enough that 224 x 224 images stay a few MB.
pub const CHUNK: usize = 64;

/// Per-group results on a labelled set.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub metrics: FairnessMetrics,
    /// Predicted class of every evaluated sample, in input order.
    pub predictions: Vec<usize>,
}

/// Why a labelled set could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The model could not classify (a GPU failing mid-run).
    #[error(transparent)]
    Classify(#[from] fq_runtime::Error),
    /// An image that cannot be decoded, named with its CSV row.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Labels, predictions and groups that do not make a result (no samples left, say); `set`
    /// names the data set.
    #[error("{set}: {source}")]
    Metrics {
        set: String,
        #[source]
        source: MetricsError,
    },
    /// The data set's classes or groups are not the model's.
    #[error("{0}")]
    Mismatch(String),
}

/// How [`Evaluate::evaluate_dataset_with`] treats the set.
#[derive(Clone, Copy, Debug, Default)]
pub struct EvalOptions {
    /// Leave out images that cannot be decoded (returned in [`DatasetRun::bad_images`]) instead
    /// of stopping at the first.
    pub skip_bad_images: bool,
}

/// An image left out with [`EvalOptions::skip_bad_images`].
#[derive(Debug)]
pub struct BadImage {
    /// Index of the sample in the data set.
    pub index: usize,
    /// The decoding error, naming the image and its CSV row.
    pub error: DataError,
}

/// A whole run over a data set.
#[derive(Debug)]
pub struct DatasetRun {
    pub evaluation: Evaluation,
    /// Samples whose image could not be decoded (only with `skip_bad_images`), in data-set order.
    pub bad_images: Vec<BadImage>,
    /// Wall time spent preprocessing and classifying (decoding excluded), in milliseconds, over
    /// all evaluated samples.
    pub inference_ms: f64,
}

/// Evaluation of a classifier on labelled images (an extension of the device runtime's
/// [`Classifier`], which knows nothing of labels or data sets).
pub trait Evaluate {
    /// Per-group metrics on decoded images with labels and group ids in the model's numbering.
    fn evaluate(
        &self,
        images: &[RgbImage],
        labels: &[usize],
        groups: &[usize],
    ) -> Result<Evaluation, EvalError>;

    /// Per-group metrics on a data set read by one of the loaders. Its classes and groups are
    /// matched to the model's by name (a held-out set may use a subset, in another order); the
    /// first image that cannot be decoded is an error naming its CSV row.
    fn evaluate_dataset(&self, ds: &Dataset) -> Result<Evaluation, EvalError> {
        Ok(self
            .evaluate_dataset_with(ds, EvalOptions::default(), &|_| {})?
            .evaluation)
    }

    /// [`Evaluate::evaluate_dataset`] with options; `on_progress(n)` is called after each chunk
    /// with the number of samples done so far.
    fn evaluate_dataset_with(
        &self,
        ds: &Dataset,
        opts: EvalOptions,
        on_progress: &dyn Fn(usize),
    ) -> Result<DatasetRun, EvalError>;
}

impl Evaluate for Classifier {
    fn evaluate(
        &self,
        images: &[RgbImage],
        labels: &[usize],
        groups: &[usize],
    ) -> Result<Evaluation, EvalError> {
        let predictions: Vec<usize> = self
            .classify_images(images)?
            .into_iter()
            .map(|p| p.class)
            .collect();
        let metrics = metrics(self, labels, &predictions, groups, "the evaluation set")?;
        Ok(Evaluation {
            metrics,
            predictions,
        })
    }

    fn evaluate_dataset_with(
        &self,
        ds: &Dataset,
        opts: EvalOptions,
        on_progress: &dyn Fn(usize),
    ) -> Result<DatasetRun, EvalError> {
        let class_map = name_map(&ds.classes, self.classes(), "class")?;
        let group_map = name_map(&ds.groups, self.groups(), "group")?;
        let pre = self.preprocess();
        let (mut labels, mut groups, mut predictions) = (vec![], vec![], vec![]);
        let mut bad_images = Vec::new();
        let mut inference_ms = 0.0;
        for (c, chunk) in ds.samples.chunks(CHUNK).enumerate() {
            let decoded: Vec<Result<RgbImage, DataError>> = chunk
                .par_iter()
                .map(|s| decode(s, pre.width, pre.height))
                .collect();
            let mut images = Vec::with_capacity(chunk.len());
            let mut kept: Vec<&Sample> = Vec::with_capacity(chunk.len());
            for (i, (s, r)) in chunk.iter().zip(decoded).enumerate() {
                match r {
                    Ok(img) => {
                        images.push(img);
                        kept.push(s);
                    }
                    Err(error) if opts.skip_bad_images => bad_images.push(BadImage {
                        index: c * CHUNK + i,
                        error,
                    }),
                    Err(error) => return Err(error.into()),
                }
            }
            let t0 = Instant::now();
            let chunk_predictions = self.classify_images(&images)?;
            inference_ms += t0.elapsed().as_secs_f64() * 1e3;
            for (s, p) in kept.into_iter().zip(chunk_predictions) {
                labels.push(class_map[s.label]);
                groups.push(group_map[s.group]);
                predictions.push(p.class);
            }
            on_progress(c * CHUNK + chunk.len());
        }
        let metrics = metrics(self, &labels, &predictions, &groups, &ds.name)?;
        Ok(DatasetRun {
            evaluation: Evaluation {
                metrics,
                predictions,
            },
            bad_images,
            inference_ms,
        })
    }
}

/// The image of `s`, decoded and resized; an error names its CSV row.
fn decode(s: &Sample, width: u32, height: u32) -> Result<RgbImage, DataError> {
    preprocess::load_resized(&s.image, width, height).map_err(|source| DataError::CorruptImage {
        file: s.origin.file.clone(),
        line: s.origin.line,
        image: s.image.clone(),
        source: Box::new(source),
    })
}

fn metrics(
    c: &Classifier,
    labels: &[usize],
    predictions: &[usize],
    groups: &[usize],
    set: &str,
) -> Result<FairnessMetrics, EvalError> {
    FairnessMetrics::compute(labels, predictions, groups, c.classes().len(), c.groups()).map_err(
        |source| EvalError::Metrics {
            set: set.to_string(),
            source,
        },
    )
}

/// The index in `model` of every name in `data`.
fn name_map(data: &[String], model: &[String], what: &str) -> Result<Vec<usize>, EvalError> {
    data.iter()
        .map(|n| {
            model.iter().position(|m| m == n).ok_or_else(|| {
                EvalError::Mismatch(format!(
                    "the data set's {what} `{n}` is not one of the model's: {model:?}"
                ))
            })
        })
        .collect()
}
