//! The deployment API: load a `.fqm` model, classify an image (path, bytes, decoded image or
//! preprocessed tensor) into class probabilities, and evaluate a labelled set per patient group
//! with the same metric code as the compressor.

use std::path::Path;

use image::RgbImage;
use rayon::prelude::*;

use crate::backend::{self, Backend, BackendChoice};
use crate::dataset::{DataError, Dataset};
use crate::exec::{ExecError, Executor};
use crate::format::{CompressionSummary, FormatError, ModelFileError, PackedModel};
use crate::metrics::{argmax_rows, FairnessMetrics, MetricsError};
use crate::preprocess::{self, DecodeError, PreprocessConfig};

/// A loaded model, ready to classify on the CPU or (feature `wgpu`) a GPU.
pub struct Classifier {
    /// Everything of the file but the layers (which the executor owns).
    info: PackedModel,
    exec: Executor,
    /// The model on the GPU when the backend is one; the CPU executor stays as the reference.
    #[cfg(feature = "wgpu")]
    gpu: Option<crate::gpu::GpuExecutor>,
    backend: Backend,
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
    #[cfg(feature = "wgpu")]
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
}

impl Classifier {
    /// Reads, verifies and compiles a model file, on the CPU.
    pub fn load(path: &Path) -> Result<Self, ClassifyError> {
        Ok(Self::from_model(PackedModel::load(path)?)?)
    }

    /// Reads a model file onto the backend `choice` selects ([`backend::select`]: `Auto` and an
    /// unavailable `Gpu` fall back to the CPU with a one-line message).
    pub fn load_with(path: &Path, choice: BackendChoice) -> Result<Self, ClassifyError> {
        Self::load_on(path, &backend::select(choice))
    }

    /// Reads a model file onto an already selected backend.
    pub fn load_on(path: &Path, backend: &Backend) -> Result<Self, ClassifyError> {
        Self::from_model_on(PackedModel::load(path)?, backend)
    }

    /// Verifies and compiles model file contents.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        Self::from_model(PackedModel::from_bytes(bytes)?)
    }

    pub fn from_model(mut model: PackedModel) -> Result<Self, FormatError> {
        let exec = Executor::from_model(&mut model)?;
        Ok(Self {
            info: model,
            exec,
            #[cfg(feature = "wgpu")]
            gpu: None,
            backend: Backend::Cpu,
        })
    }

    /// Compiles a model for `backend`: on a GPU the weights are uploaded and every buffer and
    /// pipeline is made here, once.
    pub fn from_model_on(model: PackedModel, backend: &Backend) -> Result<Self, ClassifyError> {
        #[cfg(feature = "wgpu")]
        if let Backend::Wgpu(dev) = backend {
            // One validation and plan for both: the GPU uploads it, the CPU keeps it.
            let mut model = model;
            let plan = crate::exec::Plan::from_model(&mut model)?;
            let gpu = crate::gpu::GpuExecutor::from_plan(
                dev.clone(),
                &plan,
                crate::gpu::GemmKernel::Tiled,
                crate::gpu::DEFAULT_BATCH,
            )?;
            return Ok(Self {
                info: model,
                exec: Executor::from_plan(plan),
                gpu: Some(gpu),
                backend: backend.clone(),
            });
        }
        let _ = backend;
        Ok(Self::from_model(model)?)
    }

    /// The backend this classifier runs on.
    pub fn backend(&self) -> &Backend {
        &self.backend
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
        self.logits_batch(chw, 1)
    }

    /// Logits of `n` preprocessed images (NCHW), `[n, classes]`: images in parallel on the CPU,
    /// a batch per submit on a GPU.
    pub fn logits_batch(&self, nchw: &[f32], n: usize) -> Result<Vec<f32>, ExecError> {
        Ok(self
            .predict_batch(nchw, n)?
            .into_iter()
            .flat_map(|p| p.logits)
            .collect())
    }

    /// Predictions of `n` preprocessed images (NCHW). On a GPU the probabilities come from its
    /// softmax kernel with the logits, in the same copy.
    pub fn predict_batch(&self, nchw: &[f32], n: usize) -> Result<Vec<Prediction>, ExecError> {
        #[cfg(feature = "wgpu")]
        if let Some(gpu) = &self.gpu {
            let classes = gpu.output_len();
            if nchw.len() != n * gpu.input_len() {
                // The CPU executor words the size error.
                self.exec.run_batch(nchw, n)?;
            }
            let out = gpu
                .run_batch(nchw, n)
                .map_err(|e| ExecError::Gpu(e.to_string()))?;
            return Ok(out
                .logits
                .chunks(classes.max(1))
                .zip(out.probabilities.chunks(classes.max(1)))
                .take(n)
                .map(|(l, p)| Prediction {
                    class: argmax_rows(l, l.len()).first().copied().unwrap_or(0),
                    probabilities: p.to_vec(),
                    logits: l.to_vec(),
                })
                .collect());
        }
        let per = self.exec.output_len().max(1);
        Ok(self
            .exec
            .run_batch(nchw, n)?
            .chunks(per)
            .map(|l| prediction(l.to_vec()))
            .collect())
    }

    /// Classifies a preprocessed image.
    pub fn classify_tensor(&self, chw: &[f32]) -> Result<Prediction, ExecError> {
        Ok(self.predict_batch(chw, 1)?.remove(0))
    }

    /// Classifies a decoded image (resized and normalised as in training).
    pub fn classify_image(&self, img: &RgbImage) -> Prediction {
        self.classify_images(std::slice::from_ref(img)).remove(0)
    }

    /// Classifies an image file (PNG, JPEG, WebP; EXIF orientation applied).
    pub fn classify_path(&self, path: &Path) -> Result<Prediction, DecodeError> {
        Ok(self.classify_image(&preprocess::decode_path(path)?))
    }

    /// Classifies encoded image bytes; `name` identifies them in errors.
    pub fn classify_bytes(&self, bytes: &[u8], name: &str) -> Result<Prediction, DecodeError> {
        Ok(self.classify_image(&preprocess::decode_bytes(bytes, name)?))
    }

    /// Classifies decoded images: in parallel on the CPU, in batches on a GPU.
    ///
    /// # Panics
    /// If the GPU fails mid-run (device lost); the CPU path cannot fail here.
    pub fn classify_images(&self, images: &[RgbImage]) -> Vec<Prediction> {
        #[cfg(feature = "wgpu")]
        if self.gpu.is_some() {
            let x: Vec<f32> = images
                .par_iter()
                .flat_map_iter(|i| preprocess::to_chw(i, &self.info.preprocess))
                .collect();
            return self
                .predict_batch(&x, images.len())
                .unwrap_or_else(|e| panic!("GPU forward pass failed: {e}"));
        }
        images
            .par_iter()
            .map(|i| {
                let x = preprocess::to_chw(i, &self.info.preprocess);
                prediction(
                    self.exec
                        .run(&x)
                        .expect("to_chw makes the model's input size"),
                )
            })
            .collect()
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
            let images: Vec<RgbImage> = chunk
                .par_iter()
                .map(|s| {
                    preprocess::load_resized(&s.image, pre.width, pre.height).map_err(|source| {
                        DataError::CorruptImage {
                            file: s.origin.file.clone(),
                            line: s.origin.line,
                            image: s.image.clone(),
                            source: Box::new(source),
                        }
                    })
                })
                .collect::<Result<_, DataError>>()?;
            predictions.extend(self.classify_images(&images).into_iter().map(|p| p.class));
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
