//! Where the model runs: the app's engine, loaded once on the backend the runtime chooses.
//!
//! `--backend auto|cpu|gpu` (or `FQ_BACKEND`) picks it, with the runtime's rules
//! ([`fq_runtime::backend`]): `auto` takes a real GPU (discrete, integrated or virtual) through
//! the runtime's wgpu backend (built with the default `wgpu` feature) and otherwise the CPU
//! executor — never a software rasteriser such as Mesa's lavapipe, which emulates a GPU on the
//! CPU ~20x slower than the CPU path; `gpu` (alias `wgpu`) takes the best adapter of any kind, a
//! software one with a warning, and is an error without one. The engine keeps the reason for the
//! choice, which the app reports, and times each photo's preprocessing and inference.

use std::path::Path;
use std::time::Instant;

use fq_runtime::backend::{choose, BackendError};
use fq_runtime::{preprocess, ActivationChoice, Classifier, PackedModel, Prediction};
use image::RgbImage;

pub use fq_runtime::backend::ENV as BACKEND_ENV;
pub use fq_runtime::BackendChoice;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `FQ_BACKEND` names no backend.
    #[error(transparent)]
    BadEnv(BackendError),
    #[error("--backend gpu: {0}; use --backend cpu or auto")]
    GpuUnavailable(BackendError),
    #[error("inference failed: {0}")]
    Exec(#[from] fq_runtime::exec::ExecError),
    #[error("{}: {source}", path.display())]
    Load {
        path: std::path::PathBuf,
        /// Boxed: the runtime's error is large and this variant is rare.
        #[source]
        source: Box<fq_runtime::Error>,
    },
}

/// `flag` if given, else `FQ_BACKEND`, else `auto` ([`BackendChoice::resolve`]).
pub fn resolve(flag: Option<BackendChoice>) -> Result<BackendChoice, EngineError> {
    BackendChoice::resolve(flag).map_err(EngineError::BadEnv)
}

/// A model loaded once, compiled for its backend, ready to classify any number of images.
pub struct Engine {
    classifier: Classifier,
    /// Why this backend: `auto: only a software GPU adapter (llvmpipe …), …`.
    reason: String,
    /// A warning about the choice for stderr (a software rasteriser asked for by name).
    warning: Option<String>,
    /// Time to read, verify and compile the model file.
    pub load_ms: f64,
}

/// Timings of one classification, in milliseconds.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Timing {
    /// Resize and normalisation into the model's input tensor.
    pub preprocess_ms: f64,
    /// The forward pass and softmax.
    pub inference_ms: f64,
}

impl Engine {
    /// Reads and compiles `model` for the chosen backend, with the file's activations.
    pub fn load(model: &Path, choice: BackendChoice) -> Result<Engine, EngineError> {
        Self::load_with(model, choice, ActivationChoice::Auto)
    }

    /// [`Engine::load`] with the CPU path's activations (`--activations`), applied as the
    /// model is compiled.
    pub fn load_with(
        model: &Path,
        choice: BackendChoice,
        activations: ActivationChoice,
    ) -> Result<Engine, EngineError> {
        let start = Instant::now();
        let selection = choose(choice).map_err(EngineError::GpuUnavailable)?;
        let load_err = |source: fq_runtime::Error| EngineError::Load {
            path: model.to_path_buf(),
            source: Box::new(source),
        };
        let file = PackedModel::load(model).map_err(|e| load_err(e.into()))?;
        let classifier =
            Classifier::from_model_with(file, &selection.backend, activations).map_err(load_err)?;
        Ok(Engine {
            classifier,
            reason: selection.reason,
            warning: selection.warning,
            load_ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// What runs the model, for people: "CPU (8 threads)" or the GPU adapter's name.
    pub fn backend_name(&self) -> String {
        self.classifier.backend().label()
    }

    /// Why this backend was chosen, e.g. `auto: only a software GPU adapter (llvmpipe …), which
    /// is slower than the CPU path`.
    pub fn backend_reason(&self) -> &str {
        &self.reason
    }

    /// A warning about the backend for stderr, if any.
    pub fn backend_warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// Logits of one preprocessed CHW image on this engine's backend.
    fn logits(&self, chw: &[f32]) -> Result<Vec<f32>, EngineError> {
        Ok(self.classifier.logits(chw)?)
    }

    /// Classifies a decoded image (resized and normalised as in training), with its timings.
    pub fn classify_image(&self, img: &RgbImage) -> Result<(Prediction, Timing), EngineError> {
        let t0 = Instant::now();
        let chw = preprocess::to_chw(img, self.classifier.preprocess());
        let t1 = Instant::now();
        let prediction = Prediction::from_logits(self.logits(&chw)?);
        let t2 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        Ok((
            prediction,
            Timing {
                preprocess_ms: ms(t0, t1),
                inference_ms: ms(t1, t2),
            },
        ))
    }
}
