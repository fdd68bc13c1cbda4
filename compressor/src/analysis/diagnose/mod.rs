//! `fq-compress diagnose`: why a quantized model is unfair (Bellam & Kim, spec §10). For the FP32
//! model and each compressed variant of a run, per group on the test split: the mean logit
//! variance (over the K classes, per sample), the mean loss, accuracy and the Fairness Violation
//! Observed (FVO = max − min group accuracy); on a fixed subset of each group's samples, the norm
//! of the group loss's gradient and the top Hessian eigenvalue of that loss.
//!
//! The Hessian: candle has no double backward, so Hessian-vector products are central finite
//! differences of gradients, `Hv ≈ (∇L(θ + εv) − ∇L(θ − εv)) / 2ε` with unit `v` (error O(ε²)),
//! inside a power iteration (spec: `v_0 ~ N(0, I)`, 20 iterations or relative change < 1e-3).
//! The diagnosed model runs in f64 with ε = 1e-8: in a ReLU network every activation that
//! changes sign between θ − εv and θ + εv adds a gradient jump of O(1)/ε, so ε must be small
//! enough that (almost) none does — measured on the reference ResNet, ε = 1e-3 was off by 70%
//! along the gradient direction while 1e-5..1e-8 match PyTorch's exact product to ~1e-7 — and
//! in f32 so small a step would drown in the rounding of θ ± εv (f64 leaves ~8 digits).
//! Even then a larger model can cross a kink, and the power iteration is drawn to such
//! directions (a jump/ε is a huge "eigenvalue"), so each product compares the forward and
//! backward differences and falls back to the smooth side when they disagree (counted in
//! `hvp_one_sided`).
//! A quantized model is diagnosed at its quantized weights: the fake-quantized values are
//! materialised as plain weights, so gradients and Hessians are those of the loss in the
//! quantized weights — what double backprop through a straight-through estimator gives — and
//! the finite differences never cross a rounding step. Batch norm runs in eval mode (running
//! statistics), so the loss is a fixed function of the parameters. θ = every trainable tensor.

pub mod plot;

use crate::data::image_set::{batch, BatchSpec, ImageSet};
use crate::methods::MethodId;
use crate::nn::loss::cross_entropy;
use crate::nn::model::{Mode, Model, Quant};
use crate::nn::params::ParamStore;
use crate::nn::quant::{quantize_weight, BitAssignment, Granularity};
use crate::run::run_dir::Run;
use crate::support::run_files::RunFiles;
use crate::support::seed;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor, D};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Settings of a diagnosis (recorded in `diagnostics.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiagnoseConfig {
    /// Samples per group for the gradient norm and the Hessian (a fixed, seeded subset of the
    /// group's test samples; all of them when the group has fewer).
    pub samples_per_group: usize,
    /// Power-iteration cap (spec: 20).
    pub power_iters: usize,
    /// Stop when `|λ_t − λ_{t−1}| < tol · |λ_t|` (spec: 1e-3).
    pub tol: f64,
    /// Finite-difference step ε of the Hessian-vector product, along a unit vector.
    pub hvp_step: f64,
    pub seed: u64,
    pub batch_size: usize,
}

impl Default for DiagnoseConfig {
    fn default() -> Self {
        Self {
            samples_per_group: 8,
            power_iters: 20,
            tol: 1e-3,
            hvp_step: 1e-8,
            seed: 0,
            batch_size: 256,
        }
    }
}

/// One power iteration's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopEigen {
    /// The Rayleigh quotient `<v, Hv>` at the last iterate (largest-magnitude eigenvalue).
    pub eigenvalue: f64,
    pub iterations: usize,
    /// Whether the relative change fell under the tolerance before the cap.
    pub converged: bool,
}

/// A group's diagnostics under one variant.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupDiagnostics {
    pub group: String,
    /// Test samples (logit variance, loss, accuracy).
    pub samples: usize,
    pub accuracy: Option<f64>,
    /// Mean over the group's samples of the variance across the K logits.
    pub logit_variance: Option<f64>,
    pub mean_loss: Option<f64>,
    /// Samples behind the gradient norm and the Hessian.
    pub grad_samples: usize,
    pub grad_norm: Option<f64>,
    pub hessian: Option<TopEigen>,
    /// Hessian-vector products that crossed a kink on one side (see [`fd_hvp`]).
    pub hvp_one_sided: usize,
    /// Every sample's logit variance (the distribution chart).
    pub logit_variances: Vec<f64>,
}

/// One model (FP32 or a compressed variant).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VariantDiagnostics {
    /// `fp32`, `ptq-u4`, `fq-baq-s42`, ...
    pub method: String,
    /// `FP32`, `U4`, `FQ-BAQ [s42]`, ...
    pub label: String,
    /// Fairness Violation Observed: the largest accuracy difference between two groups.
    pub fvo: f64,
    pub groups: Vec<GroupDiagnostics>,
    pub seconds: f64,
}

/// The paper's directional claim, as measured on this run's U4 model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claim {
    /// The group with the fewest training samples.
    pub minority: String,
    pub variant: String,
    pub minority_has_largest_grad_norm: bool,
    pub minority_has_largest_hessian: bool,
    pub statement: String,
}

/// `diagnostics.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Diagnostics {
    pub dataset: String,
    pub arch: String,
    pub groups: Vec<String>,
    pub train_group_counts: Vec<usize>,
    pub config: DiagnoseConfig,
    pub variants: Vec<VariantDiagnostics>,
    pub claim: Option<Claim>,
}

/// Power iteration for the largest-magnitude eigenvalue of the symmetric operator `hvp` on
/// `dim`-vectors, from `v_0 ~ N(0, I)` drawn from `rng`.
pub fn power_iteration(
    dim: usize,
    mut hvp: impl FnMut(&[f64]) -> Result<Vec<f64>>,
    iters: usize,
    tol: f64,
    rng: &mut impl Rng,
) -> Result<TopEigen> {
    if dim == 0 || iters == 0 {
        bail!("power iteration needs a non-empty space and at least one iteration");
    }
    let mut v: Vec<f64> = (0..dim).map(|_| normal(rng)).collect();
    normalize(&mut v);
    let mut prev: Option<f64> = None;
    for t in 1..=iters {
        let hv = hvp(&v)?;
        let lambda: f64 = v.iter().zip(&hv).map(|(a, b)| a * b).sum();
        if !lambda.is_finite() {
            bail!("power iteration: non-finite Rayleigh quotient at iteration {t}");
        }
        if prev.is_some_and(|p| (lambda - p).abs() < tol * lambda.abs()) {
            return Ok(TopEigen {
                eigenvalue: lambda,
                iterations: t,
                converged: true,
            });
        }
        prev = Some(lambda);
        v = hv;
        if normalize(&mut v) == 0.0 {
            // H v = 0: v is in the null space, and 0 is the Rayleigh quotient's value.
            return Ok(TopEigen {
                eigenvalue: 0.0,
                iterations: t,
                converged: true,
            });
        }
    }
    Ok(TopEigen {
        eigenvalue: prev.unwrap_or(0.0),
        iterations: iters,
        converged: false,
    })
}

fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Scale to unit L2 norm; returns the norm before.
fn normalize(v: &mut [f64]) -> f64 {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    n
}

/// A copy of `model` in f64 (parameters and batch-norm statistics), for accurate finite
/// differences.
pub fn in_f64(model: &Model) -> Result<Model> {
    Ok(Model::new(
        model.graph.clone(),
        model.params.to_dtype(DType::F64)?,
        model.device.clone(),
    ))
}

/// Eval-mode logits, with `x` cast to the model's dtype.
fn logits(model: &Model, x: &Tensor) -> Result<Tensor> {
    let dtype = model
        .params
        .vars
        .first()
        .map_or(DType::F32, |(_, v)| v.dtype());
    model.forward_q(&x.to_dtype(dtype)?, Mode::Eval, Quant::Fp32)
}

/// The model's trainable tensors as one flat f64 vector, in `params.vars` order.
pub fn flat_params(model: &Model) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for (_, v) in &model.params.vars {
        out.extend(
            v.as_tensor()
                .flatten_all()?
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?,
        );
    }
    Ok(out)
}

fn set_flat(model: &Model, flat: &[f64]) -> Result<()> {
    let mut at = 0;
    for (_, v) in &model.params.vars {
        let n = v.elem_count();
        let t = Tensor::from_slice(&flat[at..at + n], v.dims(), v.device())?.to_dtype(v.dtype())?;
        v.set(&t)?;
        at += n;
    }
    Ok(())
}

/// Mean cross-entropy of `(x, y)` in eval mode and its gradient over every trainable tensor,
/// flattened in `params.vars` order (a tensor without a gradient contributes zeros).
pub fn loss_and_grad(model: &Model, x: &Tensor, y: &Tensor) -> Result<(f64, Vec<f64>)> {
    let z = logits(model, x)?;
    let loss = cross_entropy(&z, y, None)?;
    let grads = loss.backward()?;
    let mut out = Vec::new();
    for (_, v) in &model.params.vars {
        match grads.get(v.as_tensor()) {
            Some(g) => out.extend(g.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?),
            None => out.extend(std::iter::repeat_n(0.0, v.elem_count())),
        }
    }
    Ok((loss.to_dtype(DType::F64)?.to_scalar::<f64>()?, out))
}

/// How a finite-difference product was formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    /// Forward and backward differences agree: their mean (the central difference).
    Central,
    /// They disagree, so a ReLU (or max-pool choice) switched on one side and added a jump of
    /// O(1)/ε there: the one-sided difference with the smaller norm (the smooth side).
    OneSided,
}

/// `H v` of the loss on `(x, y)` from gradients at `θ ± εv` (`v` of unit norm) and the gradient
/// `grad0` at θ: the central difference when the forward and backward differences agree within
/// 1%, else the smooth side's one-sided difference. The parameters are restored afterwards.
pub fn fd_hvp(
    model: &Model,
    base: &[f64],
    grad0: &[f64],
    x: &Tensor,
    y: &Tensor,
    v: &[f64],
    eps: f64,
) -> Result<(Vec<f64>, FdKind)> {
    let shifted = |sign: f64| -> Vec<f64> {
        base.iter()
            .zip(v)
            .map(|(b, d)| b + sign * eps * d)
            .collect()
    };
    set_flat(model, &shifted(1.0))?;
    let plus = loss_and_grad(model, x, y).map(|r| r.1);
    set_flat(model, &shifted(-1.0))?;
    let minus = loss_and_grad(model, x, y).map(|r| r.1);
    set_flat(model, base)?;
    let (plus, minus) = (plus?, minus?);
    let fwd: Vec<f64> = plus.iter().zip(grad0).map(|(p, g)| (p - g) / eps).collect();
    let bwd: Vec<f64> = grad0
        .iter()
        .zip(&minus)
        .map(|(g, m)| (g - m) / eps)
        .collect();
    let norm = |a: &[f64]| a.iter().map(|v| v * v).sum::<f64>().sqrt();
    let diff = fwd
        .iter()
        .zip(&bwd)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt();
    let (nf, nb) = (norm(&fwd), norm(&bwd));
    if diff <= 1e-2 * nf.max(nb) {
        Ok((
            fwd.iter().zip(&bwd).map(|(a, b)| 0.5 * (a + b)).collect(),
            FdKind::Central,
        ))
    } else if nf <= nb {
        Ok((fwd, FdKind::OneSided))
    } else {
        Ok((bwd, FdKind::OneSided))
    }
}

/// A copy of `model` whose Conv2d/Linear weights are their fake-quantized values under `bits`.
pub fn materialize(model: &Model, bits: &BitAssignment) -> Result<Model> {
    let params = model.params.duplicate()?;
    for (name, b) in &bits.layers {
        let var = params.get(&format!("{name}.weight"))?;
        let w = var.as_tensor();
        let host: Vec<f32> = w.flatten_all()?.to_vec1()?;
        let gran = bits.granularity.unwrap_or(Granularity::PerChannel);
        let (q, _) = quantize_weight(&host, w.dims()[0], b, gran)
            .with_context(|| format!("quantizing layer `{name}`"))?;
        var.set(&Tensor::from_vec(q, w.dims(), w.device())?)?;
    }
    Ok(Model::new(
        model.graph.clone(),
        params,
        model.device.clone(),
    ))
}

/// Each row's population variance across the K logits of `z` `[N, K]` (spec §10, ours).
pub fn logit_variance(z: &Tensor) -> Result<Vec<f64>> {
    let z = z.to_dtype(DType::F64)?;
    let centered = z.broadcast_sub(&z.mean_keepdim(D::Minus1)?)?;
    Ok(centered.sqr()?.mean(D::Minus1)?.to_vec1::<f64>()?)
}

/// Per-sample logit variance over the classes, cross-entropy and correctness on `set`.
fn per_sample(
    model: &Model,
    set: &ImageSet,
    run: &Run,
    bs: usize,
) -> Result<(Vec<f64>, Vec<f64>, Vec<bool>)> {
    let spec = BatchSpec {
        preprocess: &run.preprocess,
        augment: None,
    };
    let (mut var, mut loss, mut ok) = (Vec::new(), Vec::new(), Vec::new());
    let idx: Vec<usize> = (0..set.len()).collect();
    for chunk in idx.chunks(bs.max(1)) {
        let (x, y) = batch(set, chunk, &spec, &model.device)?;
        let z = logits(model, &x)?.to_dtype(DType::F32)?;
        var.extend(logit_variance(&z)?);
        let ce = candle_nn::ops::log_softmax(&z, D::Minus1)?
            .gather(&y.unsqueeze(1)?, 1)?
            .squeeze(1)?
            .neg()?;
        loss.extend(ce.to_vec1::<f32>()?.into_iter().map(f64::from));
        let pred: Vec<u32> = z.argmax(D::Minus1)?.to_vec1()?;
        let yv: Vec<u32> = y.to_vec1()?;
        ok.extend(pred.iter().zip(&yv).map(|(p, t)| p == t));
    }
    Ok((var, loss, ok))
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// The fixed subset of each group's test samples used for gradients and Hessians.
pub(crate) fn grad_subsets(set: &ImageSet, cfg: &DiagnoseConfig) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..set.len()).collect();
    order.shuffle(&mut seed::rng(cfg.seed, &[seed::tag::DIAGNOSE, 0]));
    (0..set.num_groups)
        .map(|g| {
            order
                .iter()
                .copied()
                .filter(|&i| set.groups[i] == g)
                .take(cfg.samples_per_group)
                .collect()
        })
        .collect()
}

/// Diagnose one model (already materialised) on the run's test split; `method` and `label` name
/// it in the result and the progress bar (shared by the methods diagnosis and the precision
/// sweep, so both measure alike).
pub(crate) fn diagnose_model(
    run: &Run,
    model: &Model,
    (method, label): (String, String),
    cfg: &DiagnoseConfig,
    bar: &indicatif::ProgressBar,
) -> Result<VariantDiagnostics> {
    let start = std::time::Instant::now();
    let set = &run.test;
    // Accuracy, loss and logit variance from the f32 model the report evaluates; gradients and
    // Hessians from its f64 copy.
    let (var, loss, ok) = per_sample(model, set, run, cfg.batch_size)?;
    let subsets = grad_subsets(set, cfg);
    let model = &in_f64(model)?;
    let base = flat_params(model)?;
    let spec = BatchSpec {
        preprocess: &run.preprocess,
        augment: None,
    };
    let mut groups = Vec::new();
    for (g, name) in run.dataset.groups.iter().enumerate() {
        let members: Vec<usize> = (0..set.len()).filter(|&i| set.groups[i] == g).collect();
        let sub = &subsets[g];
        let (grad_norm, hessian) = if sub.is_empty() {
            (None, None)
        } else {
            bar.set_message(format!("{label} [{name}] gradient"));
            let (x, y) = batch(set, sub, &spec, &model.device)?;
            let (_, grad) = loss_and_grad(model, &x, &y)?;
            let norm = grad.iter().map(|v| v * v).sum::<f64>().sqrt();
            bar.set_message(format!("{label} [{name}] Hessian"));
            let mut rng = seed::rng(cfg.seed, &[seed::tag::DIAGNOSE, 1, g as u64]);
            let mut one_sided = 0usize;
            let top = power_iteration(
                base.len(),
                |v| {
                    bar.inc(1);
                    let (hv, kind) = fd_hvp(model, &base, &grad, &x, &y, v, cfg.hvp_step)?;
                    one_sided += usize::from(kind == FdKind::OneSided);
                    Ok(hv)
                },
                cfg.power_iters,
                cfg.tol,
                &mut rng,
            )?;
            (Some(norm), Some((top, one_sided)))
        };
        let (hessian, hvp_one_sided) = match hessian {
            Some((t, n)) => (Some(t), n),
            None => (None, 0),
        };
        groups.push(GroupDiagnostics {
            group: name.clone(),
            samples: members.len(),
            accuracy: mean(members.iter().map(|&i| f64::from(u8::from(ok[i])))),
            logit_variance: mean(members.iter().map(|&i| var[i])),
            mean_loss: mean(members.iter().map(|&i| loss[i])),
            grad_samples: sub.len(),
            grad_norm,
            hessian,
            hvp_one_sided,
            logit_variances: members.iter().map(|&i| var[i]).collect(),
        });
    }
    let accs: Vec<f64> = groups.iter().filter_map(|g| g.accuracy).collect();
    let fvo = accs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        - accs.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(VariantDiagnostics {
        method,
        label,
        fvo: if accs.is_empty() { 0.0 } else { fvo },
        groups,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Whether the minority group (fewest training samples) has the largest gradient norm and top
/// Hessian eigenvalue under `v` (the U4 model).
pub fn claim(v: &VariantDiagnostics, train_counts: &[usize]) -> Option<Claim> {
    let minority = (0..train_counts.len())
        .filter(|&g| train_counts[g] > 0)
        .min_by_key(|&g| train_counts[g])?;
    let largest = |f: &dyn Fn(&GroupDiagnostics) -> Option<f64>| {
        v.groups
            .iter()
            .enumerate()
            .filter_map(|(g, d)| f(d).map(|x| (g, x)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(g, _)| g)
    };
    let grad = largest(&|d| d.grad_norm) == Some(minority);
    // By magnitude: power iteration finds the largest-|λ| eigenvalue, whatever its sign.
    let hess = largest(&|d| d.hessian.as_ref().map(|h| h.eigenvalue.abs())) == Some(minority);
    let name = &v.groups[minority].group;
    let yes = |b: bool| if b { "has" } else { "does NOT have" };
    Some(Claim {
        minority: name.clone(),
        variant: v.label.clone(),
        minority_has_largest_grad_norm: grad,
        minority_has_largest_hessian: hess,
        statement: format!(
            "Under {}, the minority group `{name}` ({} training samples) {} the largest gradient norm and {} the largest top Hessian eigenvalue (in magnitude).",
            v.label,
            train_counts[minority],
            yes(grad),
            yes(hess)
        ),
    })
}

/// Diagnose `methods` (each with its finished artifacts) on `run`; writes `diagnostics.json`
/// and the charts into `out` (default `RUN_DIR/diagnostics/`).
pub fn diagnose(
    run: &Run,
    methods: &[MethodId],
    cfg: &DiagnoseConfig,
    out: Option<&Path>,
) -> Result<(Diagnostics, PathBuf)> {
    if methods.is_empty() {
        bail!("no methods to diagnose");
    }
    let fp32 = RunFiles::new(&run.dir).fp32();
    if !fp32.exists() {
        bail!(
            "{}: no trained FP32 model (run `fq-compress train` or `demo` first)",
            fp32.display()
        );
    }
    let layers = run.graph.quant_layers()?;
    let groups_with_samples = grad_subsets(&run.test, cfg)
        .iter()
        .filter(|s| !s.is_empty())
        .count();
    // Each variant: 2 gradients per power iteration per group (upper bound).
    let bar = crate::support::progress::bar(
        run.progress,
        (methods.len() * groups_with_samples * cfg.power_iters) as u64,
        "diagnose [{elapsed_precise}] {bar:30} {pos}/{len} HVPs (at most) {msg}",
    );
    let mut variants = Vec::new();
    for id in methods {
        let (weights, bits) = crate::methods::artifacts(&run.dir, id.clone(), &layers)?;
        let params = ParamStore::load_safetensors(&run.graph, &weights, 0, &run.device, false)?;
        let loaded = Model::new(run.graph.clone(), params, run.device.clone());
        let model = match &bits {
            Some(b) => materialize(&loaded, b)?,
            None => loaded,
        };
        let before = bar.position();
        let v = diagnose_model(run, &model, (id.name(), id.label()), cfg, &bar)
            .with_context(|| format!("diagnosing {}", id.label()))?;
        // Converged early: skip the unused part of this variant's share of the bar.
        bar.set_position(before + (groups_with_samples * cfg.power_iters) as u64);
        variants.push(v);
    }
    bar.finish_and_clear();
    let train_group_counts = run.train.group_counts();
    let u4 = variants
        .iter()
        .find(|v| v.method == MethodId::from(crate::methods::Method::PtqU4).name());
    let claim = u4.and_then(|v| claim(v, &train_group_counts));
    let d = Diagnostics {
        dataset: run.dataset.name.clone(),
        arch: run.graph.arch.clone(),
        groups: run.dataset.groups.clone(),
        train_group_counts,
        config: cfg.clone(),
        variants,
        claim,
    };
    let dir = out.map_or_else(|| run.dir.join("diagnostics"), Path::to_path_buf);
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    fq_runtime::atomic::write_json_atomic(&dir.join("diagnostics.json"), &d)?;
    plot::draw(&d, &dir)?;
    Ok((d, dir))
}

/// The per-group table printed after a diagnosis.
pub fn table(d: &Diagnostics) -> String {
    let mut s = String::from(
        "| Model | Group | n | Acc | LogitVar | Loss | GradNorm | λ_max (iters) | FVO |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let f = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |x| format!("{x:.p$}"));
    for v in &d.variants {
        for g in &v.groups {
            s += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} |\n",
                v.label,
                g.group,
                g.samples,
                f(g.accuracy.map(|a| 100.0 * a), 1),
                f(g.logit_variance, 3),
                f(g.mean_loss, 4),
                f(g.grad_norm, 4),
                g.hessian.as_ref().map_or("-".into(), |h| format!(
                    "{:.3} ({}{}{})",
                    h.eigenvalue,
                    h.iterations,
                    if h.converged { "" } else { ", not converged" },
                    if g.hvp_one_sided > 0 {
                        format!(", {} one-sided", g.hvp_one_sided)
                    } else {
                        String::new()
                    }
                )),
                100.0 * v.fvo
            );
        }
    }
    if let Some(c) = &d.claim {
        s += &format!("\n{}\n", c.statement);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn power_iteration_finds_the_dominant_eigenvalue() {
        // diag(5, -2, 1) rotated is unnecessary: the iteration is basis-free.
        let d = [5.0f64, -2.0, 1.0];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let r = power_iteration(
            3,
            |v| Ok(v.iter().zip(&d).map(|(a, b)| a * b).collect()),
            200,
            1e-9,
            &mut rng,
        )
        .unwrap();
        assert!((r.eigenvalue - 5.0).abs() < 1e-4, "{r:?}");
        assert!(r.converged);
    }
}
