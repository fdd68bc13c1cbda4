//! The FairGRAPE baseline ("Lin et al.", spec §5.4, §11.8). Two forms:
//! - `prune` (the default, matches the paper's Table 1: AvgBits 4.80 = 0.15 · 32): in every layer,
//!   the 85% of weights with the lowest `max_g (g ⊙ w)^2` importance are removed (0 bits), the rest
//!   stay FP32, then masked fine-tuning without a fairness loss. The method directory gets
//!   `weights.safetensors`, `mask.safetensors` and `prune.json` (written last: the method is done).
//! - `script` (`--preset fairgrape-script`, the official run script): the FQ-QAT pipeline with the
//!   `max` reducer and no fairness loss; it leaves `bits.json` like FQ-QAT and exports like it.
//!
//! Both reuse the run's cached per-group importance maps (the FQ methods' calibration), reducing
//! them with `max` here, so the baseline costs no extra calibration pass.

use crate::data::image_set::ImageSet;
use crate::methods::importance::{GroupImportance, ImportanceConfig, Reducer};
use crate::nn::model::{Model, Quant};
use crate::nn::transform::WeightTransform;
use crate::support::run_files::MethodFiles;
use crate::train::{TrainConfig, TrainIo};
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Which FairGRAPE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FairgrapeStyle {
    /// Per-layer pruning at `prune_ratio`, survivors FP32 (the paper's table).
    #[default]
    Prune,
    /// FQ-QAT with the `max` reducer and no fairness loss (the official run script).
    Script,
}

/// FairGRAPE's settings (in the method's `config.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FairgrapeConfig {
    pub style: FairgrapeStyle,
    /// Share of each layer's weights removed.
    pub prune_ratio: f64,
}

impl Default for FairgrapeConfig {
    fn default() -> Self {
        Self {
            style: FairgrapeStyle::Prune,
            prune_ratio: 0.85,
        }
    }
}

/// 0/1 masks of the pruned layers' weights (1 = kept), shaped like the weights.
pub struct PruneMasks {
    pub layers: BTreeMap<String, Tensor>,
}

/// `prune.json`: what was kept per layer (the report counts kept weights at 32 bits, pruned at 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PruneSummary {
    pub prune_ratio: f64,
    /// (layer, kept weights, all weights), in the model's layer order.
    pub layers: Vec<(String, u64, u64)>,
}

impl PruneSummary {
    /// Read `prune.json` from a method directory, if the method is a pruned one.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let p = MethodFiles::new(dir).prune();
        if !p.exists() {
            return Ok(None);
        }
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("{}: cannot read", p.display()))?;
        Ok(Some(serde_json::from_str(&text).with_context(|| {
            format!("{}: invalid pruning summary", p.display())
        })?))
    }

    /// Mean bits per layer of `layers` (32 × kept share; 32 for a layer it does not name).
    pub fn layer_mean_bits(&self, layers: &[fq_models::QuantLayer]) -> Vec<f64> {
        layers
            .iter()
            .map(|l| {
                self.layers
                    .iter()
                    .find(|(n, _, _)| n == &l.name)
                    .map_or(32.0, |&(_, kept, all)| {
                        32.0 * kept as f64 / all.max(1) as f64
                    })
            })
            .collect()
    }
}

/// Keep mask of one layer: the `round((1 - ratio) n)` weights with the highest importance
/// (ties: the lower index), at least one.
pub fn keep_mask(importance: &[f32], ratio: f64) -> Vec<bool> {
    let n = importance.len();
    let keep = (((1.0 - ratio) * n as f64).round() as usize).clamp(1.min(n), n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| importance[b].total_cmp(&importance[a]).then(a.cmp(&b)));
    let mut mask = vec![false; n];
    for &i in &order[..keep] {
        mask[i] = true;
    }
    mask
}

/// Elementwise `max_g` importance per layer from the cached per-group maps.
pub fn max_importance(maps: &GroupImportance) -> Result<Vec<Vec<f32>>> {
    maps.reduce(&ImportanceConfig {
        reducer: Reducer::Max,
        ..ImportanceConfig::default()
    })
}

/// Prune `model` in place (pruned weights set to 0) and return the masks and their summary.
pub fn prune(
    model: &Model,
    maps: &GroupImportance,
    ratio: f64,
) -> Result<(PruneMasks, PruneSummary)> {
    if !(0.0..1.0).contains(&ratio) {
        bail!("--prune-ratio {ratio}: must be in [0, 1)");
    }
    let imp = max_importance(maps)?;
    let mut masks = BTreeMap::new();
    let mut summary = Vec::new();
    for (name, scores) in maps.layers.iter().zip(&imp) {
        let var = model.params.get(&format!("{name}.weight"))?;
        let w = var.as_tensor();
        if w.elem_count() != scores.len() {
            bail!(
                "importance map of `{name}` has {} values, the weight {}",
                scores.len(),
                w.elem_count()
            );
        }
        let keep = keep_mask(scores, ratio);
        let kept = keep.iter().filter(|&&k| k).count() as u64;
        let m: Vec<f32> = keep.iter().map(|&k| f32::from(u8::from(k))).collect();
        let m = Tensor::from_vec(m, w.dims(), w.device())?;
        var.set(&(w * &m)?)?;
        summary.push((name.clone(), kept, scores.len() as u64));
        masks.insert(name.clone(), m);
    }
    Ok((
        PruneMasks { layers: masks },
        PruneSummary {
            prune_ratio: ratio,
            layers: summary,
        },
    ))
}

/// The pruned method end to end on the calibrated model: prune, masked fine-tuning, save.
pub fn prune_and_finetune(
    model: &Model,
    maps: &GroupImportance,
    train_set: &ImageSet,
    cfg: &FairgrapeConfig,
    finetune: &TrainConfig,
    dir: &Path,
    io: &TrainIo,
) -> Result<()> {
    let (masks, summary) = prune(model, maps, cfg.prune_ratio)?;
    let files = MethodFiles::new(dir);
    let outcome = crate::train::train(
        model,
        Quant::Transform(&masks),
        train_set,
        None,
        finetune,
        io,
    )?;
    fq_runtime::atomic::write_json_atomic(&files.history(), &outcome)?;
    model.params.save(&files.weights())?;
    let m = masks
        .layers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    crate::support::io::save_tensors_atomic(&m, &files.mask())?;
    // Written last: its presence marks the method as finished.
    fq_runtime::atomic::write_json_atomic(&files.prune(), &summary)?;
    Ok(())
}

/// Full precision with pruned weights held at zero: `w ⊙ mask`, so pruned weights get no
/// gradient; a layer without a mask is used as it is. Nothing else trains.
impl WeightTransform for PruneMasks {
    fn weight(&self, name: &str, w: &Tensor) -> Result<Tensor> {
        match self.layers.get(name) {
            Some(mask) => Ok(w.broadcast_mul(mask)?),
            None => Ok(w.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_important_share() {
        let imp = [0.5, 3.0, 0.1, 2.0, 2.0, 0.0, 1.0, 0.2, 0.3, 0.4];
        // 15% of 10 rounds to 2: the two largest (3.0 at 1; 2.0 ties at 3 and 4 -> index 3).
        let m = keep_mask(&imp, 0.85);
        let kept: Vec<usize> = (0..10).filter(|&i| m[i]).collect();
        assert_eq!(kept, vec![1, 3]);
        // Never empty, even when the share rounds to 0.
        assert_eq!(keep_mask(&[1.0, 2.0], 0.85), vec![false, true]);
    }

    #[test]
    fn bits_count_kept_weights_at_32() {
        let s = PruneSummary {
            prune_ratio: 0.85,
            layers: vec![("a".into(), 15, 100), ("b".into(), 3, 20)],
        };
        let l = |name: &str| fq_models::QuantLayer {
            name: name.into(),
            node: 0,
            weight_shape: vec![1],
            out_channels: 1,
            params: 1,
            macs: 1,
            bops: 2,
        };
        let b = s.layer_mean_bits(&[l("a"), l("b"), l("c")]);
        assert!((b[0] - 4.8).abs() < 1e-12 && (b[1] - 4.8).abs() < 1e-12);
        assert_eq!(b[2], 32.0);
    }
}
