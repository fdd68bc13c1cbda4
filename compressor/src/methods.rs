//! The compression methods a run can evaluate, and the bit-widths each assigns.

use crate::quant::BitAssignment;
use anyhow::Context;
use clap::ValueEnum;
use fq_models::QuantLayer;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A compression method (`--method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The trained FP32 model as is.
    Fp32,
    /// Post-training quantization, 8 bits for every output channel (spec §5.2).
    PtqU8,
    /// Post-training quantization, 4 bits for every output channel.
    PtqU4,
    /// FairQuant with fixed mixed precision from the importance allocation, then QAT (spec §5.3).
    FqQat,
    /// FairQuant with learnable per-channel bit-widths (spec §4).
    FqBaq,
}

impl Method {
    /// Name as in the paper's table.
    pub fn label(&self) -> &'static str {
        match self {
            Method::Fp32 => "FP32",
            Method::PtqU8 => "U8",
            Method::PtqU4 => "U4",
            Method::FqQat => "FQ-QAT",
            Method::FqBaq => "FQ-BAQ",
        }
    }

    /// Bit-widths for a fixed-assignment method; `None` for FP32 and for the learned methods
    /// (whose bits are in the run directory).
    pub fn fixed_bits(&self, layers: &[QuantLayer]) -> Option<BitAssignment> {
        match self {
            Method::Fp32 | Method::FqQat | Method::FqBaq => None,
            Method::PtqU8 => Some(BitAssignment::uniform(layers, 8)),
            Method::PtqU4 => Some(BitAssignment::uniform(layers, 4)),
        }
    }
}

/// Where a run keeps a method's learned artifacts: `RUN_DIR/methods/<method>/` with
/// `weights.safetensors` (weights that differ from the FP32 model, e.g. after QAT) and
/// `bits.json` (a [`BitAssignment`], e.g. BAQ's discretized bits).
pub fn method_dir(run_dir: &Path, method: Method) -> PathBuf {
    let name = method
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| format!("{method:?}"));
    run_dir.join("methods").join(name)
}

/// The weights file and bit assignment a method's model uses: its own files when the run has
/// them, else the FP32 weights and the method's fixed bits. `None` bits = unquantized FP32.
pub fn artifacts(
    run_dir: &Path,
    method: Method,
    layers: &[QuantLayer],
) -> anyhow::Result<(PathBuf, Option<BitAssignment>)> {
    let dir = method_dir(run_dir, method);
    let own = dir.join("weights.safetensors");
    let weights = if own.exists() {
        own
    } else {
        run_dir.join("fp32.safetensors")
    };
    if !weights.exists() {
        anyhow::bail!(
            "{}: no trained weights for method {} (run `fq-compress train` / `compress` first)",
            weights.display(),
            method.label()
        );
    }
    let bits_path = dir.join("bits.json");
    let bits = if bits_path.exists() {
        let text = std::fs::read_to_string(&bits_path)
            .with_context(|| format!("{}: cannot read", bits_path.display()))?;
        Some(
            serde_json::from_str(&text)
                .with_context(|| format!("{}: invalid bit assignment", bits_path.display()))?,
        )
    } else if matches!(method, Method::FqQat | Method::FqBaq) {
        anyhow::bail!(
            "{}: method {} has not finished in this run (run `fq-compress compress --method {}`)",
            bits_path.display(),
            method.label(),
            method
                .to_possible_value()
                .map(|v| v.get_name().to_string())
                .unwrap_or_default()
        );
    } else {
        method.fixed_bits(layers)
    };
    Ok((weights, bits))
}
