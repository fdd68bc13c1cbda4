//! im2col / col2im for one image, so a convolution becomes one matmul: the columns matrix has a
//! row per `(input channel, ky, kx)` (the order of a contiguous `[O, C, kh, kw]` weight's rows)
//! and a column per output pixel.

/// The shape of a 2-D convolution over one image (dilation 1, groups 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeom {
    /// `None` when the kernel does not fit the padded input or the stride is 0.
    pub fn new(
        (c, h, w): (usize, usize, usize),
        (kh, kw): (usize, usize),
        stride: usize,
        pad: usize,
    ) -> Option<Self> {
        use fq_models::geometry::window_output;
        let (oh, ow) = (
            window_output(h, kh, stride, pad)?,
            window_output(w, kw, stride, pad)?,
        );
        Some(Self {
            c,
            h,
            w,
            kh,
            kw,
            stride,
            pad,
            oh,
            ow,
        })
    }

    /// Rows of the columns matrix (`C·kh·kw`).
    pub fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output pixels (`oh·ow`).
    pub fn n(&self) -> usize {
        self.oh * self.ow
    }

    /// Input elements of one image.
    pub fn input_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// A 1x1, stride-1, unpadded convolution: the image itself is its columns matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }

    /// Output columns `lo..hi` whose input column `ox·stride + kx - pad` lies inside the image.
    fn valid_cols(&self, kx: usize) -> (usize, usize) {
        let lo = if self.pad > kx {
            (self.pad - kx).div_ceil(self.stride).min(self.ow)
        } else {
            0
        };
        let hi = if self.w + self.pad <= kx {
            0
        } else {
            ((self.w - 1 + self.pad - kx) / self.stride + 1).min(self.ow)
        };
        (lo, hi.max(lo))
    }

    /// Input row of output row `oy` for kernel row `ky`, if inside the image.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride + ky)
            .checked_sub(self.pad)
            .filter(|&iy| iy < self.h)
    }
}

/// Write image `x` (`[C, H, W]`) as columns into `col`, a row-major matrix with row stride `ld`
/// whose first `n()` columns are overwritten (padding becomes zeros).
pub fn im2col(g: &ConvGeom, x: &[f32], col: &mut [f32], ld: usize) {
    let (n, ow, s) = (g.n(), g.ow, g.stride);
    for c in 0..g.c {
        let xc = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let r = (c * g.kh + ky) * g.kw + kx;
                let row = &mut col[r * ld..r * ld + n];
                let (lo, hi) = g.valid_cols(kx);
                for oy in 0..g.oh {
                    let out = &mut row[oy * ow..(oy + 1) * ow];
                    let Some(iy) = g.input_row(oy, ky) else {
                        out.fill(0.0);
                        continue;
                    };
                    let xrow = &xc[iy * g.w..(iy + 1) * g.w];
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    // ix = ox·s + kx - pad, never negative for ox >= lo.
                    let base = lo * s + kx - g.pad;
                    if s == 1 {
                        out[lo..hi].copy_from_slice(&xrow[base..base + hi - lo]);
                    } else {
                        for (o, ix) in out[lo..hi].iter_mut().zip((base..).step_by(s)) {
                            *o = xrow[ix];
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of `im2col`: add every column entry back onto the input pixel it was copied from.
/// `x` is accumulated into, not overwritten.
pub fn col2im(g: &ConvGeom, col: &[f32], ld: usize, x: &mut [f32]) {
    let (n, ow, s) = (g.n(), g.ow, g.stride);
    for c in 0..g.c {
        let xc = &mut x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let r = (c * g.kh + ky) * g.kw + kx;
                let row = &col[r * ld..r * ld + n];
                let (lo, hi) = g.valid_cols(kx);
                for oy in 0..g.oh {
                    let Some(iy) = g.input_row(oy, ky) else {
                        continue;
                    };
                    let src = &row[oy * ow + lo..oy * ow + hi];
                    let xrow = &mut xc[iy * g.w..(iy + 1) * g.w];
                    let base = lo * s + kx - g.pad;
                    if s == 1 {
                        for (d, v) in xrow[base..base + hi - lo].iter_mut().zip(src) {
                            *d += v;
                        }
                    } else {
                        for (v, ix) in src.iter().zip((base..).step_by(s)) {
                            xrow[ix] += v;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// im2col against the definition, element by element, on a strided padded case.
    #[test]
    fn matches_definition() {
        let g = ConvGeom::new((2, 5, 4), (3, 2), 2, 1).unwrap();
        let x: Vec<f32> = (0..g.input_len()).map(|i| i as f32 + 1.0).collect();
        let ld = g.n() + 3;
        let mut col = vec![-7.0; g.k() * ld];
        im2col(&g, &x, &mut col, ld);
        for c in 0..g.c {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    for oy in 0..g.oh {
                        for ox in 0..g.ow {
                            let (iy, ix) = ((oy * 2 + ky) as isize - 1, (ox * 2 + kx) as isize - 1);
                            let want = if iy < 0 || ix < 0 || iy >= 5 || ix >= 4 {
                                0.0
                            } else {
                                x[c * 20 + iy as usize * 4 + ix as usize]
                            };
                            let r = (c * 3 + ky) * 2 + kx;
                            assert_eq!(col[r * ld + oy * g.ow + ox], want);
                        }
                    }
                }
            }
        }
    }

    /// `<im2col(x), y> == <x, col2im(y)>`: col2im is the exact adjoint.
    #[test]
    fn col2im_is_the_adjoint() {
        for (k, s, p) in [(3, 1, 1), (3, 2, 1), (1, 2, 0), (7, 2, 3), (2, 3, 0)] {
            let g = ConvGeom::new((3, 9, 7), (k, k), s, p).unwrap();
            let x: Vec<f32> = (0..g.input_len()).map(|i| ((i * 7) % 11) as f32).collect();
            let y: Vec<f32> = (0..g.k() * g.n()).map(|i| ((i * 5) % 13) as f32).collect();
            let mut col = vec![0.0; g.k() * g.n()];
            im2col(&g, &x, &mut col, g.n());
            let mut back = vec![0.0; g.input_len()];
            col2im(&g, &y, g.n(), &mut back);
            let lhs: f64 = col.iter().zip(&y).map(|(a, b)| (a * b) as f64).sum();
            let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
            assert_eq!(lhs, rhs, "k{k} s{s} p{p}");
        }
    }
}
