//! im2col straight into the GEMM's `B` panels: column `p` of `B` is the receptive field of output
//! pixel `p`, row `(c, ky, kx)` one input tap.
//!
//! The input is copied once with its zero padding made explicit, so a panel row is a few runs
//! along input rows (plain copies for stride-1 convolutions) with no bounds tests per tap.

use rayon::prelude::*;

use super::gemm::PanelB;
use super::kernel::NR;

/// Geometry of one convolution group.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Input channels of the group, height, width.
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub ho: usize,
    pub wo: usize,
}

/// `B` for the input channels `x` (`[g.c, g.h, g.w]`) of one group.
pub fn im2col(x: &[f32], g: &Geometry) -> PanelB {
    let (hp, wp) = (g.h + 2 * g.padding, g.w + 2 * g.padding);
    let padded;
    let src: &[f32] = if g.padding == 0 {
        &x[..g.c * g.h * g.w]
    } else {
        let mut p = vec![0f32; g.c * hp * wp];
        for (dst, plane) in p.chunks_exact_mut(hp * wp).zip(x.chunks_exact(g.h * g.w)) {
            for (y, row) in plane.chunks_exact(g.w).enumerate() {
                let at = (y + g.padding) * wp + g.padding;
                dst[at..at + g.w].copy_from_slice(row);
            }
        }
        padded = p;
        &padded
    };
    let k = g.c * g.kernel * g.kernel;
    let n = g.ho * g.wo;
    let mut data = vec![0f32; n.div_ceil(NR) * k * NR];
    if k == 0 || n == 0 {
        return PanelB { data, k, n };
    }
    let plane = hp * wp;
    data.par_chunks_mut(k * NR)
        .enumerate()
        .for_each(|(j, panel)| {
            // The panel's pixels as runs within one output row: each run reads every
            // `stride`-th input of a row (a plain copy at stride 1). Pixels past `n` stay zero.
            let mut runs = [(0usize, 0usize, 0usize); NR];
            let mut count = 0;
            let (first, last) = (j * NR, ((j + 1) * NR).min(n));
            let mut p = first;
            while p < last {
                let (oy, ox) = (p / g.wo, p % g.wo);
                let len = (g.wo - ox).min(last - p);
                runs[count] = (p - first, len, oy * g.stride * wp + ox * g.stride);
                count += 1;
                p += len;
            }
            let runs = &runs[..count];
            let mut rows = panel.chunks_exact_mut(NR);
            for c in 0..g.c {
                for ky in 0..g.kernel {
                    for kx in 0..g.kernel {
                        let base = c * plane + ky * wp + kx;
                        let dst = rows.next().expect("k rows per panel");
                        for &(t, len, off) in runs {
                            let d = &mut dst[t..t + len];
                            if g.stride == 1 {
                                d.copy_from_slice(&src[base + off..base + off + len]);
                            } else {
                                let s = &src[base + off..];
                                for (q, v) in d.iter_mut().enumerate() {
                                    *v = s[q * g.stride];
                                }
                            }
                        }
                    }
                }
            }
        });
    PanelB { data, k, n }
}
