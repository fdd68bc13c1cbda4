//! Max pooling as one op: the model's candle version takes the maximum of `k²` shifted views
//! (candle's own max pool has no backward for overlapping windows), so a 3x3 pool costs nine
//! full passes forward and about forty backward (each `maximum` masks both inputs). Here the
//! forward records each output's argmax and the backward scatters the gradient to it, as PyTorch
//! does (ties go to the first maximum in the window; padding never wins).

use super::{applies, cpu_slice, with_cpu_slice};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// `max_pool2d(x, kernel, stride, padding)` for `[N, C, H, W]`; `None` where the op does not
/// apply (off the CPU, not f32, disabled), so the caller uses candle's ops.
pub fn max_pool2d(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Option<Tensor>> {
    if !applies(x) || x.rank() != 4 || kernel == 0 || stride == 0 {
        return Ok(None);
    }
    let (_, _, h, w) = x.dims4()?;
    let fits = |n| fq_models::geometry::window_output(n, kernel, stride, padding).is_some();
    if !fits(h) || !fits(w) || padding >= kernel {
        return Ok(None);
    }
    let op = MaxPool {
        kernel,
        stride,
        padding,
        argmax: Arc::new(Mutex::new(Vec::new())),
    };
    Ok(Some(x.contiguous()?.apply_op1(op)?))
}

struct MaxPool {
    kernel: usize,
    stride: usize,
    padding: usize,
    /// Index within its `[H, W]` plane of every output's maximum, from the forward pass.
    argmax: Arc<Mutex<Vec<u32>>>,
}

impl MaxPool {
    fn out_size(&self, n: usize) -> usize {
        fq_models::geometry::window_output(n, self.kernel, self.stride, self.padding)
            .expect("checked by max_pool2d")
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "fq-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s, l)?;
        let (n, c, h, w) = l.shape().dims4()?;
        let (oh, ow) = (self.out_size(h), self.out_size(w));
        let (k, st, p) = (self.kernel, self.stride, self.padding);
        let mut y = vec![0f32; n * c * oh * ow];
        let mut idx = vec![0u32; y.len()];
        y.par_chunks_mut(oh * ow)
            .zip(idx.par_chunks_mut(oh * ow))
            .zip(x.par_chunks(h * w))
            .for_each(|((yp, ip), xp)| {
                for oy in 0..oh {
                    let y0 = (oy * st).saturating_sub(p);
                    let y1 = (oy * st + k - p).min(h);
                    for ox in 0..ow {
                        let x0 = (ox * st).saturating_sub(p);
                        let x1 = (ox * st + k - p).min(w);
                        let (mut best, mut at) = (f32::NEG_INFINITY, y0 * w + x0);
                        for iy in y0..y1 {
                            for ix in x0..x1 {
                                let v = xp[iy * w + ix];
                                // `>` keeps the first maximum; NaN propagates like PyTorch's.
                                if v > best || v.is_nan() && !best.is_nan() {
                                    best = v;
                                    at = iy * w + ix;
                                }
                            }
                        }
                        yp[oy * ow + ox] = best;
                        ip[oy * ow + ox] = at as u32;
                    }
                }
            });
        *self
            .argmax
            .lock()
            .map_err(|_| candle_core::Error::Msg("max pool argmax lock poisoned".into()))? = idx;
        Ok((CpuStorage::F32(y), Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (n, c, h, w) = x.dims4()?;
        let idx = self
            .argmax
            .lock()
            .map_err(|_| candle_core::Error::Msg("max pool argmax lock poisoned".into()))?;
        let grad = grad.contiguous()?;
        let gx = with_cpu_slice(&grad, |g| {
            let plane = g.len() / (n * c).max(1);
            let mut gx = vec![0f32; n * c * h * w];
            gx.par_chunks_mut(h * w)
                .zip(g.par_chunks(plane.max(1)).zip(idx.par_chunks(plane.max(1))))
                .for_each(|(gp, (gy, ip))| {
                    for (&v, &i) in gy.iter().zip(ip) {
                        gp[i as usize] += v;
                    }
                });
            gx
        })?;
        Ok(Some(Tensor::from_vec(gx, (n, c, h, w), x.device())?))
    }
}
