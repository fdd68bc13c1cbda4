//! The deployment API: load a `.fqm` model, classify an image (path, bytes, decoded image or
//! preprocessed tensor) into class probabilities, and evaluate a labelled set per patient group
//! with the same metric code as the compressor.

use std::path::Path;

use image::RgbImage;
use rayon::prelude::*;

use crate::dataset::{DataError, Dataset};
use crate::exec::{ExecError, Executor};
use crate::format::{CompressionSummary, FormatError, ModelFileError, PackedModel};
use crate::metrics::{argmax_rows, FairnessMetrics, MetricsError};
use crate::preprocess::{self, DecodeError, PreprocessConfig};

/// A loaded model, ready to classify.
pub struct Classifier {
    /// Everything of the file but the layers (which the executor owns).
    info: PackedModel,
    exec: Executor,
}

/// One image's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Index of the most probable class (the first one on ties).
    pub class: usize,
    /// Softmax of the logits, one per class.
    pub probabilities: Vec<f32>,
    pub logits: Vec<f32>,
}

/// Per-group results on a labelled set.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub metrics: FairnessMetrics,
    /// Predicted class of every sample, in input order.
    pub predictions: Vec<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error(transparent)]
    File(#[from] ModelFileError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Input(#[from] ExecError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("{0}")]
    Mismatch(String),
}

impl Classifier {
    /// Reads, verifies and compiles a model file.
    pub fn load(path: &Path) -> Result<Self, ClassifyError> {
        Ok(Self::from_model(PackedModel::load(path)?)?)
    }

    /// Verifies and compiles model file contents.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        Self::from_model(PackedModel::from_bytes(bytes)?)
    }

    pub fn from_model(mut model: PackedModel) -> Result<Self, FormatError> {
        let exec = Executor::from_model(&mut model)?;
        Ok(Self { info: model, exec })
    }

    pub fn classes(&self) -> &[String] {
        &self.info.classes
    }

    pub fn groups(&self) -> &[String] {
        &self.info.groups
    }

    pub fn preprocess(&self) -> &PreprocessConfig {
        &self.info.preprocess
    }

    pub fn summary(&self) -> &CompressionSummary {
        &self.info.summary
    }

    pub fn graph(&self) -> &fq_models::Graph {
        &self.info.graph
    }

    pub fn executor(&self) -> &Executor {
        &self.exec
    }

    /// Logits of one preprocessed image (CHW, as [`preprocess::to_chw`] makes it).
    pub fn logits(&self, chw: &[f32]) -> Result<Vec<f32>, ExecError> {
        self.exec.run(chw)
    }

    /// Logits of `n` preprocessed images (NCHW), `[n, classes]`, images in parallel.
    pub fn logits_batch(&self, nchw: &[f32], n: usize) -> Result<Vec<f32>, ExecError> {
        self.exec.run_batch(nchw, n)
    }

    /// Classifies a preprocessed image.
    pub fn classify_tensor(&self, chw: &[f32]) -> Result<Prediction, ExecError> {
        Ok(prediction(self.logits(chw)?))
    }

    /// Classifies a decoded image (resized and normalised as in training).
    pub fn classify_image(&self, img: &RgbImage) -> Prediction {
        let x = preprocess::to_chw(img, &self.info.preprocess);
        prediction(
            self.exec
                .run(&x)
                .expect("to_chw makes the model's input size"),
        )
    }

    /// Classifies an image file (PNG, JPEG, WebP; EXIF orientation applied).
    pub fn classify_path(&self, path: &Path) -> Result<Prediction, DecodeError> {
        Ok(self.classify_image(&preprocess::decode_path(path)?))
    }

    /// Classifies encoded image bytes; `name` identifies them in errors.
    pub fn classify_bytes(&self, bytes: &[u8], name: &str) -> Result<Prediction, DecodeError> {
        Ok(self.classify_image(&preprocess::decode_bytes(bytes, name)?))
    }

    /// Classifies decoded images in parallel.
    pub fn classify_images(&self, images: &[RgbImage]) -> Vec<Prediction> {
        images.par_iter().map(|i| self.classify_image(i)).collect()
    }

    /// Per-group metrics on decoded images with labels and group ids in the model's numbering.
    pub fn evaluate(
        &self,
        images: &[RgbImage],
        labels: &[usize],
        groups: &[usize],
    ) -> Result<Evaluation, ClassifyError> {
        let predictions: Vec<usize> = self
            .classify_images(images)
            .into_iter()
            .map(|p| p.class)
            .collect();
        let metrics = FairnessMetrics::compute(
            labels,
            &predictions,
            groups,
            self.info.classes.len(),
            &self.info.groups,
        )?;
        Ok(Evaluation {
            metrics,
            predictions,
        })
    }

    /// Per-group metrics on a dataset read by one of the loaders. Its classes and groups are
    /// matched to the model's by name (a held-out set may use a subset, in another order); images
    /// are decoded a chunk at a time so a large set never sits in memory at once.
    pub fn evaluate_dataset(&self, ds: &Dataset) -> Result<Evaluation, ClassifyError> {
        let class_map = name_map(&ds.classes, &self.info.classes, "class")?;
        let group_map = name_map(&ds.groups, &self.info.groups, "group")?;
        let pre = &self.info.preprocess;
        let mut predictions = Vec::with_capacity(ds.len());
        for chunk in ds.samples.chunks(64) {
            let part: Vec<usize> = chunk
                .par_iter()
                .map(|s| {
                    let img = preprocess::load_resized(&s.image, pre.width, pre.height).map_err(
                        |source| DataError::CorruptImage {
                            file: s.origin.file.clone(),
                            line: s.origin.line,
                            image: s.image.clone(),
                            source: Box::new(source),
                        },
                    )?;
                    Ok(self.classify_image(&img).class)
                })
                .collect::<Result<_, DataError>>()?;
            predictions.extend(part);
        }
        let labels: Vec<usize> = ds.samples.iter().map(|s| class_map[s.label]).collect();
        let groups: Vec<usize> = ds.samples.iter().map(|s| group_map[s.group]).collect();
        let metrics = FairnessMetrics::compute(
            &labels,
            &predictions,
            &groups,
            self.info.classes.len(),
            &self.info.groups,
        )?;
        Ok(Evaluation {
            metrics,
            predictions,
        })
    }
}

/// The index in `model` of every name in `data`.
fn name_map(data: &[String], model: &[String], what: &str) -> Result<Vec<usize>, ClassifyError> {
    data.iter()
        .map(|n| {
            model.iter().position(|m| m == n).ok_or_else(|| {
                ClassifyError::Mismatch(format!(
                    "the data set's {what} `{n}` is not one of the model's: {model:?}"
                ))
            })
        })
        .collect()
}

fn prediction(logits: Vec<f32>) -> Prediction {
    let class = argmax_rows(&logits, logits.len())
        .first()
        .copied()
        .unwrap_or(0);
    Prediction {
        class,
        probabilities: softmax(&logits),
        logits,
    }
}

/// Numerically stable softmax (the maximum is subtracted first), summed in f64.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let e: Vec<f64> = logits.iter().map(|&v| ((v - m) as f64).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|&v| (v / sum) as f32).collect()
}
