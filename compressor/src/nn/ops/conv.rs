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

/// Output columns one gemm should see at least: below this, images are batched into one call.
const MIN_COLUMNS: usize = 256;

/// `x.conv2d(w, padding, stride, 1, groups)`, through the im2col ops where they apply.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    padding: usize,
    stride: usize,
    groups: usize,
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
    let (_, c, h, wd) = x.dims4()?;
    let (_, wc, kh, kw) = w.dims4()?;
    match ConvGeom::new((c, h, wd), (kh, kw), stride, padding) {
        Some(g) if wc == c => x
            .contiguous()?
            .apply_op2(&w.contiguous()?, Conv2d { geom: g }),
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

/// Forward: `y[b] = W[O, K] · cols(x[b])`.
pub fn forward(g: &ConvGeom, batch: usize, x: &[f32], w: &[f32], o: usize) -> Vec<f32> {
    let (k, n) = (g.k(), g.n());
    let mut y = vec![0.0f32; batch * o * n];
    let (per, threads) = chunking(g, batch);
    y.par_chunks_mut(per * o * n)
        .zip(x.par_chunks(per * g.input_len()))
        .for_each(|(yc, xc)| {
            let imgs = yc.len() / (o * n);
            scratch(|buf, tmp| {
                let cols = columns(g, xc, imgs, buf);
                let ld = imgs * n;
                if imgs == 1 {
                    gemm(
                        o,
                        n,
                        k,
                        yc,
                        n,
                        false,
                        View::rows(w, k),
                        View::rows(cols, ld),
                        threads,
                    );
                    return;
                }
                tmp.resize(o * ld, 0.0);
                gemm(
                    o,
                    ld,
                    k,
                    tmp,
                    ld,
                    false,
                    View::rows(w, k),
                    View::rows(cols, ld),
                    threads,
                );
                for (i, yi) in yc.chunks_mut(o * n).enumerate() {
                    for (r, yr) in yi.chunks_mut(n).enumerate() {
                        yr.copy_from_slice(&tmp[r * ld + i * n..r * ld + (i + 1) * n]);
                    }
                }
            })
        });
    y
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

/// Backward-data: `cols(dx[b]) = Wᵀ[K, O] · dy[b]`, folded back with col2im.
pub fn backward_data(g: &ConvGeom, batch: usize, gy: &[f32], w: &[f32], o: usize) -> Vec<f32> {
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
                    col2im(g, &buf[i * n..], ld, gxi);
                }
            })
        });
    gx
}

/// Backward-weight: `dW[O, K] = Σ_b dy[b] · cols(x[b])ᵀ`. The image chunks are split into one
/// contiguous run per rayon thread, each summed in order, and the runs' partial sums are added
/// in order: the result does not depend on work stealing, so training is reproducible.
pub fn backward_weight(g: &ConvGeom, batch: usize, x: &[f32], gy: &[f32], o: usize) -> Vec<f32> {
    let (k, n) = (g.k(), g.n());
    let (per, threads) = chunking(g, batch);
    let chunks: Vec<(&[f32], &[f32])> = x
        .chunks(per * g.input_len())
        .zip(gy.chunks(per * o * n))
        .collect();
    let runs = rayon::current_num_threads().max(1);
    let run_len = chunks.len().div_ceil(runs).max(1);
    let partials: Vec<Vec<f32>> = chunks
        .par_chunks(run_len)
        .map(|run| {
            let mut acc = vec![0.0f32; o * k];
            for &(xc, gyc) in run {
                let imgs = gyc.len() / (o * n);
                let ld = imgs * n;
                scratch(|buf, tmp| {
                    let cols = columns(g, xc, imgs, buf);
                    let dy = gather_grad(gyc, o, n, tmp);
                    let ct = View::transposed(cols, ld);
                    gemm(o, k, ld, &mut acc, k, true, View::rows(dy, ld), ct, threads);
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
    sum
}

/// The convolution as a candle op whose backward runs the two passes above.
struct Conv2d {
    geom: ConvGeom,
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
        let y = forward(&self.geom, b, x, w, o);
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
        let gw = x.apply_op2_no_bwd(&grad, &BackwardWeight { geom: self.geom })?;
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
            CpuStorage::F32(backward_weight(g, b, x, gy, o)),
            Shape::from((o, g.c, g.kh, g.kw)),
        ))
    }
}
