//! The per-group report of a run: metrics per method in `report.json`, a per-group accuracy chart
//! and the Table-1-style summary printed on stdout.

use crate::methods::{Method, MethodId};
use crate::nn::quant::BitAssignment;
use crate::run::activations::ActivationResult;
use crate::support::run_files::RunFiles;
use anyhow::Result;
use fq_eval::metrics::{avg_bits, gbops, FairnessMetrics};
use fq_models::QuantLayer;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One method's result on the test split.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MethodResult {
    pub method: Method,
    /// The setting (`--variant`) this row was run under; `None` for the plain method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub avg_bits: f64,
    pub gbops: f64,
    /// Pruned weights (0 bits) beside FP32 ones (FairGRAPE): the packed format cannot hold it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pruned: bool,
    pub metrics: FairnessMetrics,
    /// The device the row was evaluated on (`cpu`, `cuda:0`; `--device`); absent in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

impl MethodResult {
    /// Bit statistics of `bits` (FP32 when `None`) over the model's quantizable layers (spec §8).
    pub fn new(
        id: &MethodId,
        layers: &[QuantLayer],
        bits: Option<&BitAssignment>,
        metrics: FairnessMetrics,
    ) -> Self {
        let mean_bits = match bits {
            Some(b) => b.layer_mean_bits(layers),
            None => vec![32.0; layers.len()],
        };
        Self::from_layer_bits(id, layers, &mean_bits, false, metrics)
    }

    /// As [`MethodResult::new`] from mean bits per layer (a pruned model's 32 × kept share).
    pub fn from_layer_bits(
        id: &MethodId,
        layers: &[QuantLayer],
        mean_bits: &[f64],
        pruned: bool,
        metrics: FairnessMetrics,
    ) -> Self {
        let p: Vec<(u64, f64)> = layers
            .iter()
            .zip(mean_bits)
            .map(|(l, &b)| (l.params, b))
            .collect();
        let o: Vec<(f64, f64)> = layers
            .iter()
            .zip(mean_bits)
            .map(|(l, &b)| (l.bops as f64, b))
            .collect();
        Self {
            method: id.method,
            variant: id.variant.clone(),
            avg_bits: avg_bits(&p),
            gbops: gbops(&o),
            pruned,
            metrics,
            device: None,
        }
    }
}

impl MethodResult {
    pub fn id(&self) -> MethodId {
        MethodId {
            method: self.method,
            variant: self.variant.clone(),
        }
    }
}

/// Everything a person or the field-validation tool needs about a run's results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub dataset: String,
    pub arch: String,
    pub classes: Vec<String>,
    pub groups: Vec<String>,
    pub test_samples: usize,
    pub results: Vec<MethodResult>,
    /// The exported methods with f32 and 8-bit activations, as fq-runtime computes them
    /// (`export`; see [`crate::run::activations`]); absent in older reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activations: Vec<ActivationResult>,
}

impl Report {
    /// Insert or replace the result of a method (and variant), keeping the table order stable.
    pub fn upsert(&mut self, r: MethodResult) {
        match self
            .results
            .iter_mut()
            .find(|x| x.method == r.method && x.variant == r.variant)
        {
            Some(x) => *x = r,
            None => self.results.push(r),
        }
    }

    /// Replaces the activation rows of `id` with `rows` (a new export of the method).
    pub fn set_activations(&mut self, id: &MethodId, rows: Vec<ActivationResult>) {
        self.activations.retain(|r| &r.id() != id);
        self.activations.extend(rows);
    }

    /// The row of a method (and variant), if the report has one.
    pub fn get(&self, id: &MethodId) -> Option<&MethodResult> {
        self.results
            .iter()
            .find(|r| r.method == id.method && r.variant == id.variant)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Write `report.json` and `group_accuracy.png` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        fq_runtime::atomic::write_json_atomic(&RunFiles::new(dir).report(), self)?;
        let accuracies = |m: &FairnessMetrics| -> Vec<f64> {
            m.group_accuracy
                .iter()
                .map(|a| a.unwrap_or(f64::NAN))
                .collect()
        };
        let series: Vec<(String, Vec<f64>)> = self
            .results
            .iter()
            .map(|r| (r.id().label(), accuracies(&r.metrics)))
            .chain(
                self.activations
                    .iter()
                    .map(|a| (a.label(), accuracies(&a.metrics))),
            )
            .collect();
        let title = format!(
            "Per-group test accuracy — {} on {}",
            self.arch, self.dataset
        );
        fq_eval::plots::group_accuracy_chart(
            &RunFiles::new(dir).group_accuracy(),
            &title,
            &self.groups,
            &series,
        )?;
        Ok(())
    }

    /// The Table-1-style summary (accuracies in percent).
    pub fn table(&self) -> String {
        let mut s = format!(
            "| Method | AvgBits | GBOPs | AvgAcc | WorstAcc | Gap | EOpp0 | EOdd | {} |\n|---|---|---|---|---|---|---|---|{}\n",
            self.groups.iter().map(|g| format!("acc[{g}]")).collect::<Vec<_>>().join(" | "),
            "---|".repeat(self.groups.len())
        );
        let row = |label: String, avg_bits: f64, gbops: f64, m: &FairnessMetrics| {
            format!(
                "| {} | {:.2} | {:.4} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} | {} |\n",
                label,
                avg_bits,
                gbops,
                100.0 * m.avg_acc,
                100.0 * m.worst_acc,
                100.0 * m.gap,
                m.eopp0,
                m.eodd,
                m.group_accuracy
                    .iter()
                    .zip(&m.group_count)
                    .map(|(a, n)| match a {
                        Some(a) => format!("{:.1} (n={n})", 100.0 * a),
                        None => "- (n=0)".to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" | ")
            )
        };
        for r in &self.results {
            s += &row(r.id().label(), r.avg_bits, r.gbops, &r.metrics);
        }
        // Activation rows carry their method's bits (the weights are the same).
        for a in &self.activations {
            let (bits, gbops) = self
                .get(&a.id())
                .map_or((f64::NAN, f64::NAN), |r| (r.avg_bits, r.gbops));
            s += &row(a.label(), bits, gbops, &a.metrics);
        }
        s
    }
}
