//! The compression methods a run can evaluate, and the bit-widths each assigns.

use crate::quant::BitAssignment;
use fq_models::QuantLayer;
use serde::{Deserialize, Serialize};

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
}

impl Method {
    /// Name as in the paper's table.
    pub fn label(&self) -> &'static str {
        match self {
            Method::Fp32 => "FP32",
            Method::PtqU8 => "U8",
            Method::PtqU4 => "U4",
        }
    }

    /// Bit-widths for a fixed-assignment method; `None` for FP32.
    pub fn fixed_bits(&self, layers: &[QuantLayer]) -> Option<BitAssignment> {
        match self {
            Method::Fp32 => None,
            Method::PtqU8 => Some(BitAssignment::uniform(layers, 8)),
            Method::PtqU4 => Some(BitAssignment::uniform(layers, 4)),
        }
    }
}
