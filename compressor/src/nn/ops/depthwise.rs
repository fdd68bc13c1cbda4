//! Depthwise 2-D convolution (`groups == in == out`, TinyViT's MBConv and local convs) as direct
//! loops: candle 0.11 runs a grouped conv as one convolution per group plus a concatenation,
//! forward and backward, which made TinyViT's training step several times slower than its MACs
//! warrant. Parallel over (image, channel); the weight gradient sums images in a fixed order per
//! channel, so results do not depend on thread scheduling.

use super::im2col::ConvGeom;
use super::{applies, cpu_slice};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

/// `x.conv2d(w, padding, stride, 1, c)` for `w` of shape `[c, 1, k, k]`; `None` when the op does
/// not apply (off the CPU, another dtype, not depthwise, ops disabled).
pub fn depthwise_conv2d(
    x: &Tensor,
    w: &Tensor,
    padding: usize,
    stride: usize,
    groups: usize,
) -> candle_core::Result<Option<Tensor>> {
    if !applies(x) || w.dtype() != DType::F32 || x.rank() != 4 || w.rank() != 4 {
        return Ok(None);
    }
    let (_, c, h, wd) = x.dims4()?;
    let (o, wc, kh, kw) = w.dims4()?;
    if groups != c || o != c || wc != 1 {
        return Ok(None);
    }
    match ConvGeom::new((c, h, wd), (kh, kw), stride, padding) {
        Some(geom) => Ok(Some(
            x.contiguous()?
                .apply_op2(&w.contiguous()?, Depthwise { geom })?,
        )),
        None => Ok(None),
    }
}

struct Depthwise {
    geom: ConvGeom,
}

/// Input positions feeding output `(oy, ox)` through kernel tap `(ky, kx)`, if inside the image.
#[inline]
fn tap(g: &ConvGeom, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
    let iy = (oy * g.stride + ky).checked_sub(g.pad)?;
    let ix = (ox * g.stride + kx).checked_sub(g.pad)?;
    (iy < g.h && ix < g.w).then_some((iy, ix))
}

fn forward(g: &ConvGeom, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    let planes = x.len() / hw.max(1);
    let mut y = vec![0f32; planes * ohw];
    y.par_chunks_mut(ohw).enumerate().for_each(|(p, yp)| {
        let (xp, wc) = (&x[p * hw..(p + 1) * hw], &w[(p % g.c) * kk..][..kk]);
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let mut s = 0f32;
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        if let Some((iy, ix)) = tap(g, oy, ox, ky, kx) {
                            s += xp[iy * g.w + ix] * wc[ky * g.kw + kx];
                        }
                    }
                }
                yp[oy * g.ow + ox] = s;
            }
        }
    });
    y
}

fn backward_data(g: &ConvGeom, gy: &[f32], w: &[f32]) -> Vec<f32> {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    let planes = gy.len() / ohw.max(1);
    let mut gx = vec![0f32; planes * hw];
    gx.par_chunks_mut(hw).enumerate().for_each(|(p, gxp)| {
        let (gyp, wc) = (&gy[p * ohw..(p + 1) * ohw], &w[(p % g.c) * kk..][..kk]);
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let d = gyp[oy * g.ow + ox];
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        if let Some((iy, ix)) = tap(g, oy, ox, ky, kx) {
                            gxp[iy * g.w + ix] += d * wc[ky * g.kw + kx];
                        }
                    }
                }
            }
        }
    });
    gx
}

fn backward_weight(g: &ConvGeom, x: &[f32], gy: &[f32]) -> Vec<f32> {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    let batch = x.len() / (g.c * hw).max(1);
    let mut gw = vec![0f32; g.c * kk];
    gw.par_chunks_mut(kk).enumerate().for_each(|(c, gwc)| {
        for b in 0..batch {
            let p = b * g.c + c;
            let (xp, gyp) = (&x[p * hw..(p + 1) * hw], &gy[p * ohw..(p + 1) * ohw]);
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let mut s = 0f32;
                    for oy in 0..g.oh {
                        for ox in 0..g.ow {
                            if let Some((iy, ix)) = tap(g, oy, ox, ky, kx) {
                                s += xp[iy * g.w + ix] * gyp[oy * g.ow + ox];
                            }
                        }
                    }
                    gwc[ky * g.kw + kx] += s;
                }
            }
        }
    });
    gw
}

impl CustomOp2 for Depthwise {
    fn name(&self) -> &'static str {
        "fq-depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w) = (cpu_slice(s1, l1)?, cpu_slice(s2, l2)?);
        let g = &self.geom;
        Ok((
            CpuStorage::F32(forward(g, x, w)),
            Shape::from((l1.dims()[0], g.c, g.oh, g.ow)),
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
        let geom = self.geom;
        let gx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(w, &Grad { geom, data: true })?)
        } else {
            None
        };
        let gw = x.apply_op2_no_bwd(&grad, &Grad { geom, data: false })?;
        Ok((gx, Some(gw)))
    }
}

/// `(dy, W) -> dx` when `data`, else `(x, dy) -> dW`.
struct Grad {
    geom: ConvGeom,
    data: bool,
}

impl CustomOp2 for Grad {
    fn name(&self) -> &'static str {
        "fq-depthwise-conv2d-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (a, b) = (cpu_slice(s1, l1)?, cpu_slice(s2, l2)?);
        let g = &self.geom;
        Ok(if self.data {
            (
                CpuStorage::F32(backward_data(g, a, b)),
                Shape::from((l1.dims()[0], g.c, g.h, g.w)),
            )
        } else {
            (
                CpuStorage::F32(backward_weight(g, a, b)),
                Shape::from((g.c, 1, g.kh, g.kw)),
            )
        })
    }
}
