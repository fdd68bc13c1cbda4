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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    const LOGITS: [[f32; 3]; 4] = [
        [2.0, 0.0, -1.0],
        [0.5, 0.5, 0.0],
        [1.0, -1.0, 3.0],
        [-0.5, 1.5, 0.25],
    ];
    const Y: [u32; 4] = [0, 2, 2, 1];
    const GROUPS: [usize; 4] = [0, 1, 1, 0];

    fn inputs() -> (Tensor, Tensor) {
        let l = Tensor::new(&LOGITS, &Device::Cpu).unwrap();
        (l, Tensor::new(&Y, &Device::Cpu).unwrap())
    }

    /// `-log softmax(logits_i)[y_i]` in f64, by hand.
    fn ce(i: usize) -> f64 {
        let row = LOGITS[i].map(f64::from);
        let lse = row.iter().map(|x| x.exp()).sum::<f64>().ln();
        lse - row[Y[i] as usize]
    }

    /// The weighted loss's value, `Σ w_g(i)·CE_i / Σ w_g(i)`, against the same sum in f64; equal
    /// weights give the plain mean.
    #[test]
    fn weighted_cross_entropy_value() {
        let (l, y) = inputs();
        let w = [3.0, 0.5];
        let got = weighted_cross_entropy(&l, &y, &GROUPS, &w)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        let num: f64 = (0..4).map(|i| w[GROUPS[i]] * ce(i)).sum();
        let den: f64 = (0..4).map(|i| w[GROUPS[i]]).sum();
        assert!((got - num / den).abs() < 1e-6, "{got} vs {}", num / den);
        let plain = (0..4).map(ce).sum::<f64>() / 4.0;
        assert!(
            (num / den - plain).abs() > 1e-2,
            "the weights must matter here"
        );
        let equal = weighted_cross_entropy(&l, &y, &GROUPS, &[2.0, 2.0])
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        assert!((equal - plain).abs() < 1e-6, "{equal} vs {plain}");
    }

    /// The weighted task term plus the fairness penalty: `task + λ·(max_g L_g − min_g L_g)`,
    /// with `L_g` the unweighted mean loss of group g (the weights change only the task term).
    #[test]
    fn weighted_task_and_fairness_value() {
        let (l, y) = inputs();
        let w = [3.0, 0.5];
        let out = task_and_fairness_weighted(&l, &y, &GROUPS, 0.7, Some(&w)).unwrap();
        let task = (3.0 * (ce(0) + ce(3)) + 0.5 * (ce(1) + ce(2))) / 7.0;
        let (l0, l1) = ((ce(0) + ce(3)) / 2.0, (ce(1) + ce(2)) / 2.0);
        let total = task + 0.7 * (l0 - l1).abs();
        let get = |t: &Tensor| t.to_scalar::<f32>().unwrap() as f64;
        assert!((get(&out.task) - task).abs() < 1e-6);
        assert!((get(out.fair.as_ref().unwrap()) - (l0 - l1).abs()).abs() < 1e-6);
        assert!((get(&out.total) - total).abs() < 1e-6);
    }
}
