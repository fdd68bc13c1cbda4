//! Train-mode batch norm as one op: candle builds it from ~10 broadcast ops whose backward adds
//! as many again, each a full pass over the activation. Here the forward is two reads and one
//! write, the backward two reads and one write, with the standard closed-form gradient. A ReLU
//! that follows it (and is the only reader of its output) can run inside it: the forward clamps
//! as it writes, the backward masks the output gradient first ([`ReluMask`]), so the pair is one
//! autograd node instead of two (candle's ReLU backward is four single-threaded passes).

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

/// `Σ f(v)` over a block in eight f32 lanes (vectorisable), summed in f64 at the end; the
/// blocks (one image's channel) are then added up in f64.
#[inline(always)]
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

/// The ReLU after a batch norm, in its backward: the output gradient passes where the batch
/// norm's output `(x - mean) · scale + shift` (recomputed with the forward's f32 operations, so
/// bit for bit the forward's) is at least zero, as candle's ReLU passes it (`x >= 0`): the same
/// gradients as the batch norm and ReLU as two ops, zeros included.
#[derive(Clone, Copy)]
struct ReluMask {
    mean: f32,
    scale: f32,
    shift: f32,
}

impl ReluMask {
    #[inline(always)]
    fn pass(self, d: f32, x: f32) -> f32 {
        if (x - self.mean) * self.scale + self.shift >= 0.0 {
            d
        } else {
            0.0
        }
    }
}

/// `(Σ d, Σ d·(x - m))` over a block, in eight f32 lanes, each `d` taken as `pass(d, x)` (the
/// ReLU's mask, or `d` itself: a closure per case, so each loop compiles without a branch on it).
#[inline(always)]
fn dot_dev(d: &[f32], x: &[f32], m: f32, pass: impl Fn(f32, f32) -> f32) -> (f64, f64) {
    let (mut sd, mut sdx) = ([0f32; 8], [0f32; 8]);
    let (dc, xc) = (d.chunks_exact(8), x.chunks_exact(8));
    let (mut td, mut tdx) = (0f64, 0f64);
    for (&dv, &xv) in dc.remainder().iter().zip(xc.remainder()) {
        let dv = pass(dv, xv);
        td += dv as f64;
        tdx += dv as f64 * (xv - m) as f64;
    }
    for (dv, xv) in dc.zip(xc) {
        for i in 0..8 {
            let d = pass(dv[i], xv[i]);
            sd[i] += d;
            sdx[i] += d * (xv[i] - m);
        }
    }
    let total = |a: [f32; 8]| a.iter().map(|&v| v as f64).sum::<f64>();
    (total(sd) + td, total(sdx) + tdx)
}

/// `o = a · pass(d, v) + bx · (v - m) + k`: one image's plane of the input gradient.
#[inline(always)]
fn input_gradient(
    o: &mut [f32],
    (d, v): (&[f32], &[f32]),
    (a, bx, m, k): (f32, f32, f32, f32),
    pass: impl Fn(f32, f32) -> f32,
) {
    for ((o, &d), &v) in o.iter_mut().zip(d).zip(v) {
        *o = a * pass(d, v) + bx * (v - m) + k;
    }
}

/// `out`, an `[N, C, hw]` tensor's elements, as its `hw`-long planes grouped by channel: entry
/// `ch` holds channel `ch`'s plane of every image, in image order, for one task per channel.
fn planes_by_channel(out: &mut [f32], c: usize, hw: usize) -> Vec<Vec<&mut [f32]>> {
    let mut planes: Vec<Vec<&mut [f32]>> = (0..c).map(|_| Vec::new()).collect();
    if hw > 0 {
        for (i, p) in out.chunks_mut(hw).enumerate() {
            planes[i % c].push(p);
        }
    }
    planes
}

/// One channel's planes of an `[N, C, hw]` tensor: image `b`'s is [`Planes::of`].
#[derive(Clone, Copy)]
struct Planes<'a> {
    x: &'a [f32],
    c: usize,
    hw: usize,
    ch: usize,
}

impl<'a> Planes<'a> {
    #[inline(always)]
    fn of(self, b: usize) -> &'a [f32] {
        let at = (b * self.c + self.ch) * self.hw;
        &self.x[at..at + self.hw]
    }

    fn images(self) -> usize {
        self.x.len() / (self.c * self.hw).max(1)
    }
}

/// `$body`, a call of `inline(always)` functions with the arguments `$arg: $ty`, compiled for
/// the widest vectors the CPU has (`fq_runtime`'s kernel path, so `FQ_MAX_ISA` lowers it too).
///
/// Why: this crate is built for x86-64's baseline, whose four-lane SSE2 ran the batch norm's
/// passes at a fraction of what AVX2 or AVX-512 do (PyTorch's kernels dispatch the same way).
/// The operations are the same in every build (fixed eight-lane sums, no FMA contraction in
/// Rust), so every path gives the same floats.
macro_rules! on_widest_vectors {
    (($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {{
        #[cfg(target_arch = "x86_64")]
        {
            use fq_runtime::exec::kernel::{path, KernelPath};
            #[target_feature(enable = "avx512f")]
            fn avx512($($arg: $ty),*) -> $ret $body
            #[target_feature(enable = "avx2")]
            fn avx2($($arg: $ty),*) -> $ret $body
            match path() {
                // SAFETY: `path` only returns a path this CPU has.
                KernelPath::Avx512F => unsafe { avx512($($arg),*) },
                // SAFETY: as above.
                KernelPath::Avx2Fma => unsafe { avx2($($arg),*) },
                _ => $body,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        $body
    }};
}

/// One channel's forward: its statistics, then its outputs `((v - mean) · γ/σ + β).max(floor)`
/// while its input is still in cache; returns `(mean, biased variance, 1/σ)`.
#[inline(always)]
fn forward_channel(
    x: Planes,
    outs: &mut [&mut [f32]],
    (gamma, beta, floor): (f32, f32, f32),
    eps: f64,
    count: f64,
) -> (f32, f32, f32) {
    let n = x.images();
    // Two passes (mean, then centred squares) in f64, for a variance free of cancellation.
    let sum: f64 = (0..n).map(|b| lanes(x.of(b), |v| v)).sum();
    let mean = (sum / count) as f32;
    let sq: f64 = (0..n)
        .map(|b| lanes(x.of(b), |v| (v - mean) * (v - mean)))
        .sum();
    let var = (sq / count) as f32;
    let inv_std = (1.0 / (var as f64 + eps).sqrt()) as f32;
    let (a, shift) = (inv_std * gamma, beta);
    for (b, out) in outs.iter_mut().enumerate() {
        for (o, &v) in out.iter_mut().zip(x.of(b)) {
            *o = ((v - mean) * a + shift).max(floor);
        }
    }
    (mean, var, inv_std)
}

/// One channel's backward: `(Σ dy, Σ dy·x̂)` (`dβ`, `dγ`), then, into `outs` (where the input
/// gradient is wanted), `dx = γ/σ · (dy - mean(dy) - x̂ · mean(dy·x̂))` while the channel's `dy`
/// and `x` are still in cache; each `dy` taken as `pass(dy, x)` (the ReLU's mask, or itself).
#[inline(always)]
fn backward_channel(
    (dy, xs): (Planes, Planes),
    outs: &mut [&mut [f32]],
    (m, inv_std, gamma, count): (f32, f32, f32, f64),
    pass: impl Fn(f32, f32) -> f32 + Copy,
) -> (f64, f64) {
    let (sd, sdx) = (0..xs.images()).fold((0.0, 0.0), |(sd, sdx), b| {
        let (d, dx) = dot_dev(dy.of(b), xs.of(b), m, pass);
        (sd + d, sdx + dx)
    });
    let sums = (sd, sdx * inv_std as f64);
    // As a·dy + b·(x - mean) + k.
    let is = inv_std as f64;
    let a = gamma as f64 * is;
    let (bx, k) = (-a * is * sums.1 / count, -a * sums.0 / count);
    let coef = (a as f32, bx as f32, m, k as f32);
    for (b, o) in outs.iter_mut().enumerate() {
        input_gradient(o, (dy.of(b), xs.of(b)), coef, pass);
    }
    sums
}

/// [`forward_channel`] on the widest vectors ([`on_widest_vectors`]).
fn forward_widest(
    x: Planes,
    outs: &mut [&mut [f32]],
    affine: (f32, f32, f32),
    eps: f64,
    count: f64,
) -> (f32, f32, f32) {
    on_widest_vectors!((x: Planes, outs: &mut [&mut [f32]], affine: (f32, f32, f32), eps: f64, count: f64) -> (f32, f32, f32) {
        forward_channel(x, outs, affine, eps, count)
    })
}

/// [`backward_channel`] on the widest vectors ([`on_widest_vectors`]), through the ReLU's
/// `mask` where there is one.
fn backward_widest(
    planes: (Planes, Planes),
    outs: &mut [&mut [f32]],
    channel: (f32, f32, f32, f64),
    mask: Option<ReluMask>,
) -> (f64, f64) {
    on_widest_vectors!((planes: (Planes, Planes), outs: &mut [&mut [f32]], channel: (f32, f32, f32, f64), mask: Option<ReluMask>) -> (f64, f64) {
        match mask {
            Some(mk) => backward_channel(planes, outs, channel, |d, x| mk.pass(d, x)),
            None => backward_channel(planes, outs, channel, |d, _| d),
        }
    })
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
        let mut y = vec![0.0f32; x.len()];
        // With a ReLU, clamp at zero; without, at -inf (a no-op the compiler keeps branch-free).
        let floor = if self.relu { 0.0 } else { f32::NEG_INFINITY };
        // Channel by channel: its statistics, then its outputs while its input is still in
        // cache (a channel of a batch of 32 is 0.4 MB at 56x56), instead of a separate pass
        // over the whole input. Each channel's output planes go to its task.
        let eps = self.eps;
        let stats: Vec<(f32, f32, f32)> = planes_by_channel(&mut y, c, hw)
            .into_par_iter()
            .enumerate()
            .map(|(ch, mut outs)| {
                let (x, outs) = (Planes { x, c, hw, ch }, &mut outs[..]);
                let affine = (gamma[ch], beta[ch], floor);
                forward_widest(x, outs, affine, eps, count)
            })
            .collect();
        let mean = stats.iter().map(|s| s.0).collect();
        let var = stats.iter().map(|s| s.1).collect();
        let inv_std = stats.iter().map(|s| s.2).collect();
        *self.stats()? = Stats { mean, var, inv_std };
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, w) = x.dims4()?;
        let hw = h * w;
        let count = (n * hw).max(1) as f64;
        let stats = self.stats()?.clone();
        let grad = grad.contiguous()?;
        let g = gamma.to_vec1::<f32>()?;
        let shifts = beta.to_vec1::<f32>()?;
        let relu = self.relu;
        let want_dx = x.track_op();
        let mut dx = vec![0.0f32; if want_dx { n * c * hw } else { 0 }];
        let sums: Vec<(f64, f64)> = with_cpu_slice(&grad, |dy| {
            with_cpu_slice(x, |xs| {
                // Channel by channel, as the forward: the sums, then the input gradient while
                // the channel's `dy` and `x` are still in cache.
                let planes = if want_dx {
                    planes_by_channel(&mut dx, c, hw)
                } else {
                    (0..c).map(|_| Vec::new()).collect()
                };
                planes
                    .into_par_iter()
                    .enumerate()
                    .map(|(ch, mut outs)| {
                        let (dy, xs) = (Planes { x: dy, c, hw, ch }, Planes { x: xs, c, hw, ch });
                        let (m, is) = (stats.mean[ch], stats.inv_std[ch]);
                        // With the ReLU inside, its backward first ([`ReluMask`]).
                        let mask = relu.then_some(ReluMask {
                            mean: m,
                            scale: is * g[ch],
                            shift: shifts[ch],
                        });
                        let (channel, outs) = ((m, is, g[ch], count), &mut outs[..]);
                        backward_widest((dy, xs), outs, channel, mask)
                    })
                    .collect()
            })
        })??;
        let dx = want_dx.then_some(dx);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The passes on the widest vectors give the baseline build's floats bit for bit (planes of
    /// lengths around the eight lanes, with and without the ReLU's mask), so the kernel path
    /// never changes a training run's numbers.
    #[test]
    fn widest_vectors_give_the_baseline_floats() {
        for hw in [1, 7, 8, 9, 23, 64, 100] {
            let (n, c, ch) = (3, 2, 1);
            let x: Vec<f32> = (0..n * c * hw)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.0137)
                .collect();
            let dy: Vec<f32> = (0..n * c * hw)
                .map(|i| ((i * 53 % 89) as f32 - 44.0) * 0.021)
                .collect();
            let planes = |v| Planes { x: v, c, hw, ch };
            let count = (n * hw) as f64;
            let bits = |v: &[Vec<f32>]| v.iter().flatten().map(|f| f.to_bits()).collect::<Vec<_>>();
            for floor in [f32::NEG_INFINITY, 0.0] {
                let (mut a, mut b) = (vec![vec![0f32; hw]; n], vec![vec![0f32; hw]; n]);
                let affine = (1.3, -0.2, floor);
                let mut outs: Vec<&mut [f32]> = a.iter_mut().map(|v| &mut v[..]).collect();
                let want = forward_channel(planes(&x), &mut outs, affine, 1e-5, count);
                let mut outs: Vec<&mut [f32]> = b.iter_mut().map(|v| &mut v[..]).collect();
                let got = forward_widest(planes(&x), &mut outs, affine, 1e-5, count);
                assert_eq!(
                    (got.0.to_bits(), got.1.to_bits()),
                    (want.0.to_bits(), want.1.to_bits())
                );
                assert_eq!(bits(&b), bits(&a), "forward, {hw} per plane");
                let mask = (floor == 0.0).then_some(ReluMask {
                    mean: want.0,
                    scale: want.2 * 1.3,
                    shift: -0.2,
                });
                let channel = (want.0, want.2, 1.3, count);
                let mut outs: Vec<&mut [f32]> = a.iter_mut().map(|v| &mut v[..]).collect();
                let want = match mask {
                    Some(mk) => {
                        backward_channel((planes(&dy), planes(&x)), &mut outs, channel, |d, x| {
                            mk.pass(d, x)
                        })
                    }
                    None => {
                        backward_channel((planes(&dy), planes(&x)), &mut outs, channel, |d, _| d)
                    }
                };
                let mut outs: Vec<&mut [f32]> = b.iter_mut().map(|v| &mut v[..]).collect();
                let got = backward_widest((planes(&dy), planes(&x)), &mut outs, channel, mask);
                assert_eq!(
                    (got.0.to_bits(), got.1.to_bits()),
                    (want.0.to_bits(), want.1.to_bits())
                );
                assert_eq!(bits(&b), bits(&a), "backward, {hw} per plane");
            }
        }
    }
}
