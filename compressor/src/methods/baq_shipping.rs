//! FQ-BAQ's shipped model is its trained model (docs/BAQ_SHIPPING.md).
//!
//! BAQ trains through its own quantizer (spec §4.2: a learned dead zone `d` and a `±d/2` offset on
//! every kept weight), but the bits it leaves are exported, reported and diagnosed with the plain
//! §1 quantizer, the one the `.fqm`/ONNX formats and both executors implement. So the learnable-bit
//! epochs end with a short fixed-bit phase: the bits are frozen to the discretized ones and the
//! weights train on the plain quantizer for `BaqConfig::final_fixed_epochs` epochs, so that the
//! last steps optimise exactly the exported function.
//!
//! How far the two forward passes differ is measured per group on the test split, before and after
//! that phase, and written to `methods/<method>/shipping_gap.json`. This is a diagnostic only:
//! nothing in it feeds back into training or selection.

use crate::data::image_set::{batch, BatchSpec, ImageSet};
use crate::methods::baq::BaqParams;
use crate::nn::model::{Mode, Model, Quant};
use crate::nn::quant::BitAssignment;
use crate::support::run_files::MethodFiles;
use crate::train::{train, TrainConfig, TrainIo, TrainOutcome};
use anyhow::Result;
use candle_core::D;
use fq_runtime::preprocess::PreprocessConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One group's comparison of the two forward passes on the same weights and bits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupGap {
    pub group: String,
    pub samples: usize,
    /// Accuracy with BAQ's training-time quantizer (dead zone, offset).
    pub acc_baq: f64,
    /// Accuracy with the plain §1 quantizer on the discretized bits (what is shipped).
    pub acc_plain: f64,
    /// Share of the group's samples whose arg-max prediction differs between the two.
    pub pred_differ: f64,
    /// Mean over the group's samples and all classes of `|z_baq - z_plain|`.
    pub mean_abs_logit_diff: f64,
}

/// `shipping_gap.json`: the comparison right after the learnable-bit epochs (`before`, the model
/// FQ-BAQ shipped until the fixed phase existed) and after the fixed-bit epochs (`after`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShippingGap {
    pub split: String,
    pub final_fixed_epochs: usize,
    pub before: Vec<GroupGap>,
    pub after: Vec<GroupGap>,
}

impl ShippingGap {
    /// One line for the console: per group, the shipped (plain) accuracy before → after, the BAQ
    /// quantizer's accuracy, and the share of differing predictions before → after.
    pub fn summary(&self, label: &str) -> String {
        let parts: Vec<String> = self
            .before
            .iter()
            .zip(&self.after)
            .map(|(b, a)| {
                format!(
                    "{}: shipped acc {:.1}% -> {:.1}% (BAQ quantizer {:.1}% -> {:.1}%), predictions differ {:.1}% -> {:.1}%, mean |dlogit| {:.3} -> {:.3}",
                    b.group,
                    100.0 * b.acc_plain,
                    100.0 * a.acc_plain,
                    100.0 * b.acc_baq,
                    100.0 * a.acc_baq,
                    100.0 * b.pred_differ,
                    100.0 * a.pred_differ,
                    b.mean_abs_logit_diff,
                    a.mean_abs_logit_diff
                )
            })
            .collect();
        format!(
            "{label} shipping gap (test split; before -> after {} fixed-bit epoch(s)): {}",
            self.final_fixed_epochs,
            parts.join("; ")
        )
    }
}

/// Per group: both forward passes (eval mode) of `model` over `set`.
pub fn measure(
    model: &Model,
    baq: &BaqParams,
    bits: &BitAssignment,
    set: &ImageSet,
    pre: &PreprocessConfig,
    group_names: &[String],
) -> Result<Vec<GroupGap>> {
    let ng = set.num_groups;
    let (mut n, mut ok_b, mut ok_p, mut differ) = (
        vec![0usize; ng],
        vec![0usize; ng],
        vec![0usize; ng],
        vec![0usize; ng],
    );
    let mut abs_diff = vec![0f64; ng];
    let spec = BatchSpec {
        preprocess: pre,
        augment: None,
    };
    let idx: Vec<usize> = (0..set.len()).collect();
    let classes = set.num_classes.max(1) as f64;
    for chunk in idx.chunks(256) {
        let (x, _) = batch(set, chunk, &spec, &model.device)?;
        let zb = model.forward_q(&x, Mode::Eval, Quant::Transform(baq))?;
        let zp = model.forward_q(&x, Mode::Eval, Quant::Fixed(bits))?;
        let pb: Vec<u32> = zb.argmax(D::Minus1)?.to_vec1()?;
        let pp: Vec<u32> = zp.argmax(D::Minus1)?.to_vec1()?;
        let d: Vec<f32> = (zb - zp)?.abs()?.sum(D::Minus1)?.to_vec1()?;
        for (k, &i) in chunk.iter().enumerate() {
            let g = set.groups[i];
            let y = set.labels[i] as u32;
            n[g] += 1;
            ok_b[g] += usize::from(pb[k] == y);
            ok_p[g] += usize::from(pp[k] == y);
            differ[g] += usize::from(pb[k] != pp[k]);
            abs_diff[g] += d[k] as f64 / classes;
        }
    }
    Ok((0..ng)
        .map(|g| {
            let m = n[g].max(1) as f64;
            GroupGap {
                group: group_names.get(g).cloned().unwrap_or_else(|| g.to_string()),
                samples: n[g],
                acc_baq: ok_b[g] as f64 / m,
                acc_plain: ok_p[g] as f64 / m,
                pred_differ: differ[g] as f64 / m,
                mean_abs_logit_diff: abs_diff[g] / m,
            }
        })
        .collect())
}

/// What the fixed phase needs besides the model.
pub struct FixedPhase<'a> {
    pub baq: &'a BaqParams,
    /// The discretized bits (exactly what is exported).
    pub bits: &'a BitAssignment,
    pub train: &'a ImageSet,
    pub test: &'a ImageSet,
    /// The fine-tuning settings of the learnable-bit epochs.
    pub finetune: &'a TrainConfig,
    pub dir: &'a Path,
}

/// Run the fixed-bit phase on `model` (already at the end of the learnable-bit epochs), measuring
/// the gap before and after; returns the phase's training outcome. It checkpoints to
/// `checkpoint-fixed.safetensors` after every epoch and resumes from it like any training; the
/// learnable-bit epochs keep their own checkpoint, so on a resume they restore the state this phase
/// starts from (the gap before is measured again from it, with the same result).
pub fn fixed_phase(
    model: &Model,
    phase: &FixedPhase,
    io: &TrainIo,
    epochs: usize,
) -> Result<(TrainOutcome, ShippingGap)> {
    let before = measure(
        model,
        phase.baq,
        phase.bits,
        phase.test,
        io.preprocess,
        io.group_names,
    )?;
    let cfg = fixed_phase_config(phase.finetune, epochs);
    let label = format!("{} (fixed bits)", io.label);
    let checkpoint = MethodFiles::new(phase.dir).checkpoint_fixed();
    let io2 = TrainIo {
        checkpoint: &checkpoint,
        label: &label,
        ..*io
    };
    let outcome = train(
        model,
        Quant::Fixed(phase.bits),
        phase.train,
        None,
        &cfg,
        &io2,
    )?;
    let after = measure(
        model,
        phase.baq,
        phase.bits,
        phase.test,
        io.preprocess,
        io.group_names,
    )?;
    Ok((
        outcome,
        ShippingGap {
            split: "test".into(),
            final_fixed_epochs: epochs,
            before,
            after,
        },
    ))
}

/// The fixed phase trains like the learnable-bit epochs (same rate, clipping, fairness weight,
/// augmentation), for `epochs` epochs, on its own random stream (another seed, so its batches
/// do not repeat the first epochs' order and augmentation).
pub fn fixed_phase_config(finetune: &TrainConfig, epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        seed: crate::support::seed::derive(
            finetune.seed,
            &[crate::support::seed::tag::BAQ_FIXED_PHASE],
        ),
        patience: None,
        ..finetune.clone()
    }
}

/// The history of both phases in one list, the fixed phase's epochs numbered after the first's.
pub fn merge_histories(first: TrainOutcome, fixed: TrainOutcome) -> TrainOutcome {
    let offset = first.history.len();
    let mut history = first.history;
    history.extend(fixed.history.into_iter().map(|mut e| {
        e.epoch += offset;
        e
    }));
    TrainOutcome {
        history,
        best_epoch: first.best_epoch,
        stopped_early: first.stopped_early || fixed.stopped_early,
    }
}
