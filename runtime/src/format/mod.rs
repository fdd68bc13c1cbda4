//! The packed mixed-bit model file (`.fqm`): what leaves the compressor and what a device loads.
//!
//! A file is a header (magic, version, SHA-256 of the body; see [`header`]) and a postcard-encoded
//! [`PackedModel`]: the folded architecture graph, class and group names, preprocessing, the
//! compression summary and, per Conv2d/Linear layer, per-output-channel bit-widths, scales and the
//! bit-packed codes in the layout the executor's GEMM reads directly (see [`pack`]). Since format
//! version 3 it may also carry calibrated activation scales ([`ActivationScales`]): a file with
//! them runs on the integer path by default. Version-2 files (no scales) still load.

mod assemble;
mod header;
pub mod limits;
pub mod pack;
mod validate;

use std::path::{Path, PathBuf};

use fq_models::Graph;
use serde::{Deserialize, Serialize};

use crate::metrics::FairnessMetrics;
use crate::preprocess::PreprocessConfig;

pub use assemble::{assemble, assemble_with, BatchNormParams, LayerParams, LayerSource, ModelMeta};
pub use header::{wrap, FormatError, FORMAT_VERSION, HEADER_LEN, MAGIC, OLDEST_READABLE_VERSION};
pub use pack::PackError;
pub(crate) use validate::{
    layers as validate_layers, shapes as validate_shapes, tensor_specs, tensors as validate_tensors,
};

/// Everything a `.fqm` file holds after its header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackedModel {
    /// The architecture with batch norm folded into the convolutions: what the executor runs.
    pub graph: Graph,
    pub classes: Vec<String>,
    /// Patient groups the fairness metrics are reported over (e.g. Fitzpatrick I–III / IV–VI).
    pub groups: Vec<String>,
    pub preprocess: PreprocessConfig,
    pub summary: CompressionSummary,
    /// One entry per Conv2d/Linear node of `graph`, in node order.
    pub layers: Vec<Layer>,
    /// The other parameters the graph needs, unquantized (spec §1 keeps them FP32): layer norms'
    /// `weight`/`bias`, the class token, the position embedding, attention-bias tables; in node
    /// order, named as in [`fq_models::Graph::params`].
    pub tensors: Vec<NamedTensor>,
    /// Static 8-bit activation scales calibrated by the compressor (format v3); `None`: the file
    /// runs with f32 activations (every version-2 file).
    pub activations: Option<ActivationScales>,
}

/// Per-tensor input scales of the layers that run on the integer path, fixed by the compressor
/// on its calibration images, so a device quantises activations exactly as the compressor
/// evaluated them (the deployed model is the one `report.json` describes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivationScales {
    /// How the calibration images were chosen: `plain` (as the run's calibration set comes)
    /// or `group-balanced` (the same number from every patient group).
    pub calibration: String,
    /// Calibration images used.
    pub images: u32,
    /// One entry per layer (the order of [`PackedModel::layers`]): the scale of its input
    /// (`q = round(x / scale)` clamped to ±127), or `None` for a layer that keeps f32 inputs.
    pub input_scales: Vec<Option<f32>>,
}

/// The body of a version-2 file: [`PackedModel`] without `activations`. Postcard is
/// positional, so the old layout is decoded by its own struct rather than guessed at.
#[derive(Deserialize)]
struct PackedModelV2 {
    graph: Graph,
    classes: Vec<String>,
    groups: Vec<String>,
    preprocess: PreprocessConfig,
    summary: CompressionSummary,
    layers: Vec<Layer>,
    tensors: Vec<NamedTensor>,
}

impl From<PackedModelV2> for PackedModel {
    fn from(m: PackedModelV2) -> Self {
        PackedModel {
            graph: m.graph,
            classes: m.classes,
            groups: m.groups,
            preprocess: m.preprocess,
            summary: m.summary,
            layers: m.layers,
            tensors: m.tensors,
            activations: None,
        }
    }
}

/// An unquantized parameter tensor, row-major.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// How the model was compressed and how well it did on the compressor's test split; the
/// field-validation tool compares a site's results against `test_metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompressionSummary {
    /// Method as on the compressor's command line (`ptq-u4`).
    pub method: String,
    /// Method as in the paper's table (`U4`).
    pub method_label: String,
    /// Parameter-weighted mean bit-width of the Conv2d/Linear weights (32 for f32 layers), spec §8.
    pub avg_bits: f64,
    /// Batch norms folded away at export, as `(batch norm, convolution)` module names.
    pub folded: Vec<(String, String)>,
    /// The compressor's per-group metrics on its test split; `None` if its run had none.
    pub test_metrics: Option<FairnessMetrics>,
}

/// One Conv2d/Linear layer: weights as a `[out, in/groups * k * k]` (or `[out, in]`) matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// Module name of its node in the graph.
    pub name: String,
    pub weights: LayerWeights,
    /// One per output channel, with any folded batch norm's shift; present iff the node has a bias.
    pub bias: Option<Vec<f32>>,
}

/// Weights of a layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LayerWeights {
    /// Bit-packed integer codes with a scale per row: `w[o][k] = code[o][k] * scales[o]`.
    Packed(PackedMatrix),
    /// Unquantized row-major weights (an FP32 export).
    F32 {
        rows: usize,
        cols: usize,
        data: Vec<f32>,
    },
}

impl LayerWeights {
    /// `(rows, cols)` of the weight matrix.
    pub fn dims(&self) -> (usize, usize) {
        match self {
            LayerWeights::Packed(m) => (m.rows, m.cols),
            LayerWeights::F32 { rows, cols, .. } => (*rows, *cols),
        }
    }

    /// The weights as f32, row-major (for references and inspection; the executor never does this).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            LayerWeights::Packed(m) => m.dequantize(),
            LayerWeights::F32 { data, .. } => data.clone(),
        }
    }
}

/// A matrix of per-row bit-width codes, rows packed back to back (see [`pack`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackedMatrix {
    pub rows: usize,
    pub cols: usize,
    /// Bit-width of each row (output channel), 2..=8.
    pub bits: Vec<u8>,
    /// Scale of each row, any folded batch-norm factor included.
    pub scales: Vec<f32>,
    pub data: Vec<u8>,
}

impl PackedMatrix {
    /// Packs row-major integer `codes` (`rows * cols`) with one width and scale per row.
    pub fn from_codes(
        cols: usize,
        bits: Vec<u8>,
        codes: &[i8],
        scales: Vec<f32>,
    ) -> Result<Self, String> {
        let rows = bits.len();
        if codes.len() != rows * cols || scales.len() != rows {
            return Err(format!(
                "{rows} rows of {cols} columns need {} codes and {rows} scales, got {} and {}",
                rows * cols,
                codes.len(),
                scales.len()
            ));
        }
        let mut data = Vec::with_capacity(bits.iter().map(|&b| pack::row_bytes(cols, b)).sum());
        for (r, &b) in bits.iter().enumerate() {
            pack::pack_row(&codes[r * cols..(r + 1) * cols], b, &mut data)
                .map_err(|e| format!("row {r}: {e}"))?;
        }
        Ok(Self {
            rows,
            cols,
            bits,
            scales,
            data,
        })
    }

    /// Byte offset of each row in `data`, plus the total length at the end.
    pub fn row_offsets(&self) -> Vec<usize> {
        let mut offsets = Vec::with_capacity(self.rows + 1);
        let mut at = 0;
        offsets.push(0);
        for &b in &self.bits {
            at += pack::row_bytes(self.cols, b);
            offsets.push(at);
        }
        offsets
    }

    /// `code * scale` for every weight, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let offsets = self.row_offsets();
        let mut out = vec![0.0; self.rows * self.cols];
        for (r, row) in out.chunks_mut(self.cols.max(1)).enumerate().take(self.rows) {
            let ok = pack::unpack_row(&self.data[offsets[r]..offsets[r + 1]], self.bits[r], 0, row);
            debug_assert!(ok, "dequantize of an unvalidated matrix");
            for v in row.iter_mut() {
                *v *= self.scales[r];
            }
        }
        out
    }
}

/// A model file that cannot be read or written; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The I/O error already names the file.
    #[error("cannot write the model: {0}")]
    Write(std::io::Error),
    #[error("{}: {source}", path.display())]
    Format { path: PathBuf, source: FormatError },
}

impl PackedModel {
    /// The file contents: header and encoded body. Fails on a model that does not validate.
    pub fn to_bytes(&self) -> Result<Vec<u8>, FormatError> {
        self.validate()?;
        let body = postcard::to_allocvec(self).map_err(|e| FormatError::Encode(e.to_string()))?;
        Ok(header::wrap(&body))
    }

    /// Parses and validates file contents (format version 2 or 3); any damage is an error,
    /// never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        let (version, body) = header::unwrap(bytes)?;
        let decode_err = |e: postcard::Error| FormatError::Decode(e.to_string());
        let (model, rest): (PackedModel, _) = if version == 2 {
            let (m, rest): (PackedModelV2, _) =
                postcard::take_from_bytes(body).map_err(decode_err)?;
            (m.into(), rest)
        } else {
            postcard::take_from_bytes(body).map_err(decode_err)?
        };
        if !rest.is_empty() {
            return Err(FormatError::Decode(format!(
                "{} bytes left over after the model",
                rest.len()
            )));
        }
        model.validate()?;
        Ok(model)
    }

    /// Writes the model atomically (temp file, fsync, rename). Returns the file size.
    pub fn save(&self, path: &Path) -> Result<u64, ModelFileError> {
        let bytes = self.to_bytes().map_err(|source| ModelFileError::Format {
            path: path.to_path_buf(),
            source,
        })?;
        crate::atomic::write_atomic(path, &bytes).map_err(ModelFileError::Write)?;
        Ok(bytes.len() as u64)
    }

    /// Reads and parses a model file; a file over [`limits::MAX_FILE_BYTES`] is refused before
    /// it is read.
    pub fn load(path: &Path) -> Result<Self, ModelFileError> {
        let read_err = |source| ModelFileError::Read {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read_err)?.len();
        if len > limits::MAX_FILE_BYTES {
            return Err(ModelFileError::Format {
                path: path.to_path_buf(),
                source: FormatError::TooLarge {
                    len,
                    max: limits::MAX_FILE_BYTES,
                },
            });
        }
        let bytes = std::fs::read(path).map_err(read_err)?;
        Self::from_bytes(&bytes).map_err(|source| ModelFileError::Format {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Checks that the graph is executable and every layer's tensors fit it (see [`validate`]).
    pub fn validate(&self) -> Result<(), FormatError> {
        self.validated_shapes().map(drop)
    }

    /// [`PackedModel::validate`], returning the shape of every graph value (the input first).
    pub(crate) fn validated_shapes(&self) -> Result<Vec<fq_models::Shape>, FormatError> {
        validate::validate(self).map_err(FormatError::Invalid)
    }
}
