//! Depthwise convolution (one input and one output channel per group: TinyViT's MBConv and local
//! convs) as a direct loop per channel. The general path runs one GEMM per group, which for a
//! 1-row, 9-column weight matrix is all overhead.
//!
//! Each channel is first copied into a zero-bordered buffer split by column phase (for stride
//! `s`, phase `p` holds the padded columns `p, p + s, ...`), so every tap of every output row is
//! one contiguous, unconditional run of the buffer. The output is then built 16 pixels at a time
//! in a register-sized accumulator over all the taps, stored once. The earlier loop added each
//! tap to the whole output row with its valid range computed per call, compiled for baseline
//! SSE2: each of TinyViT-5M's two 256-channel 56x56 steps (GELU included) took 1.3 ms at 2
//! threads on a Zen 5, now 0.8-0.9 ms, about a third of it the GELU.
//!
//! On AVX-512F the 3x3 convolutions at strides 1 and 2 (all of TinyViT-5M's) skip the copy and
//! read the channel where it lies, in blocks of rows that share their input rows' loads
//! ([`x86::direct3_avx512`]). There the copy and one chunk at a time were most of the time: on
//! a Zen 4 at 2 threads, without the epilogue, a 256-channel 56x56 map took 0.31 ms (now 0.13),
//! a 128-channel 56x56 one at stride 2 0.14 ms (now 0.026; onnxruntime's convolution 0.026 and
//! 0.10 ms in its profile). On AVX2 the same blocks, one 8-pixel register wide
//! ([`direct_avx2`]).

#[cfg(target_arch = "x86_64")]
mod direct_avx2;

use rayon::prelude::*;

use super::buf::Buf;
use super::epilogue::finish_row;
use super::gemm::{Epilogue, Rows};
use super::kernel::{path, KernelPath};
use super::phases::phase_of_row;

/// Output pixels per accumulator: one 512-bit register, two 256-bit ones.
const LANES: usize = 16;

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
    // SAFETY: `path` only returns a path this CPU has.
    unsafe {
        depthwise_on(
            path(),
            x,
            (c, h, w),
            (kernel, stride, padding),
            (ho, wo),
            rows,
            epi,
            out,
        )
    }
}

/// [`depthwise`] by the loops of `simd`.
///
/// # Safety
/// The CPU must have `simd` ([`KernelPath::available`]).
#[allow(clippy::too_many_arguments)]
unsafe fn depthwise_on(
    simd: KernelPath,
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    (kernel, stride, padding): (usize, usize, usize),
    (ho, wo): (usize, usize),
    rows: &Rows,
    epi: Epilogue,
    out: &mut [f32],
) {
    let n = ho * wo;
    let geo = Phases::new((h, w), (kernel, stride, padding), (ho, wo));
    let direct = direct3(simd, (h, w), (kernel, stride, padding), (ho, wo));
    let len = if direct.is_some() { 0 } else { geo.len() };
    out.par_chunks_mut(n.max(1))
        .enumerate()
        .take(c)
        .for_each_init(
            || (vec![0f32; kernel * kernel], Buf::zeroed(len)),
            |(k, buf), (ch, o)| {
                rows.load(ch, 0, k);
                let plane = &x[ch * h * w..(ch + 1) * h * w];
                if let Some(block) = direct {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: the caller guarantees the path; `direct3` checked the geometry
                    // and gave the path's block.
                    unsafe {
                        match simd {
                            KernelPath::Avx512F => x86::direct3_avx512(plane, &geo, block, k, o),
                            _ => direct_avx2::direct3_avx2(plane, &geo, block, k, o),
                        }
                    };
                    #[cfg(not(target_arch = "x86_64"))]
                    unreachable!("depthwise: direct3 is x86-64 only, not {block:?}");
                } else {
                    geo.fill(plane, buf);
                    // SAFETY: the caller guarantees the path.
                    unsafe { channel_on(simd, &geo, buf, k, o) };
                }
                let res = epi.residual.map(|r| &r[ch * n..(ch + 1) * n]);
                finish_row(o, &epi, ch, res);
            },
        );
}

/// The block ([`block3`], [`direct_avx2::block`]) in which [`x86::direct3_avx512`] or
/// [`direct_avx2::direct3_avx2`] builds a channel's output straight from its input, when one
/// does: 3x3 convolutions at stride 1 or 2 on AVX-512F or AVX2 (every depthwise convolution of
/// TinyViT-5M), padding at most 1, on maps tall enough for their blocks.
fn direct3(
    path: KernelPath,
    (h, w): (usize, usize),
    (kernel, stride, padding): (usize, usize, usize),
    (ho, wo): (usize, usize),
) -> Option<(usize, usize)> {
    let fits = kernel == 3
        && padding <= 1
        && h + 2 * padding >= 3
        && w + 2 * padding >= 3
        && ho == (h + 2 * padding - 3) / stride.max(1) + 1
        && wo == (w + 2 * padding - 3) / stride.max(1) + 1;
    let block = match path {
        KernelPath::Avx512F => block3(stride, wo, ho),
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2Fma => direct_avx2::block(stride, wo, ho),
        _ => None,
    };
    block.filter(|_| fits && cfg!(target_arch = "x86_64"))
}

/// The block of [`x86::direct3_avx512`] for a map: chunks of 16 pixels across (a row's, up to
/// 4) and rows down, as many sums as the registers hold beside the weights and loads; `None`
/// for strides other than 1 and 2, or maps shorter than the block.
fn block3(stride: usize, wo: usize, ho: usize) -> Option<(usize, usize)> {
    let chunks = wo.div_ceil(LANES).clamp(1, 4);
    let rows = match (stride, chunks) {
        (1, 1) if ho >= 8 => 8,
        (1, 1) => 4,
        (1, 2) => 6,
        (1, 3) => 4,
        (1, _) => 3,
        (2, 1 | 2) => 4,
        (2, 3) => 3,
        (2, _) => 2,
        _ => return None,
    };
    (wo > 0 && ho >= rows).then_some((chunks, rows))
}

/// A channel's zero-bordered copy, split by column phase: phase `p`, padded row `y`, column `j`
/// is padded input column `j * stride + p` of padded row `y`, at `(p * rows + y) * cols + j`.
struct Phases {
    h: usize,
    w: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    ho: usize,
    wo: usize,
    /// Padded rows.
    rows: usize,
    /// Columns per phase row: every output chunk's last lane plus the widest tap's offset.
    cols: usize,
}

impl Phases {
    fn new(
        (h, w): (usize, usize),
        (kernel, stride, padding): (usize, usize, usize),
        (ho, wo): (usize, usize),
    ) -> Phases {
        let stride = stride.max(1);
        Phases {
            h,
            w,
            kernel,
            stride,
            padding,
            ho,
            wo,
            rows: (ho.max(1) - 1) * stride + kernel,
            cols: wo.div_ceil(LANES) * LANES + (kernel - 1) / stride,
        }
    }

    fn len(&self) -> usize {
        self.stride * self.rows * self.cols
    }

    /// The channel `x` (`[h][w]`) into `buf`, zeros around it.
    fn fill(&self, x: &[f32], buf: &mut [f32]) {
        buf.fill(0.0);
        for y in 0..self.rows {
            let Some(iy) = y.checked_sub(self.padding).filter(|&iy| iy < self.h) else {
                continue;
            };
            let src = &x[iy * self.w..][..self.w];
            for p in 0..self.stride {
                let dst = &mut buf[(p * self.rows + y) * self.cols..][..self.cols];
                phase_of_row(src, self.stride, self.padding, p, dst);
            }
        }
    }
}

/// One channel's output `[ho][wo]` from its [`Phases`] buffer by the loops of `path`: per chunk
/// of [`LANES`] pixels, the taps in (ky, kx) order summed from zero (a multiply, then an add: no
/// fused multiply-add, so the sums are those of the per-pixel definition; a padding tap adds
/// `w * 0`).
///
/// # Safety
/// The CPU must have `path` ([`KernelPath::available`]).
unsafe fn channel_on(path: KernelPath, geo: &Phases, buf: &[f32], k: &[f32], out: &mut [f32]) {
    let (kernel, stride) = (geo.kernel, geo.stride);
    // Each tap's offset in the buffer from its output row's start, and its weight: on the
    // stack up to 7x7, on the heap for larger kernels.
    let (mut small, mut large) = ([(0usize, 0f32); MAX_TAPS], Vec::new());
    let taps = match small.get_mut(..kernel * kernel) {
        Some(t) => t,
        None => {
            large.resize(kernel * kernel, (0usize, 0f32));
            &mut large[..]
        }
    };
    for (t, tap) in taps.iter_mut().enumerate() {
        let (ky, kx) = (t / kernel, t % kernel);
        *tap = (
            ((kx % stride) * geo.rows + ky) * geo.cols + kx / stride,
            k[t],
        );
    }
    let wo = geo.wo;
    assert!(
        buf.len() >= geo.len() && out.len() >= geo.ho * wo,
        "depthwise: buffer extents"
    );
    for (oy, orow) in out.chunks_exact_mut(wo.max(1)).take(geo.ho).enumerate() {
        let row = buf[oy * stride * geo.cols..].as_ptr();
        // Every read is within `buf`: tap offsets reach `(stride * rows - 1) * cols +
        // (kernel - 1) / stride` past the start of row `oy * stride`, and a chunk's lanes
        // `cols - (kernel - 1) / stride` past that (`Phases::cols`), so at most `len()`.
        match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller guarantees AVX-512F; extents as above.
            KernelPath::Avx512F => unsafe { x86::row_avx512(row, taps, orow) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller guarantees AVX2; extents as above.
            KernelPath::Avx2Fma => unsafe { x86::row_avx2(row, taps, orow) },
            // SAFETY: extents as above.
            _ => unsafe { row_portable(row, taps, orow) },
        }
    }
}

/// Taps kept on the stack (up to 7x7).
const MAX_TAPS: usize = 49;

/// One output row, [`LANES`] pixels at a time, in plain Rust.
///
/// # Safety
/// `row.add(off + c)` must be readable for every tap offset `off` and `c < ceil(orow.len() /
/// LANES) * LANES`.
unsafe fn row_portable(row: *const f32, taps: &[(usize, f32)], orow: &mut [f32]) {
    for (chunk, o) in orow.chunks_mut(LANES).enumerate() {
        let mut acc = [0f32; LANES];
        for &(off, wk) in taps {
            // SAFETY: the caller guarantees the extent.
            let src = unsafe { std::slice::from_raw_parts(row.add(off + chunk * LANES), LANES) };
            for (a, &v) in acc.iter_mut().zip(src) {
                *a += wk * v;
            }
        }
        o.copy_from_slice(&acc[..o.len()]);
    }
}

/// The x86 rows: one 512-bit accumulator per chunk, or two 256-bit ones.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Phases, LANES};
    use std::arch::x86_64::*;

    /// [`super::row_portable`] on AVX-512F (masked store of the last chunk).
    ///
    /// # Safety
    /// AVX-512F; the extents of [`super::row_portable`].
    #[target_feature(enable = "avx512f")]
    pub unsafe fn row_avx512(row: *const f32, taps: &[(usize, f32)], orow: &mut [f32]) {
        for c in (0..orow.len()).step_by(LANES) {
            let mut acc = _mm512_setzero_ps();
            for &(off, wk) in taps {
                // SAFETY: the caller guarantees `LANES` readable floats here.
                let v = unsafe { _mm512_loadu_ps(row.add(off + c)) };
                acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_set1_ps(wk), v));
            }
            let left = (orow.len() - c).min(LANES);
            let mask = (1u32 << left).wrapping_sub(1) as u16;
            // SAFETY: `left` floats at `orow[c..]`.
            unsafe { _mm512_mask_storeu_ps(orow.as_mut_ptr().add(c), mask, acc) };
        }
    }

    /// A 3x3 channel's output at stride `S` (1 or 2) straight from its input: no padded copy
    /// (at stride 2 the copy by column phase took two thirds of the time). The loads at the
    /// map's edges are masked and rows above or below it skipped, which adds the same nothing
    /// as the padding's zeros. The output goes in blocks of `R` rows by `C` chunks of
    /// [`LANES`] pixels: each load of an input row serves every output row of the block that
    /// reads it (up to three at stride 1, two at stride 2), and the `R * C` sums are
    /// independent chains. At stride 2 a chunk's three column taps come from two pairs of
    /// loads, even and odd lanes picked by one permute each. Each output's taps are still
    /// summed in (ky, kx) order, as [`super::row_portable`] sums them. The last blocks of rows
    /// and chunks overlap the ones before them where the map is not a multiple of the block
    /// (the same values stored again).
    ///
    /// One thread, a 256-channel 56x56 map (TinyViT-5M's MBConv), no epilogue: 0.63 ms by
    /// [`row_avx512`] from the padded copy, 0.44 ms by these blocks from the copy, 0.26 ms
    /// here. At stride 2 (128 channels, 56x56) 0.25 ms from the copy (two thirds of it the
    /// copy), 0.05 ms here.
    ///
    /// # Safety
    /// AVX-512F; `geo` a geometry [`super::direct3`] accepts, with the `block` it gave; `x`
    /// holds `h * w` floats, `out` `ho * wo`, `k` nine weights.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn direct3_avx512(
        x: &[f32],
        geo: &Phases,
        block: (usize, usize),
        k: &[f32],
        out: &mut [f32],
    ) {
        assert!(
            x.len() >= geo.h * geo.w && out.len() >= geo.ho * geo.wo && k.len() >= 9,
            "depthwise: extents"
        );
        // SAFETY: every call's guarantees forwarded from the caller; the extents asserted.
        unsafe {
            match (geo.stride, block) {
                (1, (1, 8)) => rows_of::<1, 1, 8>(x, geo, k, out),
                (1, (1, 4)) => rows_of::<1, 1, 4>(x, geo, k, out),
                (1, (2, 6)) => rows_of::<1, 2, 6>(x, geo, k, out),
                (1, (3, 4)) => rows_of::<1, 3, 4>(x, geo, k, out),
                (1, (4, 3)) => rows_of::<1, 4, 3>(x, geo, k, out),
                (2, (1, 4)) => rows_of::<2, 1, 4>(x, geo, k, out),
                (2, (2, 4)) => rows_of::<2, 2, 4>(x, geo, k, out),
                (2, (3, 3)) => rows_of::<2, 3, 3>(x, geo, k, out),
                (2, (4, 2)) => rows_of::<2, 4, 2>(x, geo, k, out),
                other => unreachable!("depthwise: no block for {other:?}"),
            }
        }
    }

    /// Where each load of a chunk's input row starts, from the chunk's first tap, for
    /// registers of `lanes` floats (16 here, 8 in [`super::direct_avx2`]): the three column
    /// taps at stride 1; at stride 2 two pairs of registers, the first pair's even and odd lanes
    /// the taps `kx = 0, 1`, the second's even lanes `kx = 2`.
    pub(super) const fn load_offsets(stride: usize, lanes: usize) -> [usize; 4] {
        if stride == 1 {
            [0, 1, 2, 0]
        } else {
            [0, lanes, 2, lanes + 2]
        }
    }

    /// [`direct3_avx512`] at stride `S` with blocks of `R` rows by `C` chunks.
    ///
    /// # Safety
    /// As for [`direct3_avx512`]; `R <= geo.ho`.
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_of<const S: usize, const C: usize, const R: usize>(
        x: &[f32],
        geo: &Phases,
        k: &[f32],
        out: &mut [f32],
    ) {
        let (ho, wo) = (geo.ho, geo.wo);
        let per_row = wo.div_ceil(LANES);
        let wk: [__m512; 9] = std::array::from_fn(|t| _mm512_set1_ps(k[t]));
        // Column groups outside, rows inside: the masks depend on the group only.
        let mut c0 = 0;
        while c0 < per_row {
            let first = c0.min(per_row - C) * LANES;
            // The lanes of each load that read inside the row: input column `start + lane` in
            // `0..w`.
            let mut masks = [[0u16; 4]; C];
            for (c, masks) in masks.iter_mut().enumerate() {
                let chunk = (S * (first + c * LANES)) as isize - geo.padding as isize;
                for (mask, off) in masks.iter_mut().zip(load_offsets(S, LANES)) {
                    let start = chunk + off as isize;
                    let below = (-start).clamp(0, LANES as isize) as u32;
                    let inside = (geo.w as isize - start).clamp(0, LANES as isize) as u32;
                    *mask = lanes_below(inside) & !lanes_below(below);
                }
            }
            let mut oy = 0;
            while oy < ho {
                let y0 = oy.min(ho - R);
                let mut acc = [[_mm512_setzero_ps(); C]; R];
                let rows = RowsIn {
                    x,
                    geo,
                    y0: S * y0,
                    first: S * first,
                };
                // Every input row of the block with its number a constant, so that which
                // output rows and taps it feeds is known when the code is built.
                macro_rules! each_row {
                    ($($r:literal)*) => {$(
                        if $r < S * (R - 1) + 3 {
                            // SAFETY: forwarded from the caller.
                            unsafe { row_into::<S, C, R, $r>(&rows, &masks, &wk, &mut acc) };
                        }
                    )*};
                }
                const { assert!(S * (R - 1) + 3 <= 10, "each_row! lists rows 0 to 9") };
                each_row!(0 1 2 3 4 5 6 7 8 9);
                for (j, acc) in acc.iter().enumerate() {
                    for (c, a) in acc.iter().enumerate() {
                        let x0 = first + c * LANES;
                        let mask = lanes_below((wo - x0).min(LANES) as u32);
                        // SAFETY: at most `wo - x0` floats of output row `y0 + j < ho`.
                        unsafe {
                            _mm512_mask_storeu_ps(
                                out.as_mut_ptr().add((y0 + j) * wo + x0),
                                mask,
                                *a,
                            )
                        };
                    }
                }
                oy += R;
            }
            c0 += C;
        }
    }

    /// The mask of lanes `0..n` (`n <= 16`).
    #[inline]
    fn lanes_below(n: u32) -> u16 {
        (1u32 << n).wrapping_sub(1) as u16
    }

    /// Where a block of [`rows_of`] (or of [`super::direct_avx2`]'s) reads its input.
    pub(super) struct RowsIn<'a> {
        pub(super) x: &'a [f32],
        pub(super) geo: &'a Phases,
        /// The input row and column of the block's first tap (before the padding).
        pub(super) y0: usize,
        pub(super) first: usize,
    }

    /// Input row `y0 + RI - padding` of a block into the sums of the output rows `j` it feeds
    /// (`ky = RI - S * j` in `0..3`), each load made once; nothing for a row outside the map.
    ///
    /// # Safety
    /// AVX-512F; the masks are [`rows_of`]'s for the block; padding at most 1.
    #[inline]
    #[target_feature(enable = "avx512f")]
    // The chunk and tap numbers index the masks, the loads and the sums alike.
    #[allow(clippy::needless_range_loop)]
    unsafe fn row_into<const S: usize, const C: usize, const R: usize, const RI: usize>(
        rows: &RowsIn,
        masks: &[[u16; 4]; C],
        wk: &[__m512; 9],
        acc: &mut [[__m512; C]; R],
    ) {
        let (w, p) = (rows.geo.w, rows.geo.padding);
        let Some(iy) = (rows.y0 + RI).checked_sub(p).filter(|&iy| iy < rows.geo.h) else {
            return;
        };
        let row = rows
            .x
            .as_ptr()
            .wrapping_add(iy * w + rows.first)
            .wrapping_sub(p);
        // A chunk between the first and the last reads inside the row whole: with padding at
        // most 1 its columns lie between the previous chunk's and the next one's.
        let edge = |c: usize| c == 0 || c == C - 1;
        if S == 1 {
            for kx in 0..3 {
                for c in 0..C {
                    let at = row.wrapping_add(c * LANES + kx);
                    // SAFETY: the mask keeps every lane read inside row `iy`.
                    let v = unsafe { load_in(edge(c), masks[c][kx], at) };
                    add_tap::<S, C, R, RI>(acc, wk, c, kx, v);
                }
            }
            return;
        }
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let offsets = load_offsets(S, LANES);
        for c in 0..C {
            let at = row.wrapping_add(c * S * LANES);
            let mut v = [_mm512_setzero_ps(); 4];
            for (i, v) in v.iter_mut().enumerate() {
                // SAFETY: the masks keep every lane read inside row `iy`.
                *v = unsafe { load_in(edge(c), masks[c][i], at.wrapping_add(offsets[i])) };
            }
            let [lo, hi, lo2, hi2] = v;
            let taps = [
                _mm512_permutex2var_ps(lo, even, hi),
                _mm512_permutex2var_ps(lo, odd, hi),
                _mm512_permutex2var_ps(lo2, even, hi2),
            ];
            for (kx, v) in taps.into_iter().enumerate() {
                add_tap::<S, C, R, RI>(acc, wk, c, kx, v);
            }
        }
    }

    /// Column tap `kx` of input row `RI`, chunk `c`, into the sums of the output rows it feeds.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn add_tap<const S: usize, const C: usize, const R: usize, const RI: usize>(
        acc: &mut [[__m512; C]; R],
        wk: &[__m512; 9],
        c: usize,
        kx: usize,
        v: __m512,
    ) {
        for (j, acc) in acc.iter_mut().enumerate() {
            if RI >= S * j && RI - S * j < 3 {
                let t = (RI - S * j) * 3 + kx;
                acc[c] = _mm512_add_ps(acc[c], _mm512_mul_ps(wk[t], v));
            }
        }
    }

    /// Sixteen floats at `at`: the lanes of `mask` only where `masked`, else all.
    ///
    /// # Safety
    /// AVX-512F; the lanes read must be readable.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_in(masked: bool, mask: u16, at: *const f32) -> __m512 {
        // SAFETY: forwarded from the caller.
        unsafe {
            if masked {
                _mm512_maskz_loadu_ps(mask, at)
            } else {
                _mm512_loadu_ps(at)
            }
        }
    }

    /// [`super::row_portable`] on AVX2, two 8-lane halves per chunk.
    ///
    /// # Safety
    /// AVX2; the extents of [`super::row_portable`].
    #[target_feature(enable = "avx2")]
    pub unsafe fn row_avx2(row: *const f32, taps: &[(usize, f32)], orow: &mut [f32]) {
        for c in (0..orow.len()).step_by(LANES) {
            let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for &(off, wk) in taps {
                let w = _mm256_set1_ps(wk);
                // SAFETY: the caller guarantees `LANES` readable floats here.
                let (a, b) = unsafe {
                    (
                        _mm256_loadu_ps(row.add(off + c)),
                        _mm256_loadu_ps(row.add(off + c + 8)),
                    )
                };
                lo = _mm256_add_ps(lo, _mm256_mul_ps(w, a));
                hi = _mm256_add_ps(hi, _mm256_mul_ps(w, b));
            }
            let mut acc = [0f32; LANES];
            // SAFETY: 16 writable floats.
            unsafe {
                _mm256_storeu_ps(acc.as_mut_ptr(), lo);
                _mm256_storeu_ps(acc.as_mut_ptr().add(8), hi);
            }
            let left = (orow.len() - c).min(LANES);
            orow[c..c + left].copy_from_slice(&acc[..left]);
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

    /// Every path this CPU has (AVX-512F's direct blocks, AVX2's, the copy's rows, portable),
    /// whatever `FQ_MAX_ISA` says.
    fn every_path() -> Vec<KernelPath> {
        [
            KernelPath::Avx512F,
            KernelPath::Avx2Fma,
            KernelPath::Neon,
            KernelPath::Simd128,
            KernelPath::Portable,
        ]
        .into_iter()
        .filter(|p| p.available())
        .collect()
    }

    /// Kernels 1, 3, 5, 7 and 9 (past the chunked loops' taps), strides 1 and 2, paddings 0 to 3
    /// and odd sizes (rows of one, two and three 16-pixel chunks), on every path the CPU has:
    /// bit for bit the per-pixel loop (the same taps summed in the same order).
    #[test]
    fn matches_the_per_pixel_loop() {
        for simd in every_path() {
            let blocks = [(6, 7), (11, 20), (9, 40), (12, 70), (8, 100), (17, 56)];
            for (h, w) in [(7, 9), (14, 14), (5, 3), (1, 8), (4, 37), (3, 16)]
                .into_iter()
                .chain(blocks)
            {
                for kernel in [1, 3, 5, 7, 9] {
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
                            // SAFETY: `every_path` keeps the paths this CPU has.
                            unsafe {
                                depthwise_on(
                                    simd,
                                    &x,
                                    (c, h, w),
                                    (kernel, stride, padding),
                                    (ho, wo),
                                    &rows,
                                    Epilogue::default(),
                                    &mut out,
                                )
                            };
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
                                    "{} {h}x{w} k{kernel} s{stride} p{padding} channel {ch}",
                                    simd.name()
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
