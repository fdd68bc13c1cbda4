//! Bellam & Kim's mitigations (spec §10), as options of every training loop (FP32 fine-tuning,
//! QAT, BAQ): a group-balanced sampler and a group-weighted cross-entropy. The paper gives no
//! formulas; these are the spec's standard choices (marked "ours" there).

use crate::data::image_set::ImageSet;
use crate::support::seed;
use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How an epoch's sample order is drawn.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
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
pub enum Sampler {
    /// Every sample once, freshly shuffled (the default).
    #[default]
    Shuffle,
    /// N draws with replacement, sample i with probability ∝ 1/n_{g(i)} (PyTorch's
    /// WeightedRandomSampler): every group equally likely in expectation.
    GroupBalanced,
}

/// Per-group weights of the cross-entropy: `L = Σ w_{g(i)} CE_i / Σ w_{g(i)}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupWeights {
    /// Plain mean cross-entropy (the default).
    #[default]
    None,
    /// `w_g = N / (|G| n_g)` from the training split's group counts.
    InverseFrequency,
    /// One weight per group, in the dataset's group order.
    Explicit(Vec<f64>),
}

impl GroupWeights {
    /// Parse `none`, `inverse-frequency` or a comma list of weights (`1,3.5`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "none" => Ok(Self::None),
            "inverse-frequency" | "inverse" => Ok(Self::InverseFrequency),
            list => {
                let w = list
                    .split(',')
                    .map(|v| v.trim().parse::<f64>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "--group-weights `{s}`: use `none`, `inverse-frequency` or comma-separated numbers"
                        )
                    })?;
                if w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) || w.iter().sum::<f64>() <= 0.0 {
                    bail!(
                        "--group-weights {w:?}: weights must be non-negative with a positive sum"
                    );
                }
                Ok(Self::Explicit(w))
            }
        }
    }

    /// The weight of each group for a split with `counts` samples per group; `None` = unweighted.
    /// A group without samples gets weight 0 (it never appears in a batch anyway).
    pub fn resolve(&self, counts: &[usize]) -> Result<Option<Vec<f64>>> {
        match self {
            Self::None => Ok(None),
            Self::InverseFrequency => {
                let n: usize = counts.iter().sum();
                let present = counts.iter().filter(|&&c| c > 0).count().max(1);
                Ok(Some(
                    counts
                        .iter()
                        .map(|&c| {
                            if c == 0 {
                                0.0
                            } else {
                                n as f64 / (present as f64 * c as f64)
                            }
                        })
                        .collect(),
                ))
            }
            Self::Explicit(w) => {
                if w.len() != counts.len() {
                    bail!(
                        "--group-weights has {} weights but the dataset has {} groups",
                        w.len(),
                        counts.len()
                    );
                }
                Ok(Some(w.clone()))
            }
        }
    }
}

/// The sample order of one epoch (`seed` and `epoch` fix it, so a resumed run sees the same).
pub fn epoch_order(set: &ImageSet, sampler: Sampler, seed_: u64, epoch: usize) -> Vec<usize> {
    match sampler {
        Sampler::Shuffle => {
            let mut order: Vec<usize> = (0..set.len()).collect();
            order.shuffle(&mut seed::rng(seed_, &[seed::tag::SHUFFLE, epoch as u64]));
            order
        }
        Sampler::GroupBalanced => balanced_draws(
            &set.groups,
            &set.group_counts(),
            &mut seed::rng(seed_, &[seed::tag::BALANCED, epoch as u64]),
        ),
    }
}

/// `groups.len()` draws with replacement, index i with probability ∝ 1/counts[groups[i]].
pub fn balanced_draws(groups: &[usize], counts: &[usize], rng: &mut impl Rng) -> Vec<usize> {
    let mut cum = Vec::with_capacity(groups.len());
    let mut acc = 0f64;
    for &g in groups {
        acc += 1.0 / counts[g].max(1) as f64;
        cum.push(acc);
    }
    (0..groups.len())
        .map(|_| {
            let u = rng.random::<f64>() * acc;
            cum.partition_point(|&c| c <= u).min(groups.len() - 1)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn balanced_draws_equalise_groups() {
        // 900 samples of group 0, 100 of group 1: each group should get about half the draws.
        let groups: Vec<usize> = (0..1000).map(|i| usize::from(i >= 900)).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut hits = [0usize; 2];
        for _ in 0..20 {
            for i in balanced_draws(&groups, &[900, 100], &mut rng) {
                hits[groups[i]] += 1;
            }
        }
        let share = hits[1] as f64 / 20_000.0;
        // Binomial std at p = 0.5, n = 20000 is 0.0035; 5 sigma.
        assert!((share - 0.5).abs() < 0.018, "minority share {share}");
    }

    #[test]
    fn inverse_frequency_weights() {
        let w = GroupWeights::InverseFrequency
            .resolve(&[300, 100])
            .unwrap()
            .unwrap();
        // N / (|G| n_g): 400 / 600 and 400 / 200.
        assert_eq!(w, vec![400.0 / 600.0, 2.0]);
        assert_eq!(
            GroupWeights::parse("1, 3").unwrap(),
            GroupWeights::Explicit(vec![1.0, 3.0])
        );
        assert!(GroupWeights::parse("1,x").is_err());
        assert!(GroupWeights::Explicit(vec![1.0]).resolve(&[1, 2]).is_err());
    }
}
