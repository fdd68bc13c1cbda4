//! Training losses: cross-entropy plus FairQuant's fairness penalty (spec §4.4), the spread of the
//! group-restricted losses among the groups present in the batch.

use anyhow::Result;
use candle_core::{Tensor, D};

/// The terms of one batch's loss.
pub struct Losses {
    pub total: Tensor,
    pub task: Tensor,
    /// `max_g L_g - min_g L_g` (0 with fewer than two groups in the batch); `None` when unused.
    pub fair: Option<Tensor>,
}

/// Mean cross-entropy of the rows `rows` of `logits` (all rows when `None`).
pub fn cross_entropy(logits: &Tensor, y: &Tensor, rows: Option<&[u32]>) -> Result<Tensor> {
    match rows {
        None => Ok(candle_nn::loss::cross_entropy(logits, y)?),
        Some(r) => {
            let idx = Tensor::new(r, logits.device())?;
            Ok(candle_nn::loss::cross_entropy(
                &logits.index_select(&idx, 0)?,
                &y.index_select(&idx, 0)?,
            )?)
        }
    }
}

/// Group-restricted mean losses `L_g` for each group present in the batch, in group order.
pub fn group_losses(logits: &Tensor, y: &Tensor, groups: &[usize]) -> Result<Vec<(usize, Tensor)>> {
    let mut present: Vec<usize> = groups.to_vec();
    present.sort_unstable();
    present.dedup();
    present
        .into_iter()
        .map(|g| {
            let rows: Vec<u32> = groups
                .iter()
                .enumerate()
                .filter(|(_, &x)| x == g)
                .map(|(i, _)| i as u32)
                .collect();
            Ok((g, cross_entropy(logits, y, Some(&rows))?))
        })
        .collect()
}

/// `Σ w_i CE_i / Σ w_i` with `w_i = group_weights[g(i)]` (Bellam–Kim's weighted loss).
pub fn weighted_cross_entropy(
    logits: &Tensor,
    y: &Tensor,
    groups: &[usize],
    group_weights: &[f64],
) -> Result<Tensor> {
    let w: Vec<f32> = groups.iter().map(|&g| group_weights[g] as f32).collect();
    let w = Tensor::new(w.as_slice(), logits.device())?;
    let ce = candle_nn::ops::log_softmax(logits, D::Minus1)?
        .gather(&y.unsqueeze(1)?, 1)?
        .squeeze(1)?
        .neg()?;
    Ok(((ce * &w)?.sum_all()? / w.sum_all()?.to_scalar::<f32>()? as f64)?)
}

/// `CE + lambda_fair * (max_g L_g - min_g L_g)`; with `lambda_fair == 0` only the CE.
pub fn task_and_fairness(
    logits: &Tensor,
    y: &Tensor,
    groups: &[usize],
    lambda_fair: f64,
) -> Result<Losses> {
    task_and_fairness_weighted(logits, y, groups, lambda_fair, None)
}

/// [`task_and_fairness`] with the task term weighted per group when `group_weights` is given.
pub fn task_and_fairness_weighted(
    logits: &Tensor,
    y: &Tensor,
    groups: &[usize],
    lambda_fair: f64,
    group_weights: Option<&[f64]>,
) -> Result<Losses> {
    let task = match group_weights {
        Some(w) => weighted_cross_entropy(logits, y, groups, w)?,
        None => cross_entropy(logits, y, None)?,
    };
    if lambda_fair == 0.0 {
        return Ok(Losses {
            total: task.clone(),
            task,
            fair: None,
        });
    }
    let per_group = group_losses(logits, y, groups)?;
    let fair = if per_group.len() < 2 {
        task.zeros_like()?
    } else {
        let stacked = Tensor::stack(
            &per_group.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>(),
            0,
        )?;
        (stacked.max(D::Minus1)? - stacked.min(D::Minus1)?)?
    };
    let total = (&task + (&fair * lambda_fair)?)?;
    Ok(Losses {
        total,
        task,
        fair: Some(fair),
    })
}
