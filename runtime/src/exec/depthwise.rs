//! Depthwise convolution (one input and one output channel per group: TinyViT's MBConv and local
//! convs) as a direct loop per channel. The general path runs one GEMM per group, which for a
//! 1-row, 9-column weight matrix is all overhead.

use rayon::prelude::*;

use super::gemm::{finish_row, Epilogue, Rows};

/// `out = epilogue(depthwise_conv(x))` for `x` `[c, h, w]` and `out` `[c, ho, wo]` with a square
/// `kernel`; row `ch` of `rows` holds channel `ch`'s `kernel * kernel` weights.
#[allow(clippy::too_many_arguments)]
pub fn depthwise(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    (kernel, stride, padding): (usize, usize, usize),
    (ho, wo): (usize, usize),
    rows: &Rows,
    epi: Epilogue,
    out: &mut [f32],
) {
    let n = ho * wo;
    out.par_chunks_mut(n.max(1))
        .enumerate()
        .take(c)
        .for_each(|(ch, o)| {
            let mut k = vec![0f32; kernel * kernel];
            rows.load(ch, 0, &mut k);
            let xp = &x[ch * h * w..(ch + 1) * h * w];
            for (oy, orow) in o.chunks_exact_mut(wo.max(1)).take(ho).enumerate() {
                orow.fill(0.0);
                for ky in 0..kernel {
                    let Some(iy) = (oy * stride + ky).checked_sub(padding) else {
                        continue;
                    };
                    if iy >= h {
                        continue;
                    }
                    let xrow = &xp[iy * w..][..w];
                    for kx in 0..kernel {
                        tap_row(orow, xrow, k[ky * kernel + kx], kx, stride, padding);
                    }
                }
            }
            let res = epi.residual.map(|r| &r[ch * n..(ch + 1) * n]);
            finish_row(o, &epi, ch, res);
        });
}

/// `orow[ox] += wk * xrow[ox * stride + kx - padding]` for every `ox` whose input column lies
/// inside the row. The valid range is computed once, so the loop has no bounds tests; at stride
/// 1 it is a contiguous multiply-add the compiler vectorises. Every output pixel still sums its
/// taps in (ky, kx) order from zero, so the result is the same as a per-pixel loop's.
#[inline]
fn tap_row(orow: &mut [f32], xrow: &[f32], wk: f32, kx: usize, stride: usize, padding: usize) {
    let (wo, w) = (orow.len(), xrow.len());
    // ox >= lo <=> ox * stride + kx >= padding; ox < hi <=> ox * stride + kx - padding < w.
    let lo = padding.saturating_sub(kx).div_ceil(stride);
    let Some(last) = (w + padding).checked_sub(kx + 1) else {
        return;
    };
    let hi = wo.min(last / stride + 1);
    if lo >= hi {
        return;
    }
    let start = lo * stride + kx - padding;
    if stride == 1 {
        let src = &xrow[start..start + (hi - lo)];
        orow[lo..hi]
            .iter_mut()
            .zip(src)
            .for_each(|(o, &x)| *o += wk * x);
    } else {
        for (o, &x) in orow[lo..hi]
            .iter_mut()
            .zip(xrow[start..].iter().step_by(stride))
        {
            *o += wk * x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The straightforward per-pixel loop with a bounds test per tap: the reference.
    fn reference(
        x: &[f32],
        h: usize,
        w: usize,
        k: &[f32],
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Vec<f32> {
        let ho = (h + 2 * padding - kernel) / stride + 1;
        let wo = (w + 2 * padding - kernel) / stride + 1;
        let mut out = vec![0f32; ho * wo];
        for oy in 0..ho {
            for ox in 0..wo {
                let mut s = 0f32;
                for ky in 0..kernel {
                    for kx in 0..kernel {
                        let (iy, ix) = (
                            (oy * stride + ky) as isize - padding as isize,
                            (ox * stride + kx) as isize - padding as isize,
                        );
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            s += x[iy as usize * w + ix as usize] * k[ky * kernel + kx];
                        }
                    }
                }
                out[oy * wo + ox] = s;
            }
        }
        out
    }

    /// Kernels 1, 3, 5 and 7, strides 1 and 2, paddings 0 to 3 and odd sizes: bit for bit the
    /// per-pixel loop (the same taps summed in the same order).
    #[test]
    fn matches_the_per_pixel_loop() {
        for (h, w) in [(7, 9), (14, 14), (5, 3), (1, 8)] {
            for kernel in [1, 3, 5, 7] {
                for stride in [1, 2] {
                    for padding in 0..=3.min(kernel) {
                        if h + 2 * padding < kernel || w + 2 * padding < kernel {
                            continue;
                        }
                        let c = 2;
                        let x: Vec<f32> = (0..c * h * w)
                            .map(|i| ((i * 7919) % 23) as f32 * 0.25 - 2.5)
                            .collect();
                        let wts: Vec<f32> = (0..c * kernel * kernel)
                            .map(|i| ((i * 31) % 11) as f32 * 0.1 - 0.5)
                            .collect();
                        let ho = (h + 2 * padding - kernel) / stride + 1;
                        let wo = (w + 2 * padding - kernel) / stride + 1;
                        let mut out = vec![f32::NAN; c * ho * wo];
                        let rows = Rows::F32 {
                            data: &wts,
                            cols: kernel * kernel,
                        };
                        depthwise(
                            &x,
                            (c, h, w),
                            (kernel, stride, padding),
                            (ho, wo),
                            &rows,
                            Epilogue::default(),
                            &mut out,
                        );
                        for ch in 0..c {
                            let want = reference(
                                &x[ch * h * w..][..h * w],
                                h,
                                w,
                                &wts[ch * kernel * kernel..][..kernel * kernel],
                                kernel,
                                stride,
                                padding,
                            );
                            assert_eq!(
                                &out[ch * ho * wo..][..ho * wo],
                                &want[..],
                                "{h}x{w} k{kernel} s{stride} p{padding} channel {ch}"
                            );
                        }
                    }
                }
            }
        }
    }
}
