//! Atomic writes of tensor files: a crash never leaves a half-written checkpoint or model.

use anyhow::{Context, Result};
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::Path;

/// Write safetensors to a temp file next to `path`, then rename it into place.
pub fn save_tensors_atomic(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create directory", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    candle_core::safetensors::save(tensors, &tmp)
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("{}: cannot rename into place", path.display()))?;
    Ok(())
}
