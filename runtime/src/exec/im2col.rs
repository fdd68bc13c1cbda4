//! im2col straight into the GEMM's `B` panels: column `p` of `B` is the receptive field of output
//! pixel `p`, row `k = (c, ky, kx)` one input tap.
//!
//! The input is copied once with its zero padding made explicit, so a panel row is a few runs
//! along input rows (plain copies for stride-1 convolutions) with no bounds tests per tap. Any
//! block of rows and panels can be filled on its own, which lets the convolution build `B` one
//! cache-sized block at a time instead of materialising it whole.

use std::borrow::Cow;

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

impl Geometry {
    /// Rows of `B`: taps per output pixel.
    pub fn k(&self) -> usize {
        self.c * self.kernel * self.kernel
    }

    /// Columns of `B`: output pixels.
    pub fn n(&self) -> usize {
        self.ho * self.wo
    }
}

/// The input of one group with explicit zero padding, `[c, h + 2p, w + 2p]`; f32 for the float
/// path, i8 codes for the integer one (whose zero is the code 0: symmetric quantisation).
pub struct Padded<'a, T: Copy + Default = f32> {
    data: Cow<'a, [T]>,
    g: Geometry,
    wp: usize,
    plane: usize,
}

impl<'a, T: Copy + Default> Padded<'a, T> {
    /// `x` is `[g.c, g.h, g.w]`; without padding it is used in place.
    pub fn new(x: &'a [T], g: &Geometry) -> Self {
        let pad = |n| fq_models::geometry::padded(n, g.padding).expect("validated padded size");
        let (hp, wp) = (pad(g.h), pad(g.w));
        let data = if g.padding == 0 {
            Cow::Borrowed(&x[..g.c * g.h * g.w])
        } else {
            let mut p = vec![T::default(); g.c * hp * wp];
            for (dst, plane) in p.chunks_exact_mut(hp * wp).zip(x.chunks_exact(g.h * g.w)) {
                for (y, row) in plane.chunks_exact(g.w).enumerate() {
                    let at = (y + g.padding) * wp + g.padding;
                    dst[at..at + g.w].copy_from_slice(row);
                }
            }
            Cow::Owned(p)
        };
        Self {
            data,
            g: *g,
            wp,
            plane: hp * wp,
        }
    }

    /// Fills `dst` (`[panel][kc][NR]`, `kc = k1 - k0`) with rows `k0..k1` of the panels starting
    /// at panel `j0`, as many as `dst` holds. Pixels past the last one are left as they are.
    pub fn fill(&self, k0: usize, k1: usize, j0: usize, dst: &mut [T]) {
        let g = &self.g;
        let (n, kc, kk) = (g.n(), k1 - k0, g.kernel * g.kernel);
        if kc == 0 {
            return;
        }
        for (jj, panel) in dst.chunks_exact_mut(kc * NR).enumerate() {
            // The panel's pixels as runs within one output row: each run reads every
            // `stride`-th input of a row (a plain copy at stride 1).
            let mut runs = [(0usize, 0usize, 0usize); NR];
            let mut count = 0;
            let first = (j0 + jj) * NR;
            let last = (first + NR).min(n);
            let mut p = first;
            while p < last {
                let (oy, ox) = (p / g.wo, p % g.wo);
                let len = (g.wo - ox).min(last - p);
                runs[count] = (p - first, len, oy * g.stride * self.wp + ox * g.stride);
                count += 1;
                p += len;
            }
            let runs = &runs[..count];
            // (channel, kernel row, kernel column) of row `k`, stepped rather than divided
            // out per row: three divisions per 16-value copy were a large part of the i8 copy.
            let (mut c, mut ky, mut kx) = (k0 / kk, k0 % kk / g.kernel, k0 % g.kernel);
            for dst in panel.chunks_exact_mut(NR).take(kc) {
                let base = c * self.plane + ky * self.wp + kx;
                kx += 1;
                if kx == g.kernel {
                    kx = 0;
                    ky += 1;
                    if ky == g.kernel {
                        ky = 0;
                        c += 1;
                    }
                }
                for &(t, len, off) in runs {
                    let d = &mut dst[t..t + len];
                    let s = &self.data[base + off..];
                    if g.stride == 1 && len == NR {
                        // A whole panel row: a copy of constant size, which the compiler
                        // inlines (one or four vector moves) instead of calling memmove for 16
                        // bytes (the i8 path's im2col spent about 5% of its time there).
                        let d: &mut [T; NR] = d.try_into().expect("len == NR");
                        d.copy_from_slice(&s[..NR]);
                    } else if g.stride == 1 {
                        d.copy_from_slice(&s[..len]);
                    } else {
                        for (q, v) in d.iter_mut().enumerate() {
                            *v = s[q * g.stride];
                        }
                    }
                }
            }
        }
    }
}

/// The whole `B` of one group (`x` is `[g.c, g.h, g.w]`), panels filled in parallel.
pub fn im2col(x: &[f32], g: &Geometry) -> PanelB {
    let (k, n) = (g.k(), g.n());
    let mut data = vec![0f32; n.div_ceil(NR) * k * NR];
    if k > 0 && n > 0 {
        let src = Padded::new(x, g);
        data.par_chunks_mut(k * NR)
            .enumerate()
            .for_each(|(j, panel)| src.fill(0, k, j, panel));
    }
    PanelB { data, k, n }
}
