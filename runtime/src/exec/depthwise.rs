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
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut s = 0f32;
                    for ky in 0..kernel {
                        let Some(iy) = (oy * stride + ky).checked_sub(padding) else {
                            continue;
                        };
                        if iy >= h {
                            continue;
                        }
                        for kx in 0..kernel {
                            let Some(ix) = (ox * stride + kx).checked_sub(padding) else {
                                continue;
                            };
                            if ix < w {
                                s += xp[iy * w + ix] * k[ky * kernel + kx];
                            }
                        }
                    }
                    o[oy * wo + ox] = s;
                }
            }
            let res = epi.residual.map(|r| &r[ch * n..(ch + 1) * n]);
            finish_row(o, &epi, ch, res);
        });
}
