//! Train-mode batch norm as one op: candle builds it from ~10 broadcast ops whose backward adds
//! as many again, each a full pass over the activation. Here the forward is two reads and one
//! write, the backward two reads and one write, with the standard closed-form gradient. A ReLU
//! that follows it (and is the only reader of its output) can run inside it: the forward clamps
//! as it writes, the backward masks the output gradient first, so the pair is one autograd node
//! instead of two (candle's ReLU backward is four single-threaded passes).

use super::{applies, cpu_slice, with_cpu_slice};
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Batch statistics of one forward pass, per channel.
#[derive(Clone, Debug, Default)]
struct Stats {
    mean: Vec<f32>,
    /// Biased variance (divided by the element count), as normalization uses.
    var: Vec<f32>,
    inv_std: Vec<f32>,
}

/// The output of a train-mode batch norm and the batch statistics it used (`[C]`, detached).
pub struct BatchNormOut {
    pub y: Tensor,
    pub mean: Tensor,
    /// Biased variance.
    pub var: Tensor,
}

/// `(x - mean) / sqrt(var + eps) · gamma + beta` with the batch's per-channel mean and biased
/// variance, for `x` `[N, C, H, W]` and `gamma`, `beta` `[C]`; with `relu`, followed by a ReLU.
/// `None` where the fused op does not apply (not on the CPU, not f32, disabled): the caller then
/// uses candle's ops.
pub fn train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> candle_core::Result<Option<BatchNormOut>> {
    if !applies(x) || x.rank() != 4 {
        return Ok(None);
    }
    let stats = Arc::new(Mutex::new(Stats::default()));
    let op = BatchNormTrain {
        eps,
        relu,
        stats: stats.clone(),
    };
    let y = x
        .contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let s = stats
        .lock()
        .map_err(|_| candle_core::Error::Msg("batch norm statistics lock poisoned".into()))?
        .clone();
    let c = s.mean.len();
    Ok(Some(BatchNormOut {
        y,
        mean: Tensor::from_vec(s.mean, c, x.device())?,
        var: Tensor::from_vec(s.var, c, x.device())?,
    }))
}

struct BatchNormTrain {
    eps: f64,
    /// A ReLU follows inside the op.
    relu: bool,
    /// Written by the forward pass, read by the backward pass and the caller.
    stats: Arc<Mutex<Stats>>,
}

impl BatchNormTrain {
    fn stats(&self) -> candle_core::Result<std::sync::MutexGuard<'_, Stats>> {
        self.stats
            .lock()
            .map_err(|_| candle_core::Error::Msg("batch norm statistics lock poisoned".into()))
    }
}

/// `f(channel)` for every channel, in parallel.
fn per_channel<T: Send>(c: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    (0..c).into_par_iter().map(f).collect()
}

/// `Σ f(v)` over a block in eight f32 lanes (vectorisable), summed in f64 at the end; the
/// blocks (one image's channel) are then added up in f64.
fn lanes(x: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v) as f64).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail
}

/// `(Σ d, Σ d·(x - m))` over a block, in eight f32 lanes.
fn dot_dev(d: &[f32], x: &[f32], m: f32) -> (f64, f64) {
    let (mut sd, mut sdx) = ([0f32; 8], [0f32; 8]);
    let (dc, xc) = (d.chunks_exact(8), x.chunks_exact(8));
    let (mut td, mut tdx) = (0f64, 0f64);
    for (&dv, &xv) in dc.remainder().iter().zip(xc.remainder()) {
        td += dv as f64;
        tdx += dv as f64 * (xv - m) as f64;
    }
    for (dv, xv) in dc.zip(xc) {
        for i in 0..8 {
            sd[i] += dv[i];
            sdx[i] += dv[i] * (xv[i] - m);
        }
    }
    let total = |a: [f32; 8]| a.iter().map(|&v| v as f64).sum::<f64>();
    (total(sd) + td, total(sdx) + tdx)
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "fq-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s1, l1)?;
        let (gamma, beta) = (cpu_slice(s2, l2)?, cpu_slice(s3, l3)?);
        let (n, c, h, w) = l1.shape().dims4()?;
        if gamma.len() != c || beta.len() != c {
            candle_core::bail!(
                "batch norm over {c} channels got {} weights and {} biases",
                gamma.len(),
                beta.len()
            );
        }
        let hw = h * w;
        let count = (n * hw).max(1) as f64;
        let block = |b: usize, ch: usize| &x[(b * c + ch) * hw..(b * c + ch + 1) * hw];
        // Two passes (mean, then centred squares) in f64, for a variance free of cancellation.
        let mv: Vec<(f32, f32)> = per_channel(c, |ch| {
            let sum: f64 = (0..n).map(|b| lanes(block(b, ch), |v| v)).sum();
            let mean = (sum / count) as f32;
            let sq: f64 = (0..n)
                .map(|b| lanes(block(b, ch), |v| (v - mean) * (v - mean)))
                .sum();
            (mean, (sq / count) as f32)
        });
        let mean: Vec<f32> = mv.iter().map(|m| m.0).collect();
        let var: Vec<f32> = mv.iter().map(|m| m.1).collect();
        let inv_std: Vec<f32> = var
            .iter()
            .map(|&v| (1.0 / (v as f64 + self.eps).sqrt()) as f32)
            .collect();
        let mut y = vec![0.0f32; x.len()];
        // With a ReLU, clamp at zero; without, at -inf (a no-op the compiler keeps branch-free).
        let floor = if self.relu { 0.0 } else { f32::NEG_INFINITY };
        y.par_chunks_mut(hw.max(1))
            .zip(x.par_chunks(hw.max(1)))
            .enumerate()
            .for_each(|(i, (yb, xb))| {
                let ch = i % c;
                let (m, a) = (mean[ch], inv_std[ch] * gamma[ch]);
                for (o, &v) in yb.iter_mut().zip(xb) {
                    *o = ((v - m) * a + beta[ch]).max(floor);
                }
            });
        *self.stats()? = Stats { mean, var, inv_std };
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, w) = x.dims4()?;
        let hw = h * w;
        let count = (n * hw).max(1) as f64;
        let stats = self.stats()?.clone();
        let mut grad = grad.contiguous()?;
        if self.relu {
            // The ReLU's backward: the gradient passes where the output is positive.
            let res = res.contiguous()?;
            let masked = with_cpu_slice(&grad, |dy| {
                with_cpu_slice(&res, |y| super::add_relu::mask_by_output(dy, y))
            })??;
            grad = Tensor::from_vec(masked, grad.shape(), grad.device())?;
        }
        let g = gamma.to_vec1::<f32>()?;
        let (dx, sums) = with_cpu_slice(&grad, |dy| {
            with_cpu_slice(x, |xs| {
                let at = |b: usize, ch: usize| (b * c + ch) * hw..(b * c + ch + 1) * hw;
                // dβ = Σ dy, dγ = Σ dy·x̂ per channel.
                let sums: Vec<(f64, f64)> = per_channel(c, |ch| {
                    let m = stats.mean[ch];
                    let (sd, sdx) = (0..n).fold((0.0, 0.0), |(sd, sdx), b| {
                        let (d, dx) = dot_dev(&dy[at(b, ch)], &xs[at(b, ch)], m);
                        (sd + d, sdx + dx)
                    });
                    (sd, sdx * stats.inv_std[ch] as f64)
                });
                if !x.track_op() {
                    return (None, sums);
                }
                // dx = γ/σ · (dy - mean(dy) - x̂ · mean(dy·x̂)), as a·dy + b·(x - mean) + k.
                let coef: Vec<(f32, f32, f32, f32)> = (0..c)
                    .map(|ch| {
                        let is = stats.inv_std[ch] as f64;
                        let a = g[ch] as f64 * is;
                        let bx = -a * is * sums[ch].1 / count;
                        let k = -a * sums[ch].0 / count;
                        (a as f32, bx as f32, stats.mean[ch], k as f32)
                    })
                    .collect();
                let mut dx = vec![0.0f32; xs.len()];
                dx.par_chunks_mut(hw.max(1))
                    .zip(dy.par_chunks(hw.max(1)).zip(xs.par_chunks(hw.max(1))))
                    .enumerate()
                    .for_each(|(i, (o, (d, v)))| {
                        let (a, bx, m, k) = coef[i % c];
                        for ((o, &d), &v) in o.iter_mut().zip(d).zip(v) {
                            *o = a * d + bx * (v - m) + k;
                        }
                    });
                (Some(dx), sums)
            })
        })??;
        let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
        let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
        let dx = match dx {
            Some(v) => Some(Tensor::from_vec(v, (n, c, h, w), x.device())?),
            None => None,
        };
        Ok((
            dx,
            Some(Tensor::from_vec(dgamma, c, x.device())?),
            Some(Tensor::from_vec(dbeta, c, x.device())?),
        ))
    }
}
