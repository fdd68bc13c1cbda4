//! im2col straight into the GEMM's `B` panels: column `p` of `B` is the receptive field of output
//! pixel `p`, row `k = (c, ky, kx)` one input tap.
//!
//! The input is copied once with its zero padding made explicit, so a panel row is a few runs
//! along input rows (plain copies for stride-1 convolutions) with no bounds tests per tap. Any
//! block of rows and panels can be filled on its own, which lets the convolution build `B` one
//! cache-sized block at a time instead of materialising it whole.

use std::borrow::Cow;

use rayon::prelude::*;

use super::buf::Buf;
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
    /// The geometry of a convolution over `[c, h, w]`, its output size computed (tests).
    #[cfg(test)]
    pub fn of(c: usize, h: usize, w: usize, kernel: usize, stride: usize, padding: usize) -> Self {
        let out = |n: usize| (n + 2 * padding - kernel) / stride + 1;
        Self {
            c,
            h,
            w,
            kernel,
            stride,
            padding,
            ho: out(h),
            wo: out(w),
        }
    }

    /// Rows of `B`: taps per output pixel.
    pub fn k(&self) -> usize {
        self.c * self.kernel * self.kernel
    }

    /// Columns of `B`: output pixels.
    pub fn n(&self) -> usize {
        self.ho * self.wo
    }
}

/// What im2col copies: f32 for the float path, i8 codes for the integer one. Each has a vector
/// form of the stride-2 gather of a whole panel row (every second value), the copy of the
/// strided stems and downsampling convolutions (a scalar loop was 6% of ResNet18's integer
/// path, nearly all of it the 7x7 stem).
pub trait Element: Copy + Default {
    /// `dst[q] = src[2 q]` for `q < NR`; `src` holds at least `2 NR - 1` values.
    fn gather2(src: &[Self], dst: &mut [Self; NR]) {
        gather2_scalar(src, dst)
    }
}

/// [`Element::gather2`] one value at a time: the portable form, and the vector forms' fallback
/// where their 32-byte loads would read past `src`.
fn gather2_scalar<T: Copy>(src: &[T], dst: &mut [T; NR]) {
    for (q, v) in dst.iter_mut().enumerate() {
        *v = src[2 * q];
    }
}

impl Element for f32 {
    #[cfg(target_arch = "x86_64")]
    fn gather2(src: &[f32], dst: &mut [f32; NR]) {
        use std::arch::x86_64::*;
        if src.len() < 2 * NR {
            // The vector loads would read one value past the last one needed.
            return gather2_scalar(src, dst);
        }
        // SAFETY: SSE2 is part of x86-64's baseline; the loads read `src[..2 NR]` (checked
        // above), the stores write `dst[..NR]`.
        unsafe {
            for i in 0..NR / 4 {
                let a = _mm_loadu_ps(src.as_ptr().add(8 * i));
                let b = _mm_loadu_ps(src.as_ptr().add(8 * i + 4));
                // Lanes 0 and 2 of each: the even values.
                let even = _mm_shuffle_ps::<0b10_00_10_00>(a, b);
                _mm_storeu_ps(dst.as_mut_ptr().add(4 * i), even);
            }
        }
    }
}

impl Element for i8 {
    #[cfg(target_arch = "x86_64")]
    fn gather2(src: &[i8], dst: &mut [i8; NR]) {
        use std::arch::x86_64::*;
        if src.len() < 2 * NR {
            return gather2_scalar(src, dst);
        }
        // SAFETY: SSE2 is part of x86-64's baseline; the loads read `src[..2 NR]` (checked
        // above), the store writes `dst[..NR]`.
        unsafe {
            let p = src.as_ptr().cast::<__m128i>();
            let low = _mm_set1_epi16(0xff);
            // The even bytes as 16-bit words (0..=255), packed back to bytes unsaturated.
            let a = _mm_and_si128(_mm_loadu_si128(p), low);
            let b = _mm_and_si128(_mm_loadu_si128(p.add(1)), low);
            _mm_storeu_si128(dst.as_mut_ptr().cast(), _mm_packus_epi16(a, b));
        }
    }
}

/// The input of one group with explicit zero padding, `[c, h + 2p, w + 2p]`; f32 for the float
/// path, i8 codes for the integer one (whose zero is the code 0: symmetric quantisation).
pub struct Padded<'a, T: Element = f32> {
    data: Cow<'a, [T]>,
    g: Geometry,
    wp: usize,
    plane: usize,
}

impl<'a, T: Element> Padded<'a, T> {
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
                    } else if g.stride == 2 && len == NR {
                        T::gather2(s, d.try_into().expect("len == NR"));
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
    let mut data = Buf::zeroed(n.div_ceil(NR) * k * NR);
    if k > 0 && n > 0 {
        let src = Padded::new(x, g);
        data.par_chunks_mut(k * NR)
            .enumerate()
            .for_each(|(j, panel)| src.fill(0, k, j, panel));
    }
    PanelB { data, k, n }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `B[(c, ky, kx)][(oy, ox)]` by its definition, zero outside the input.
    fn naive<T: Element>(x: &[T], g: &Geometry) -> Vec<T> {
        let (k, n) = (g.k(), g.n());
        let mut b = vec![T::default(); k * n];
        for c in 0..g.c {
            for ky in 0..g.kernel {
                for kx in 0..g.kernel {
                    let row = (c * g.kernel + ky) * g.kernel + kx;
                    for oy in 0..g.ho {
                        for ox in 0..g.wo {
                            let y = (oy * g.stride + ky).checked_sub(g.padding);
                            let xx = (ox * g.stride + kx).checked_sub(g.padding);
                            if let (Some(y), Some(xx)) = (y, xx) {
                                if y < g.h && xx < g.w {
                                    b[row * n + oy * g.wo + ox] = x[(c * g.h + y) * g.w + xx];
                                }
                            }
                        }
                    }
                }
            }
        }
        b
    }

    /// Every panel row against the definition, for f32 and i8, at strides 1, 2 and 3 with output
    /// rows wider than a panel (the whole-row copies and gathers) and narrower ones, padded and
    /// not, up to the last value of the input (the gather's bounds).
    #[test]
    fn fill_is_the_definition() {
        for (c, h, w, kernel, stride, padding) in [
            (3, 70, 69, 7, 2, 3),
            (2, 40, 66, 3, 2, 1),
            (2, 9, 40, 1, 2, 0),
            (2, 12, 37, 3, 1, 1),
            (1, 20, 50, 3, 3, 0),
            (2, 11, 9, 3, 2, 1),
        ] {
            let g = Geometry::of(c, h, w, kernel, stride, padding);
            let x: Vec<f32> = (0..c * h * w).map(|i| (i % 251) as f32 - 125.0).collect();
            let xq: Vec<i8> = x.iter().map(|&v| v as i8).collect();
            let (k, n) = (g.k(), g.n());
            let check = |got: &[f32], want: &[f32]| {
                for j in 0..n.div_ceil(NR) {
                    for i in 0..k {
                        for p in 0..NR.min(n - j * NR) {
                            assert_eq!(
                                got[(j * k + i) * NR + p],
                                want[i * n + j * NR + p],
                                "{g:?}: panel {j}, row {i}, pixel {p}"
                            );
                        }
                    }
                }
            };
            check(&im2col(&x, &g).data, &naive(&x, &g));
            let src = Padded::new(&xq, &g);
            let mut panels = vec![0i8; n.div_ceil(NR) * k * NR];
            for (j, panel) in panels.chunks_exact_mut(k * NR).enumerate() {
                src.fill(0, k, j, panel);
            }
            let as_f32 = |v: &[i8]| v.iter().map(|&q| f32::from(q)).collect::<Vec<_>>();
            check(&as_f32(&panels), &as_f32(&naive(&xq, &g)));
        }
    }
}
