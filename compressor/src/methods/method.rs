//! The compression methods a run can evaluate, and the bit-widths each assigns.

use crate::nn::quant::BitAssignment;
use crate::support::run_files::{MethodFiles, RunFiles};
use anyhow::Context;
use fq_models::QuantLayer;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A compression method (`--method`).
///
/// PTQ at every width 2..=8 (and 16, evaluation only) is one variant per width rather than
/// `--method ptq --bits N`, so that the names old runs wrote (`ptq-u8`, `ptq-u4` in
/// `report.json`, sweep plans and `methods/` directories) and their labels (`U8`, `U4`) keep
/// meaning the same thing without a migration.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumMessage,
)]
#[strum(serialize_all = "kebab-case")]
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
    /// The FairGRAPE baseline ("Lin et al.", spec §5.4): per-layer pruning of 85% of the weights
    /// by max-group importance, the rest FP32 (`--preset fairgrape-script`: the run script's
    /// FQ-QAT with the `max` reducer and no fairness loss).
    Fairgrape,
    /// The FairQuantize baseline ("Guo et al.", spec §5.5): FQ-QAT with the `subtractive`
    /// reducer `I_0 - I_1`, the proportions reversed ({2,4,8} @ {0.4,0.4,0.2}) and no fairness loss.
    Fairquantize,
    /// Post-training quantization, 2 bits (ternary) for every output channel: Bellam & Kim's
    /// "extreme" end of the precision sweep.
    PtqU2,
    /// Post-training quantization, 3 bits for every output channel.
    PtqU3,
    /// Post-training quantization, 5 bits for every output channel.
    PtqU5,
    /// Post-training quantization, 6 bits for every output channel.
    PtqU6,
    /// Post-training quantization, 7 bits for every output channel.
    PtqU7,
    /// Post-training quantization, 16 bits for every output channel: evaluation and report only
    /// (the packed `.fqm` stores 2..=8 bits, so `export` refuses it).
    PtqU16,
    /// Control for FQ-QAT's extra training: uniform 4 bits, fine-tuned with exactly FQ-QAT's
    /// budget (epochs, rate, optimizer, schedule, clipping, data order, seed, start model) but
    /// with no importance allocation and no fairness loss.
    QatU4,
    /// Control for the extra training itself: the FP32 model fine-tuned with FQ-QAT's budget
    /// and no fairness loss, unquantized.
    Fp32Ft,
}

/// The same bit-width for every output channel of every layer: the assignment of PTQ at `bits`
/// (2..=16; the spec §1 quantizer takes any width, `qmax = 2^(b-1) - 1`). For a precision sweep
/// over widths that have no `Method` (9..=15).
pub fn ptq_bits(layers: &[QuantLayer], bits: u8) -> anyhow::Result<BitAssignment> {
    if !(2..=16).contains(&bits) {
        anyhow::bail!("PTQ at {bits} bits: uniform quantization takes 2 to 16 bits");
    }
    Ok(BitAssignment::uniform(layers, bits))
}

/// The controls for FairQuant's extra training (QAT-U4, FP32-FT): FQ-QAT's fine-tuning without
/// the importance allocation and the fairness loss, so that a table shows what FairQuant adds
/// beyond the epochs.
pub fn is_control(method: Method) -> bool {
    matches!(method, Method::QatU4 | Method::Fp32Ft)
}

impl Method {
    /// The uniform PTQ methods by width, narrowest first.
    pub const PTQ: [Method; 8] = [
        Method::PtqU2,
        Method::PtqU3,
        Method::PtqU4,
        Method::PtqU5,
        Method::PtqU6,
        Method::PtqU7,
        Method::PtqU8,
        Method::PtqU16,
    ];

    /// The bit-width of a uniform PTQ method; `None` for every other method.
    pub fn ptq_width(&self) -> Option<u8> {
        match self {
            Method::PtqU2 => Some(2),
            Method::PtqU3 => Some(3),
            Method::PtqU4 => Some(4),
            Method::PtqU5 => Some(5),
            Method::PtqU6 => Some(6),
            Method::PtqU7 => Some(7),
            Method::PtqU8 => Some(8),
            Method::PtqU16 => Some(16),
            Method::Fp32
            | Method::FqQat
            | Method::FqBaq
            | Method::Fairgrape
            | Method::Fairquantize
            | Method::QatU4
            | Method::Fp32Ft => None,
        }
    }

    /// The uniform PTQ method at `bits`, if there is one (2..=8 and 16).
    pub fn ptq(bits: u8) -> Option<Method> {
        Self::PTQ.into_iter().find(|m| m.ptq_width() == Some(bits))
    }

    /// Name as in the paper's table.
    pub fn label(&self) -> &'static str {
        match self {
            Method::Fp32 => "FP32",
            Method::PtqU2 => "U2",
            Method::PtqU3 => "U3",
            Method::PtqU4 => "U4",
            Method::PtqU5 => "U5",
            Method::PtqU6 => "U6",
            Method::PtqU7 => "U7",
            Method::PtqU8 => "U8",
            Method::PtqU16 => "U16",
            Method::FqQat => "FQ-QAT",
            Method::FqBaq => "FQ-BAQ",
            Method::Fairgrape => "FairGRAPE",
            Method::Fairquantize => "FairQuantize",
            Method::QatU4 => "QAT-U4",
            Method::Fp32Ft => "FP32-FT",
        }
    }

    /// Whether the method trains (fine-tunes) weights of its own in `methods/<method>/`, so
    /// that `compress` runs [`crate::methods::runner::compress`] and a sweep runs it once per seed.
    pub fn is_trained(&self) -> bool {
        // Exhaustive on purpose: a new method must say whether it trains.
        match self {
            Method::FqQat
            | Method::FqBaq
            | Method::Fairgrape
            | Method::Fairquantize
            | Method::QatU4
            | Method::Fp32Ft => true,
            Method::Fp32
            | Method::PtqU2
            | Method::PtqU3
            | Method::PtqU4
            | Method::PtqU5
            | Method::PtqU6
            | Method::PtqU7
            | Method::PtqU8
            | Method::PtqU16 => false,
        }
    }

    /// Whether the method's weights stay FP32 (no quantizer at all).
    pub fn is_unquantized(&self) -> bool {
        matches!(self, Method::Fp32 | Method::Fp32Ft)
    }

    /// Bit-widths for a fixed-assignment method; `None` for FP32 and for the learned methods
    /// (whose bits are in the run directory).
    pub fn fixed_bits(&self, layers: &[QuantLayer]) -> Option<BitAssignment> {
        self.ptq_width().map(|b| BitAssignment::uniform(layers, b))
    }
}

/// A method under one named setting: `--variant official-code` or a sweep's `s42` keeps its
/// files in `methods/<method>-<variant>/` and its own row in the report, so presets, seeds and
/// ablation values of one method coexist in a run instead of overwriting each other.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MethodId {
    pub method: Method,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl From<Method> for MethodId {
    fn from(method: Method) -> Self {
        Self {
            method,
            variant: None,
        }
    }
}

impl MethodId {
    /// `method` under `variant` (`None` or empty: the plain method). A variant is a directory
    /// name part, so it is limited to ASCII letters, digits, `.`, `_` and `-`.
    pub fn new(method: Method, variant: Option<&str>) -> anyhow::Result<Self> {
        let variant = variant.filter(|v| !v.is_empty());
        if let Some(v) = variant {
            let ok = v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok || v.starts_with('.') || v.len() > 100 {
                anyhow::bail!(
                    "--variant `{v}`: use at most 100 ASCII letters, digits, `.`, `_` or `-` (not starting with `.`)"
                );
            }
        }
        Ok(Self {
            method,
            variant: variant.map(str::to_string),
        })
    }

    /// The method's command-line name (`fq-baq`), with `-<variant>` when it has one.
    pub fn name(&self) -> String {
        let base = <&'static str>::from(self.method).to_string();
        match &self.variant {
            Some(v) => format!("{base}-{v}"),
            None => base,
        }
    }

    /// The paper's name (`FQ-BAQ`), with ` [variant]` when it has one.
    pub fn label(&self) -> String {
        match &self.variant {
            Some(v) => format!("{} [{v}]", self.method.label()),
            None => self.method.label().to_string(),
        }
    }
}

/// Where a run keeps a method's learned artifacts: `RUN_DIR/methods/<method>[-<variant>]/` with
/// `weights.safetensors` (weights that differ from the FP32 model, e.g. after QAT) and
/// `bits.json` (a [`BitAssignment`], e.g. BAQ's discretized bits).
pub fn method_dir(run_dir: &Path, id: impl Into<MethodId>) -> PathBuf {
    RunFiles::new(run_dir)
        .method(&id.into().name())
        .dir()
        .to_path_buf()
}

/// Mean bits per layer of a method's model for the report (spec §8): from its bit assignment,
/// or, for a pruned method (`prune.json`), 0 for pruned and 32 for kept weights.
pub fn layer_mean_bits(
    run_dir: &Path,
    id: &MethodId,
    layers: &[QuantLayer],
    bits: Option<&BitAssignment>,
) -> anyhow::Result<(Vec<f64>, bool)> {
    if let Some(p) =
        crate::methods::fairgrape::PruneSummary::load(&method_dir(run_dir, id.clone()))?
    {
        return Ok((p.layer_mean_bits(layers), true));
    }
    Ok((
        match bits {
            Some(b) => b.layer_mean_bits(layers),
            None => vec![32.0; layers.len()],
        },
        false,
    ))
}

/// The weights file and bit assignment a method's model uses: its own files when the run has
/// them, else the FP32 weights and the method's fixed bits. `None` bits = unquantized FP32.
pub fn artifacts(
    run_dir: &Path,
    id: impl Into<MethodId>,
    layers: &[QuantLayer],
) -> anyhow::Result<(PathBuf, Option<BitAssignment>)> {
    let id = id.into();
    let method = id.method;
    let dir = method_dir(run_dir, id.clone());
    let own = MethodFiles::new(&dir).weights();
    let weights = if own.exists() {
        own
    } else {
        RunFiles::new(run_dir).fp32()
    };
    if !weights.exists() {
        anyhow::bail!(
            "{}: no trained weights for method {} (run `fq-compress train` / `compress` first)",
            weights.display(),
            id.label()
        );
    }
    let bits_path = MethodFiles::new(&dir).bits();
    let bits = if method == Method::Fp32Ft {
        // Unquantized: its own weights are the whole result (see `runner::compress`).
        if !finished(&dir, method) {
            bail_unfinished(&MethodFiles::new(&dir).weights(), &id)?;
        }
        None
    } else if MethodFiles::new(&dir).prune().exists() {
        // Pruned (FairGRAPE): the zeros are in the weights, the survivors are FP32.
        None
    } else if bits_path.exists() {
        let text = std::fs::read_to_string(&bits_path)
            .with_context(|| format!("{}: cannot read", bits_path.display()))?;
        Some(
            serde_json::from_str(&text)
                .with_context(|| format!("{}: invalid bit assignment", bits_path.display()))?,
        )
    } else if method.is_trained() {
        return bail_unfinished(&bits_path, &id);
    } else {
        method.fixed_bits(layers)
    };
    Ok((weights, bits))
}

/// Whether a trained method's directory holds a finished result: its weights and the file
/// written after them (`bits.json`, or FairGRAPE's `prune.json`); an unquantized control
/// (FP32-FT) has only its weights, which are written last and atomically.
pub fn finished(dir: &Path, method: Method) -> bool {
    MethodFiles::new(dir).weights().exists()
        && (method.is_unquantized()
            || MethodFiles::new(dir).bits().exists()
            || MethodFiles::new(dir).prune().exists())
}

fn bail_unfinished<T>(marker: &Path, id: &MethodId) -> anyhow::Result<T> {
    let variant = id
        .variant
        .as_deref()
        .map_or(String::new(), |v| format!(" --variant {v}"));
    anyhow::bail!(
        "{}: method {} has not finished in this run (run `fq-compress compress --method {}{variant}`)",
        marker.display(),
        id.label(),
        MethodId::from(id.method).name()
    )
}
