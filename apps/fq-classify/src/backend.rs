//! Where the model runs: the one place the apps choose a compute backend.
//!
//! `--backend cpu|wgpu|auto` (or `FQ_BACKEND`) picks it; today every choice but an explicit `wgpu`
//! resolves to the runtime's CPU executor. GPU HOOK: when the wgpu backend (issue 6) lands, add a
//! `Device::Wgpu` variant holding its session, build it in [`Engine::load`] for `Wgpu` and `Auto`
//! (falling back to CPU for `Auto` when no adapter is found), name it with the adapter in
//! [`Engine::backend_name`] and dispatch in [`Engine::logits`]; nothing else in the apps changes.

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
    /// The GPU when one is usable, else the CPU.
    Auto,
    Cpu,
    /// The GPU through wgpu (Vulkan, Metal, DX12 or GL); an error when unavailable.
    Wgpu,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{BACKEND_ENV}=`{0}` is not a backend (cpu, wgpu or auto)")]
    BadEnv(String),
    #[error("the wgpu backend is not available in this build; use --backend cpu or auto")]
    WgpuUnavailable,
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

/// The compute device a loaded model runs on.
enum Device {
    Cpu { threads: usize },
}

/// A model loaded once, compiled for its backend, ready to classify any number of images.
pub struct Engine {
    classifier: Classifier,
    device: Device,
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
        let device = match choice {
            BackendChoice::Wgpu => return Err(EngineError::WgpuUnavailable),
            BackendChoice::Auto | BackendChoice::Cpu => Device::Cpu {
                threads: rayon::current_num_threads(),
            },
        };
        let classifier = Classifier::load(model).map_err(|source| EngineError::Load {
            path: model.to_path_buf(),
            source: Box::new(source),
        })?;
        Ok(Engine {
            classifier,
            device,
            load_ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// What runs the model, for people: "CPU (8 threads)" or the GPU adapter's name.
    pub fn backend_name(&self) -> String {
        match self.device {
            Device::Cpu { threads } => format!("CPU ({threads} threads)"),
        }
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// Logits of one preprocessed CHW image on this engine's device.
    fn logits(&self, chw: &[f32]) -> Vec<f32> {
        match self.device {
            Device::Cpu { .. } => self
                .classifier
                .logits(chw)
                .expect("to_chw makes the model's input size"),
        }
    }

    /// Classifies a decoded image (resized and normalised as in training), with its timings.
    pub fn classify_image(&self, img: &RgbImage) -> (Prediction, Timing) {
        let t0 = Instant::now();
        let chw = preprocess::to_chw(img, self.classifier.preprocess());
        let t1 = Instant::now();
        let logits = self.logits(&chw);
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
        (
            prediction,
            Timing {
                preprocess_ms: ms(t0, t1),
                inference_ms: ms(t1, t2),
            },
        )
    }
}
