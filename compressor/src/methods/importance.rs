//! Group-sensitive importance (spec §2): first-order Taylor importance `(dL_g/dW ⊙ W)^2` of every
//! quantized weight under each group's own loss, reduced across groups per element (§2.1) and
//! then averaged per scope (§2.2). Calibration runs in train mode, so batch-norm running
//! statistics move as in the official code.

use crate::data::image_set::{batch, BatchSpec, ImageSet};
use crate::nn::loss::group_losses;
use crate::nn::model::{Mode, Model};
use crate::nn::quant::Granularity;
use crate::support::seed;
use crate::train::TrainConfig;
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use fq_models::QuantLayer;
use fq_runtime::preprocess::PreprocessConfig;

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// How the per-group maps are combined into one (spec §2.1).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumMessage,
)]
#[strum(serialize_all = "kebab-case")]
#[serde(rename_all = "kebab-case")]
pub enum Reducer {
    /// Scale each group's map to unit total mass, then take the elementwise max (FairQuant).
    Balanced,
    /// Elementwise max without normalisation (FairGRAPE).
    Max,
    Mean,
    /// Mean of the top `ceil((1 - alpha) |G|)` groups per element.
    Cvar,
    /// `I_0 - beta I_1`, exactly two groups (FairQuantize).
    Subtractive,
}

/// Calibration and reduction settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportanceConfig {
    /// Mini-batches of the (augmented, shuffled) training set; stops early at the end of the set.
    pub calib_batches: usize,
    pub reducer: Reducer,
    pub cvar_alpha: f64,
    pub subtractive_beta: f64,
}

impl Default for ImportanceConfig {
    fn default() -> Self {
        Self {
            calib_batches: 50,
            reducer: Reducer::Balanced,
            cvar_alpha: 0.1,
            subtractive_beta: 1.0,
        }
    }
}

/// Accumulated importance maps `I_g^l`, one flat vector per group and layer.
#[derive(Clone, Debug)]
pub struct GroupImportance {
    pub layers: Vec<String>,
    /// `maps[g][l]`: elementwise importance of layer `l`'s weight for group `g`.
    pub maps: Vec<Vec<Vec<f32>>>,
    /// Samples of each group that contributed.
    pub samples: Vec<usize>,
}

impl GroupImportance {
    /// All-zero maps (a group never seen keeps them, spec §2 step 3).
    pub fn zeros(model: &Model, layers: &[QuantLayer], num_groups: usize) -> Result<Self> {
        let mut per_layer = Vec::with_capacity(layers.len());
        for l in layers {
            let n = model
                .params
                .get(&format!("{}.weight", l.name))?
                .elem_count();
            per_layer.push(vec![0.0f32; n]);
        }
        Ok(Self {
            layers: layers.iter().map(|l| l.name.clone()).collect(),
            maps: vec![per_layer; num_groups],
            samples: vec![0; num_groups],
        })
    }

    /// One calibration batch: a train-mode forward, then for each group present a backward of its
    /// restricted loss through the same graph, accumulating `(grad ⊙ W)^2`.
    pub fn accumulate(
        &mut self,
        model: &Model,
        x: &Tensor,
        y: &Tensor,
        groups: &[usize],
    ) -> Result<()> {
        let logits = model.forward(x, Mode::Train, None)?;
        let weights: Vec<Tensor> = self
            .layers
            .iter()
            .map(|n| {
                Ok(model
                    .params
                    .get(&format!("{n}.weight"))?
                    .as_tensor()
                    .clone())
            })
            .collect::<Result<_>>()?;
        for (g, loss) in group_losses(&logits, y, groups)? {
            if g >= self.maps.len() {
                bail!("group id {g} outside the {} groups", self.maps.len());
            }
            self.samples[g] += groups.iter().filter(|&&v| v == g).count();
            let grads = loss.backward()?;
            for (l, w) in weights.iter().enumerate() {
                let Some(gw) = grads.get(w) else { continue };
                let t: Vec<f32> = (gw * w)?.sqr()?.flatten_all()?.to_vec1()?;
                for (acc, v) in self.maps[g][l].iter_mut().zip(t) {
                    *acc += v;
                }
            }
        }
        Ok(())
    }

    /// Reduce across groups, elementwise (spec §2.1).
    pub fn reduce(&self, cfg: &ImportanceConfig) -> Result<Vec<Vec<f32>>> {
        let ng = self.maps.len();
        if ng == 0 {
            bail!("no groups to reduce");
        }
        let mass: Vec<f64> = self
            .maps
            .iter()
            .map(|m| m.iter().flatten().map(|&v| v as f64).sum())
            .collect();
        let total: f64 = mass.iter().sum();
        let pi: Vec<f32> = mass
            .iter()
            .map(|&t| {
                if total > 0.0 {
                    (t / total) as f32
                } else {
                    1.0 / ng as f32
                }
            })
            .collect();
        let top = ((1.0 - cfg.cvar_alpha) * ng as f64)
            .ceil()
            .clamp(1.0, ng as f64) as usize;
        if cfg.reducer == Reducer::Subtractive && ng != 2 {
            bail!("the subtractive reducer needs exactly 2 groups, the data has {ng}");
        }
        let mut out = Vec::with_capacity(self.layers.len());
        let mut vals = vec![0.0f32; ng];
        for l in 0..self.layers.len() {
            let n = self.maps[0][l].len();
            let mut r = Vec::with_capacity(n);
            for j in 0..n {
                for (v, m) in vals.iter_mut().zip(&self.maps) {
                    *v = m[l][j];
                }
                r.push(match cfg.reducer {
                    Reducer::Balanced => (0..ng)
                        .map(|g| vals[g] / pi[g].max(1e-8))
                        .fold(f32::NEG_INFINITY, f32::max),
                    Reducer::Max => vals.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                    Reducer::Mean => vals.iter().sum::<f32>() / ng as f32,
                    Reducer::Cvar => {
                        let mut v = vals.clone();
                        v.sort_by(|a, b| b.total_cmp(a));
                        v[..top].iter().sum::<f32>() / top as f32
                    }
                    Reducer::Subtractive => vals[0] - cfg.subtractive_beta as f32 * vals[1],
                });
            }
            out.push(r);
        }
        Ok(out)
    }

    /// Save the raw maps (`g<G>.<layer>`) as safetensors.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut t = HashMap::new();
        for (g, maps) in self.maps.iter().enumerate() {
            for (name, m) in self.layers.iter().zip(maps) {
                t.insert(
                    format!("g{g}.{name}"),
                    Tensor::from_slice(m, m.len(), &candle_core::Device::Cpu)?,
                );
            }
        }
        crate::support::io::save_tensors_atomic(&t, path)
    }

    /// Read maps written by [`GroupImportance::save`] for `layers` and `num_groups` groups.
    /// (Sample counts are not stored; they come back as 0.)
    pub fn load(path: &Path, layers: &[QuantLayer], num_groups: usize) -> Result<Self> {
        let t = candle_core::safetensors::load(path, &candle_core::Device::Cpu)
            .with_context(|| format!("{}: cannot read importance maps", path.display()))?;
        let mut maps = Vec::with_capacity(num_groups);
        for g in 0..num_groups {
            let mut per_layer = Vec::with_capacity(layers.len());
            for l in layers {
                let key = format!("g{g}.{}", l.name);
                let m = t
                    .get(&key)
                    .with_context(|| format!("{}: no map `{key}`", path.display()))?;
                per_layer.push(m.flatten_all()?.to_vec1::<f32>()?);
            }
            maps.push(per_layer);
        }
        Ok(Self {
            layers: layers.iter().map(|l| l.name.clone()).collect(),
            maps,
            samples: vec![0; num_groups],
        })
    }
}

/// Mean `|I|` per scope (spec §2.2): per output channel, or one value per tensor.
pub fn scope_scores(
    reduced: &[Vec<f32>],
    layers: &[QuantLayer],
    granularity: Granularity,
) -> Result<Vec<Vec<f32>>> {
    reduced
        .iter()
        .zip(layers)
        .map(|(r, l)| {
            let scopes = match granularity {
                Granularity::PerChannel => l.out_channels,
                Granularity::PerTensor => 1,
            };
            if scopes == 0 || r.len() % scopes != 0 {
                bail!("layer `{}`: {} weights in {scopes} scopes", l.name, r.len());
            }
            let per = r.len() / scopes;
            Ok(r.chunks(per)
                .map(|c| c.iter().map(|v| v.abs()).sum::<f32>() / per as f32)
                .collect())
        })
        .collect()
}

/// Calibrate on up to `cfg.calib_batches` shuffled, augmented training batches (spec §2).
pub fn calibrate(
    model: &Model,
    train: &ImageSet,
    layers: &[QuantLayer],
    cfg: &ImportanceConfig,
    train_cfg: &TrainConfig,
    preprocess: &PreprocessConfig,
    progress: bool,
) -> Result<GroupImportance> {
    let mut imp = GroupImportance::zeros(model, layers, train.num_groups)?;
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut seed::rng(train_cfg.seed, &[seed::tag::CALIBRATION]));
    let batches: Vec<&[usize]> = order
        .chunks(train_cfg.batch_size)
        .take(cfg.calib_batches)
        .collect();
    let bar = crate::support::progress::bar(
        progress,
        batches.len() as u64,
        "importance [{elapsed_precise}] {bar:30} {pos}/{len} batches",
    );
    let spec = BatchSpec {
        preprocess,
        augment: Some((&train_cfg.augment, train_cfg.seed, u64::MAX)),
    };
    for idx in batches {
        let (x, y) = batch(train, idx, &spec, &model.device)?;
        let groups: Vec<usize> = idx.iter().map(|&i| train.groups[i]).collect();
        imp.accumulate(model, &x, &y, &groups)
            .context("importance calibration")?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(imp)
}

/// `importance/scores.json`: scope scores per layer, reduced and per group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScoresFile {
    pub layers: Vec<String>,
    pub groups: Vec<String>,
    pub group_samples: Vec<usize>,
    pub reducer: Reducer,
    pub reduced: Vec<Vec<f32>>,
    pub per_group: Vec<Vec<Vec<f32>>>,
}
