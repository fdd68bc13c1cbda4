//! Where the model runs: the one place the apps choose a compute backend.
//!
//! `--backend auto|cpu|gpu` (or `FQ_BACKEND`) picks it: `auto` takes a real GPU (discrete,
//! integrated or virtual) through the runtime's wgpu backend (built with the default `wgpu`
//! feature) and otherwise the CPU executor — never a software rasteriser such as Mesa's lavapipe,
//! which emulates a GPU on the CPU ~20x slower than the CPU path; `gpu` (alias `wgpu`) takes the
//! best adapter of any kind, a software one with a warning, and is an error without one. The
//! engine keeps the reason for its choice, which the apps report (`fq_runtime::backend::choose`).

use std::path::Path;
use std::time::Instant;

use clap::ValueEnum;
use fq_runtime::classify::{softmax, Classifier, ClassifyError, Prediction};
use fq_runtime::metrics::argmax_rows;
use fq_runtime::preprocess;
use image::RgbImage;

/// The environment variable that picks the backend when `--backend` is not given.
pub const BACKEND_ENV: &str = "FQ_BACKEND";

/// A requested backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// A real GPU when there is one, else the CPU (never a software rasteriser).
    Auto,
    Cpu,
    /// The GPU through wgpu (Vulkan, Metal, DX12 or GL), a software rasteriser included (with a
    /// warning); an error when there is no adapter.
    #[value(alias = "wgpu")]
    Gpu,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{BACKEND_ENV}=`{0}` is not a backend (auto, cpu or gpu)")]
    BadEnv(String),
    #[error("--backend gpu: {0}; use --backend cpu or auto")]
    GpuUnavailable(fq_runtime::backend::BackendError),
    #[error("inference failed: {0}")]
    Exec(#[from] fq_runtime::exec::ExecError),
    #[error("{}: {source}", path.display())]
    Load {
        path: std::path::PathBuf,
        /// Boxed: the runtime's error is large and this variant is rare.
        #[source]
        source: Box<ClassifyError>,
    },
}

impl BackendChoice {
    /// `flag` if given, else `FQ_BACKEND`, else `auto`.
    pub fn resolve(flag: Option<BackendChoice>) -> Result<BackendChoice, EngineError> {
        if let Some(c) = flag {
            return Ok(c);
        }
        match std::env::var(BACKEND_ENV) {
            Ok(v) if !v.trim().is_empty() => {
                BackendChoice::from_str(v.trim(), true).map_err(|_| EngineError::BadEnv(v))
            }
            _ => Ok(BackendChoice::Auto),
        }
    }
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
    /// Reads and compiles `model` for the chosen backend.
    pub fn load(model: &Path, choice: BackendChoice) -> Result<Engine, EngineError> {
        let start = Instant::now();
        use fq_runtime::backend::{choose, BackendChoice as Choice};
        let selection = choose(match choice {
            BackendChoice::Gpu => Choice::Gpu,
            BackendChoice::Auto => Choice::Auto,
            BackendChoice::Cpu => Choice::Cpu,
        })
        .map_err(EngineError::GpuUnavailable)?;
        let classifier =
            Classifier::load_on(model, &selection.backend).map_err(|source| EngineError::Load {
                path: model.to_path_buf(),
                source: Box::new(source),
            })?;
        Ok(Engine {
            classifier,
            reason: selection.reason,
            warning: selection.warning,
            load_ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// What runs the model, for people: "CPU (8 threads)" or the GPU adapter's name.
    pub fn backend_name(&self) -> String {
        let b = self.classifier.backend();
        if b.is_gpu() {
            b.name()
        } else {
            format!("CPU ({} threads)", rayon::current_num_threads())
        }
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
        let logits = self.logits(&chw)?;
        let class = argmax_rows(&logits, logits.len())
            .first()
            .copied()
            .unwrap_or(0);
        let prediction = Prediction {
            class,
            probabilities: softmax(&logits),
            logits,
        };
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
