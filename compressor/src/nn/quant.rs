//! The one weight quantizer (spec §1): symmetric uniform quantize–dequantize with a
//! straight-through estimator, used by every method (PTQ, QAT, importance-guided allocations).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which weights share one scale.
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
pub enum Granularity {
    /// One scale (and one bit-width) per output channel: the paper's setting.
    PerChannel,
    /// One scale for the whole tensor.
    PerTensor,
}

/// `qmax = 2^(b-1) - 1`: the symmetric grid avoids `-2^(b-1)`.
pub fn qmax(bits: u8) -> f32 {
    ((1u32 << (bits - 1)) - 1) as f32
}

/// `v.round_ties_even()` for `|v| < 2^23` (here `|x / s| <= qmax`), without a libm call:
/// x86-64's baseline has no rounding instruction, so `round_ties_even` calls `rintf` for every
/// weight (2.4% of a ResNet18-224 training step, perf). `(|v| + 2^23) - 2^23` rounds in the FPU's
/// round-to-nearest-even mode; the sign is put back, so small negatives give `-0.0` as well.
#[inline]
pub fn round_below_2_23(v: f32) -> f32 {
    const TWO_23: f32 = 8_388_608.0;
    ((v.abs() + TWO_23) - TWO_23).copysign(v)
}

/// Quantize–dequantize one scope (a set of weights sharing a scale). Returns the scale
/// (0 for b = 0/1, which have none).
pub fn quantize_scope(w: &[f32], bits: u8, out: &mut [f32]) -> f32 {
    match bits {
        0 => {
            out.fill(0.0);
            0.0
        }
        1 => {
            for (o, &x) in out.iter_mut().zip(w) {
                *o = if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                };
            }
            0.0
        }
        b => {
            let q = qmax(b);
            let amax = w.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-8);
            let s = amax / q;
            for (o, &x) in out.iter_mut().zip(w) {
                *o = round_below_2_23(x / s).clamp(-q, q) * s;
            }
            s
        }
    }
}

/// Quantize–dequantize a weight of shape `[O, ...]` with one bit-width per output channel
/// (`PerChannel`) or one for the tensor (`PerTensor`, `bits.len() == 1`). Returns the values and
/// one scale per scope.
pub fn quantize_weight(
    w: &[f32],
    out_channels: usize,
    bits: &[u8],
    gran: Granularity,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut out = vec![0.0; w.len()];
    match gran {
        Granularity::PerTensor => {
            if bits.len() != 1 {
                bail!(
                    "per-tensor quantization takes one bit-width, got {}",
                    bits.len()
                );
            }
            let s = quantize_scope(w, bits[0], &mut out);
            Ok((out, vec![s]))
        }
        Granularity::PerChannel => {
            if bits.len() != out_channels
                || out_channels == 0
                || !w.len().is_multiple_of(out_channels)
            {
                bail!(
                    "per-channel quantization of {} weights needs one bit-width per each of {} channels, got {}",
                    w.len(),
                    out_channels,
                    bits.len()
                );
            }
            let per = w.len() / out_channels;
            let scales = w
                .chunks(per)
                .zip(out.chunks_mut(per))
                .zip(bits)
                .map(|((wc, oc), &b)| quantize_scope(wc, b, oc))
                .collect();
            Ok((out, scales))
        }
    }
}

/// Bit-widths per output channel for every quantized layer, keyed by module name.
/// Saved as JSON so an allocation can be reused (`--allocation FILE`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BitAssignment {
    pub granularity: Option<Granularity>,
    pub layers: BTreeMap<String, Vec<u8>>,
}

impl BitAssignment {
    /// The same bit-width for every channel of every layer (U8, U4).
    pub fn uniform(layers: &[fq_models::QuantLayer], bits: u8) -> Self {
        Self {
            granularity: Some(Granularity::PerChannel),
            layers: layers
                .iter()
                .map(|l| (l.name.clone(), vec![bits; l.out_channels]))
                .collect(),
        }
    }

    /// The same bit-width everywhere at `gran`: one per output channel, or one per layer for
    /// per-tensor scopes (the shape an allocation of that granularity has).
    pub fn uniform_scoped(layers: &[fq_models::QuantLayer], bits: u8, gran: Granularity) -> Self {
        let per = |l: &fq_models::QuantLayer| match gran {
            Granularity::PerChannel => l.out_channels,
            Granularity::PerTensor => 1,
        };
        Self {
            granularity: Some(gran),
            layers: layers
                .iter()
                .map(|l| (l.name.clone(), vec![bits; per(l)]))
                .collect(),
        }
    }

    /// Mean bits of each layer, in the order of `layers` (32 for a layer without an assignment).
    pub fn layer_mean_bits(&self, layers: &[fq_models::QuantLayer]) -> Vec<f64> {
        layers
            .iter()
            .map(|l| match self.layers.get(&l.name) {
                Some(b) if !b.is_empty() => {
                    b.iter().map(|&x| x as f64).sum::<f64>() / b.len() as f64
                }
                _ => 32.0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quantizer's rounding is `round_ties_even`, bit for bit, over its whole range: every
    /// half-integer and neighbours of it up to 2^16, signed zeros and tiny values.
    #[test]
    fn round_below_2_23_is_round_ties_even() {
        let mut cases = vec![
            0.0f32,
            -0.0,
            1e-40,
            -1e-40,
            0.49999997,
            -0.49999997,
            8_388_607.5,
        ];
        for i in 0..(1 << 17) {
            let half = i as f32 / 2.0;
            for v in [
                half,
                f32::from_bits(half.to_bits() + 1),
                f32::from_bits(half.to_bits().saturating_sub(1)),
            ] {
                cases.extend([v, -v]);
            }
        }
        for v in cases {
            assert_eq!(
                round_below_2_23(v).to_bits(),
                v.round_ties_even().to_bits(),
                "{v}"
            );
        }
    }

    #[test]
    fn ties_round_half_to_even() {
        // amax 7 at 4 bits gives scale 1, so 2.5 -> 2, 3.5 -> 4, -2.5 -> -2 (not away from zero).
        let w = [7.0, 2.5, 3.5, -2.5];
        let mut out = [0.0; 4];
        assert_eq!(quantize_scope(&w, 4, &mut out), 1.0);
        assert_eq!(out, [7.0, 2.0, 4.0, -2.0]);
    }

    #[test]
    fn zero_and_one_bit() {
        let w = [0.5, -0.25, 0.0];
        let mut out = [9.0; 3];
        quantize_scope(&w, 0, &mut out);
        assert_eq!(out, [0.0; 3]);
        quantize_scope(&w, 1, &mut out);
        assert_eq!(out, [1.0, -1.0, 0.0]);
    }

    #[test]
    fn mixed_bits_per_channel() {
        let w: Vec<f32> = (0..12).map(|i| i as f32 / 11.0 - 0.5).collect();
        let (q, s) = quantize_weight(&w, 3, &[2, 4, 8], Granularity::PerChannel).unwrap();
        assert_eq!(s.len(), 3);
        // 2 bits is ternary: every value is -s, 0 or +s.
        for &x in &q[0..4] {
            assert!([-s[0], 0.0, s[0]].iter().any(|v| (v - x).abs() < 1e-7));
        }
        assert!(quantize_weight(&w, 3, &[2, 4], Granularity::PerChannel).is_err());
    }
}
