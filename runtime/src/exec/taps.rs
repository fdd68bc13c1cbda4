//! The integer path's input layout for convolutions over a few channels (an RGB stem):
//! i8 codes channel-major with the padding stored, `[c][h + 2p][w + 2p]`, and `B`'s `k` ordered
//! (channel, kernel row, four consecutive kernel columns), so that one k-group of a panel (the 4
//! bytes one `VPDPBUSD` lane multiplies, for 16 pixels) is, for each pixel, 4 consecutive bytes
//! of one padded input row.
//!
//! Why: with `k` in PyTorch's (channel, ky, kx) order a k-group mixes taps of different kernel
//! rows and channels, so the im2col gathered every `k` row at the stride (16 bytes at a time)
//! and then transposed every 4 rows; on ResNet18's 7x7 stride-2 stem that took as long as its
//! GEMM. In this order the 16 pixels of a k-group read `4 + 15 * stride` consecutive bytes, and
//! one byte permute (`VPERMB`, AVX-512 VBMI) or four shuffles (`PSHUFB`, AVX2) put them in the
//! kernel's order. A kernel row whose width is not a multiple of 4 is padded with zero weights
//! (the 7x7 stem: 8 columns, 14% more multiply-adds); the bytes they meet are whatever follows
//! in the row, times zero. Reading quads instead (one pixel's 3 channels and a zero per group)
//! would multiply a quarter zeros.
//!
//! The weights' columns are permuted once at load ([`column_order`]); the integer sums are the
//! same products in another order plus zero products, so exactly the same.

use rayon::prelude::*;

use super::buf::Buf;
use super::im2col::Geometry;
use super::int8_gemm::quantize_into;
use super::kernel::int8::{KGROUP, NR};

/// Kernel columns per k-group.
const G: usize = KGROUP;
/// Bytes one k-group of a panel spans in its input row at most: a 64-byte load at the
/// largest stride this layout takes.
const SPAN: usize = 64;
/// The largest stride: 16 pixels' 4 bytes within one 64-byte load (`15 * stride + 4 <= 64`).
pub const MAX_STRIDE: usize = 4;

/// Whether a convolution over `c` channels reads its input in this layout: ungrouped, with
/// channels that quads would pad (not a multiple of 4), a kernel of at least 3 (a 1x1 one would
/// multiply three quarters zeros) and a stride of at most [`MAX_STRIDE`].
pub fn suits(c: usize, kernel: usize, stride: usize, groups: usize) -> bool {
    groups == 1 && !c.is_multiple_of(G) && kernel >= 3 && (1..=MAX_STRIDE).contains(&stride)
}

/// `k` of the panels: per channel and kernel row, the kernel's columns rounded up to 4.
pub fn panel_k(c: usize, kernel: usize) -> usize {
    c * kernel * kernel.div_ceil(G) * G
}

/// The `k` order of the panels against PyTorch's `(channel, ky, kx)` columns: entry `j` is the
/// original column of column `j` (`None`: a column past the kernel, whose weight is zero).
pub fn column_order(c: usize, kernel: usize) -> Vec<Option<usize>> {
    let kk = kernel * kernel;
    let mut cols = Vec::with_capacity(panel_k(c, kernel));
    for ch in 0..c {
        for ky in 0..kernel {
            for kx in 0..kernel.div_ceil(G) * G {
                cols.push((kx < kernel).then_some(ch * kk + ky * kernel + kx));
            }
        }
    }
    cols
}

/// A convolution's input codes in this layout (see the module doc), in a recycled buffer.
pub struct TapRows {
    c: usize,
    hp: usize,
    wp: usize,
    data: Buf<i8>,
}

impl Drop for TapRows {
    fn drop(&mut self) {
        super::scratch::I8.give(std::mem::take(&mut self.data));
    }
}

impl TapRows {
    /// `x` (`[g.c, g.h, g.w]` floats) quantised with `1 / inv` into padded rows, in parallel.
    pub fn quantize(x: &[f32], g: &Geometry, inv: f32) -> Self {
        Self::build(g, |dst, at| quantize_into(&x[at..at + g.w], dst, inv))
    }

    /// `codes` (`[g.c, g.h, g.w]`, already quantised) into padded rows.
    pub fn from_codes(codes: &[i8], g: &Geometry) -> Self {
        Self::build(g, |dst, at| dst.copy_from_slice(&codes[at..at + g.w]))
    }

    /// Every padded row: zeros, with `row(dst, at)` writing input row `at / w`'s `w` values
    /// (starting at `at`) into its interior; `SPAN` zero bytes after the last row, so every
    /// k-group's load stays inside.
    fn build(g: &Geometry, row: impl Fn(&mut [i8], usize) + Sync) -> Self {
        let (p, hp, wp) = (g.padding, g.h + 2 * g.padding, g.w + 2 * g.padding);
        let len = g.c * hp * wp + SPAN;
        // Recycled: every byte is written below.
        let mut data = super::scratch::I8.take(len, true);
        let (rows, tail) = data.split_at_mut(g.c * hp * wp);
        tail.fill(0);
        if wp > 0 {
            rows.par_chunks_mut(wp).enumerate().for_each(|(r, dst)| {
                let (ch, y) = (r / hp, r % hp);
                match y.checked_sub(p).filter(|&y| y < g.h) {
                    Some(y) => {
                        dst[..p].fill(0);
                        dst[p + g.w..].fill(0);
                        row(&mut dst[p..p + g.w], (ch * g.h + y) * g.w);
                    }
                    None => dst.fill(0),
                }
            });
        }
        Self {
            c: g.c,
            hp,
            wp,
            data,
        }
    }

    /// Panel `j` of convolution `g` over these codes (`panel_k(g.c, g.kernel) * NR` bytes):
    /// every byte written, the columns past the image as zeros. The integer GEMM calls it per
    /// task, just before it multiplies the panel (`int8_gemm::Panels`).
    pub fn fill_panel(&self, g: &Geometry, j: usize, panel: &mut [i8]) {
        debug_assert!(g.c == self.c && g.h + 2 * g.padding == self.hp && g.stride <= MAX_STRIDE);
        debug_assert_eq!(panel.len(), panel_k(g.c, g.kernel) * NR);
        let n = g.n();
        let (first, last) = (j * NR, ((j + 1) * NR).min(n));
        if last - first < NR {
            for group in panel.chunks_exact_mut(NR * G) {
                group[(last - first) * G..].fill(0);
            }
        }
        let permute = Permute::new(g.stride);
        let (plane, per_row) = (self.hp * self.wp, g.kernel.div_ceil(G));
        let mut p = first;
        while p < last {
            // One run of the panel's pixels within an output row.
            let (oy, ox) = (p / g.wo, p % g.wo);
            let len = (g.wo - ox).min(last - p);
            let t = p - first;
            if len == NR {
                // A whole panel from one output row (`t` is 0): every group in one call.
                let run = Run {
                    at: (oy * g.stride) * self.wp + ox * g.stride,
                    c: g.c,
                    kernel: g.kernel,
                    per_row,
                    plane,
                    wp: self.wp,
                };
                permute.run_all(&run, &self.data, panel);
                p += len;
                continue;
            }
            let mut groups = panel.chunks_exact_mut(NR * G);
            for ch in 0..g.c {
                for ky in 0..g.kernel {
                    let row = ch * plane + (oy * g.stride + ky) * self.wp + ox * g.stride;
                    for q in 0..per_row {
                        let dst = &mut groups.next().expect("k / 4 groups per panel")[t * G..];
                        let src = &self.data[row + q * G..];
                        for (i, d) in dst[..len * G].chunks_exact_mut(G).enumerate() {
                            d.copy_from_slice(&src[i * g.stride..][..G]);
                        }
                    }
                }
            }
            p += len;
        }
    }
}

/// One whole panel's pixels, all in one output row: k-group `(ch * kernel + ky) * per_row + q`
/// of the panel is read from `at + ch * plane + ky * wp + q * 4` on.
struct Run {
    at: usize,
    c: usize,
    kernel: usize,
    per_row: usize,
    plane: usize,
    wp: usize,
}

impl Run {
    /// The panel's k-groups' first bytes, in the panel's order.
    fn starts(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.c * self.kernel).flat_map(move |r| {
            let row = self.at + r / self.kernel * self.plane + r % self.kernel * self.wp;
            (0..self.per_row).map(move |q| row + q * G)
        })
    }

    /// The last k-group's first byte.
    fn last(&self) -> usize {
        self.at + (self.c - 1) * self.plane + (self.kernel - 1) * self.wp + (self.per_row - 1) * G
    }
}

/// `dst[4 i + l] = src[stride * i + l]` for 16 pixels `i` and `l < 4`, compiled for the CPU.
#[derive(Clone, Copy)]
struct Permute {
    stride: usize,
    #[cfg(target_arch = "x86_64")]
    how: How,
    /// The byte indices ([`indices`]), made once per panel rather than once per k-group.
    #[cfg(target_arch = "x86_64")]
    idx: [u8; SPAN],
}

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq)]
enum How {
    Vbmi,
    Ssse3,
    Scalar,
}

impl Permute {
    fn new(stride: usize) -> Self {
        #[cfg(target_arch = "x86_64")]
        let how = {
            use super::kernel::KernelPath;
            match super::kernel::path() {
                KernelPath::Avx512F if std::arch::is_x86_feature_detected!("avx512vbmi") => {
                    How::Vbmi
                }
                KernelPath::Avx512F | KernelPath::Avx2Fma => How::Ssse3,
                _ => How::Scalar,
            }
        };
        Self {
            stride,
            #[cfg(target_arch = "x86_64")]
            how,
            #[cfg(target_arch = "x86_64")]
            idx: indices(stride),
        }
    }

    /// Every k-group of `run` from `data` into `panel` (`NR * 4` bytes per group).
    ///
    /// Why one call for the panel: called per k-group, the VBMI permute (a function of its own,
    /// as it is compiled for the CPU) rebuilt its 64 indices every time, and the gather took a
    /// fifth of ResNet18's stem on one thread.
    fn run_all(self, run: &Run, data: &[i8], panel: &mut [i8]) {
        let groups = run.c * run.kernel * run.per_row;
        assert!(
            run.last() + SPAN <= data.len() && panel.len() >= groups * NR * G,
            "taps: a panel's k-groups past the rows"
        );
        #[cfg(target_arch = "x86_64")]
        if self.how == How::Vbmi {
            // SAFETY: `Vbmi` only where the CPU has AVX-512 VBMI (and the kernel path allows
            // AVX-512); every group's 64 bytes lie in `data` (its last checked above, the
            // others start before it) and `panel` holds `groups` groups (checked above).
            return unsafe { permute_all_vbmi(&self.idx, run, data.as_ptr(), panel.as_mut_ptr()) };
        }
        for (start, dst) in run.starts().zip(panel.chunks_exact_mut(NR * G)) {
            self.run(&data[start..], dst);
        }
    }

    /// `src` must hold at least [`SPAN`] bytes, `dst` `NR * 4`.
    #[inline(always)]
    fn run(self, src: &[i8], dst: &mut [i8]) {
        let src: &[i8; SPAN] = src[..SPAN].try_into().expect("a k-group's span");
        let dst: &mut [i8; NR * G] = (&mut dst[..NR * G]).try_into().expect("NR pixels");
        #[cfg(target_arch = "x86_64")]
        match self.how {
            // SAFETY: `Vbmi` only where the CPU has AVX-512 VBMI (and the kernel path allows
            // AVX-512); the loads and stores are the arrays'.
            How::Vbmi => return unsafe { permute_vbmi(&self.idx, src, dst) },
            // SAFETY: `Ssse3` only on the AVX2 or AVX-512 paths, whose CPUs have SSSE3.
            How::Ssse3 => return unsafe { permute_ssse3(&self.idx, self.stride, src, dst) },
            How::Scalar => {}
        }
        for (i, d) in dst.chunks_exact_mut(G).enumerate() {
            d.copy_from_slice(&src[i * self.stride..][..G]);
        }
    }
}

/// The byte indices of [`Permute`]: `4 i + l` takes `stride * i + l` (`i < pixels`).
#[cfg(target_arch = "x86_64")]
fn indices<const N: usize>(stride: usize) -> [u8; N] {
    std::array::from_fn(|b| ((b / G) * stride + b % G) as u8)
}

/// # Safety
/// AVX-512F and AVX-512 VBMI must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vbmi")]
unsafe fn permute_vbmi(idx: &[u8; SPAN], src: &[i8; SPAN], dst: &mut [i8; NR * G]) {
    use std::arch::x86_64::*;
    // SAFETY: 64-byte loads and store of the arrays.
    unsafe {
        let v = _mm512_permutexvar_epi8(
            _mm512_loadu_si512(idx.as_ptr().cast()),
            _mm512_loadu_si512(src.as_ptr().cast()),
        );
        _mm512_storeu_si512(dst.as_mut_ptr().cast(), v);
    }
}

/// [`Permute::run_all`] in AVX-512 VBMI: per k-group one load, one `VPERMB`, one store.
///
/// # Safety
/// AVX-512F and AVX-512 VBMI must be available; 64 bytes from every group's start
/// ([`Run::starts`]) readable at `data`, and the run's groups' `NR * 4` bytes each writable at
/// `panel`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vbmi")]
unsafe fn permute_all_vbmi(idx: &[u8; SPAN], run: &Run, data: *const i8, panel: *mut i8) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's extents.
    unsafe {
        let idx = _mm512_loadu_si512(idx.as_ptr().cast());
        for (i, start) in run.starts().enumerate() {
            let v = _mm512_loadu_si512(data.add(start).cast());
            _mm512_storeu_si512(
                panel.add(i * NR * G).cast(),
                _mm512_permutexvar_epi8(idx, v),
            );
        }
    }
}

/// Four pixels per 16-byte shuffle, each from its own load at `4 * stride * q`.
///
/// # Safety
/// SSSE3 must be available; `stride <= MAX_STRIDE` (the last load ends at `12 * stride + 16 <=
/// 64`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn permute_ssse3(idx: &[u8; SPAN], stride: usize, src: &[i8; SPAN], dst: &mut [i8; NR * G]) {
    use std::arch::x86_64::*;
    // SAFETY: loads at `4 * stride * q + 16 <= 64` bytes of `src`, stores within `dst`; the
    // first 16 of `idx`, the four pixels' indices.
    unsafe {
        let idx = _mm_loadu_si128(idx.as_ptr().cast());
        for q in 0..4 {
            let v = _mm_loadu_si128(src.as_ptr().add(4 * stride * q).cast());
            _mm_storeu_si128(
                dst.as_mut_ptr().add(16 * q).cast(),
                _mm_shuffle_epi8(v, idx),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every panel against the definition, `B[column_order[kk]][pixel]` from the unpadded codes
    /// (zero outside the input and for the padded columns): the 7x7/2 stem, 3x3 at strides 1, 2
    /// and 4, output rows wider and narrower than a panel (runs that wrap rows, ragged last
    /// panels), from floats and from codes.
    #[test]
    fn panels_are_the_definition() {
        for (c, h, w, kernel, stride, padding) in [
            (3, 37, 40, 7, 2, 3),
            (3, 20, 35, 3, 1, 1),
            (1, 9, 70, 3, 2, 0),
            (2, 21, 75, 5, 4, 2),
            (3, 11, 9, 3, 2, 1),
        ] {
            let g = Geometry::of(c, h, w, kernel, stride, padding);
            let x: Vec<f32> = (0..c * h * w).map(|i| (i % 251) as f32 - 125.0).collect();
            let codes: Vec<i8> = x.iter().map(|&v| v as i8).collect();
            let order = column_order(c, kernel);
            let (k, n) = (panel_k(c, kernel), g.n());
            assert_eq!(order.len(), k);
            let want = |kk: usize, p: usize| -> i8 {
                let Some(col) = order[kk] else { return 0 };
                let (ch, ky, kx) = (col / (kernel * kernel), col / kernel % kernel, col % kernel);
                let (oy, ox) = (p / g.wo, p % g.wo);
                let y = (oy * stride + ky).checked_sub(padding).filter(|&y| y < h);
                let xx = (ox * stride + kx).checked_sub(padding).filter(|&x| x < w);
                match (y, xx) {
                    (Some(y), Some(xx)) => codes[(ch * h + y) * w + xx],
                    _ => 0,
                }
            };
            for src in [
                TapRows::quantize(&x, &g, 1.0),
                TapRows::from_codes(&codes, &g),
            ] {
                let mut panel = vec![55i8; k * NR];
                for j in 0..n.div_ceil(NR) {
                    src.fill_panel(&g, j, &mut panel);
                    for kk in 0..k {
                        for px in 0..NR {
                            let got = panel[(kk / G * NR + px) * G + kk % G];
                            // Columns past the kernel meet real bytes: only their weight is 0.
                            if order[kk].is_none() && j * NR + px < n {
                                continue;
                            }
                            let p = j * NR + px;
                            let expect = if p < n { want(kk, p) } else { 0 };
                            assert_eq!(got, expect, "{g:?}: panel {j}, k {kk}, pixel {px}");
                        }
                    }
                }
            }
        }
    }
}
