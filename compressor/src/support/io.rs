//! Atomic writes of tensor files and configurations: a crash never leaves a half-written checkpoint, model or config.

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

/// Write a configuration as TOML, atomically.
pub fn save_toml<T: serde::Serialize>(value: &T, path: &Path) -> Result<()> {
    let text = toml::to_string_pretty(value)?;
    fq_runtime::atomic::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Read a TOML configuration; errors name the file and `what` it should have been.
pub fn load_toml<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}: invalid {what}", path.display()))
}
