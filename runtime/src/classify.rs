//! The deployment API: load a `.fqm` model (path or bytes, on the backend asked for) and classify
//! images (path, bytes, decoded image, a batch, or a preprocessed tensor) into class
//! probabilities. Every fallible call returns the crate's one [`Error`] (the tensor-level
//! `logits*`/`predict_batch` return its [`ExecError`] part, which `?` converts); nothing here
//! panics on bad input or a failing GPU. Evaluation on labelled sets is the `fq-eval` crate's, on top of
//! [`Classifier::classify_images`].

use std::path::Path;

use image::RgbImage;
use rayon::prelude::*;

use crate::backend::{self, Backend, BackendChoice};
use crate::error::Error;
use crate::exec::{Activations, ExecError, Executor};
use crate::format::{CompressionSummary, PackedModel};
use crate::metrics::argmax_rows;
use crate::preprocess::{self, PreprocessConfig};

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

/// Which activations the CPU path uses (an option of [`Classifier::load_with`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ActivationChoice {
    /// What the file says: its calibrated 8-bit scales when it has them (format v3, the model
    /// the compressor evaluated), else f32. A GPU backend computes in f32 either way.
    #[default]
    Auto,
    /// f32 activations whatever the file holds (the reference path).
    F32,
    /// 8-bit activations: the file's static scales, or dynamic ones for a file without them.
    Int8,
}

impl ActivationChoice {
    /// `auto`, `f32` or `int8`; case-insensitive.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Self::Auto),
            "f32" | "float" => Ok(Self::F32),
            "int8" | "i8" => Ok(Self::Int8),
            other => Err(format!(
                "unknown activations `{other}`: expected auto, f32 or int8"
            )),
        }
    }
}

/// How [`Classifier::load_with`] loads a model: the backend and the activations. A bare
/// [`BackendChoice`] converts into it (activations `Auto`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    pub backend: BackendChoice,
    pub activations: ActivationChoice,
}

impl From<BackendChoice> for LoadOptions {
    fn from(backend: BackendChoice) -> Self {
        Self {
            backend,
            activations: ActivationChoice::Auto,
        }
    }
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

impl Prediction {
    /// The prediction of one image's logits: the first maximum is the class (a NaN counts as the
    /// maximum, as in torch), the probabilities are their [`softmax`]. The one logits-to-class
    /// step of every app, so that they cannot disagree.
    pub fn from_logits(logits: Vec<f32>) -> Prediction {
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

    /// The predictions of a row-major `[n, classes]` logits matrix (a trailing partial row is
    /// ignored; `classes == 0` gives none).
    pub fn from_logit_rows(logits: &[f32], classes: usize) -> Vec<Prediction> {
        if classes == 0 {
            return Vec::new();
        }
        logits
            .chunks_exact(classes)
            .map(|l| Prediction::from_logits(l.to_vec()))
            .collect()
    }
}

impl Classifier {
    /// Reads, verifies and compiles a model file, on the CPU. Errors name the file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        Self::from_model(PackedModel::load(path)?)
    }

    /// Reads a model file onto the backend the options select ([`backend::select`]: `Auto` and
    /// an unavailable `Gpu` fall back to the CPU with a one-line message), with their
    /// activations (`--activations f32` forces the float path on a file with scales).
    pub fn load_with(path: &Path, options: impl Into<LoadOptions>) -> Result<Self, Error> {
        let options = options.into();
        let backend = backend::select(options.backend);
        Self::from_model_with(PackedModel::load(path)?, &backend, options.activations)
    }

    /// Reads a model file onto an already selected backend ([`backend::choose`]).
    pub fn load_on(path: &Path, backend: &Backend) -> Result<Self, Error> {
        Self::from_model_on(PackedModel::load(path)?, backend)
    }

    /// Verifies and compiles model file contents (a download, an app bundle's asset), on the CPU.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_model(PackedModel::from_bytes(bytes)?)
    }

    /// [`Classifier::from_bytes`] with options (as [`Classifier::load_with`]).
    pub fn from_bytes_with(bytes: &[u8], options: impl Into<LoadOptions>) -> Result<Self, Error> {
        let options = options.into();
        let backend = backend::select(options.backend);
        Self::from_model_with(
            PackedModel::from_bytes(bytes)?,
            &backend,
            options.activations,
        )
    }

    /// [`Classifier::from_bytes_with`] without blocking, for a browser: the backend is chosen by
    /// [`backend::choose_async`] (WebGPU there); a GPU that cannot be had, or that cannot run
    /// this model, falls back to the CPU. Returns the selection's reason for the page to show.
    pub async fn from_bytes_async(
        bytes: &[u8],
        choice: BackendChoice,
    ) -> Result<(Self, String), Error> {
        let model = PackedModel::from_bytes(bytes)?;
        let (backend, reason) = match backend::choose_async(choice).await {
            Ok(s) => (s.backend, s.reason),
            Err(e) => (Backend::Cpu, format!("{e}; running on the CPU")),
        };
        if !backend.is_gpu() {
            return Ok((Self::from_model(model)?, reason));
        }
        // The file parsed; only the GPU upload can fail now, and then the CPU runs it.
        match Self::from_model_on(model.clone(), &backend) {
            Ok(c) => Ok((c, reason)),
            Err(e) => Ok((Self::from_model(model)?, format!("{e}; running on the CPU"))),
        }
    }

    /// Applies an [`ActivationChoice`]: `Auto` is the file's calibrated scales on the CPU (what
    /// loading does), f32 on a GPU; `Int8` the file's scales, or dynamic ones without them.
    pub fn choose_activations(&mut self, choice: ActivationChoice) {
        let scales = self
            .info
            .activations
            .as_ref()
            .map(|a| a.input_scales.clone());
        match (choice, scales) {
            (ActivationChoice::F32, _) => self.exec.set_activations(Activations::F32),
            (ActivationChoice::Auto, _) if self.backend.is_gpu() => {
                self.exec.set_activations(Activations::F32)
            }
            (ActivationChoice::Auto, None) => self.exec.set_activations(Activations::F32),
            (ActivationChoice::Auto | ActivationChoice::Int8, Some(s)) => {
                self.exec.set_activation_scales(s)
            }
            (ActivationChoice::Int8, None) => self.exec.set_activations(Activations::Int8Dynamic),
        }
    }

    /// Chooses how the CPU path's convolutions take their input: f32, or i8
    /// activations through the integer kernels ([`Activations`]). A GPU backend computes in f32
    /// whatever this says. For `Int8Static`, calibrate with [`Classifier::executor_mut`].
    pub fn set_activations(&mut self, activations: Activations) {
        self.exec.set_activations(activations);
    }

    /// The CPU path's activations.
    pub fn activations(&self) -> Activations {
        self.exec.activations()
    }

    /// The CPU executor, for calibration ([`Executor::calibrate`]).
    pub fn executor_mut(&mut self) -> &mut Executor {
        &mut self.exec
    }

    /// Compiles a parsed model for the CPU executor, on the integer path when the file carries
    /// activation scales ([`ActivationChoice::Auto`]).
    pub fn from_model(model: PackedModel) -> Result<Self, Error> {
        Self::from_model_with(model, &Backend::Cpu, ActivationChoice::Auto)
    }

    /// Compiles a model for `backend`: on a GPU the weights are uploaded and every buffer and
    /// pipeline is made here, once.
    pub fn from_model_on(model: PackedModel, backend: &Backend) -> Result<Self, Error> {
        Self::from_model_with(model, backend, ActivationChoice::Auto)
    }

    /// The one place a classifier is built: the plan compiled once, the GPU executor made from
    /// it on a GPU backend, and the activation choice applied once (the integer weights are
    /// prepared here, not first for `Auto` and again for the caller's choice).
    pub fn from_model_with(
        mut model: PackedModel,
        backend: &Backend,
        activations: ActivationChoice,
    ) -> Result<Self, Error> {
        let plan = crate::exec::Plan::from_model(&mut model)?;
        #[cfg(feature = "wgpu")]
        let gpu = match backend {
            // One validation and plan for both: the GPU uploads it, the CPU keeps it.
            Backend::Wgpu(dev) => Some(crate::gpu::GpuExecutor::from_plan(
                dev.clone(),
                &plan,
                dev.gemm_kernel(),
                crate::gpu::DEFAULT_BATCH,
            )?),
            _ => None,
        };
        let mut c = Self {
            info: model,
            exec: Executor::from_plan(plan),
            #[cfg(feature = "wgpu")]
            gpu,
            backend: backend.clone(),
        };
        c.choose_activations(activations);
        Ok(c)
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
            return Ok(gpu_predictions(out, classes, n));
        }
        let per = self.exec.output_len().max(1);
        Ok(Prediction::from_logit_rows(
            &self.exec.run_batch(nchw, n)?,
            per,
        ))
    }

    /// Classifies a preprocessed image.
    pub fn classify_tensor(&self, chw: &[f32]) -> Result<Prediction, Error> {
        self.predict_batch(chw, 1)?
            .pop()
            .ok_or_else(|| ExecError::Gpu("the backend returned no prediction".into()).into())
    }

    /// Classifies a decoded image (resized and normalised as in training).
    pub fn classify_image(&self, img: &RgbImage) -> Result<Prediction, Error> {
        self.classify_images(std::slice::from_ref(img))?
            .pop()
            .ok_or_else(|| ExecError::Gpu("the backend returned no prediction".into()).into())
    }

    /// Classifies an image file (PNG, JPEG, WebP; EXIF orientation applied); errors name it.
    pub fn classify_path(&self, path: &Path) -> Result<Prediction, Error> {
        self.classify_image(&preprocess::decode_path(path)?)
    }

    /// Classifies encoded image bytes; `name` identifies them in errors.
    pub fn classify_bytes(&self, bytes: &[u8], name: &str) -> Result<Prediction, Error> {
        self.classify_image(&preprocess::decode_bytes(bytes, name)?)
    }

    /// [`Classifier::classify_bytes`] without blocking, for a browser: on a GPU the read-back
    /// awaits the buffer mapping; on the CPU it is the same synchronous path.
    pub async fn classify_bytes_async(
        &self,
        bytes: &[u8],
        name: &str,
    ) -> Result<Prediction, Error> {
        let img = preprocess::decode_bytes(bytes, name)?;
        #[cfg(feature = "wgpu")]
        if let Some(gpu) = &self.gpu {
            let x = preprocess::to_chw(&img, &self.info.preprocess);
            let out = gpu
                .run_batch_async(&x, 1)
                .await
                .map_err(|e| ExecError::Gpu(e.to_string()))?;
            return gpu_predictions(out, gpu.output_len(), 1)
                .pop()
                .ok_or_else(|| ExecError::Gpu("the backend returned no prediction".into()).into());
        }
        self.classify_image(&img)
    }

    /// Classifies a batch of decoded images, in input order: in parallel on the CPU, several
    /// images per submit on a GPU. A GPU failure mid-run (device lost) is an error.
    pub fn classify_images(&self, images: &[RgbImage]) -> Result<Vec<Prediction>, Error> {
        #[cfg(feature = "wgpu")]
        if self.gpu.is_some() {
            let x = preprocess::to_nchw(images, &self.info.preprocess);
            return Ok(self.predict_batch(&x, images.len())?);
        }
        images
            .par_iter()
            .map(|i| {
                let x = preprocess::to_chw(i, &self.info.preprocess);
                Ok(Prediction::from_logits(self.exec.run(&x)?))
            })
            .collect()
    }
}

/// Predictions of a GPU batch: the probabilities from its softmax kernel, the class from the
/// logits (as on the CPU).
#[cfg(feature = "wgpu")]
fn gpu_predictions(out: crate::gpu::GpuOutput, classes: usize, n: usize) -> Vec<Prediction> {
    out.logits
        .chunks(classes.max(1))
        .zip(out.probabilities.chunks(classes.max(1)))
        .take(n)
        .map(|(l, p)| Prediction {
            probabilities: p.to_vec(),
            ..Prediction::from_logits(l.to_vec())
        })
        .collect()
}

/// Numerically stable softmax (the maximum is subtracted first), summed in f64.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let m = crate::exec::vmath::max(logits);
    let e: Vec<f64> = logits.iter().map(|&v| ((v - m) as f64).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|&v| (v / sum) as f32).collect()
}
