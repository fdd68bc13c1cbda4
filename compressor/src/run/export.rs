//! Export of a run's compressed model to the packed `.fqm` file the runtime executes.
//!
//! The codes come from the one quantizer (`quant::quantize_weight`), so the file holds exactly
//! the weights the compressor evaluated; batch norm is folded by the runtime's `format::assemble`.
//! An FP32 export keeps f32 weights (the runtime's unquantized baseline) rather than refusing.

use crate::methods::{artifacts, Method, MethodId};
use crate::nn::params::ParamStore;
use crate::nn::quant::{quantize_weight, BitAssignment, Granularity};
use crate::run::activations::{self, CalibrationChoice};
use crate::run::config::RunConfig;
use crate::run::onnx::OnnxOptions;
use crate::run::report::Report;
use crate::support::run_files::RunFiles;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use fq_eval::metrics::FairnessMetrics;
use fq_models::{ArchSpec, Graph};
use fq_runtime::format::{
    assemble_with, BatchNormParams, LayerParams, LayerSource, ModelMeta, PackedModel,
};
use fq_runtime::preprocess::PreprocessConfig;
use std::fmt;
use std::path::{Path, PathBuf};

/// The method `export` picks without `--method`: among the report's compressed methods the one
/// with the best worst-group test accuracy (fairness first), ties going to fewer bits; PTQ-U4
/// when the report has none. Not candidates: unquantized models (FP32, the FP32-FT control),
/// pruned ones and U16, which the packed format cannot hold.
pub fn default_method(report: &Report) -> MethodId {
    report
        .results
        .iter()
        .filter(|r| !r.method.is_unquantized() && !r.pruned && packable(r.method))
        .max_by(|a, b| {
            a.metrics
                .worst_acc
                .total_cmp(&b.metrics.worst_acc)
                .then(b.avg_bits.total_cmp(&a.avg_bits))
        })
        .map_or(Method::PtqU4.into(), |r| r.id())
}

/// Whether the packed formats can hold the method's bits (2..=8 per channel): all but U16.
pub fn packable(method: Method) -> bool {
    method.ptq_width().is_none_or(|b| b <= 8)
}

/// Description of the model beyond its graph and tensors.
pub struct ExportMeta {
    pub method: MethodId,
    pub classes: Vec<String>,
    pub groups: Vec<String>,
    pub preprocess: PreprocessConfig,
    pub test_metrics: Option<FairnessMetrics>,
}

/// The packed model of `params` quantized with `bits` (`None`: f32 weights), batch norm folded.
pub fn pack_model(
    graph: &Graph,
    params: &ParamStore,
    bits: Option<&BitAssignment>,
    meta: ExportMeta,
) -> Result<PackedModel> {
    let vec = |name: &str| -> Result<Vec<f32>, String> {
        params
            .get(name)
            .and_then(|v| Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?))
            .map_err(|e| e.to_string())
    };
    let biased: std::collections::HashSet<&str> = graph
        .nodes
        .iter()
        .filter(|n| match &n.op {
            fq_models::Op::Conv2d(c) => c.bias,
            fq_models::Op::Linear(l) => l.bias,
            _ => false,
        })
        .map(|n| n.name.as_str())
        .collect();
    let layer = |name: &str, rows: usize, cols: usize| -> Result<LayerParams, String> {
        let w = vec(&format!("{name}.weight"))?;
        let weights = match bits {
            None => LayerSource::Float(w),
            Some(a) => quantized(name, &w, rows, cols, a)?,
        };
        let has_bias = biased.contains(name);
        let bias = has_bias.then(|| vec(&format!("{name}.bias"))).transpose()?;
        Ok(LayerParams { weights, bias })
    };
    let batch_norm = |name: &str| -> Result<BatchNormParams, String> {
        Ok(BatchNormParams {
            weight: vec(&format!("{name}.weight"))?,
            bias: vec(&format!("{name}.bias"))?,
            running_mean: vec(&format!("{name}.running_mean"))?,
            running_var: vec(&format!("{name}.running_var"))?,
        })
    };
    let meta = ModelMeta {
        classes: meta.classes,
        groups: meta.groups,
        preprocess: meta.preprocess,
        method: meta.method.name(),
        method_label: meta.method.label(),
        test_metrics: meta.test_metrics,
    };
    // Layer norms, class token, position embedding, attention biases: FP32 (spec §1).
    let tensor = |name: &str, _shape: &[usize]| vec(name);
    Ok(assemble_with(graph, meta, layer, batch_norm, tensor)?)
}

/// Integer codes of one layer from the quantizer: `codes * scales` reproduces its dequantized
/// weights bit for bit, which is checked rather than assumed.
fn quantized(
    name: &str,
    w: &[f32],
    rows: usize,
    cols: usize,
    a: &BitAssignment,
) -> Result<LayerSource, String> {
    let bits = a
        .layers
        .get(name)
        .ok_or("the bit assignment has no entry for this layer")?;
    if let Some(b) = bits.iter().find(|b| !(2..=8).contains(*b)) {
        return Err(format!(
            "bit-width {b} in the assignment: the packed format stores 2..=8 bits per channel"
        ));
    }
    let gran = a.granularity.unwrap_or(Granularity::PerChannel);
    let (deq, scales) = quantize_weight(w, rows, bits, gran).map_err(|e| e.to_string())?;
    // Per-tensor quantization is per-channel with every channel alike.
    let (bits, scales) = match gran {
        Granularity::PerChannel => (bits.clone(), scales),
        Granularity::PerTensor => (vec![bits[0]; rows], vec![scales[0]; rows]),
    };
    let mut codes = Vec::with_capacity(deq.len());
    for (o, row) in deq.chunks(cols.max(1)).enumerate() {
        let s = scales[o];
        for &d in row {
            let q = (d / s).round_ties_even();
            if q * s != d {
                return Err(format!(
                    "channel {o}: {d} is not code {q} x scale {s}; the quantizer and the packer disagree"
                ));
            }
            codes.push(q as i8);
        }
    }
    Ok(LayerSource::Quantized {
        bits,
        codes,
        scales,
    })
}

/// The file format `fq-compress export` writes.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumMessage,
)]
#[strum(serialize_all = "kebab-case")]
pub enum ExportFormat {
    /// The packed `.fqm` that fq-runtime, fq-classify and fq-validate load.
    #[default]
    Fqm,
    // The help text below names the module by its old path, `crate::onnx` (now `crate::run::onnx`),
    // because clap prints it and `fq-compress export --help` is kept byte for byte as it was.
    /// ONNX for onnxruntime (see [`crate::onnx`]): the same model, built from the same packed
    /// model, with int8/int4 codes and per-channel `DequantizeLinear`.
    Onnx,
}

impl ExportFormat {
    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Fqm => "fqm",
            ExportFormat::Onnx => "onnx",
        }
    }
}

/// The activations an `.fqm` export calibrates (an ONNX export keeps f32 activations).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExportActivations {
    /// f32 activations: nothing calibrated, no data needed (a version-3 file without scales).
    #[default]
    F32,
    /// 8-bit activations calibrated on the run's training split and evaluated through
    /// fq-runtime (see [`crate::run::activations`]); needs the run's data.
    Int8(CalibrationChoice),
}

/// What `export_run` wrote.
#[derive(Clone, Debug)]
pub struct Exported {
    pub path: PathBuf,
    pub method: MethodId,
    pub avg_bits: f64,
    pub bytes: u64,
    /// The f32 safetensors the model came from, and its size.
    pub weights: PathBuf,
    pub f32_bytes: u64,
    pub has_test_metrics: bool,
    /// With 8-bit activations: the calibration stored and the worst-group test accuracy with
    /// 8-bit and with f32 activations (fq-runtime, the same weights).
    pub activations: Option<(String, f64, f64)>,
    /// The model card written beside a `.fqm` (see [`crate::run::model_card`]); an ONNX export
    /// writes none (its metadata carries the same facts, and it must not overwrite the
    /// `.fqm`'s card of the same stem).
    pub card: Option<PathBuf>,
}

impl fmt::Display for Exported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mb = |b: u64| b as f64 / 1e6;
        write!(
            f,
            "wrote {} ({}, {:.2} bits/weight): {:.3} MB; f32 safetensors {}: {:.3} MB ({:.1}x smaller)",
            self.path.display(),
            self.method.label(),
            self.avg_bits,
            mb(self.bytes),
            self.weights.display(),
            mb(self.f32_bytes),
            self.f32_bytes as f64 / self.bytes.max(1) as f64
        )?;
        if let Some((calibration, a8, f32)) = &self.activations {
            write!(
                f,
                "\n  activations: int8 ({calibration} calibration): worst-group test accuracy {:.2}% (f32 activations: {:.2}%)",
                100.0 * a8,
                100.0 * f32
            )?;
        }
        if let Some(card) = &self.card {
            write!(f, "\n  model card: {}", card.display())?;
        }
        if !self.has_test_metrics {
            write!(
                f,
                "\n  note: the run's report has no test metrics for {}; the file carries none",
                self.method.label()
            )?;
        }
        Ok(())
    }
}

/// `fq-compress export`: packs a run's model for `method` (default: [`default_method`]) into
/// `out` (default `RUN_DIR/model-<label>.fqm`, e.g. `model-u4.fqm`), written atomically, with
/// f32 activations. Reads `config.toml`, `report.json` (class and group names, test metrics)
/// and the method's artifacts.
pub fn export_run(
    run_dir: &Path,
    method: Option<MethodId>,
    out: Option<&Path>,
) -> Result<Exported> {
    export_run_as(
        run_dir,
        method,
        out,
        ExportFormat::Fqm,
        OnnxOptions::default(),
        ExportActivations::F32,
    )
}

/// [`export_run`] in `format`: an ONNX export (default `RUN_DIR/model-<label>.onnx`) is built
/// from the same packed model the `.fqm` export writes. With [`ExportActivations::Int8`] an
/// `.fqm` carries calibrated activation scales, its test metrics are the integer model's, and
/// `report.json` gains the method's activation rows.
pub fn export_run_as(
    run_dir: &Path,
    method: Option<MethodId>,
    out: Option<&Path>,
    format: ExportFormat,
    onnx: OnnxOptions,
    activations: ExportActivations,
) -> Result<Exported> {
    let cfg = RunConfig::load(&RunFiles::new(run_dir).config())?;
    let report_path = RunFiles::new(run_dir).report();
    if !report_path.exists() {
        bail!(
            "{}: no report; run `fq-compress compress` (or `demo`) on this run first",
            report_path.display()
        );
    }
    let mut report = Report::load(&report_path)?;
    let method = method.unwrap_or_else(|| default_method(&report));
    let graph = ArchSpec::new(
        cfg.model.arch,
        cfg.model.width,
        cfg.model.input_size,
        report.classes.len(),
    )
    .graph()?;
    let layers = graph.quant_layers()?;
    if !packable(method.method) {
        bail!(
            "{}: method {} quantizes to {} bits; the packed .fqm (and its ONNX export) stores 2-8-bit weights only, so U16 is for evaluation and the report (export ptq-u8 or a narrower width, or fp32 for f32 weights)",
            run_dir.display(),
            method.label(),
            method.method.ptq_width().unwrap_or(0)
        );
    }
    if crate::methods::fairgrape::PruneSummary::load(&crate::methods::method_dir(
        run_dir,
        method.clone(),
    ))?
    .is_some()
    {
        bail!(
            "{}: method {} prunes weights to 0 bits and keeps the rest at FP32; the packed .fqm format stores 2-8-bit weights only, so it cannot be exported (export a quantized method, e.g. --method fq-qat, or FairGRAPE's `--preset fairgrape-script` variant)",
            run_dir.display(),
            method.label()
        );
    }
    let (weights, bits) = artifacts(run_dir, method.clone(), &layers)?;
    let params = ParamStore::load_safetensors(&graph, &weights, 0, &Device::Cpu, false)?;
    // As `run_dir::Run::open`: square input, ImageNet normalisation.
    let size = cfg.model.input_size as u32;
    let preprocess = PreprocessConfig {
        width: size,
        height: size,
        ..PreprocessConfig::default()
    };
    let test_metrics = report
        .results
        .iter()
        .find(|r| r.id() == method)
        .map(|r| r.metrics.clone());
    let has_test_metrics = test_metrics.is_some();
    let mut model = pack_model(
        &graph,
        &params,
        bits.as_ref(),
        ExportMeta {
            method: method.clone(),
            classes: report.classes.clone(),
            groups: report.groups.clone(),
            preprocess,
            test_metrics,
        },
    )
    .with_context(|| {
        format!(
            "{}: cannot export method {}",
            run_dir.display(),
            method.label()
        )
    })?;
    let mut deployed = None;
    let integer_layers = model
        .layers
        .iter()
        .any(|l| matches!(l.weights, fq_runtime::format::LayerWeights::Packed(_)));
    if let (ExportFormat::Fqm, ExportActivations::Int8(choice), true) =
        (format, activations, integer_layers)
    {
        let run = crate::run::run_dir::Run::open(run_dir, cfg.clone(), false).with_context(|| {
            format!(
                "{}: cannot load the run's data to calibrate 8-bit activations (`--activations f32` exports without them)",
                run_dir.display()
            )
        })?;
        let data = activations::StudyData {
            train: &run.train,
            val: &run.val,
            test: &run.test,
            preprocess: &run.preprocess,
            groups: &run.dataset.groups,
            seed: run.cfg.train.seed,
        };
        let study = activations::study(&data, &model, &method, choice)?;
        let f32_worst = study.rows[0].metrics.worst_acc;
        deployed = Some((
            study.scales.calibration.clone(),
            study.metrics.worst_acc,
            f32_worst,
        ));
        model.activations = Some(study.scales);
        // The file carries the metrics exactly as `report.json` reads back (serde_json parses
        // a float to within one ulp), so the two can be compared with `==`.
        let as_read: FairnessMetrics =
            serde_json::from_str(&serde_json::to_string(&study.metrics)?)?;
        model.summary.test_metrics = Some(as_read);
        report.set_activations(&method, study.rows);
        report.write(run_dir)?;
    }
    let path = out.map_or_else(
        || {
            let variant = method
                .variant
                .as_deref()
                .map_or(String::new(), |v| format!("-{v}"));
            run_dir.join(format!(
                "model-{}{variant}.{}",
                method.method.label().to_lowercase(),
                format.extension()
            ))
        },
        Path::to_path_buf,
    );
    let f32_bytes = std::fs::metadata(&weights)
        .with_context(|| format!("{}: cannot stat", weights.display()))?
        .len();
    let (bytes, card) = match format {
        ExportFormat::Fqm => {
            let bytes = model.save(&path)?;
            let card = crate::run::model_card::write(&crate::run::model_card::CardInput {
                run_dir,
                cfg: &cfg,
                report: &report,
                method: method.clone(),
                model: &model,
                model_path: &path,
                bytes,
                f32_bytes,
            })?;
            (bytes, Some(card.markdown))
        }
        ExportFormat::Onnx => {
            let bytes = crate::run::onnx::save(&model, &path, onnx)
                .with_context(|| format!("{}: cannot export as ONNX", path.display()))?;
            (bytes, None)
        }
    };
    Ok(Exported {
        path,
        method,
        avg_bits: model.summary.avg_bits,
        bytes,
        weights,
        f32_bytes,
        has_test_metrics,
        activations: deployed,
        card,
    })
}
