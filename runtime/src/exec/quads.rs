//! The integer path's activation layout between convolutions: i8 codes in *quads*, `[c / 4][h +
//! 2p][w + 2p][4]` (four channels interleaved per pixel, the zero padding of the convolutions that
//! read them already in place).
//!
//! Why: the int8 micro-kernels take `B` in groups of 4 along `k` (`[k / 4][NR][4]`, the 4 bytes
//! one `VPMADDUBSW`/`VPDPBUSD` lane multiplies). With channel-major codes (`[c][h][w]`) the im2col
//! copied 16 bytes per (channel, ky, kx) and then transposed every 4 rows; on ResNet18 that was
//! 15% of the integer path's time, more than half of what was not the micro-kernel. When `k` is
//! ordered (channel quad, ky, kx, channel in the quad) instead, one k-group of a panel is the 4
//! channels of 16 consecutive pixels: for a stride-1 convolution, 64 contiguous bytes of a quad
//! plane, one copy, no transpose, and no bounds tests (the padding is stored). The weights'
//! columns are permuted the same way once at load ([`column_order`]); the integer sums are the
//! same products in another order, so exactly the same.
//!
//! The producing convolution's epilogue writes its requantised output straight into this layout
//! (`int8_gemm::CodesOut::Quads`); a convolution whose input comes as floats quantises it into
//! quads itself ([`Quads::quantize`]).

use rayon::prelude::*;

use super::buf::Buf;
use super::im2col::Geometry;
use super::int8_gemm::{quantize, PanelB8};
use super::kernel::int8::{KGROUP, NR};

/// Channels per quad: the micro-kernels' group along `k`.
pub const Q: usize = KGROUP;

/// The extents of a tensor stored in quads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuadShape {
    /// Channels (the last quad zero-filled beyond them), height and width without padding.
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Zero border stored around every plane: the largest padding of the convolutions reading it.
    pub pad: usize,
}

impl QuadShape {
    pub fn quads(&self) -> usize {
        self.c.div_ceil(Q)
    }

    /// Padded width.
    pub fn wp(&self) -> usize {
        self.w + 2 * self.pad
    }

    /// Bytes of one quad's plane.
    pub fn plane(&self) -> usize {
        (self.h + 2 * self.pad) * self.wp() * Q
    }

    /// Bytes of the whole tensor.
    pub fn len(&self) -> usize {
        self.quads() * self.plane()
    }

    /// Offset of pixel `(y, x)` (unpadded coordinates) within a plane.
    pub(super) fn at(&self, y: usize, x: usize) -> usize {
        ((y + self.pad) * self.wp() + x + self.pad) * Q
    }

    /// `f(i, run, at)` for each run of contiguous pixels among `p0..p0 + len` in a plane: pixels
    /// `p0 + i..p0 + i + run`, the first at byte `at`. A run ends with its image row, or with
    /// `len` when the rows are stored without padding between them.
    #[inline(always)]
    pub(super) fn runs(&self, p0: usize, len: usize, f: impl FnMut(usize, usize, usize)) {
        self.runs_at((p0 / self.w, p0 % self.w), len, f)
    }

    /// [`QuadShape::runs`] from pixel `p0` at row `y`, column `x` (`p0 = y w + x`), walking the
    /// rows without a division per run: a block's finisher works out `(y, x)` once for all its
    /// quads (dividing per quad and run was a division for each store and residual load).
    #[inline(always)]
    pub(super) fn runs_at(
        &self,
        (mut y, mut x): (usize, usize),
        len: usize,
        mut f: impl FnMut(usize, usize, usize),
    ) {
        debug_assert!(x < self.w.max(1));
        let mut i = 0;
        while i < len {
            let run = if self.pad == 0 {
                len - i
            } else {
                (self.w - x).min(len - i)
            };
            f(i, run, self.at(y, x));
            i += run;
            x += run;
            if x >= self.w {
                // A run ends with its image row, or (no padding: one run) with `len`, after
                // which `(y, x)` are not read: the next row, without a division.
                y += 1;
                x -= self.w;
            }
        }
    }
}

/// A stride-1 convolution's panels read where they lie in its input's quads, for the AVX-512
/// VNNI blocks (`int8_gemm`): for 16 output pixels of one output row, the k-group of channel
/// quad `q` and tap `(ky, kx)` is the 64 bytes at `q * plane + (ky * wp + kx) * 4` from the
/// first pixel's window, so such a panel needs no gather (the copy of every group into a panel
/// buffer, [`Quads::fill_panel`], was 4.4% of ResNet18's integer path on one thread). Panels
/// that cross an output row (one of 3.5 at 56 wide) are still gathered, except where the rows
/// lie end to end in the same order as the output's ([`InPlace::whole`]).
pub struct InPlace<'a> {
    quads: &'a Quads,
    geo: Geometry,
    /// Per k-group, its offset from a panel's first window.
    taps: Vec<u32>,
    /// Bytes a panel reads from its first window's start.
    far: usize,
}

impl InPlace<'_> {
    /// The k-groups' offsets ([`InPlace::panel`]'s reads at `panel + taps[g]`).
    pub fn taps(&self) -> &[u32] {
        &self.taps
    }

    /// Whether every whole panel lies in place: a 1x1 stride-1 convolution over quads stored
    /// without padding, whose input pixel `p` is its output pixel `p`, so a panel crossing an
    /// output row is still 64 contiguous bytes per group. Every 1x1 stride-1 convolution of
    /// ResNet50 reads such an input: its readers are all 1x1 (pad 0). Only the last panel,
    /// when short of 16 pixels, is gathered.
    pub fn whole(&self) -> bool {
        Quads::whole_in_place(self.quads, &self.geo)
    }

    /// Panel `j`'s first window when its 16 pixels lie in one output row, or anywhere when
    /// [`InPlace::whole`] (every read of its groups checked to lie in the codes), else `None`.
    pub fn panel(&self, j: usize) -> Option<*const i8> {
        let (g, s) = (&self.geo, &self.quads.shape);
        let p = j * NR;
        let (oy, ox) = (p / g.wo, p % g.wo);
        if p + NR > g.n() || (ox + NR > g.wo && !self.whole()) {
            return None;
        }
        let d = s.pad - g.padding;
        let at = ((oy + d) * s.wp() + ox + d) * Q;
        assert!(at + self.far <= self.quads.data.len(), "InPlace: extents");
        Some(self.quads.data[at..].as_ptr())
    }
}

/// A tensor's i8 codes in quads (see the module doc).
pub struct Quads {
    pub shape: QuadShape,
    pub data: Buf<i8>,
}

impl Drop for Quads {
    fn drop(&mut self) {
        super::scratch::I8.give(std::mem::take(&mut self.data));
    }
}

impl Quads {
    /// All codes zero (the padding, and the channels past `c`, stay so).
    pub fn zeroed(shape: QuadShape) -> Self {
        Self {
            shape,
            data: Buf::zeroed(shape.len()),
        }
    }

    /// A tensor whose every pixel of every channel the caller writes (an epilogue's requantised
    /// output, [`Quads::quantize`]): a recycled buffer with only the padding, and the planes of
    /// a last quad short of channels, zeroed, in parallel. A fresh zeroed buffer per integer
    /// convolution was a `memset` on the executor's thread while the other one waited (with
    /// the page faults of a new allocation, 3% of ResNet18's integer path).
    pub fn recycled(shape: QuadShape) -> Self {
        let mut data = super::scratch::I8.take(shape.len(), true);
        let (h, w, p, row) = (shape.h, shape.w, shape.pad, shape.wp() * Q);
        if shape.plane() > 0 {
            data.par_chunks_mut(shape.plane())
                .enumerate()
                .for_each(|(q, plane)| {
                    if (q + 1) * Q > shape.c {
                        plane.fill(0);
                    } else if p > 0 {
                        plane[..p * row].fill(0);
                        plane[(p + h) * row..].fill(0);
                        for r in plane[p * row..(p + h) * row].chunks_exact_mut(row) {
                            if p == 1 {
                                // One pixel each side (every 3x3 convolution's input): a
                                // four-byte store, where `fill` was a call to `memset` for
                                // four bytes, twice per row (1% of ResNet18's integer path).
                                r[..Q].copy_from_slice(&[0; Q]);
                                r[(1 + w) * Q..].copy_from_slice(&[0; Q]);
                            } else {
                                r[..p * Q].fill(0);
                                r[(p + w) * Q..].fill(0);
                            }
                        }
                    }
                });
        }
        Self { shape, data }
    }

    /// `x` (`[c, h, w]` floats) quantised with `1 / inv` (ties to even, clamped, as
    /// [`quantize`]), quads in parallel.
    pub fn quantize(x: &[f32], shape: QuadShape, inv: f32) -> Self {
        let hw = shape.h * shape.w;
        assert_eq!(x.len(), shape.c * hw, "Quads::quantize: input size");
        let mut q = Self::recycled(shape);
        if hw > 0 {
            q.data
                .par_chunks_mut(shape.plane())
                .zip(x.par_chunks(Q * hw))
                .for_each(|(plane, rows)| store_quad(plane, &shape, rows, inv));
        }
        q
    }

    /// The `B` panels of convolution `g` (ungrouped, reading this tensor) with `k` in the order
    /// of [`column_order`]; `scale` is what one code is worth. Every k-group of a panel is a copy
    /// of 4-byte pixels: 64 contiguous bytes for 16 pixels of one output row at stride 1.
    pub fn im2col(&self, g: &Geometry, scale: f32) -> PanelB8 {
        let (k, n) = (self.panel_k(g), g.n());
        let len = n.div_ceil(NR) * k * NR;
        // Recycled: every byte up to `len` is written below (see `scratch`).
        let mut data = super::scratch::I8.take(len, false);
        if k > 0 && n > 0 {
            data[..len]
                .par_chunks_mut(k * NR)
                .enumerate()
                .for_each(|(j, panel)| self.fill_panel(g, j, panel));
        }
        PanelB8 {
            data,
            k,
            k4: k,
            n,
            scale,
            nonneg: false,
        }
    }

    /// Where the blocks can read stride-1 convolution `g`'s panels where they lie ([`InPlace`]),
    /// `None` at other strides.
    pub fn in_place(&self, g: &Geometry) -> Option<InPlace<'_>> {
        if g.stride != 1 || g.n() == 0 {
            return None;
        }
        let s = &self.shape;
        // `panel_k` checks that `g` reads this tensor.
        let groups = self.panel_k(g) / Q;
        let (wp, plane) = (s.wp(), s.plane());
        let taps: Vec<u32> = (0..groups)
            .map(|t| {
                let (q, tap) = (t / (g.kernel * g.kernel), t % (g.kernel * g.kernel));
                let at = q * plane + ((tap / g.kernel) * wp + tap % g.kernel) * Q;
                u32::try_from(at).expect("quads under 4 GiB")
            })
            .collect();
        Some(InPlace {
            quads: self,
            geo: *g,
            far: taps.iter().max().map_or(0, |&t| t as usize) + NR * Q,
            taps,
        })
    }

    /// Whether convolution `g` over this tensor reads every whole panel in place
    /// ([`InPlace::whole`]).
    pub fn whole_in_place(&self, g: &Geometry) -> bool {
        g.kernel == 1 && g.stride == 1 && self.shape.pad == 0
    }

    /// `k` of convolution `g`'s panels over this tensor (checking that `g` reads it).
    pub fn panel_k(&self, g: &Geometry) -> usize {
        let s = &self.shape;
        assert!(
            (g.c, g.h, g.w) == (s.c, s.h, s.w) && g.padding <= s.pad,
            "Quads: a convolution over {:?} reads a tensor stored as {s:?}",
            (g.c, g.h, g.w, g.padding)
        );
        s.quads() * g.kernel * g.kernel * Q
    }

    /// Panel `j` of [`Quads::im2col`] (`k * NR` bytes, `k` from [`Quads::panel_k`]): every byte
    /// written, the columns past the image as zeros. The integer GEMM also calls it per task, to
    /// gather a panel just before it multiplies it (see `int8_gemm::Panels`).
    pub fn fill_panel(&self, g: &Geometry, j: usize, panel: &mut [i8]) {
        let (s, n) = (&self.shape, g.n());
        debug_assert_eq!(panel.len(), self.panel_k(g) * NR);
        // Padding stored beyond the convolution's own: its window starts `d` further in.
        let (d, wp, plane) = (s.pad - g.padding, s.wp(), s.plane());
        // The panel's pixels as runs within one output row, each run's first input.
        let mut runs = [(0usize, 0usize, 0usize); NR];
        let mut count = 0;
        let (first, last) = (j * NR, ((j + 1) * NR).min(n));
        let mut p = first;
        while p < last {
            let (oy, ox) = (p / g.wo, p % g.wo);
            let len = (g.wo - ox).min(last - p);
            let off = ((oy * g.stride + d) * wp + ox * g.stride + d) * Q;
            runs[count] = (p - first, len, off);
            count += 1;
            p += len;
        }
        let runs = &runs[..count];
        if last - first < NR {
            // The last panel's columns past the image: zeros, not stale bytes.
            for group in panel.chunks_exact_mut(NR * Q) {
                group[(last - first) * Q..].fill(0);
            }
        }
        #[cfg(target_arch = "x86_64")]
        if gathers_avx512bw() || gathers_avx2() {
            // The last byte any run reads, for the last tap of the last quad.
            let far = runs
                .iter()
                .map(|&(_, len, off)| off + ((len - 1) * g.stride + 1) * Q)
                .max()
                .unwrap_or(0)
                + (s.quads().max(1) - 1) * plane
                + ((g.kernel - 1) * wp + g.kernel - 1) * Q;
            assert!(
                far <= self.data.len() && panel.len() >= s.quads() * g.kernel * g.kernel * NR * Q,
                "fill_panel: extents"
            );
            // SAFETY: the CPU has AVX-512F and BW (`gathers_avx512bw`) or AVX2 (`gathers_avx2`);
            // every run of every tap reads within the codes (the farthest byte checked above)
            // and writes within its group of the panel (`t + len <= NR`; the panel's groups
            // checked above).
            return unsafe {
                if gathers_avx512bw() {
                    self.gather_avx512bw(g, runs, panel)
                } else {
                    self.gather_avx2(g, runs, panel)
                }
            };
        }
        let mut groups = panel.chunks_exact_mut(NR * Q);
        for src in self.data.chunks_exact(plane) {
            for ky in 0..g.kernel {
                for kx in 0..g.kernel {
                    let dst = groups.next().expect("k / 4 groups per panel");
                    let tap = (ky * wp + kx) * Q;
                    for &(t, len, off) in runs {
                        copy_pixels(&src[off + tap..], g.stride, len, &mut dst[t * Q..]);
                    }
                }
            }
        }
    }
}

impl Quads {
    /// [`Quads::fill_panel`]'s copies in AVX-512: a whole 16-pixel run one 64-byte move, a
    /// shorter one (a panel that wraps an output row: most of them on 28-, 14- and 7-pixel
    /// rows) one masked load and store instead of a `memmove` call, a stride-2 run two masked
    /// loads and a permute; pointers stepped per tap, no bounds tests in the loop (the caller
    /// checks the farthest byte once).
    ///
    /// # Safety
    /// AVX-512F and AVX-512BW must be available; every byte a run reads (`off + tap` to `off +
    /// tap + ((len - 1) * stride + 1) * 4` for every tap of every quad) must lie in the codes,
    /// and `panel` must hold every group.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn gather_avx512bw(
        &self,
        g: &Geometry,
        runs: &[(usize, usize, usize)],
        panel: &mut [i8],
    ) {
        use std::arch::x86_64::*;
        let s = &self.shape;
        let (wp, plane) = (s.wp(), s.plane());
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let data = self.data.as_ptr();
        let mut dst = panel.as_mut_ptr();
        // SAFETY: the caller guarantees the extents of every access below.
        unsafe {
            for q in 0..s.quads() {
                for ky in 0..g.kernel {
                    for kx in 0..g.kernel {
                        let tap = data.add(q * plane + (ky * wp + kx) * Q);
                        for &(t, len, off) in runs {
                            let (src, d) = (tap.add(off), dst.add(t * Q));
                            match g.stride {
                                1 if len == NR => {
                                    _mm512_storeu_si512(d.cast(), _mm512_loadu_si512(src.cast()))
                                }
                                1 => {
                                    let m = u64::MAX >> (64 - len * Q);
                                    let v = _mm512_maskz_loadu_epi8(m, src);
                                    _mm512_mask_storeu_epi8(d, m, v);
                                }
                                2 => {
                                    // Dwords 0, 2, .., 2 (len - 1) of the 32 from `src`.
                                    let last = 2 * (len - 1);
                                    let lo = (u32::MAX >> (31 - last.min(15))) as __mmask16;
                                    let hi = if last >= 16 {
                                        (u32::MAX >> (31 - (last - 16))) as __mmask16
                                    } else {
                                        0
                                    };
                                    let v = _mm512_permutex2var_epi32(
                                        _mm512_maskz_loadu_epi32(lo, src.cast()),
                                        even,
                                        _mm512_maskz_loadu_epi32(hi, src.add(64).cast()),
                                    );
                                    let m = (u32::MAX >> (32 - len)) as __mmask16;
                                    _mm512_mask_storeu_epi32(d.cast(), m, v);
                                }
                                stride => {
                                    for i in 0..len {
                                        std::ptr::copy_nonoverlapping(
                                            src.add(i * stride * Q),
                                            d.add(i * Q),
                                            Q,
                                        );
                                    }
                                }
                            }
                        }
                        dst = dst.add(NR * Q);
                    }
                }
            }
        }
    }

    /// [`Quads::gather_avx512bw`] on AVX2: a whole 16-pixel run two 32-byte moves, a shorter one
    /// masked 4-byte lanes (`VPMASKMOVD`, a pixel per lane), a whole stride-2 run two shuffles and
    /// permutes ([`every_other_pixel`]), pointers stepped per tap and no bounds tests in the loop
    /// (on Zen 3 the generic copies with their bounds tests and `memmove` calls were 5% of
    /// ResNet18's integer path).
    ///
    /// # Safety
    /// AVX2 must be available; otherwise as [`Quads::gather_avx512bw`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn gather_avx2(&self, g: &Geometry, runs: &[(usize, usize, usize)], panel: &mut [i8]) {
        use std::arch::x86_64::*;
        let s = &self.shape;
        let (wp, plane) = (s.wp(), s.plane());
        let data = self.data.as_ptr();
        // A whole stride-2 run reads 4 bytes past its last pixel: only where the codes go on.
        let end = data.wrapping_add(self.data.len());
        let mut dst = panel.as_mut_ptr();
        // Lane `i` set when `i < len` (for the first 8 pixels) or `i + 8 < len`.
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mask = |len: usize| _mm256_cmpgt_epi32(_mm256_set1_epi32(len as i32), lanes);
        // SAFETY: the caller guarantees the extents of every access below.
        unsafe {
            for q in 0..s.quads() {
                for ky in 0..g.kernel {
                    for kx in 0..g.kernel {
                        let tap = data.add(q * plane + (ky * wp + kx) * Q);
                        for &(t, len, off) in runs {
                            let (src, d) = (tap.add(off), dst.add(t * Q));
                            match g.stride {
                                1 if len == NR => {
                                    let (s0, d0) = (src.cast::<__m256i>(), d.cast::<__m256i>());
                                    _mm256_storeu_si256(d0, _mm256_loadu_si256(s0));
                                    _mm256_storeu_si256(d0.add(1), _mm256_loadu_si256(s0.add(1)));
                                }
                                1 => {
                                    let (s0, d0) = (src.cast::<i32>(), d.cast::<i32>());
                                    let m0 = mask(len);
                                    _mm256_maskstore_epi32(d0, m0, _mm256_maskload_epi32(s0, m0));
                                    if len > 8 {
                                        let m1 = mask(len - 8);
                                        let v = _mm256_maskload_epi32(s0.add(8), m1);
                                        _mm256_maskstore_epi32(d0.add(8), m1, v);
                                    }
                                }
                                2 if len == NR && src.wrapping_add(2 * NR * Q) <= end => {
                                    let from = &*src.cast::<[i8; 2 * NR * Q]>();
                                    every_other_pixel(from, &mut *d.cast::<[i8; NR * Q]>());
                                }
                                stride => {
                                    for i in 0..len {
                                        std::ptr::copy_nonoverlapping(
                                            src.add(i * stride * Q),
                                            d.add(i * Q),
                                            Q,
                                        );
                                    }
                                }
                            }
                        }
                        dst = dst.add(NR * Q);
                    }
                }
            }
        }
    }
}

/// Whether [`Quads::fill_panel`] copies with AVX2 (the f32 path chose it, under `FQ_MAX_ISA`).
#[cfg(target_arch = "x86_64")]
fn gathers_avx2() -> bool {
    super::kernel::path() == super::kernel::KernelPath::Avx2Fma
}

/// Whether [`Quads::fill_panel`] copies with AVX-512 (F and BW, under `FQ_MAX_ISA`).
#[cfg(target_arch = "x86_64")]
fn gathers_avx512bw() -> bool {
    static YES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *YES.get_or_init(|| {
        super::kernel::path() == super::kernel::KernelPath::Avx512F
            && std::arch::is_x86_feature_detected!("avx512bw")
    })
}

/// `len` 4-byte pixels, `stride` pixels apart in `src`, to the start of `dst`.
#[inline(always)]
fn copy_pixels(src: &[i8], stride: usize, len: usize, dst: &mut [i8]) {
    if stride == 1 && len == NR {
        // A whole panel row at stride 1: one copy of constant size (two 32-byte moves), not a
        // memmove call.
        let d: &mut [i8; NR * Q] = (&mut dst[..NR * Q]).try_into().expect("NR pixels");
        d.copy_from_slice(&src[..NR * Q]);
    } else if stride == 2 && len == NR && src.len() >= 2 * NR * Q {
        let s: &[i8; 2 * NR * Q] = src[..2 * NR * Q].try_into().expect("2 NR pixels");
        let d: &mut [i8; NR * Q] = (&mut dst[..NR * Q]).try_into().expect("NR pixels");
        every_other_pixel(s, d);
    } else if stride == 1 {
        dst[..len * Q].copy_from_slice(&src[..len * Q]);
    } else {
        for (i, d) in dst[..len * Q].chunks_exact_mut(Q).enumerate() {
            d.copy_from_slice(&src[i * stride * Q..][..Q]);
        }
    }
}

/// `dst` = the even pixels of `src` (4 bytes each): a whole panel row at stride 2, the stem's
/// and every downsampling convolution's. On x86-64 two vector permutes (AVX-512F) or four
/// shuffles (AVX2) instead of sixteen 4-byte copies, which made ResNet18's stem read as quads
/// slower than its channel-major im2col.
#[inline(always)]
fn every_other_pixel(src: &[i8; 2 * NR * Q], dst: &mut [i8; NR * Q]) {
    #[cfg(target_arch = "x86_64")]
    {
        use super::kernel::KernelPath;
        use std::arch::x86_64::*;
        match super::kernel::path() {
            // SAFETY: the path is AVX-512F only where the CPU has it; the loads read the 128
            // bytes of `src`, the store writes the 64 of `dst`.
            KernelPath::Avx512F => unsafe {
                return every_other_pixel_avx512(src, dst);
            },
            // SAFETY: as above, for AVX2 (four 32-byte loads, two 32-byte stores).
            KernelPath::Avx2Fma => unsafe {
                return every_other_pixel_avx2(src, dst);
            },
            _ => {}
        }
        #[target_feature(enable = "avx512f")]
        unsafe fn every_other_pixel_avx512(src: &[i8; 2 * NR * Q], dst: &mut [i8; NR * Q]) {
            // SAFETY: the caller guarantees AVX-512F; the extents are the arrays'.
            unsafe {
                let p = src.as_ptr().cast::<__m512i>();
                let even =
                    _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                let v = _mm512_permutex2var_epi32(
                    _mm512_loadu_si512(p.cast()),
                    even,
                    _mm512_loadu_si512(p.add(1).cast()),
                );
                _mm512_storeu_si512(dst.as_mut_ptr().cast(), v);
            }
        }
        #[target_feature(enable = "avx2")]
        unsafe fn every_other_pixel_avx2(src: &[i8; 2 * NR * Q], dst: &mut [i8; NR * Q]) {
            // SAFETY: the caller guarantees AVX2; the extents are the arrays'.
            unsafe {
                let p = src.as_ptr().cast::<__m256>();
                let half = |i: usize| {
                    // Pixels 0, 2, 8, 10 | 4, 6, 12, 14 of the pair, then in order.
                    let v = _mm256_shuffle_ps::<0x88>(
                        _mm256_loadu_ps(p.add(2 * i).cast()),
                        _mm256_loadu_ps(p.add(2 * i + 1).cast()),
                    );
                    _mm256_castpd_si256(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(v)))
                };
                let d = dst.as_mut_ptr().cast::<__m256i>();
                _mm256_storeu_si256(d, half(0));
                _mm256_storeu_si256(d.add(1), half(1));
            }
        }
    }
    for (i, d) in dst.chunks_exact_mut(Q).enumerate() {
        d.copy_from_slice(&src[2 * i * Q..][..Q]);
    }
}

/// One quad's plane from up to 4 channels of floats (`rows` is `[l][h * w]`, `l <= 4`),
/// quantised with `1 / inv`; the padding and the missing channels are left as they are.
pub fn store_quad(plane: &mut [i8], shape: &QuadShape, rows: &[f32], inv: f32) {
    let hw = shape.h * shape.w;
    debug_assert!(rows.len() <= Q * hw && rows.len().is_multiple_of(hw.max(1)));
    assert_eq!(plane.len(), shape.plane(), "store_quad: plane size");
    if hw == 0 {
        return;
    }
    let channels: Vec<&[f32]> = rows.chunks_exact(hw).collect();
    // SAFETY: `plane` is a whole plane of `shape` (asserted), borrowed mutably here.
    unsafe { store_quad_pixels(plane.as_mut_ptr(), shape, &channels, 0, inv) };
}

/// [`store_quad`] for the pixels `p0..p0 + len` (row-major over `h x w`) only: `rows[l]` holds
/// channel `l`'s `len` values (1 to 4 channels). What a task of the integer GEMM that owns a
/// range of pixels writes, while other tasks write the plane's other pixels.
///
/// # Safety
/// `plane` must point to a plane of `shape` (`shape.plane()` bytes) whose pixels `p0..p0 + len`
/// no one else reads or writes meanwhile, with `p0 + len <= h * w`.
pub unsafe fn store_quad_pixels(
    plane: *mut i8,
    shape: &QuadShape,
    rows: &[&[f32]],
    p0: usize,
    inv: f32,
) {
    let len = rows.first().map_or(0, |r| r.len());
    debug_assert!(rows.len() <= Q && rows.iter().all(|r| r.len() == len));
    debug_assert!(p0 + len <= shape.h * shape.w);
    shape.runs(p0, len, |i, run, at| {
        // SAFETY: the run's pixels lie inside the plane (`y < h`, `x + run <= w`, or the rest of
        // the unpadded plane), and the caller guarantees no one else touches them.
        let dst = unsafe { std::slice::from_raw_parts_mut(plane.add(at), run * Q) };
        let s = i..i + run;
        if let [r0, r1, r2, r3] = rows {
            // The common case, four channels: fixed-size pixels in registers.
            interleave(
                [&r0[s.clone()], &r1[s.clone()], &r2[s.clone()], &r3[s]],
                dst,
                inv,
            );
        } else {
            for (l, row) in rows.iter().enumerate() {
                for (px, &v) in dst.chunks_exact_mut(Q).zip(&row[s.clone()]) {
                    px[l] = quantize(v, inv);
                }
            }
        }
    });
}

/// The inverse of [`store_quad_pixels`]: `rows[l][i] = code * scale` for channel `l` of pixel
/// `p0 + i`, from the plane's codes (1 to 4 channels). What the integer GEMM reads when a
/// residual is added from its codes (`int8_gemm::Residual8`).
///
/// # Safety
/// `plane` must point to a plane of `shape` (`shape.plane()` bytes) whose pixels `p0..p0 + len`
/// no one writes meanwhile, with `p0 + len <= h * w`.
pub unsafe fn load_quad_pixels(
    plane: *const i8,
    shape: &QuadShape,
    rows: &mut [&mut [f32]],
    p0: usize,
    scale: f32,
) {
    let len = rows.first().map_or(0, |r| r.len());
    debug_assert!(rows.len() <= Q && rows.iter().all(|r| r.len() == len));
    debug_assert!(p0 + len <= shape.h * shape.w);
    shape.runs(p0, len, |i, run, at| {
        // SAFETY: the run's pixels lie inside the plane, which no one writes meanwhile.
        let src = unsafe { std::slice::from_raw_parts(plane.add(at), run * Q) };
        deinterleave(src, rows, i, scale);
    });
}

/// `rows[l][at + i] = src[4 i + l] * scale` for every pixel `i` of `src` and row `l`.
///
/// Four rows on AVX-512F (sixteen pixels at a time) or AVX2 (eight, the rest by the scalar
/// loop): each pixel's four codes are one 32-bit lane, and channel `l` is that lane shifted left
/// by `24 - 8 l` and back right arithmetically by 24 (its sign-extended byte), converted and
/// scaled. The same floats as the scalar loop (a code times the scale, one rounding).
fn deinterleave(src: &[i8], rows: &mut [&mut [f32]], at: usize, scale: f32) {
    let n = src.len() / Q;
    assert!(
        rows.iter().all(|r| r.len() >= at + n),
        "deinterleave: extents"
    );
    // Pixels done by the vector loops.
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    #[cfg(target_arch = "x86_64")]
    let done = match rows {
        [r0, r1, r2, r3] => {
            let dst = [
                &mut r0[at..at + n],
                &mut r1[at..at + n],
                &mut r2[at..at + n],
                &mut r3[at..at + n],
            ];
            match super::kernel::path() {
                // SAFETY: the path is AVX-512F only where the CPU has it; extents checked.
                super::kernel::KernelPath::Avx512F => unsafe {
                    deinterleave_avx512(src, dst, scale)
                },
                // SAFETY: as above, for AVX2.
                super::kernel::KernelPath::Avx2Fma => unsafe { deinterleave_avx2(src, dst, scale) },
                _ => 0,
            }
        }
        _ => 0,
    };
    for (l, row) in rows.iter_mut().enumerate() {
        let tail = row[at + done..at + n].iter_mut();
        for (d, px) in tail.zip(src[done * Q..].chunks_exact(Q)) {
            *d = f32::from(px[l]) * scale;
        }
    }
}

/// [`deinterleave`]'s four rows on AVX2, eight pixels at a time (the same shifts); returns how
/// many pixels it did (the whole eights), the caller's scalar loop doing the rest. ResNet50's
/// integer path on AVX2 was 3% slower with the residuals read from codes by the scalar loop
/// alone.
///
/// # Safety
/// AVX2 must be available; `src` holds `4 n` codes and every row `n` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn deinterleave_avx2(src: &[i8], mut rows: [&mut [f32]; Q], scale: f32) -> usize {
    use std::arch::x86_64::*;
    let n = src.len() / Q;
    let whole = n / 8 * 8;
    let vs = _mm256_set1_ps(scale);
    for x in (0..whole).step_by(8) {
        // SAFETY: pixels `x..x + 8 <= n` of `src` and of every row.
        unsafe {
            let px = _mm256_loadu_si256(src.as_ptr().add(x * Q).cast());
            let lane =
                |v: __m256i| _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32::<24>(v)), vs);
            let c = [
                lane(_mm256_slli_epi32::<24>(px)),
                lane(_mm256_slli_epi32::<16>(px)),
                lane(_mm256_slli_epi32::<8>(px)),
                lane(px),
            ];
            for (row, v) in rows.iter_mut().zip(c) {
                _mm256_storeu_ps(row.as_mut_ptr().add(x), v);
            }
        }
    }
    whole
}

/// [`deinterleave`]'s four rows on AVX-512F, the last few pixels through masked loads and
/// stores; returns how many pixels it did (all).
///
/// # Safety
/// AVX-512F must be available; `src` holds `4 n` codes and every row `n` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn deinterleave_avx512(src: &[i8], mut rows: [&mut [f32]; Q], scale: f32) -> usize {
    use std::arch::x86_64::*;
    let n = src.len() / Q;
    let vs = _mm512_set1_ps(scale);
    for x in (0..n).step_by(16) {
        let m = (n - x).min(16);
        let mask = ((1u32 << m) - 1) as __mmask16;
        // SAFETY: lanes `x..x + m` lie in every row and their pixels in `src` (masked loads
        // and stores touch no other lane).
        unsafe {
            let px = _mm512_maskz_loadu_epi32(mask, src.as_ptr().add(x * Q).cast());
            for (row, v) in rows.iter_mut().zip(channels_avx512(px, vs)) {
                _mm512_mask_storeu_ps(row.as_mut_ptr().add(x), mask, v);
            }
        }
    }
    n
}

/// `dst[4 x + l] = quantize(rows[l][x], inv)`: four rows of floats to pixels of 4 codes.
///
/// On x86-64 four pixels at a time in SSE2 (baseline there; eight on AVX2, [`interleave_avx2`]):
/// a 4 x 4 transpose of the floats, then the conversion (rounding to nearest even, as
/// [`quantize`]) and two saturating packs give 16 bytes in pixel order; the scalar loop was 5% of
/// ResNet18's integer path.
fn interleave(rows: [&[f32]; Q], dst: &mut [i8], inv: f32) {
    let n = rows[0].len();
    assert!(
        rows.iter().all(|r| r.len() == n) && dst.len() == n * Q,
        "interleave: extents"
    );
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    #[cfg(target_arch = "x86_64")]
    let done = {
        use std::arch::x86_64::*;
        // All of it on AVX-512F, else four pixels at a time below.
        if super::kernel::path() == super::kernel::KernelPath::Avx512F {
            // SAFETY: the path is AVX-512F only where the CPU has it; the extents are checked.
            return unsafe { interleave_avx512(rows, dst, inv) };
        }
        // Eight pixels at a time on AVX2, the rest four at a time below.
        let start = if super::kernel::path() == super::kernel::KernelPath::Avx2Fma {
            // SAFETY: the path is AVX2 only where the CPU has it; the extents are checked.
            unsafe { interleave_avx2(rows, dst, inv) }
        } else {
            0
        };
        let done = n / 4 * 4;
        // SAFETY: SSE2 is part of x86-64's baseline; the loads read `rows[l][x..x + 4]` and the
        // store writes `dst[4 x..4 x + 16]` for `x + 4 <= done <= n`.
        unsafe {
            let (vinv, lo, hi) = (_mm_set1_ps(inv), _mm_set1_ps(-127.0), _mm_set1_ps(127.0));
            let load = |l: usize, x: usize| {
                let v = _mm_mul_ps(_mm_loadu_ps(rows[l].as_ptr().add(x)), vinv);
                // NaN to 0 (as `quantize`), then the clamp to -127..=127.
                let v = _mm_and_ps(v, _mm_cmpord_ps(v, v));
                _mm_min_ps(_mm_max_ps(v, lo), hi)
            };
            for x in (start..done).step_by(4) {
                let (a, b, c, d) = (load(0, x), load(1, x), load(2, x), load(3, x));
                let (t0, t1) = (_mm_unpacklo_ps(a, b), _mm_unpacklo_ps(c, d));
                let (t2, t3) = (_mm_unpackhi_ps(a, b), _mm_unpackhi_ps(c, d));
                // Pixel x + i's four channels.
                let p0 = _mm_cvtps_epi32(_mm_movelh_ps(t0, t1));
                let p1 = _mm_cvtps_epi32(_mm_movehl_ps(t1, t0));
                let p2 = _mm_cvtps_epi32(_mm_movelh_ps(t2, t3));
                let p3 = _mm_cvtps_epi32(_mm_movehl_ps(t3, t2));
                let bytes = _mm_packs_epi16(_mm_packs_epi32(p0, p1), _mm_packs_epi32(p2, p3));
                _mm_storeu_si128(dst.as_mut_ptr().add(x * Q).cast(), bytes);
            }
        }
        done
    };
    for x in done..n {
        for (l, row) in rows.iter().enumerate() {
            dst[x * Q + l] = quantize(row[x], inv);
        }
    }
}

/// [`interleave`]'s SSE2 loop eight pixels at a time, for the whole eights of `rows` (returns
/// how many pixels it did): the same 4 x 4 transposes in each 128-bit half (pixels 0-3 and
/// 4-7), whose packs then leave the 32 codes in pixel order; the same conversion and clamps, so
/// the same codes, in half the instructions (ResNet50's integer path on the Zen 3 of stop 67,
/// `step_times` alternated with the SSE2 loop, 3 processes each: step sum 26.9 -> 25.8 ms, its
/// 1x1 layers of 256 to 1024 outputs 8-20% faster).
///
/// # Safety
/// AVX2 must be available; every row as long as `dst.len() / 4`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn interleave_avx2(rows: [&[f32]; Q], dst: &mut [i8], inv: f32) -> usize {
    use std::arch::x86_64::*;
    let done = rows[0].len() / 8 * 8;
    let (vinv, lo, hi) = (
        _mm256_set1_ps(inv),
        _mm256_set1_ps(-127.0),
        _mm256_set1_ps(127.0),
    );
    // SAFETY: the loads read `rows[l][x..x + 8]` and the store writes `dst[4 x..4 x + 32]` for
    // `x + 8 <= done`.
    unsafe {
        let load = |l: usize, x: usize| {
            let v = _mm256_mul_ps(_mm256_loadu_ps(rows[l].as_ptr().add(x)), vinv);
            // NaN to 0 (as `quantize`), then the clamp to -127..=127.
            let v = _mm256_and_ps(v, _mm256_cmp_ps::<_CMP_ORD_Q>(v, v));
            _mm256_min_ps(_mm256_max_ps(v, lo), hi)
        };
        for x in (0..done).step_by(8) {
            let (a, b, c, d) = (load(0, x), load(1, x), load(2, x), load(3, x));
            let (t0, t1) = (_mm256_unpacklo_ps(a, b), _mm256_unpacklo_ps(c, d));
            let (t2, t3) = (_mm256_unpackhi_ps(a, b), _mm256_unpackhi_ps(c, d));
            // Pixels x + i and x + 4 + i, four channels each, in the two halves.
            let p0 = _mm256_cvtps_epi32(_mm256_shuffle_ps::<0x44>(t0, t1));
            let p1 = _mm256_cvtps_epi32(_mm256_shuffle_ps::<0xEE>(t0, t1));
            let p2 = _mm256_cvtps_epi32(_mm256_shuffle_ps::<0x44>(t2, t3));
            let p3 = _mm256_cvtps_epi32(_mm256_shuffle_ps::<0xEE>(t2, t3));
            let bytes = _mm256_packs_epi16(_mm256_packs_epi32(p0, p1), _mm256_packs_epi32(p2, p3));
            _mm256_storeu_si256(dst.as_mut_ptr().add(x * Q).cast(), bytes);
        }
    }
    done
}

/// [`interleave`] sixteen pixels at a time, the last few through masked loads and stores: each
/// row's sixteen floats scaled, NaN to 0, clamped and converted (nearest even, as `CVTPS2DQ`
/// there) into 32-bit lanes, and the four rows' lanes merged into pixels of four codes
/// ([`pixel_lanes_avx512`]). The same codes as the SSE2 loop, a fraction of the instructions,
/// and no scalar tail (on 14- and 7-pixel rows the SSE2 loop's tail and the scalar one were
/// most of the work; together 8% of ResNet50's integer path).
///
/// # Safety
/// AVX-512F must be available; every row as long as `dst.len() / 4`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn interleave_avx512(rows: [&[f32]; Q], dst: &mut [i8], inv: f32) {
    use std::arch::x86_64::*;
    let n = rows[0].len();
    let vinv = _mm512_set1_ps(inv);
    for x in (0..n).step_by(16) {
        let m = (n - x).min(16);
        let mask = ((1u32 << m) - 1) as __mmask16;
        // SAFETY: lanes `x..x + m` lie in every row (masked loads touch no other lane); the
        // store writes `dst[4 x..4 x + 4 m]` (lanes past `m` masked off).
        unsafe {
            let codes = |l: usize| {
                code_lanes_avx512(_mm512_maskz_loadu_ps(mask, rows[l].as_ptr().add(x)), vinv)
            };
            let px = pixel_lanes_avx512([codes(0), codes(1), codes(2), codes(3)]);
            _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(x * Q).cast(), mask, px);
        }
    }
}

/// Sixteen floats' codes, `quantize(v, inv)` with `vinv` = `inv` in every lane, each the low
/// byte of its 32-bit lane, for [`pixel_lanes_avx512`]: clamped to ±127 and rounded to nearest
/// even (`CVTPS2DQ` in the default mode); NaN to 0 without a test of its own, as `VMAXPS` and
/// `VMINPS` return their second operand when either is NaN, so a NaN passes both clamps and
/// converts to `0x80000000`, whose low byte is 0. Shared by [`interleave_avx512`] and the
/// block finisher (`finish_quads`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) fn code_lanes_avx512(
    v: std::arch::x86_64::__m512,
    vinv: std::arch::x86_64::__m512,
) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    let v = _mm512_mul_ps(v, vinv);
    // The bounds first: the NaN second (see above).
    let v = _mm512_min_ps(
        _mm512_set1_ps(127.0),
        _mm512_max_ps(_mm512_set1_ps(-127.0), v),
    );
    _mm512_cvtps_epi32(v)
}

/// Four channels' sixteen codes in 32-bit lanes ([`code_lanes_avx512`]) as sixteen pixels of
/// four codes, one lane each: channel `l`'s byte shifted to byte `l` and merged by bit selects,
/// six operations that stay within their lanes where narrowing each channel to bytes
/// (`VPMOVSDB`) and interleaving them by unpacks took about eighteen (`finish_quads`' hottest
/// part after the sums, Zen 5).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) fn pixel_lanes_avx512(
    [c0, c1, c2, c3]: [std::arch::x86_64::__m512i; Q],
) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    // `ternarylogic(a, b, mask, 0xE4)`: the bits of `a` where `mask` has ones, else `b`'s.
    let select = |a: __m512i, b: __m512i, mask: i32| {
        _mm512_ternarylogic_epi32::<0xE4>(a, b, _mm512_set1_epi32(mask))
    };
    let v = select(c0, _mm512_slli_epi32::<8>(c1), 0xFF);
    let v = select(v, _mm512_slli_epi32::<16>(c2), 0xFFFF);
    select(v, _mm512_slli_epi32::<24>(c3), 0xFF_FFFF)
}

/// Sixteen pixels of four codes (one 32-bit lane each) to each channel's sixteen floats,
/// `code * scale` with `vs` = `scale` in every lane: channel `l` is the lane shifted left by
/// `24 - 8 l` and back right arithmetically by 24 (its sign-extended byte).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) fn channels_avx512(
    px: std::arch::x86_64::__m512i,
    vs: std::arch::x86_64::__m512,
) -> [std::arch::x86_64::__m512; Q] {
    use std::arch::x86_64::*;
    let lane = |v: __m512i| _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srai_epi32::<24>(v)), vs);
    [
        lane(_mm512_slli_epi32::<24>(px)),
        lane(_mm512_slli_epi32::<16>(px)),
        lane(_mm512_slli_epi32::<8>(px)),
        lane(px),
    ]
}

/// The `k` order of [`Quads::im2col`] against PyTorch's `(channel, ky, kx)` columns: entry `j`
/// is the original column of column `j` (`None`: a channel past `c`, whose weight is zero).
pub fn column_order(c: usize, kernel: usize) -> Vec<Option<usize>> {
    let kk = kernel * kernel;
    let mut cols = Vec::with_capacity(c.div_ceil(Q) * kk * Q);
    for cq in 0..c.div_ceil(Q) {
        for tap in 0..kk {
            for l in 0..Q {
                let ch = cq * Q + l;
                cols.push((ch < c).then_some(ch * kk + tap));
            }
        }
    }
    cols
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::int8_gemm::tests::lcg;
    use crate::exec::int8_gemm::{dynamic_scale, PanelB8};

    /// Every panel of the quads' im2col is the channel-major im2col's panel with its rows
    /// permuted by [`column_order`] (zero rows for the missing channels): strides 1 and 2,
    /// kernels 1, 3 and 7, paddings below the stored one, channels not a multiple of 4, ragged
    /// last panels and runs that wrap output rows.
    #[test]
    fn im2col_is_the_channel_major_one_permuted() {
        let cases = [
            // (c, h, w, kernel, stride, padding, stored pad)
            (8, 9, 7, 3, 1, 1, 1),
            (8, 9, 7, 3, 2, 1, 1),
            (6, 10, 11, 3, 1, 1, 2),
            (4, 6, 6, 1, 1, 0, 1),
            (12, 8, 9, 1, 2, 0, 1),
            (3, 12, 12, 7, 2, 3, 3),
            (5, 17, 19, 3, 1, 0, 0),
            // Stride 2 over rows wider than a panel: whole runs of 16 (31 pixels read).
            (4, 6, 40, 3, 2, 1, 1),
        ];
        for (case, &(c, h, w, kernel, stride, padding, pad)) in cases.iter().enumerate() {
            let g = Geometry::of(c, h, w, kernel, stride, padding);
            let mut next = lcg(case as u64 + 1);
            let x: Vec<f32> = (0..c * h * w).map(|_| next() * 2.0).collect();
            let scale = dynamic_scale(&x);
            let inv = 1.0 / scale;
            let shape = QuadShape { c, h, w, pad };
            let got = Quads::quantize(&x, shape, inv).im2col(&g, scale);
            let xq: Vec<i8> = x.iter().map(|&v| quantize(v, inv)).collect();
            let want = PanelB8::im2col(&xq, &g, scale);
            let order = column_order(c, kernel);
            assert_eq!((got.k, got.n), (order.len(), want.n), "case {case}");
            // Both `[k4 / 4][NR][4]` per panel: row `i` of pixel `p` in panel `j`.
            let at = |k4: usize, j: usize, i: usize, p: usize| {
                j * k4 * NR + (i / Q) * NR * Q + p * Q + i % Q
            };
            for j in 0..g.n().div_ceil(NR) {
                for (i, from) in order.iter().enumerate() {
                    for p in 0..NR {
                        let v = got.data[at(got.k4, j, i, p)];
                        let w = from.map_or(0, |f| want.data[at(want.k4, j, f, p)]);
                        assert_eq!(v, w, "case {case}, panel {j}, row {i}, pixel {p}");
                    }
                }
            }
        }
    }

    /// Panels gathered per task or read in place ([`gemm_i8_gather`]) give the packed GEMM's
    /// outputs and codes bit for bit (rows in two blocks, strides 1 and 2, ragged last panels),
    /// with codes out row-major and in quads, in pools of 1 to 3 threads. The 1x1 convolutions
    /// over quads stored without padding read every whole panel in place, rows crossed or not
    /// ([`InPlace::whole`]), on maps of many and of few pixels (49 and 196, whose last panels
    /// are narrow).
    #[test]
    fn gathered_panels_give_the_packed_gemm() {
        use crate::exec::gemm::Epilogue;
        use crate::exec::int8_gemm::tests::in_pool;
        use crate::exec::int8_gemm::{
            gemm_i8_gather, gemm_i8_requant, CodesOut, InputLayout, WeightsI8,
        };
        use crate::format::PackedMatrix;
        for (case, &(c, h, w, kernel, stride, padding)) in [
            (8, 20, 19, 3, 1, 1),
            (8, 21, 18, 3, 2, 1),
            (12, 16, 16, 1, 1, 0),
            (8, 27, 23, 1, 1, 0),
            (16, 14, 14, 1, 1, 0),
            (8, 7, 7, 1, 1, 0),
        ]
        .iter()
        .enumerate()
        {
            let g = Geometry::of(c, h, w, kernel, stride, padding);
            let (rows, k) = (70, c * kernel * kernel);
            let mut next = lcg(case as u64 + 20);
            let bits: Vec<u8> = (0..rows).map(|r| 2 + (r % 7) as u8).collect();
            let codes: Vec<i8> = (0..rows * k)
                .map(|j| (next() * crate::format::pack::max_code(bits[j / k]) as f32) as i8)
                .collect();
            let scales = (0..rows).map(|r| 0.01 + 0.001 * r as f32).collect();
            let m = PackedMatrix::from_codes(k, bits, &codes, scales).unwrap();
            let wq =
                WeightsI8::with_columns(&m, Some(&column_order(c, kernel)), InputLayout::Quads);
            let x: Vec<f32> = (0..c * h * w).map(|_| next() * 2.0).collect();
            let scale = dynamic_scale(&x);
            // Quads without padding where the 1x1 convolutions of 23 to 27 pixels wide read
            // them, so that those read every whole panel in place.
            let pad = if kernel == 1 && case >= 3 { 0 } else { 1 };
            let src = Quads::quantize(&x, QuadShape { c, h, w, pad }, 1.0 / scale);
            if pad == 0 && super::super::int8_gemm::avx512_vnni_blocks() {
                assert!(src.in_place(&g).is_some_and(|p| p.whole()), "case {case}");
            }
            let epi = Epilogue {
                scale: Some(&m.scales),
                relu: true,
                ..Epilogue::default()
            };
            let n = g.n();
            let out_shape = QuadShape {
                c: rows,
                h: g.ho,
                w: g.wo,
                pad: 1,
            };
            let run = |gather: bool, quads: bool| {
                let mut out = vec![0f32; rows * n];
                let (mut codes, mut q) = (vec![0i8; rows * n], Quads::zeroed(out_shape));
                let target = if quads {
                    CodesOut::Quads(&mut q)
                } else {
                    CodesOut::Rows(&mut codes)
                };
                let requant = Some((target, 0.05));
                if gather {
                    gemm_i8_gather(&wq, &src, &g, (scale, false), &mut out, epi, requant, None);
                } else {
                    gemm_i8_requant(&wq, &src.im2col(&g, scale), &mut out, epi, requant, None);
                }
                (out, codes, q.data.clone())
            };
            for threads in 1..=3 {
                for quads in [false, true] {
                    assert!(
                        in_pool(threads, || run(true, quads) == run(false, quads)),
                        "case {case}, quads {quads}, {threads} threads"
                    );
                }
            }
        }
    }

    /// Quantising into quads puts every code where [`QuadShape::at`] says, zero elsewhere, with
    /// padding (runs broken at every row) and without (one run over the rows).
    #[test]
    fn quantize_lays_out_codes_and_padding() {
        let (c, h, w) = (6, 3, 7);
        let mut next = lcg(4);
        let x: Vec<f32> = (0..c * h * w).map(|_| next() * 100.0).collect();
        for pad in [0, 2] {
            let shape = QuadShape { c, h, w, pad };
            let q = Quads::quantize(&x, shape, 1.0);
            let mut want = vec![0i8; shape.len()];
            for ch in 0..c {
                for y in 0..h {
                    for xx in 0..w {
                        want[(ch / 4) * shape.plane() + shape.at(y, xx) + ch % 4] =
                            quantize(x[(ch * h + y) * w + xx], 1.0);
                    }
                }
            }
            assert_eq!(&q.data[..], &want[..], "pad {pad}");
        }
    }

    /// Reading codes back as floats ([`load_quad_pixels`], the residual from codes) gives
    /// `code * scale` for exactly the pixels and channels [`store_quad_pixels`] wrote: 1 to 4
    /// channels, padded and unpadded planes, ranges of pixels across image rows, lengths around
    /// the vector width, every code from -127 to 127.
    #[test]
    fn loading_quad_pixels_inverts_storing_them() {
        let mut next = lcg(31);
        for (h, w, pad) in [(3, 7, 0), (5, 6, 1), (2, 33, 2), (1, 17, 0)] {
            let shape = QuadShape { c: 4, h, w, pad };
            for channels in 1..=Q {
                for (p0, len) in [(0, h * w), (1, h * w - 1), (w - 1, w + 2), (2, 0)] {
                    let len = len.min(h * w - p0);
                    let rows: Vec<Vec<f32>> = (0..channels)
                        .map(|_| (0..len).map(|_| (next() * 300.0).round()).collect())
                        .collect();
                    let views: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
                    let mut plane = vec![0i8; shape.plane()];
                    let scale = 0.37f32;
                    // SAFETY: a whole plane of `shape`, owned here; `p0 + len <= h * w`.
                    unsafe { store_quad_pixels(plane.as_mut_ptr(), &shape, &views, p0, 1.0) };
                    let mut back = vec![vec![f32::NAN; len]; channels];
                    let mut outs: Vec<&mut [f32]> =
                        back.iter_mut().map(Vec::as_mut_slice).collect();
                    // SAFETY: as above, read only.
                    unsafe { load_quad_pixels(plane.as_ptr(), &shape, &mut outs, p0, scale) };
                    for (l, (got, want)) in back.iter().zip(&rows).enumerate() {
                        for (i, (g, v)) in got.iter().zip(want).enumerate() {
                            let code = f32::from(quantize(*v, 1.0));
                            assert_eq!(
                                g.to_bits(),
                                (code * scale).to_bits(),
                                "{h}x{w} pad {pad}, {channels} channels, pixel {}, channel {l}",
                                p0 + i
                            );
                        }
                    }
                }
            }
        }
    }

    /// The vector interleave against [`quantize`] on the values where rounding and clamping
    /// differ: ties, both sides of the clamp, infinities, NaN, and a tail past the last 4.
    #[test]
    fn interleave_quantizes_like_the_scalar_code() {
        let special = [
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -2.5,
            126.5,
            127.49,
            127.5,
            300.0,
            -126.5,
            -127.5,
            -1e9,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -0.0,
            0.49999997,
            3.0,
            -3.0,
            64.5,
            -64.5,
        ];
        let mut next = lcg(8);
        for n in [0, 1, 3, 4, 7, 22, 33] {
            let rows: Vec<Vec<f32>> = (0..Q)
                .map(|l| {
                    (0..n)
                        .map(|x| {
                            let v = special[(x * 5 + l * 3) % special.len()];
                            if (x + l) % 3 == 0 {
                                next() * 200.0
                            } else {
                                v
                            }
                        })
                        .collect()
                })
                .collect();
            for inv in [1.0, 0.37] {
                let mut got = vec![9i8; n * Q];
                interleave([&rows[0], &rows[1], &rows[2], &rows[3]], &mut got, inv);
                let want: Vec<i8> = (0..n * Q)
                    .map(|i| quantize(rows[i % Q][i / Q], inv))
                    .collect();
                assert_eq!(got, want, "n {n}, inv {inv}");
            }
        }
    }

    /// A tensor in a recycled buffer full of stale codes has exactly the codes of a zeroed one
    /// (padding, channels past `c`): paddings 0 to 2, channels a multiple of 4 and not.
    #[test]
    fn recycled_buffers_keep_no_stale_codes() {
        for (c, h, w, pad) in [(8, 5, 7, 1), (6, 4, 3, 2), (4, 3, 3, 0), (5, 2, 9, 1)] {
            let shape = QuadShape { c, h, w, pad };
            let x: Vec<f32> = (0..c * h * w).map(|i| (i % 13) as f32 - 6.0).collect();
            let mut want = Quads::zeroed(shape);
            for (plane, rows) in want.data.chunks_mut(shape.plane()).zip(x.chunks(Q * h * w)) {
                store_quad(plane, &shape, rows, 1.0);
            }
            super::super::scratch::I8.give_everywhere(|| Buf::filled(shape.len(), 0x55));
            let got = Quads::quantize(&x, shape, 1.0);
            assert_eq!(got.data, want.data, "{shape:?}");
        }
    }

    #[test]
    fn column_order_interleaves_channels_by_tap() {
        assert_eq!(
            column_order(5, 1),
            [0, 1, 2, 3, 4]
                .map(Some)
                .into_iter()
                .chain([None, None, None])
                .collect::<Vec<_>>()
        );
        let o = column_order(4, 3);
        assert_eq!(&o[..8], &[0, 9, 18, 27, 1, 10, 19, 28].map(Some));
    }
}
