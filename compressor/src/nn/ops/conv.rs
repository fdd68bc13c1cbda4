//! 2-D convolution as im2col + gemm, with both backward passes as gemm (+ col2im): candle 0.11's
//! CPU conv2d runs 3.4–4.3x slower than PyTorch forward and ~6x slower forward+backward (its
//! backward goes through conv_transpose2d), while its gemm is on par. Images are processed in
//! parallel chunks; small feature maps batch several images into one matmul so the gemm stays
//! efficient. Off the CPU, for grouped convolutions and other dtypes, or with the ops disabled,
//! candle's conv2d runs.

use super::gemm::{gemm, View};
use super::im2col::{col2im, im2col, ConvGeom};
use super::{applies, cpu_slice, scratch};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Output columns one gemm should see at least: below this, images are batched into one call.
const MIN_COLUMNS: usize = 256;

/// The largest columns matrices (a whole batch's, in bytes) a training forward keeps for the
/// weight gradient; larger ones are built again there. Kept columns are written to memory in the
/// forward and read back, cold, in the backward, while building them again reads an input up to
/// 12x smaller into a per-thread buffer that stays in cache. Measured in the embedded model's
/// whole training step at batch 32 (Xeon, 2 threads, stop 50): keeping every layer's up to 64 MB
/// (the rule before), 35.0 ms best per step; none, 31.2–32.5; up to 1.5 MB (the last two stages),
/// 29.6–30.3; up to 3 MB, 31.3–33.5. At 224×224 every layer is above this: its 3x3 and 7x7
/// forwards go through [`super::conv_direct`], its 1x1 ones build their columns per chunk.
pub const KEEP_COLUMNS_BYTES: usize = 2 << 20;

/// Whether a training forward of `batch` images keeps its columns ([`KEEP_COLUMNS_BYTES`]).
pub fn keeps_columns(g: &ConvGeom, batch: usize) -> bool {
    batch * g.k() * g.n() * std::mem::size_of::<f32>() <= KEEP_COLUMNS_BYTES
}

/// The columns matrix of each chunk of images of one forward pass, in chunk order (`None`
/// where a chunk's columns are its input, a one-image pointwise convolution).
pub type Columns = Vec<Option<Vec<f32>>>;

/// `x.conv2d(w, padding, stride, 1, groups)`, through the im2col ops where they apply. With
/// `backward_follows` (training), the forward keeps its columns matrices for the weight
/// gradient when they are small enough ([`KEEP_COLUMNS_BYTES`]), instead of building them again.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    padding: usize,
    stride: usize,
    groups: usize,
    backward_follows: bool,
) -> candle_core::Result<Tensor> {
    if groups > 1 {
        if let Some(y) = super::depthwise::depthwise_conv2d(x, w, padding, stride, groups)? {
            return Ok(y);
        }
    }
    let usable =
        applies(x) && w.dtype() == DType::F32 && groups == 1 && x.rank() == 4 && w.rank() == 4;
    if !usable {
        return x.conv2d(w, padding, stride, 1, groups);
    }
    let (b, c, h, wd) = x.dims4()?;
    let (_, wc, kh, kw) = w.dims4()?;
    match ConvGeom::new((c, h, wd), (kh, kw), stride, padding) {
        Some(g) if wc == c => {
            let op = Conv2d {
                geom: g,
                keep: backward_follows && keeps_columns(&g, b),
                kept: Arc::new(Mutex::new(None)),
            };
            x.contiguous()?.apply_op2(&w.contiguous()?, op)
        }
        // Let candle report the shape error.
        _ => x.conv2d(w, padding, stride, 1, groups),
    }
}

/// How a batch is split: `per` images per gemm, and whether gemm itself should go parallel
/// (when there are fewer chunks than threads).
fn chunking(g: &ConvGeom, batch: usize) -> (usize, usize) {
    let threads = rayon::current_num_threads().max(1);
    let per = MIN_COLUMNS
        .div_ceil(g.n().max(1))
        .min(batch.div_ceil(threads))
        .max(1);
    let chunks = batch.div_ceil(per);
    (per, if chunks < threads { threads } else { 1 })
}

/// The columns matrix `[K, imgs·N]` of a chunk of images, in `buf` (or the image itself for a
/// pointwise convolution of one image).
fn columns<'a>(g: &ConvGeom, x: &'a [f32], imgs: usize, buf: &'a mut Vec<f32>) -> &'a [f32] {
    if g.is_pointwise() && imgs == 1 {
        return x;
    }
    let (k, n) = (g.k(), g.n());
    let ld = imgs * n;
    buf.resize(k * ld, 0.0);
    for (i, img) in x.chunks(g.input_len()).enumerate() {
        im2col(g, img, &mut buf[i * n..], ld);
    }
    &buf[..k * ld]
}

/// Forward: `y[b] = W[O, K] · cols(x[b])`; with `keep`, also each chunk's columns matrix for
/// [`backward_weight`]. Without `keep`, large layers skip the columns
/// ([`super::conv_direct::forward`]).
pub fn forward(
    g: &ConvGeom,
    batch: usize,
    x: &[f32],
    w: &[f32],
    o: usize,
    keep: bool,
) -> (Vec<f32>, Option<Columns>) {
    if !keep {
        if let Some(y) = super::conv_direct::forward(g, batch, x, w, o) {
            return (y, None);
        }
    }
    let (k, n) = (g.k(), g.n());
    let mut y = vec![0.0f32; batch * o * n];
    let (per, threads) = chunking(g, batch);
    let kept: Columns = y
        .par_chunks_mut(per * o * n)
        .zip(x.par_chunks(per * g.input_len()))
        .map(|(yc, xc)| {
            let imgs = yc.len() / (o * n);
            let mut own = Vec::new();
            scratch(|buf, tmp| {
                let buf = if keep { &mut own } else { buf };
                let cols = columns(g, xc, imgs, buf);
                let ld = imgs * n;
                if imgs == 1 {
                    let wv = View::rows(w, k);
                    gemm(o, n, k, yc, n, false, wv, View::rows(cols, ld), threads);
                    return;
                }
                tmp.resize(o * ld, 0.0);
                let wv = View::rows(w, k);
                gemm(o, ld, k, tmp, ld, false, wv, View::rows(cols, ld), threads);
                for (i, yi) in yc.chunks_mut(o * n).enumerate() {
                    for (r, yr) in yi.chunks_mut(n).enumerate() {
                        yr.copy_from_slice(&tmp[r * ld + i * n..r * ld + (i + 1) * n]);
                    }
                }
            });
            (!own.is_empty()).then_some(own)
        })
        .collect();
    (y, keep.then_some(kept))
}

/// Gather a chunk's output gradients `[imgs][O, N]` into one `[O, imgs·N]` matrix in `buf`.
fn gather_grad<'a>(gy: &'a [f32], o: usize, n: usize, buf: &'a mut Vec<f32>) -> &'a [f32] {
    let imgs = gy.len() / (o * n);
    if imgs == 1 {
        return gy;
    }
    let ld = imgs * n;
    buf.resize(o * ld, 0.0);
    for (i, gi) in gy.chunks(o * n).enumerate() {
        for (r, gr) in gi.chunks(n).enumerate() {
            buf[r * ld + i * n..r * ld + (i + 1) * n].copy_from_slice(gr);
        }
    }
    &buf[..o * ld]
}

/// Backward-data: `cols(dx[b]) = Wᵀ[K, O] · dy[b]`, folded back with col2im; large stride-1
/// layers as a convolution of `dy` instead ([`super::conv_direct::backward_data`]).
pub fn backward_data(g: &ConvGeom, batch: usize, gy: &[f32], w: &[f32], o: usize) -> Vec<f32> {
    if let Some(gx) = super::conv_direct::backward_data(g, batch, gy, w, o) {
        return gx;
    }
    let (k, n) = (g.k(), g.n());
    let mut gx = vec![0.0f32; batch * g.input_len()];
    let (per, threads) = chunking(g, batch);
    gx.par_chunks_mut(per * g.input_len())
        .zip(gy.par_chunks(per * o * n))
        .for_each(|(gxc, gyc)| {
            let imgs = gyc.len() / (o * n);
            let ld = imgs * n;
            scratch(|buf, tmp| {
                let dy = gather_grad(gyc, o, n, tmp);
                if g.is_pointwise() && imgs == 1 {
                    let wt = View::transposed(w, k);
                    gemm(k, n, o, gxc, n, false, wt, View::rows(dy, n), threads);
                    return;
                }
                buf.resize(k * ld, 0.0);
                let wt = View::transposed(w, k);
                gemm(k, ld, o, buf, ld, false, wt, View::rows(dy, ld), threads);
                for (i, gxi) in gxc.chunks_mut(g.input_len()).enumerate() {
                    col2im(g, &mut buf[i * n..], ld, gxi);
                }
            })
        });
    gx
}

/// One chunk of images for the weight gradient: its inputs, its output gradients and the
/// forward's columns where they were kept.
type Chunk<'a> = (&'a [f32], &'a [f32], Option<&'a [f32]>);

/// Backward-weight: `dW[O, K] = Σ_b dy[b] · cols(x[b])ᵀ`, from the forward's `kept` columns
/// where it kept them. The image chunks are split into one contiguous run per rayon thread,
/// each summed in order, and the runs' partial sums are added in order: the result does not
/// depend on work stealing, so training is reproducible.
pub fn backward_weight(
    g: &ConvGeom,
    batch: usize,
    x: &[f32],
    gy: &[f32],
    o: usize,
    kept: Option<&Columns>,
) -> Vec<f32> {
    let transposed = weight_gradient_transposed(o, g.n());
    backward_weight_as(g, batch, x, gy, o, kept, transposed)
}

/// [`backward_weight`] with the product's form given: `transposed` computes `dWᵀ = cols · dyᵀ`
/// ([`weight_gradient_transposed`] chooses); for tests and benchmarks of both.
pub fn backward_weight_as(
    g: &ConvGeom,
    batch: usize,
    x: &[f32],
    gy: &[f32],
    o: usize,
    kept: Option<&Columns>,
    transposed: bool,
) -> Vec<f32> {
    let (k, n) = (g.k(), g.n());
    let (per, threads) = chunking(g, batch);
    let chunks: Vec<Chunk> = x
        .chunks(per * g.input_len())
        .zip(gy.chunks(per * o * n))
        .enumerate()
        .map(|(i, (xc, gyc))| {
            let cols = kept.and_then(|c| c.get(i)).and_then(|c| c.as_deref());
            (xc, gyc, cols)
        })
        .collect();
    let runs = rayon::current_num_threads().max(1);
    let run_len = chunks.len().div_ceil(runs).max(1);
    let partials: Vec<Vec<f32>> = chunks
        .par_chunks(run_len)
        .map(|run| {
            let mut acc = vec![0.0f32; o * k];
            for &(xc, gyc, kept) in run {
                let imgs = gyc.len() / (o * n);
                let ld = imgs * n;
                scratch(|buf, tmp| {
                    let cols = match kept {
                        Some(c) => c,
                        None => columns(g, xc, imgs, buf),
                    };
                    let dy = gather_grad(gyc, o, n, tmp);
                    if transposed {
                        // dWᵀ[K, O] = cols · dyᵀ, transposed once at the end.
                        let dyt = View::transposed(dy, ld);
                        gemm(
                            k,
                            o,
                            ld,
                            &mut acc,
                            o,
                            true,
                            View::rows(cols, ld),
                            dyt,
                            threads,
                        );
                    } else {
                        let ct = View::transposed(cols, ld);
                        gemm(o, k, ld, &mut acc, k, true, View::rows(dy, ld), ct, threads);
                    }
                });
            }
            acc
        })
        .collect();
    let mut parts = partials.into_iter();
    let mut sum = parts.next().unwrap_or_else(|| vec![0.0; o * k]);
    for p in parts {
        sum.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
    }
    if !transposed {
        return sum;
    }
    let mut dw = vec![0.0f32; o * k];
    for (r, row) in sum.chunks_exact(o).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            dw[c * k + r] = v;
        }
    }
    dw
}

/// Whether [`backward_weight`] computes `dWᵀ = cols · dyᵀ` (then transposed, a small copy)
/// rather than `dW = dy · colsᵀ`: the gemm kernel's tiles are 64 rows tall, so with few output
/// channels `dW`'s rows left most of each tile empty (the embedded model's stem, 16 channels:
/// 7.7 ms against 2.6 per step), and the transposed product also packs its long operand from
/// contiguous rows. With many channels and few pixels (ResNet's last stage) the direct one is
/// faster (30 against 39 ms). Measured per layer shape at batch 32 (Zen 5, 2 threads); gemm's
/// column-major store of the transpose straight into `dW` was slower than the copy.
fn weight_gradient_transposed(channels: usize, pixels: usize) -> bool {
    channels <= 64 || pixels >= 196
}

/// The convolution as a candle op whose backward runs the two passes above.
struct Conv2d {
    geom: ConvGeom,
    /// Keep the forward's columns for the weight gradient.
    keep: bool,
    /// The kept columns, from the forward until the backward takes them.
    kept: Arc<Mutex<Option<Columns>>>,
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        "fq-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s1, l1)?;
        let w = cpu_slice(s2, l2)?;
        let (b, o) = (l1.dims()[0], l2.dims()[0]);
        let (y, cols) = forward(&self.geom, b, x, w, o, self.keep);
        *self.kept.lock().map_err(|_| poisoned())? = cols;
        Ok((
            CpuStorage::F32(y),
            Shape::from((b, o, self.geom.oh, self.geom.ow)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // The network input needs no gradient (PyTorch skips it too).
        let gx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(w, &BackwardData { geom: self.geom })?)
        } else {
            None
        };
        let kept = self.kept.lock().map_err(|_| poisoned())?.take();
        let gw = x.apply_op2_no_bwd(
            &grad,
            &BackwardWeight {
                geom: self.geom,
                kept,
            },
        )?;
        Ok((gx, Some(gw)))
    }
}

/// `(dy, W) -> dx`.
struct BackwardData {
    geom: ConvGeom,
}

impl CustomOp2 for BackwardData {
    fn name(&self) -> &'static str {
        "fq-conv2d-backward-data"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (gy, w) = (cpu_slice(s1, l1)?, cpu_slice(s2, l2)?);
        let (b, o) = (l1.dims()[0], l2.dims()[0]);
        let g = &self.geom;
        Ok((
            CpuStorage::F32(backward_data(g, b, gy, w, o)),
            Shape::from((b, g.c, g.h, g.w)),
        ))
    }
}

/// `(x, dy) -> dW`.
struct BackwardWeight {
    geom: ConvGeom,
    /// The forward's columns, where it kept them.
    kept: Option<Columns>,
}

impl CustomOp2 for BackwardWeight {
    fn name(&self) -> &'static str {
        "fq-conv2d-backward-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, gy) = (cpu_slice(s1, l1)?, cpu_slice(s2, l2)?);
        let (b, o) = (l1.dims()[0], l2.dims()[1]);
        let g = &self.geom;
        Ok((
            CpuStorage::F32(backward_weight(g, b, x, gy, o, self.kept.as_ref())),
            Shape::from((o, g.c, g.kh, g.kw)),
        ))
    }
}

fn poisoned() -> candle_core::Error {
    candle_core::Error::Msg("convolution columns lock poisoned".into())
}
