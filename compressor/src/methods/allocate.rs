//! Budgeted mixed-precision allocation (spec §3): one global pool of scope scores, quantile
//! thresholds at the palette's cumulative proportions, low importance → low bits.

use crate::nn::quant::{BitAssignment, Granularity};
use anyhow::{bail, Result};
use fq_models::QuantLayer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A bit palette and the share of scopes each width gets (paired with the sorted bits by position).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocationConfig {
    pub palette: Vec<u8>,
    /// `None` = equal shares.
    pub proportions: Option<Vec<f64>>,
}

impl AllocationConfig {
    /// FQ-QAT's default: {2, 4, 8} at {0.2, 0.4, 0.4}.
    pub fn fq_qat() -> Self {
        Self {
            palette: vec![2, 4, 8],
            proportions: Some(vec![0.2, 0.4, 0.4]),
        }
    }

    /// FQ-BAQ's warm start: {2, ..., 8}, equal shares.
    pub fn fq_baq() -> Self {
        Self {
            palette: (2..=8).collect(),
            proportions: None,
        }
    }
}

/// What an allocation produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    pub config: AllocationConfig,
    pub levels: Vec<f32>,
    pub thresholds: Vec<f32>,
    /// Scopes per palette entry.
    pub counts: Vec<usize>,
    /// Nominal scope-weighted mean bits.
    pub nominal_bits: f64,
    pub bits: BitAssignment,
}

/// `c_k = p_1 + ... + p_k` for `k < K` (summed in f64, then f32, as the official code); the
/// proportions are renormalised when they do not sum to 1.
pub fn cumulative_levels(props: &[f64]) -> Vec<f32> {
    let total: f64 = props.iter().sum();
    let norm = if (total - 1.0).abs() > 1e-5 {
        total
    } else {
        1.0
    };
    let mut acc = 0.0f64;
    props[..props.len().saturating_sub(1)]
        .iter()
        .map(|p| {
            acc += p / norm;
            acc as f32
        })
        .collect()
}

/// `torch.quantile(x, c)` with linear interpolation, bit-exact with torch 2.x: the position in
/// f64, the interpolation as one fused multiply-add from the nearer end.
pub fn quantile(sorted: &[f32], c: f32) -> f32 {
    let n = sorted.len();
    let pos = c as f64 * (n - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let w = (pos - lo as f64) as f32;
    let d = sorted[hi] - sorted[lo];
    if w < 0.5 {
        w.mul_add(d, sorted[lo])
    } else {
        (w - 1.0).mul_add(d, sorted[hi])
    }
}

/// Tier the scope scores (one vector per layer, in `layers` order) into bit-widths.
pub fn allocate(
    scores: &[Vec<f32>],
    layers: &[QuantLayer],
    granularity: Granularity,
    cfg: &AllocationConfig,
) -> Result<Allocation> {
    if cfg.palette.is_empty() {
        bail!("the bit palette is empty");
    }
    if let Some(b) = cfg.palette.iter().find(|b| !(2..=8).contains(*b)) {
        bail!("palette bit-width {b} is outside 2..=8 (the packed format's widths)");
    }
    let mut order: Vec<usize> = (0..cfg.palette.len()).collect();
    order.sort_by_key(|&i| cfg.palette[i]);
    let palette: Vec<u8> = order.iter().map(|&i| cfg.palette[i]).collect();
    if palette.windows(2).any(|w| w[0] == w[1]) {
        bail!("the bit palette {:?} repeats a width", cfg.palette);
    }
    // Proportions pair with the sorted bits by position (spec §3.2), not with the given order.
    let props = match &cfg.proportions {
        Some(p) if p.len() != palette.len() => bail!(
            "{} proportions for a palette of {} bit-widths",
            p.len(),
            palette.len()
        ),
        Some(p)
            if p.iter().any(|v| !(v.is_finite() && *v >= 0.0)) || p.iter().sum::<f64>() <= 0.0 =>
        {
            bail!("proportions {p:?} must be non-negative with a positive sum")
        }
        Some(p) => p.clone(),
        None => vec![1.0 / palette.len() as f64; palette.len()],
    };
    if scores.len() != layers.len() {
        bail!("{} score vectors for {} layers", scores.len(), layers.len());
    }
    let mut all: Vec<f32> = scores.iter().flatten().copied().collect();
    if all.is_empty() {
        bail!("no scopes to allocate");
    }
    if all.iter().any(|v| !v.is_finite()) {
        bail!("importance scores contain a non-finite value");
    }
    all.sort_by(f32::total_cmp);
    let levels = cumulative_levels(&props);
    let thresholds: Vec<f32> = levels.iter().map(|&c| quantile(&all, c)).collect();
    let tier = |s: f32| {
        thresholds
            .iter()
            .position(|&t| s <= t)
            .unwrap_or(palette.len() - 1)
    };
    let mut counts = vec![0usize; palette.len()];
    let mut out = BTreeMap::new();
    for (l, s) in layers.iter().zip(scores) {
        let want = match granularity {
            Granularity::PerChannel => l.out_channels,
            Granularity::PerTensor => 1,
        };
        if s.len() != want {
            bail!("layer `{}` has {} scores, expected {want}", l.name, s.len());
        }
        let bits: Vec<u8> = s
            .iter()
            .map(|&v| {
                let k = tier(v);
                counts[k] += 1;
                palette[k]
            })
            .collect();
        out.insert(l.name.clone(), bits);
    }
    let total: usize = counts.iter().sum();
    let nominal_bits = counts
        .iter()
        .zip(&palette)
        .map(|(&c, &b)| c as f64 * b as f64)
        .sum::<f64>()
        / total as f64;
    Ok(Allocation {
        config: AllocationConfig {
            palette,
            proportions: Some(props),
        },
        levels,
        thresholds,
        counts,
        nominal_bits,
        bits: BitAssignment {
            granularity: Some(granularity),
            layers: out,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(name: &str, c: usize) -> QuantLayer {
        QuantLayer {
            name: name.into(),
            node: 0,
            weight_shape: vec![c, 1],
            out_channels: c,
            params: c as u64,
            macs: c as u64,
            bops: 2 * c as u64,
        }
    }

    #[test]
    fn ties_go_to_the_lower_tier() {
        // Half the scores are 0, so the 0.2 quantile is 0 and every zero ties with it: 50% of the
        // scopes land in the lowest tier, not 20%.
        let s = vec![vec![0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]];
        let a = allocate(
            &s,
            &[layer("a", 10)],
            Granularity::PerChannel,
            &AllocationConfig::fq_qat(),
        )
        .unwrap();
        // The 0.6 quantile interpolates between 1 and 2 at position 5.4: 1.4.
        assert_eq!(a.thresholds[0], 0.0);
        assert!((a.thresholds[1] - 1.4).abs() < 1e-6);
        assert_eq!(a.bits.layers["a"], [2, 2, 2, 2, 2, 4, 8, 8, 8, 8]);
        assert_eq!(a.counts, [5, 1, 4]);
    }

    #[test]
    fn proportions_pair_with_sorted_bits() {
        let s = vec![(0..10).map(|v| v as f32).collect::<Vec<_>>()];
        let cfg = AllocationConfig {
            palette: vec![8, 2],
            proportions: Some(vec![0.3, 0.7]),
        };
        let a = allocate(&s, &[layer("a", 10)], Granularity::PerChannel, &cfg).unwrap();
        // 0.3 goes with 2 bits (the smaller width), whatever the given order.
        assert_eq!(a.counts, [3, 7]);
    }

    #[test]
    fn rejects_bad_palettes() {
        let s = vec![vec![1.0; 4]];
        let l = [layer("a", 4)];
        for (palette, props) in [
            (vec![], None),
            (vec![1, 4], None),
            (vec![4, 4], None),
            (vec![2, 4], Some(vec![1.0])),
            (vec![2, 4], Some(vec![-1.0, 0.5])),
        ] {
            let cfg = AllocationConfig {
                palette,
                proportions: props,
            };
            assert!(
                allocate(&s, &l, Granularity::PerChannel, &cfg).is_err(),
                "{cfg:?}"
            );
        }
    }
}
