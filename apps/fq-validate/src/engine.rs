//! The model on this machine: loaded once on the backend the runtime chooses
//! ([`fq_runtime::backend::choose`]: `--backend`, else `FQ_BACKEND`, else `auto`), with the reason
//! for the choice, which the report records next to the field figures.

use std::path::Path;

use anyhow::{anyhow, Result};
use fq_runtime::backend::choose;
use fq_runtime::{BackendChoice, Classifier};

/// A loaded model and why it runs where it does.
pub struct Engine {
    pub classifier: Classifier,
    /// Why this backend: `auto: only a software GPU adapter (llvmpipe …), …`.
    pub reason: String,
    /// A warning about the choice for stderr (a software rasteriser asked for by name).
    pub warning: Option<String>,
}

impl Engine {
    /// Reads and compiles `model` for the backend `flag` (or `FQ_BACKEND`) asks for.
    pub fn load(model: &Path, flag: Option<BackendChoice>) -> Result<Engine> {
        let selection = choose(BackendChoice::resolve(flag)?)
            .map_err(|e| anyhow!("--backend gpu: {e}; use --backend cpu or auto"))?;
        let classifier = Classifier::load_on(model, &selection.backend)
            .map_err(|e| anyhow!("{}: {e}", model.display()))?;
        Ok(Engine {
            classifier,
            reason: selection.reason,
            warning: selection.warning,
        })
    }

    /// What runs the model, for people: `CPU (8 threads)` or the GPU adapter's name.
    pub fn backend_name(&self) -> String {
        self.classifier.backend().label()
    }
}
