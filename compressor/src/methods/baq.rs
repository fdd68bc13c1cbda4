//! FQ-BAQ (spec §4): learnable per-scope bit-widths. Each scope (output channel, or tensor) has a
//! bit logit `theta` mapped to a continuous bit proxy in `[b_min, b_max)`, rounded with a
//! straight-through estimator, and a dead-zone logit `phi` inherited from CoDeQ. The step is
//! recomputed from the current weights in every forward pass.

use crate::nn::quant::{BitAssignment, Granularity};
use crate::nn::transform::WeightTransform;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use fq_models::QuantLayer;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// How the task and fairness losses reach the bit logits (spec §4.2, §11.1).
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
pub enum BaqGradient {
    /// The paper: `W_used = W_hat`, so gradients flow through round/clamp (STE) into the step and
    /// hence into `theta`: bits really learn.
    Paper,
    /// The official code at HEAD: `W_used = W + stopgrad(W_hat - W)`; only the regularizer and
    /// weight decay move `theta`, so the bits stay at the warm start.
    Detached,
}

/// The bitrate regularizer `L_bit` (spec §4.4, §11.2).
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
pub enum BitRegularizer {
    /// `mean_s (theta_s - theta_s^init)^2`: pull toward the importance-informed warm start (HEAD).
    Anchor,
    /// `mean_s theta_s^2`: shrink toward 0, i.e. toward `b_min` (the paper's text, older code).
    Shrink,
}

/// BAQ hyperparameters (defaults: spec §4 / the HEAD run script).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaqConfig {
    pub b_min: f64,
    pub b_max: f64,
    /// Coefficient of the bitrate regularizer.
    pub lambda_bit: f64,
    pub regularizer: BitRegularizer,
    pub gradient: BaqGradient,
    /// Learning rate of the bit and dead-zone logits (10x the fine-tuning rate).
    pub logit_lr: f64,
    /// Start from the importance allocation (`true`) or at high precision, `theta = 6` (`false`).
    pub warm_start: bool,
    pub theta_init: f64,
    pub phi_init: f64,
    /// Epochs of fixed-bit QAT on the plain §1 quantizer after the learnable-bit epochs, with
    /// the bits frozen to the discretized ones: the exported model is the §1 quantizer on those
    /// bits, so the last steps train exactly it (docs/BAQ_SHIPPING.md). A config written before
    /// this phase existed reads as 0 (none), which is what such a run did.
    #[serde(default)]
    pub final_fixed_epochs: usize,
}

impl Default for BaqConfig {
    fn default() -> Self {
        Self {
            b_min: 2.0,
            b_max: 8.0,
            lambda_bit: 1e-2,
            regularizer: BitRegularizer::Anchor,
            gradient: BaqGradient::Paper,
            logit_lr: 3e-3,
            warm_start: true,
            theta_init: 6.0,
            phi_init: -6.0,
            final_fixed_epochs: 1,
        }
    }
}

/// The logits of one quantized layer.
pub struct BaqLayer {
    pub name: String,
    pub theta: Var,
    pub phi: Var,
    /// `theta` right after initialisation (the anchor of [`BitRegularizer::Anchor`]).
    pub theta_init: Tensor,
}

/// The learnable bit state of a whole model.
pub struct BaqParams {
    pub cfg: BaqConfig,
    pub granularity: Granularity,
    pub layers: Vec<BaqLayer>,
    index: HashMap<String, usize>,
}

/// `theta` whose proxy rounds to `b` (spec §4.3): `atanh(clamp((b - b_min)/(b_max - b_min), ±0.95))`.
pub fn warm_theta(b: f64, cfg: &BaqConfig) -> f64 {
    if cfg.b_max == cfg.b_min {
        return cfg.theta_init;
    }
    let b = b.clamp(cfg.b_min, cfg.b_max);
    ((b - cfg.b_min) / (cfg.b_max - cfg.b_min))
        .clamp(-0.95, 0.95)
        .atanh()
}

/// Forward value `round_half_even(x)`, backward identity.
/// Off the CPU the rounding runs in tensor ops on the device (no host round trip per layer and
/// step); the result is the same bit for bit (`quant_ops::round_half_even`).
pub fn round_ste(x: &Tensor) -> Result<Tensor> {
    let r = if crate::nn::quant_ops::off_cpu(x) {
        crate::nn::quant_ops::round_half_even(&x.detach())?
    } else {
        let host: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let r: Vec<f32> = host.iter().map(|v| v.round_ties_even()).collect();
        Tensor::from_vec(r, x.dims(), x.device())?
    };
    Ok((x + (r - x.detach())?)?)
}

/// `max(x, lo)` whose gradient reaches `x` only where `x > lo`, like `torch.clamp_min` (candle's
/// `maximum` would pass half the gradient at a tie, and `M == 1` is a tie for every 2-bit scope).
fn clamp_min(x: &Tensor, lo: f64) -> Result<Tensor> {
    let floor = x.ones_like()?.affine(lo, 0.0)?;
    Ok(x.gt(lo)?.where_cond(x, &floor)?)
}

impl BaqParams {
    /// Logits for `layers`: warm-started from `warm` when given (and `cfg.warm_start`), else the
    /// high-precision start `theta = theta_init`.
    pub fn new(
        layers: &[QuantLayer],
        granularity: Granularity,
        warm: Option<&BitAssignment>,
        cfg: BaqConfig,
        device: &Device,
    ) -> Result<Self> {
        if !(cfg.b_min >= 2.0 && cfg.b_max <= 8.0 && cfg.b_min <= cfg.b_max) {
            bail!(
                "BAQ bit range [{}, {}] must lie within [2, 8] (the packed format's widths)",
                cfg.b_min,
                cfg.b_max
            );
        }
        let mut out = Vec::with_capacity(layers.len());
        let mut index = HashMap::new();
        for l in layers {
            let scopes = match granularity {
                Granularity::PerChannel => l.out_channels,
                Granularity::PerTensor => 1,
            };
            let theta: Vec<f32> = match (warm, cfg.warm_start) {
                (Some(a), true) => {
                    let b = a.layers.get(&l.name).with_context(|| {
                        format!("warm-start allocation lacks layer `{}`", l.name)
                    })?;
                    if b.len() != scopes {
                        bail!(
                            "warm-start allocation has {} bit-widths for layer `{}`, expected {scopes}",
                            b.len(),
                            l.name
                        );
                    }
                    b.iter()
                        .map(|&b| warm_theta(b as f64, &cfg) as f32)
                        .collect()
                }
                _ => vec![cfg.theta_init as f32; scopes],
            };
            let theta = Var::from_vec(theta, scopes, device)?;
            let phi = Var::from_vec(vec![cfg.phi_init as f32; scopes], scopes, device)?;
            index.insert(l.name.clone(), out.len());
            out.push(BaqLayer {
                name: l.name.clone(),
                theta_init: theta.as_tensor().detach().copy()?,
                theta,
                phi,
            });
        }
        Ok(Self {
            cfg,
            granularity,
            layers: out,
            index,
        })
    }

    fn layer(&self, name: &str) -> Result<&BaqLayer> {
        self.index
            .get(name)
            .map(|&i| &self.layers[i])
            .with_context(|| format!("BAQ has no logits for layer `{name}`"))
    }

    /// The continuous bit proxy `b_min + (b_max - b_min) * tanh(|theta|)` (spec eq. 2).
    pub fn proxy(&self, theta: &Tensor) -> Result<Tensor> {
        let span = self.cfg.b_max - self.cfg.b_min;
        Ok(((theta.abs()?.tanh()? * span)? + self.cfg.b_min)?)
    }

    /// The weight a layer computes with (spec §4.2).
    pub fn quantize(&self, name: &str, w: &Tensor) -> Result<Tensor> {
        let l = self.layer(name)?;
        let dims = w.dims().to_vec();
        let scopes = l.theta.dim(0)?;
        let flat = w.reshape((scopes, ()))?;
        let a = flat.abs()?.max_keepdim(1)?.detach();
        let b = round_ste(&self.proxy(l.theta.as_tensor())?)?.reshape((scopes, 1))?;
        let d = (l
            .phi
            .abs()?
            .tanh()?
            .affine(-1.0, 1.0)?
            .reshape((scopes, 1))?
            * &a)?;
        // M = 2^(b-1) - 1, differentiable in b. `exp((b-1)·ln 2)` is off the integer by an ulp or
        // so (2^3 may come out 7.9999995), so the value is its rounding (b is an integer here,
        // M exactly the plain quantizer's qmax) and only the gradient comes from the exp form.
        let smooth = (((b - 1.0)? * std::f64::consts::LN_2)?.exp()? - 1.0)?;
        let m = (smooth.round()? + (&smooth - smooth.detach())?)?;
        let half = (d * 0.5)?;
        let delta = (&a - &half)?.div(&clamp_min(&m, 1.0)?)?;
        let absw = flat.abs()?;
        let c = absw
            .broadcast_sub(&half)?
            .broadcast_div(&clamp_min(&delta, 1e-8)?)?;
        let q = round_ste(&c.maximum(0.0)?.broadcast_minimum(&m)?)?;
        let mag = q.broadcast_mul(&delta)?.broadcast_add(&half)?;
        let keep = absw.broadcast_ge(&half)?.to_dtype(DType::F32)?;
        let what = (flat.sign()? * mag)?.mul(&keep)?.reshape(dims)?;
        Ok(match self.cfg.gradient {
            BaqGradient::Paper => what,
            BaqGradient::Detached => (w + (what - w)?.detach())?,
        })
    }

    /// `L_bit` over all scopes of the network.
    pub fn bit_loss(&self) -> Result<Tensor> {
        let mut parts = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            parts.push(match self.cfg.regularizer {
                BitRegularizer::Anchor => (l.theta.as_tensor() - &l.theta_init)?,
                BitRegularizer::Shrink => l.theta.as_tensor().clone(),
            });
        }
        Ok(Tensor::cat(&parts, 0)?.sqr()?.mean_all()?)
    }

    /// The discretized bits `round(b_min + (b_max - b_min) tanh|theta|)` (spec §4.6): exactly the
    /// bits the exported model stores.
    pub fn discretize(&self) -> Result<BitAssignment> {
        let mut layers = BTreeMap::new();
        for l in &self.layers {
            let p: Vec<f32> = self.proxy(l.theta.as_tensor())?.to_vec1()?;
            let b = p
                .iter()
                .map(|v| (v.round_ties_even() as f64).clamp(self.cfg.b_min, self.cfg.b_max) as u8)
                .collect();
            layers.insert(l.name.clone(), b);
        }
        Ok(BitAssignment {
            granularity: Some(self.granularity),
            layers,
        })
    }

    /// The trainable logits, named for the optimizer and checkpoints.
    pub fn vars(&self) -> Vec<(String, Var)> {
        let mut v = Vec::with_capacity(2 * self.layers.len());
        for l in &self.layers {
            v.push((format!("{}.theta", l.name), l.theta.clone()));
            v.push((format!("{}.phi", l.name), l.phi.clone()));
        }
        v
    }

    /// Logits and anchors by name (for checkpoints).
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        let mut out: HashMap<String, Tensor> = self
            .vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        for l in &self.layers {
            out.insert(format!("{}.theta_init", l.name), l.theta_init.clone());
        }
        out
    }

    /// Restore the logits [`BaqParams::tensors`] saved (the anchors are rebuilt by [`BaqParams::new`]
    /// from the same allocation, and must agree).
    pub fn assign_logits(&self, t: &HashMap<String, Tensor>) -> Result<()> {
        for l in &self.layers {
            let get = |k: &str| {
                t.get(&format!("{}.{k}", l.name))
                    .with_context(|| format!("BAQ state lacks `{}.{k}`", l.name))
            };
            let anchor: Vec<f32> = get("theta_init")?.to_vec1()?;
            if anchor != l.theta_init.to_vec1::<f32>()? {
                bail!(
                    "the checkpoint's BAQ warm start for `{}` differs from this run's allocation",
                    l.name
                );
            }
            l.theta.set(get("theta")?)?;
            l.phi.set(get("phi")?)?;
        }
        Ok(())
    }
}

/// Checkpoint names of the BAQ logits, beside the model's own tensors.
const CHECKPOINT_PREFIX: &str = "baq.";

/// Learnable bits in training: the quantized weights, the logits (at their own rate), the
/// bitrate regularizer `lambda_bit * L_bit`, and the logits in the checkpoint under `baq.`.
impl WeightTransform for BaqParams {
    fn weight(&self, name: &str, w: &Tensor) -> Result<Tensor> {
        self.quantize(name, w)
    }

    fn variables(&self) -> Option<(Vec<(String, Var)>, f64)> {
        Some((self.vars(), self.cfg.logit_lr))
    }

    fn extra_loss(&self) -> Result<Option<Tensor>> {
        Ok(Some((self.bit_loss()? * self.cfg.lambda_bit)?))
    }

    fn state(&self) -> HashMap<String, Tensor> {
        self.tensors()
            .into_iter()
            .map(|(k, v)| (format!("{CHECKPOINT_PREFIX}{k}"), v))
            .collect()
    }

    fn load_state(&self, checkpoint: &HashMap<String, Tensor>) -> Result<()> {
        let own = checkpoint
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(CHECKPOINT_PREFIX)
                    .map(|n| (n.to_string(), v.clone()))
            })
            .collect();
        self.assign_logits(&own)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_start_rounds_back_to_the_allocation() {
        let cfg = BaqConfig::default();
        for b in 2..=8u8 {
            let t = warm_theta(b as f64, &cfg);
            let p = cfg.b_min + (cfg.b_max - cfg.b_min) * t.abs().tanh();
            assert_eq!(p.round_ties_even() as u8, b, "b={b} theta={t} proxy={p}");
        }
        assert!((warm_theta(8.0, &cfg) - 1.8318).abs() < 1e-4);
    }

    #[test]
    fn round_ste_is_half_even_with_identity_gradient() {
        let x = Var::from_vec(vec![0.5f32, 1.5, 2.5, -0.5, 2.4], 5, &Device::Cpu).unwrap();
        let r = round_ste(x.as_tensor()).unwrap();
        assert_eq!(r.to_vec1::<f32>().unwrap(), [0.0, 2.0, 2.0, -0.0, 2.0]);
        let g = r.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec1::<f32>().unwrap(), [1.0; 5]);
    }
}
