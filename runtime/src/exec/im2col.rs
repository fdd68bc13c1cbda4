//! im2col straight into the GEMM's `B` panels: column `p` of `B` is the receptive field of output
//! pixel `p`, row `(c, ky, kx)` one input tap.
//!
//! The input is copied once with its zero padding made explicit, so each panel row is a gather at
//! precomputed offsets (a plain copy when the panel's pixels are contiguous in the input, as for
//! stride-1 convolutions within one output row and every 1x1 stride-1 convolution).

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
            // Offset of each pixel's window origin; pixels past `n` repeat the last one.
            let mut offs = [0usize; NR];
            for (t, o) in offs.iter_mut().enumerate() {
                let p = (j * NR + t).min(n - 1);
                *o = (p / g.wo) * g.stride * wp + (p % g.wo) * g.stride;
            }
            let contiguous = offs.iter().enumerate().all(|(t, &o)| o == offs[0] + t);
            let mut rows = panel.chunks_exact_mut(NR);
            for c in 0..g.c {
                for ky in 0..g.kernel {
                    for kx in 0..g.kernel {
                        let base = c * plane + ky * wp + kx;
                        let dst = rows.next().expect("k rows per panel");
                        if contiguous {
                            dst.copy_from_slice(&src[base + offs[0]..base + offs[0] + NR]);
                        } else {
                            for (d, &o) in dst.iter_mut().zip(&offs) {
                                *d = src[base + o];
                            }
                        }
                    }
                }
            }
        });
    PanelB { data, k, n }
}
