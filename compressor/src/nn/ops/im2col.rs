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
        valid_range(self.w, self.ow, kx, self.stride, self.pad)
    }

    /// Output rows `lo..hi` whose input row `oy·stride + ky - pad` lies inside the image.
    fn valid_rows(&self, ky: usize) -> (usize, usize) {
        valid_range(self.h, self.oh, ky, self.stride, self.pad)
    }

    /// Input row of output row `oy` for kernel row `ky`, if inside the image.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride + ky)
            .checked_sub(self.pad)
            .filter(|&iy| iy < self.h)
    }

    /// Stride 1 with as many output columns as input columns (a "same" convolution): a kernel
    /// tap's columns row is then the whole image shifted by one constant offset, so it is one
    /// contiguous copy plus zeros at the borders instead of a copy per output row (most of
    /// ResNet's convolutions; their small feature maps made the per-row work the cost).
    fn shifts(&self) -> bool {
        self.stride == 1 && self.ow == self.w
    }

    /// For [`Self::shifts`] geometries: the output positions `j0..j1` (flat, `oy·w + ox`) of tap
    /// `(ky, kx)` whose source `j + shift` is inside the image, and the source of `j0` (inside
    /// `0..=h·w` even when the band is empty: a tap wholly in the padding of a tiny image).
    /// Positions of the range whose column is outside `valid_cols` read a neighbouring row's
    /// pixel, which the callers zero.
    fn band(&self, ky: usize, kx: usize) -> (usize, usize, usize) {
        let w = self.w;
        let (oy0, oy1) = self.valid_rows(ky);
        let shift = (ky * w + kx) as isize - (self.pad * w + self.pad) as isize;
        let plane = (self.h * w) as isize;
        let j0 = (oy0 * w) as isize;
        let j1 = (oy1 * w) as isize;
        let j0 = j0.max(-shift).min(j1);
        let j1 = j1.min(plane - shift).max(j0);
        let src = (j0 + shift).clamp(0, plane);
        (j0 as usize, j1 as usize, src as usize)
    }
}

/// Output indices `lo..hi` (of `n_out`) whose input index `o·stride + k - pad` lies in `0..n_in`.
fn valid_range(n_in: usize, n_out: usize, k: usize, stride: usize, pad: usize) -> (usize, usize) {
    let lo = if pad > k {
        (pad - k).div_ceil(stride).min(n_out)
    } else {
        0
    };
    let hi = if n_in + pad <= k {
        0
    } else {
        ((n_in - 1 + pad - k) / stride + 1).min(n_out)
    };
    (lo, hi.max(lo))
}

/// Zero the entries of a [`ConvGeom::shifts`] tap's columns row (`[oh, w]`) whose column lies
/// outside `lo..hi`, in output rows `oy0..oy1`.
fn zero_border_columns(
    row: &mut [f32],
    w: usize,
    (oy0, oy1): (usize, usize),
    (lo, hi): (usize, usize),
) {
    for r in row[oy0 * w..oy1 * w].chunks_exact_mut(w) {
        r[..lo].iter_mut().for_each(|v| *v = 0.0);
        r[hi..].iter_mut().for_each(|v| *v = 0.0);
    }
}

/// Output pixels per image up to which [`im2col`] and [`col2im`] read a table of source
/// offsets ([`source_table`]) instead of working out each tap's rows.
///
/// Why: on the embedded model's last stages (4x4 and 2x2 outputs) a tap's columns row is 16 or
/// 4 values, and the per-row work (bands, valid ranges, border zeroing) cost more than the
/// copy: its last stage's 3x3 forward took 0.62 ms per batch of 32, three times its `gemm`.
/// On 8x8 maps the per-row path (one copy per tap) was faster in 4 of 5 alternated runs, and
/// on 16x16 maps by far, so the table stops at 4x4.
const TABLE_PIXELS: usize = 16;

/// For tap `(ky, kx)` (row `ky * kw + kx`, `n()` entries) and output pixel `p`, the offset of
/// its input in the channel plane, or `usize::MAX` where it falls in the padding.
fn source_table(g: &ConvGeom) -> Vec<usize> {
    let inside =
        |o: usize, k: usize, n: usize| (o * g.stride + k).checked_sub(g.pad).filter(|&i| i < n);
    let mut table = Vec::with_capacity(g.kh * g.kw * g.n());
    for ky in 0..g.kh {
        for kx in 0..g.kw {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    table.push(match (inside(oy, ky, g.h), inside(ox, kx, g.w)) {
                        (Some(iy), Some(ix)) => iy * g.w + ix,
                        _ => usize::MAX,
                    });
                }
            }
        }
    }
    table
}

/// Write image `x` (`[C, H, W]`) as columns into `col`, a row-major matrix with row stride `ld`
/// whose first `n()` columns are overwritten (padding becomes zeros).
pub fn im2col(g: &ConvGeom, x: &[f32], col: &mut [f32], ld: usize) {
    let n = g.n();
    if n <= TABLE_PIXELS {
        let (table, plane) = (source_table(g), g.h * g.w);
        for c in 0..g.c {
            let xc = &x[c * plane..(c + 1) * plane];
            for (t, sources) in table.chunks_exact(n.max(1)).enumerate() {
                let row = &mut col[(c * g.kh * g.kw + t) * ld..][..n];
                for (v, &s) in row.iter_mut().zip(sources) {
                    *v = xc.get(s).copied().unwrap_or(0.0);
                }
            }
        }
        return;
    }
    for c in 0..g.c {
        let xc = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let r = (c * g.kh + ky) * g.kw + kx;
                let row = &mut col[r * ld..r * ld + n];
                if g.shifts() {
                    shifted_row(g, xc, ky, kx, row);
                } else {
                    gathered_row(g, xc, ky, kx, row);
                }
            }
        }
    }
}

/// Tap `(ky, kx)`'s columns row of a [`ConvGeom::shifts`] geometry: one shifted copy of the
/// image, then zeros where the tap falls in the padding.
fn shifted_row(g: &ConvGeom, xc: &[f32], ky: usize, kx: usize, row: &mut [f32]) {
    let (j0, j1, s0) = g.band(ky, kx);
    row[..j0].fill(0.0);
    row[j0..j1].copy_from_slice(&xc[s0..s0 + (j1 - j0)]);
    row[j1..].fill(0.0);
    zero_border_columns(row, g.w, g.valid_rows(ky), g.valid_cols(kx));
}

/// Tap `(ky, kx)`'s columns row of any geometry, output row by output row.
fn gathered_row(g: &ConvGeom, xc: &[f32], ky: usize, kx: usize, row: &mut [f32]) {
    let (ow, s) = (g.ow, g.stride);
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
        if lo == hi {
            // The tap is in the padding for this whole row (`base` would be before the image).
            continue;
        }
        let base = lo * s + kx - g.pad;
        if s == 1 {
            out[lo..hi].copy_from_slice(&xrow[base..base + hi - lo]);
        } else if s == 2 {
            // Every second value, the source cut to what is read: no bounds test in the loop,
            // which LLVM turns into vector loads and shuffles.
            let len = hi - lo;
            let src = &xrow[base..base + 2 * len - 1];
            let (body, last) = out[lo..hi].split_at_mut(len - 1);
            for (o, pair) in body.iter_mut().zip(src.chunks_exact(2)) {
                *o = pair[0];
            }
            last[0] = src[2 * len - 2];
        } else {
            // Pairs (or triples...) of the input row, one taken from each: no bounds test per
            // element, and LLVM vectorises the strided read.
            let src = &xrow[base..];
            let taken = src.chunks(s).map(|c| c[0]);
            for (o, v) in out[lo..hi].iter_mut().zip(taken) {
                *o = v;
            }
        }
    }
}

/// Add columns `col` (layout as [`im2col`] writes it) back into image gradient `x`: the adjoint
/// of im2col, so overlapping windows accumulate. The entries of `col` that fall in the padding
/// are zeroed on the way (they have no pixel to go to).
pub fn col2im(g: &ConvGeom, col: &mut [f32], ld: usize, x: &mut [f32]) {
    let n = g.n();
    if n <= TABLE_PIXELS {
        let (table, plane) = (source_table(g), g.h * g.w);
        for c in 0..g.c {
            let xc = &mut x[c * plane..(c + 1) * plane];
            for (t, sources) in table.chunks_exact(n.max(1)).enumerate() {
                let row = &mut col[(c * g.kh * g.kw + t) * ld..][..n];
                for (v, &s) in row.iter_mut().zip(sources) {
                    match xc.get_mut(s) {
                        Some(d) => *d += *v,
                        None => *v = 0.0,
                    }
                }
            }
        }
        return;
    }
    for c in 0..g.c {
        let xc = &mut x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let r = (c * g.kh + ky) * g.kw + kx;
                let row = &mut col[r * ld..r * ld + n];
                if g.shifts() {
                    // The padding entries become zeros, so the band adds as one shifted run.
                    zero_border_columns(row, g.w, g.valid_rows(ky), g.valid_cols(kx));
                    let (j0, j1, s0) = g.band(ky, kx);
                    for (d, v) in xc[s0..s0 + (j1 - j0)].iter_mut().zip(&row[j0..j1]) {
                        *d += v;
                    }
                } else {
                    scattered_row(g, row, ky, kx, xc);
                }
            }
        }
    }
}

/// col2im of one tap's row, output row by output row.
fn scattered_row(g: &ConvGeom, row: &[f32], ky: usize, kx: usize, xc: &mut [f32]) {
    let (ow, s) = (g.ow, g.stride);
    let (lo, hi) = g.valid_cols(kx);
    for oy in 0..g.oh {
        let Some(iy) = g.input_row(oy, ky) else {
            continue;
        };
        let src = &row[oy * ow + lo..oy * ow + hi];
        let xrow = &mut xc[iy * g.w..(iy + 1) * g.w];
        if lo == hi {
            continue;
        }
        let base = lo * s + kx - g.pad;
        if s == 1 {
            for (d, v) in xrow[base..base + hi - lo].iter_mut().zip(src) {
                *d += v;
            }
        } else if s == 2 {
            // As in `gathered_row`: every second value, the destination cut to what is written.
            let len = hi - lo;
            let (body, last) = xrow[base..base + 2 * len - 1].split_at_mut(2 * (len - 1));
            for (pair, v) in body.chunks_exact_mut(2).zip(src) {
                pair[0] += v;
            }
            last[0] += src[len - 1];
        } else {
            for (v, d) in src.iter().zip(xrow[base..].iter_mut().step_by(s)) {
                *d += v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// im2col against the definition, element by element: strided, "same" stride-1 (the
    /// shifted-copy path, square and not), unpadded and oversized-padding cases.
    #[test]
    fn matches_definition() {
        for ((h, w), (kh, kw), s, p) in [
            ((5, 4), (3, 2), 2, 1),
            ((5, 4), (3, 3), 1, 1),
            ((6, 7), (5, 5), 1, 2),
            ((4, 5), (3, 1), 1, 0),
            ((3, 3), (3, 3), 1, 2),
            ((9, 7), (7, 7), 2, 3),
            // Stride 2 without padding: the last window ends on the row's last value.
            ((8, 9), (3, 3), 2, 0),
            ((6, 9), (1, 1), 2, 0),
            // Over `TABLE_PIXELS` outputs (the per-row paths): "same" stride 1, stride 1
            // unpadded, stride 2 (3x3, the 7x7 stem's padding, 1x1).
            ((12, 11), (3, 3), 1, 1),
            ((12, 12), (3, 3), 1, 0),
            ((20, 18), (3, 3), 2, 1),
            ((18, 18), (7, 7), 2, 3),
            ((20, 20), (1, 1), 2, 0),
            // Taps wholly in the padding: ResNet's last layers on small inputs.
            ((1, 1), (3, 3), 1, 1),
            ((2, 2), (3, 3), 1, 1),
            ((1, 2), (3, 3), 1, 2),
        ] {
            let g = ConvGeom::new((2, h, w), (kh, kw), s, p).unwrap();
            let x: Vec<f32> = (0..g.input_len()).map(|i| i as f32 + 1.0).collect();
            let ld = g.n() + 3;
            let mut col = vec![-7.0; g.k() * ld];
            im2col(&g, &x, &mut col, ld);
            for c in 0..g.c {
                for ky in 0..kh {
                    for kx in 0..kw {
                        for oy in 0..g.oh {
                            for ox in 0..g.ow {
                                let iy = (oy * s + ky) as isize - p as isize;
                                let ix = (ox * s + kx) as isize - p as isize;
                                let inside =
                                    (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                                let want = if inside {
                                    x[c * h * w + iy as usize * w + ix as usize]
                                } else {
                                    0.0
                                };
                                let r = (c * kh + ky) * kw + kx;
                                assert_eq!(
                                    col[r * ld + oy * g.ow + ox],
                                    want,
                                    "{g:?} c{c} tap {ky},{kx} at {oy},{ox}"
                                );
                            }
                        }
                    }
                }
            }
            // The columns past n() are the caller's.
            assert!(
                (0..g.k()).all(|r| col[r * ld + g.n()..(r + 1) * ld].iter().all(|&v| v == -7.0))
            );
        }
    }

    /// `<im2col(x), y> == <x, col2im(y)>`: col2im is the exact adjoint.
    #[test]
    fn col2im_is_the_adjoint() {
        for (k, s, p) in [
            (3, 1, 1),
            (3, 2, 1),
            (1, 2, 0),
            (7, 2, 3),
            (3, 2, 0),
            (2, 3, 0),
            (5, 1, 2),
            (3, 1, 2),
        ] {
            // And images smaller than the kernel, whose border taps lie wholly in the padding.
            // And images of more outputs than `TABLE_PIXELS` (the per-row paths).
            for (h, w) in [(9, 7), (1, 1), (2, 2), (20, 18)] {
                let Some(g) = ConvGeom::new((3, h, w), (k, k), s, p) else {
                    continue;
                };
                adjoint(&g, &format!("{h}x{w} k{k} s{s} p{p}"));
            }
        }
    }

    fn adjoint(g: &ConvGeom, case: &str) {
        {
            let g = *g;
            let x: Vec<f32> = (0..g.input_len()).map(|i| ((i * 7) % 11) as f32).collect();
            let mut y: Vec<f32> = (0..g.k() * g.n()).map(|i| ((i * 5) % 13) as f32).collect();
            let mut col = vec![0.0; g.k() * g.n()];
            im2col(&g, &x, &mut col, g.n());
            let mut back = vec![0.0; g.input_len()];
            col2im(&g, &mut y, g.n(), &mut back);
            let lhs: f64 = col.iter().zip(&y).map(|(a, b)| (a * b) as f64).sum();
            let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
            assert_eq!(lhs, rhs, "{case}");
        }
    }
}
