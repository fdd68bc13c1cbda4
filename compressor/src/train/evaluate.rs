//! Evaluation in eval mode: predictions on a set and the per-group fairness metrics of spec §8.

use crate::data::image_set::{batch, BatchSpec, ImageSet};
use crate::nn::model::{Mode, Model, Quant};
use anyhow::Result;
use candle_core::D;
use fq_eval::metrics::FairnessMetrics;
use fq_runtime::preprocess::PreprocessConfig;

/// Arg-max predictions for every sample of `set`.
pub fn predict(
    model: &Model,
    set: &ImageSet,
    quant: Quant,
    pre: &PreprocessConfig,
    batch_size: usize,
) -> Result<Vec<usize>> {
    let idx: Vec<usize> = (0..set.len()).collect();
    let spec = BatchSpec {
        preprocess: pre,
        augment: None,
    };
    let mut out = Vec::with_capacity(set.len());
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, _) = batch(set, chunk, &spec, &model.device)?;
        let logits = model.forward_q(&x, Mode::Eval, quant)?;
        let p: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
        out.extend(p.into_iter().map(|v| v as usize));
    }
    Ok(out)
}

/// Per-group metrics of the model on `set`.
pub fn evaluate(
    model: &Model,
    set: &ImageSet,
    quant: Quant,
    pre: &PreprocessConfig,
    group_names: &[String],
    batch_size: usize,
) -> Result<FairnessMetrics> {
    let pred = predict(model, set, quant, pre, batch_size)?;
    Ok(FairnessMetrics::compute(
        &set.labels,
        &pred,
        &set.groups,
        set.num_classes,
        group_names,
    )?)
}
