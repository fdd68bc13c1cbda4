//! One-file training checkpoints: model tensors, optimizer moments, the best weights so far and
//! the loop state (epoch, step, seed, early-stopping counters) in a single safetensors file
//! written atomically, so a crash leaves either the previous or the new checkpoint.

use crate::nn::optim::AdamW;
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// What happened in one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub lr: f64,
    pub loss: f64,
    pub val_avg_acc: Option<f64>,
    pub val_worst_acc: Option<f64>,
    pub images_per_sec: f64,
}

/// Loop state. The random streams are derived from (seed, epoch), so the seed and the epoch
/// counter are the whole RNG state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format: u32,
    pub seed: u64,
    pub epochs_done: usize,
    pub step: u64,
    pub best_metric: Option<f64>,
    pub best_epoch: Option<usize>,
    pub epochs_without_improvement: usize,
    pub stopped_early: bool,
    pub history: Vec<EpochLog>,
}

impl CheckpointMeta {
    pub fn new(seed: u64) -> Self {
        Self {
            format: 1,
            seed,
            epochs_done: 0,
            step: 0,
            best_metric: None,
            best_epoch: None,
            epochs_without_improvement: 0,
            stopped_early: false,
            history: Vec::new(),
        }
    }
}

pub struct Checkpoint {
    pub model: HashMap<String, Tensor>,
    pub optimizer: HashMap<String, Tensor>,
    pub best: Option<HashMap<String, Tensor>>,
    pub meta: CheckpointMeta,
}

const META: &str = "__meta__";

impl Checkpoint {
    pub fn save(
        path: &Path,
        model: HashMap<String, Tensor>,
        opt: &AdamW,
        best: Option<&HashMap<String, Tensor>>,
        meta: &CheckpointMeta,
    ) -> Result<()> {
        let mut all = HashMap::new();
        for (k, v) in model {
            all.insert(format!("model.{k}"), v);
        }
        for (k, v) in opt.state_tensors()? {
            all.insert(format!("opt.{k}"), v);
        }
        if let Some(b) = best {
            for (k, v) in b {
                all.insert(format!("best.{k}"), v.clone());
            }
        }
        let json = serde_json::to_vec(meta)?;
        let n = json.len();
        all.insert(META.to_string(), Tensor::from_vec(json, n, &Device::Cpu)?);
        crate::support::io::save_tensors_atomic(&all, path)
    }

    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let all = candle_core::safetensors::load(path, device)
            .with_context(|| format!("{}: cannot read checkpoint", path.display()))?;
        let meta = all.get(META).with_context(|| {
            format!("{}: not a FairQuant checkpoint (no {META})", path.display())
        })?;
        let meta: CheckpointMeta = serde_json::from_slice(&meta.to_vec1::<u8>()?)
            .with_context(|| format!("{}: unreadable checkpoint metadata", path.display()))?;
        let mut model = HashMap::new();
        let mut optimizer = HashMap::new();
        let mut best = HashMap::new();
        for (k, v) in all {
            if let Some(n) = k.strip_prefix("model.") {
                model.insert(n.to_string(), v);
            } else if let Some(n) = k.strip_prefix("opt.") {
                optimizer.insert(n.to_string(), v);
            } else if let Some(n) = k.strip_prefix("best.") {
                best.insert(n.to_string(), v);
            }
        }
        Ok(Self {
            model,
            optimizer,
            best: (!best.is_empty()).then_some(best),
            meta,
        })
    }
}
