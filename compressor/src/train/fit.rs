//! The training loop shared by FP32 fine-tuning and quantization-aware training: AdamW, step
//! schedule, optional fairness penalty and gradient clipping, early stopping on the validation
//! split, a checkpoint after every epoch and exact resume.

use crate::data::augment::AugmentConfig;
use crate::data::image_set::{batch, BatchSpec, ImageSet};
use crate::data::sampler::{epoch_order, GroupWeights, Sampler};
use crate::nn::loss::task_and_fairness_weighted;
use crate::nn::model::{Mode, Model, Quant};
use crate::nn::optim::{AdamW, AdamWConfig};
pub use crate::train::checkpoint::EpochLog;
use crate::train::checkpoint::{Checkpoint, CheckpointMeta};
use crate::train::evaluate::evaluate;
use anyhow::{bail, Result};
use fq_runtime::preprocess::PreprocessConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Every knob of one training run (recorded in the run's `config.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Multiply the learning rate by `lr_gamma` every `lr_step` epochs (StepLR); `None` = constant.
    pub lr_step: Option<usize>,
    pub lr_gamma: f64,
    pub weight_decay: f64,
    /// Clip the global gradient L2 norm to this value.
    pub grad_clip: Option<f64>,
    /// Weight of the fairness penalty `max_g L_g - min_g L_g` (0 = plain cross-entropy).
    pub lambda_fair: f64,
    /// Stop after this many epochs without a better validation AvgAcc, keeping the best weights.
    pub patience: Option<usize>,
    pub seed: u64,
    pub augment: AugmentConfig,
    /// Batch order (Bellam–Kim mitigation: `group-balanced`).
    #[serde(default)]
    pub sampler: Sampler,
    /// Per-group weights of the cross-entropy (Bellam–Kim mitigation).
    #[serde(default)]
    pub group_weights: GroupWeights,
}

/// The state a run leaves behind.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainOutcome {
    pub history: Vec<EpochLog>,
    pub best_epoch: Option<usize>,
    pub stopped_early: bool,
}

/// Where the data and run directory are, and how to report progress.
pub struct TrainIo<'a> {
    pub preprocess: &'a PreprocessConfig,
    pub group_names: &'a [String],
    pub checkpoint: &'a Path,
    pub resume: bool,
    pub progress: bool,
    /// Label for the progress bar (e.g. "fp32", "fq-qat").
    pub label: &'a str,
}

fn lr_at(cfg: &TrainConfig, epoch: usize) -> f64 {
    match cfg.lr_step {
        Some(s) if s > 0 => cfg.lr * cfg.lr_gamma.powi((epoch / s) as i32),
        _ => cfg.lr,
    }
}

/// Train `model` (weights quantized as `quant` says) on `train`, selecting on `val`. With
/// learnable bits, their logits train too, at their own learning rate, and the bitrate
/// regularizer joins the loss.
pub fn train(
    model: &Model,
    quant: Quant,
    train: &ImageSet,
    val: Option<&ImageSet>,
    cfg: &TrainConfig,
    io: &TrainIo,
) -> Result<TrainOutcome> {
    if train.is_empty() {
        bail!("the training split is empty");
    }
    let adam = AdamWConfig {
        weight_decay: cfg.weight_decay,
        ..Default::default()
    };
    // A method's weight transform (learnable bits, masks) may bring its own variables, loss
    // term and checkpoint state.
    let transform = match quant {
        Quant::Transform(t) => Some(t),
        _ => None,
    };
    let (groups, lrs) = match transform.and_then(|t| t.variables()) {
        Some((vars, lr)) => (vec![model.params.vars.clone(), vars], vec![cfg.lr, lr]),
        None => (vec![model.params.vars.clone()], vec![cfg.lr]),
    };
    let mut opt = AdamW::new(groups, lrs, adam)?;
    let mut meta = CheckpointMeta::new(cfg.seed);
    let mut best: Option<std::collections::HashMap<String, candle_core::Tensor>> = None;
    if io.resume && io.checkpoint.exists() {
        let ck = Checkpoint::load(io.checkpoint, &model.device)?;
        model.params.assign(&ck.model)?;
        if let Some(t) = transform {
            t.load_state(&ck.model)?;
        }
        opt.load_state(&ck.optimizer, ck.meta.step)?;
        best = ck.best;
        meta = ck.meta;
        if meta.seed != cfg.seed {
            bail!(
                "{}: checkpoint was written with seed {}, this run uses {}",
                io.checkpoint.display(),
                meta.seed,
                cfg.seed
            );
        }
    }
    let weights = cfg.group_weights.resolve(&train.group_counts())?;
    let steps_per_epoch = train.len().div_ceil(cfg.batch_size);
    let bar = crate::support::progress::bar(
        io.progress,
        (cfg.epochs * steps_per_epoch) as u64,
        "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
    );
    bar.set_prefix(io.label.to_string());
    bar.set_position((meta.epochs_done * steps_per_epoch) as u64);
    let pre = io.preprocess;
    while meta.epochs_done < cfg.epochs && !meta.stopped_early {
        let epoch = meta.epochs_done;
        let lr = lr_at(cfg, epoch);
        opt.lrs[0] = lr;
        let order = epoch_order(train, cfg.sampler, cfg.seed, epoch);
        let spec = BatchSpec {
            preprocess: pre,
            augment: Some((&cfg.augment, cfg.seed, epoch as u64)),
        };
        let (mut loss_sum, mut seen) = (0f64, 0usize);
        let start = Instant::now();
        for (step, idx) in order.chunks(cfg.batch_size).enumerate() {
            let (x, y) = batch(train, idx, &spec, &model.device)?;
            let groups: Vec<usize> = idx.iter().map(|&i| train.groups[i]).collect();
            let logits = model.forward_q(&x, Mode::Train, quant)?;
            let losses = task_and_fairness_weighted(
                &logits,
                &y,
                &groups,
                cfg.lambda_fair,
                weights.as_deref(),
            )?;
            let total = match transform.map(|t| t.extra_loss()).transpose()?.flatten() {
                Some(extra) => (&losses.total + extra)?,
                None => losses.total,
            };
            let loss = total.to_scalar::<f32>()? as f64;
            if !loss.is_finite() {
                bail!(
                    "non-finite loss ({loss}) at epoch {} step {}: stopping; the last good checkpoint (after epoch {}) is kept at {}",
                    epoch + 1,
                    step + 1,
                    meta.epochs_done,
                    io.checkpoint.display()
                );
            }
            let grads = total.backward()?;
            opt.step(&grads, cfg.grad_clip)?;
            loss_sum += loss * idx.len() as f64;
            seen += idx.len();
            let ips = seen as f64 / start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "epoch {}/{} loss {:.4} {:.0} img/s",
                epoch + 1,
                cfg.epochs,
                loss_sum / seen as f64,
                ips
            ));
            bar.inc(1);
        }
        let ips = seen as f64 / start.elapsed().as_secs_f64().max(1e-9);
        let (mut va, mut vw) = (None, None);
        if let Some(v) = val {
            let m = evaluate(model, v, quant, pre, io.group_names, 256)?;
            va = Some(m.avg_acc);
            vw = Some(m.worst_acc);
            if meta.best_metric.is_none_or(|b| m.avg_acc > b) {
                meta.best_metric = Some(m.avg_acc);
                meta.best_epoch = Some(epoch);
                meta.epochs_without_improvement = 0;
                best = Some(model.params.snapshot()?);
            } else {
                meta.epochs_without_improvement += 1;
                if cfg
                    .patience
                    .is_some_and(|p| meta.epochs_without_improvement >= p)
                {
                    meta.stopped_early = true;
                }
            }
        }
        meta.history.push(EpochLog {
            epoch,
            lr,
            loss: loss_sum / seen as f64,
            val_avg_acc: va,
            val_worst_acc: vw,
            images_per_sec: ips,
        });
        meta.epochs_done += 1;
        meta.step = opt.step;
        let mut state = model.params.tensors();
        if let Some(t) = transform {
            state.extend(t.state());
        }
        Checkpoint::save(io.checkpoint, state, &opt, best.as_ref(), &meta)?;
    }
    bar.finish_and_clear();
    if let Some(b) = &best {
        model.params.assign(b)?;
    }
    Ok(TrainOutcome {
        history: meta.history,
        best_epoch: meta.best_epoch,
        stopped_early: meta.stopped_early,
    })
}
