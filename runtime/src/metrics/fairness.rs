//! Per-group accuracy and the FairPrune fairness gaps (spec §8), checked against Fairlearn.

use serde::{Deserialize, Serialize};

/// Group-level results of one model on one evaluation set. Accuracies are fractions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FairnessMetrics {
    pub group_names: Vec<String>,
    pub group_count: Vec<usize>,
    pub group_correct: Vec<usize>,
    /// `None` (JSON `null`) for a group without samples.
    pub group_accuracy: Vec<Option<f64>>,
    /// Unweighted mean of the accuracies of the groups with samples.
    pub avg_acc: f64,
    pub worst_acc: f64,
    /// Max minus min group accuracy.
    pub gap: f64,
    /// Mean over all classes of the between-group TNR gap.
    pub eopp0: f64,
    /// Mean over all classes of the between-group TPR gap.
    pub eopp1: f64,
    /// Mean over all classes of (TPR gap + FPR gap).
    pub eodd: f64,
    /// Plain accuracy over all samples.
    pub overall_acc: f64,
}

/// Inputs that do not describe a classification result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("length mismatch: {y_true} labels, {y_pred} predictions, {groups} group ids")]
    LengthMismatch {
        y_true: usize,
        y_pred: usize,
        groups: usize,
    },
    #[error("{which}[{index}] = {value} is not a class (num_classes = {num_classes})")]
    ClassOutOfRange {
        which: &'static str,
        index: usize,
        value: usize,
        num_classes: usize,
    },
    #[error("groups[{index}] = {value} is not a group ({num_groups} group names)")]
    GroupOutOfRange {
        index: usize,
        value: usize,
        num_groups: usize,
    },
    #[error("no samples to evaluate")]
    Empty,
}

/// Per-group counts for one class.
#[derive(Clone, Copy, Default)]
struct ClassCounts {
    positives: usize,
    predicted: usize,
    true_positives: usize,
}

impl FairnessMetrics {
    /// Computes every metric of spec §8. `group_names` fixes the number of groups; a group without samples is
    /// listed (count 0, accuracy `None`) but excluded from AvgAcc, WorstAcc and Gap. Per class `c`
    /// (one-vs-rest on the prediction), TPR is defined for groups with positives of `c` and TNR/FPR for
    /// groups with negatives; a class gap is max - min over the defining groups, 0 if fewer than two define
    /// it; EOpp0/EOpp1/EOdd average the gaps over all `num_classes` classes.
    pub fn compute(
        y_true: &[usize],
        y_pred: &[usize],
        groups: &[usize],
        num_classes: usize,
        group_names: &[String],
    ) -> Result<FairnessMetrics, MetricsError> {
        let n = y_true.len();
        if y_pred.len() != n || groups.len() != n {
            return Err(MetricsError::LengthMismatch {
                y_true: n,
                y_pred: y_pred.len(),
                groups: groups.len(),
            });
        }
        if n == 0 {
            return Err(MetricsError::Empty);
        }
        let num_groups = group_names.len();
        let mut count = vec![0usize; num_groups];
        let mut correct = vec![0usize; num_groups];
        let mut per_class = vec![ClassCounts::default(); num_groups * num_classes];
        for (i, ((&y, &p), &g)) in y_true.iter().zip(y_pred).zip(groups).enumerate() {
            for (which, v) in [("y_true", y), ("y_pred", p)] {
                if v >= num_classes {
                    return Err(MetricsError::ClassOutOfRange {
                        which,
                        index: i,
                        value: v,
                        num_classes,
                    });
                }
            }
            if g >= num_groups {
                return Err(MetricsError::GroupOutOfRange {
                    index: i,
                    value: g,
                    num_groups,
                });
            }
            count[g] += 1;
            per_class[g * num_classes + y].positives += 1;
            per_class[g * num_classes + p].predicted += 1;
            if y == p {
                correct[g] += 1;
                per_class[g * num_classes + y].true_positives += 1;
            }
        }

        let group_accuracy: Vec<Option<f64>> = count
            .iter()
            .zip(&correct)
            .map(|(&n_g, &c_g)| (n_g > 0).then(|| c_g as f64 / n_g as f64))
            .collect();
        let present: Vec<f64> = group_accuracy.iter().flatten().copied().collect();
        let avg_acc = present.iter().sum::<f64>() / present.len() as f64;
        let worst_acc = present.iter().copied().fold(f64::INFINITY, f64::min);
        let best_acc = present.iter().copied().fold(f64::NEG_INFINITY, f64::max);

        let (mut sum_tpr, mut sum_tnr, mut sum_fpr) = (0.0, 0.0, 0.0);
        for c in 0..num_classes {
            let (mut tpr, mut tnr, mut fpr) = (Vec::new(), Vec::new(), Vec::new());
            for g in (0..num_groups).filter(|&g| count[g] > 0) {
                let k = per_class[g * num_classes + c];
                if k.positives > 0 {
                    tpr.push(k.true_positives as f64 / k.positives as f64);
                }
                let negatives = count[g] - k.positives;
                if negatives > 0 {
                    let false_positives = k.predicted - k.true_positives;
                    tnr.push((negatives - false_positives) as f64 / negatives as f64);
                    fpr.push(false_positives as f64 / negatives as f64);
                }
            }
            sum_tpr += spread(&tpr);
            sum_tnr += spread(&tnr);
            sum_fpr += spread(&fpr);
        }
        let k = num_classes.max(1) as f64;
        Ok(FairnessMetrics {
            group_names: group_names.to_vec(),
            group_count: count,
            overall_acc: correct.iter().sum::<usize>() as f64 / n as f64,
            group_correct: correct,
            group_accuracy,
            avg_acc,
            worst_acc,
            gap: best_acc - worst_acc,
            eopp0: sum_tnr / k,
            eopp1: sum_tpr / k,
            eodd: (sum_tpr + sum_fpr) / k,
        })
    }
}

/// max - min, or 0 with fewer than two values.
fn spread(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    max - min
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|g| format!("g{g}")).collect()
    }

    #[test]
    fn hand_computed_two_groups() {
        // Group 0: y = [0, 0, 1, 1], yhat = [0, 1, 1, 1] -> acc 3/4.
        // Group 1: y = [0, 1, 1, 0], yhat = [0, 0, 1, 1] -> acc 2/4.
        let y = [0, 0, 1, 1, 0, 1, 1, 0];
        let p = [0, 1, 1, 1, 0, 0, 1, 1];
        let g = [0, 0, 0, 0, 1, 1, 1, 1];
        let m = FairnessMetrics::compute(&y, &p, &g, 2, &names(2)).unwrap();
        assert_eq!(m.group_count, vec![4, 4]);
        assert_eq!(m.group_correct, vec![3, 2]);
        assert_eq!(m.group_accuracy, vec![Some(0.75), Some(0.5)]);
        assert_eq!(m.avg_acc, 0.625);
        assert_eq!(m.worst_acc, 0.5);
        assert_eq!(m.gap, 0.25);
        assert_eq!(m.overall_acc, 5.0 / 8.0);
        // Class 0: TPR g0 = 1/2, g1 = 1/2 -> 0; TNR g0 = 2/2, g1 = 1/2 -> 0.5.
        // Class 1: TPR g0 = 2/2, g1 = 1/2 -> 0.5; TNR g0 = 1/2, g1 = 1/2 -> 0.
        assert_eq!(m.eopp1, (0.0 + 0.5) / 2.0);
        assert_eq!(m.eopp0, (0.5 + 0.0) / 2.0);
        assert_eq!(m.eodd, (0.0 + 0.5 + 0.5 + 0.0) / 2.0);
    }

    #[test]
    fn empty_group_is_listed_but_not_aggregated() {
        let y = [0, 1, 0, 1];
        let p = [0, 1, 1, 1];
        let g = [0, 0, 2, 2];
        let m = FairnessMetrics::compute(&y, &p, &g, 3, &names(3)).unwrap();
        assert_eq!(m.group_count, vec![2, 0, 2]);
        assert_eq!(m.group_accuracy, vec![Some(1.0), None, Some(0.5)]);
        assert_eq!(m.avg_acc, 0.75);
        assert_eq!(m.worst_acc, 0.5);
        assert_eq!(m.gap, 0.5);
        // Class 2 never occurs: TPR undefined everywhere, TNR 1 in both groups -> adds 0 but counts in K.
        // Class 0: TPR 1 vs 0 -> 1; TNR 1 vs 1 -> 0. Class 1: TPR 1 vs 1 -> 0; TNR 1 vs 0 -> 1.
        assert_eq!(m.eopp1, 1.0 / 3.0);
        assert_eq!(m.eopp0, 1.0 / 3.0);
        assert_eq!(m.eodd, 2.0 / 3.0);
        let json = serde_json::to_value(&m).unwrap();
        assert!(json["group_accuracy"][1].is_null());
    }

    #[test]
    fn single_group_has_no_gaps() {
        let m = FairnessMetrics::compute(&[0, 1, 1], &[1, 1, 0], &[0, 0, 0], 2, &names(1)).unwrap();
        assert_eq!(m.gap, 0.0);
        assert_eq!((m.eopp0, m.eopp1, m.eodd), (0.0, 0.0, 0.0));
        assert_eq!(m.avg_acc, 1.0 / 3.0);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let n = names(2);
        assert_eq!(
            FairnessMetrics::compute(&[], &[], &[], 2, &n),
            Err(MetricsError::Empty)
        );
        assert!(matches!(
            FairnessMetrics::compute(&[0], &[0, 1], &[0], 2, &n),
            Err(MetricsError::LengthMismatch { .. })
        ));
        assert!(matches!(
            FairnessMetrics::compute(&[0, 2], &[0, 1], &[0, 0], 2, &n),
            Err(MetricsError::ClassOutOfRange {
                which: "y_true",
                index: 1,
                ..
            })
        ));
        assert!(matches!(
            FairnessMetrics::compute(&[0, 1], &[0, 5], &[0, 0], 2, &n),
            Err(MetricsError::ClassOutOfRange {
                which: "y_pred",
                ..
            })
        ));
        assert!(matches!(
            FairnessMetrics::compute(&[0, 1], &[0, 1], &[0, 2], 2, &n),
            Err(MetricsError::GroupOutOfRange { index: 1, .. })
        ));
    }
}
