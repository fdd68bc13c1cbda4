//! The integer GEMM: `out[o][p] = epilogue(s_x * sum_k W[o][k] * X[k][p])` with the weights as
//! their stored 2–8-bit codes (unpacked to i8, never to f32) and the activations quantised to i8
//! with one scale per tensor, the sums exact in i32 (the micro-kernels of `kernel::int8`).
//!
//! Why symmetric per-tensor i8 activations: one scale per tensor keeps the rescale a single
//! multiply per output (`s_x` here, the row's weight scale in the epilogue, as in the f32 path),
//! and symmetric codes keep the kernel interface one signed type on every ISA (x86's u8 x s8
//! instructions shift by 128 inside their kernel). The scale comes from the caller: a calibrated
//! range stored with the model, or [`dynamic_scale`] of the tensor itself.
//!
//! The executor's integer path runs convolutions ([`super::conv_i8`]) and token Linear layers
//! through [`gemm_i8`]; it is tested bit for bit here (the i32 sums against an i64 reference from
//! the same codes). [`gemm_i8_requant`] also writes the output's i8 codes for the next layer from
//! the epilogue, while the row is still in cache.

use rayon::prelude::*;

use super::buf::Buf;
use super::disjoint::Shared;
use super::epilogue::finish_row;
use super::gemm::Epilogue;
use super::im2col::{Geometry, Padded};
use super::kernel::int8::{int8_path, row_sum, tile_with_sums, KGROUP, MR, NR};
use super::kernel::int8_narrow;
use super::quads::{load_quad_pixels, store_quad_pixels, InPlace, QuadShape, Quads, Q as QUAD};
use super::taps::{self, TapRows};
use crate::format::{pack, PackedMatrix};

/// The largest activation code: symmetric, so `-127..=127` (never -128).
pub const QMAX: f32 = 127.0;

/// The scale that maps a tensor's largest magnitude to [`QMAX`] (dynamic quantisation); 1 for an
/// all-zero or non-finite tensor, so quantising it cannot divide by zero.
pub fn dynamic_scale(x: &[f32]) -> f32 {
    // Sixteen running maxima per chunk (the compiler keeps them in vector registers), chunks in
    // parallel: the one serial fold was a pass over every integer layer's input on the
    // executor's thread (0.19 ms for one of TinyViT-5M's 800k-value inputs). `f32::max`
    // ignores NaN and the maximum does not depend on the order, so the result is the fold's.
    let chunk_max = |c: &[f32]| {
        let mut lanes = [0f32; 16];
        let mut blocks = c.chunks_exact(16);
        for b in &mut blocks {
            for (m, v) in lanes.iter_mut().zip(b) {
                *m = m.max(v.abs());
            }
        }
        let tail = blocks.remainder().iter().fold(0f32, |m, v| m.max(v.abs()));
        lanes.iter().fold(tail, |m, &v| m.max(v))
    };
    let m = x
        .par_chunks(1 << 15)
        .map(chunk_max)
        .reduce(|| 0f32, f32::max);
    if m > 0.0 && m.is_finite() {
        m / QMAX
    } else {
        1.0
    }
}

/// `x / scale` rounded to the nearest integer, ties to even (as PyTorch's and onnxruntime's
/// quantisers), clamped to `-127..=127`; NaN becomes 0.
///
/// Why the magic number: `f32::round` is a libm call on baseline x86-64 (no SSE4.1), which made
/// quantising an activation cost 7 ns. Adding and subtracting `1.5 * 2^23` rounds any `|v| < 2^22`
/// to an integer in the FPU's default mode (nearest, ties to even), and it vectorises.
#[inline]
pub fn quantize(x: f32, inv_scale: f32) -> i8 {
    const MAGIC: f32 = 12_582_912.0;
    let v = (x * inv_scale).clamp(-QMAX, QMAX);
    ((v + MAGIC) - MAGIC) as i8
}

/// `x` quantised with `1 / inv` ([`quantize_into`]) into a new buffer, in parallel chunks: a
/// channel-major tensor's codes for the integer path when no epilogue wrote them.
pub fn quantize_all(x: &[f32], inv: f32) -> Buf<i8> {
    let mut codes = Buf::zeroed(x.len());
    codes
        .par_chunks_mut(1 << 14)
        .zip(x.par_chunks(1 << 14))
        .for_each(|(d, x)| quantize_into(x, d, inv));
    codes
}

/// `dst[i] = quantize(src[i], inv)` for every `i` (equal lengths).
///
/// On x86-64 sixteen at a time in SSE2 (baseline there): `CVTPS2DQ` rounds to nearest even in
/// the default mode, as `quantize`, and two saturating packs make the bytes; the scalar loop does
/// not vectorise (`as i8` saturates and maps NaN to 0 in code of its own) and was 7% of
/// DeiT-Tiny's integer path.
pub fn quantize_into(src: &[f32], dst: &mut [i8], inv: f32) {
    assert_eq!(src.len(), dst.len(), "quantize_into: lengths");
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    #[cfg(target_arch = "x86_64")]
    let done = {
        use std::arch::x86_64::*;
        let done = src.len() / 16 * 16;
        // SAFETY: SSE2 is part of x86-64's baseline; the loads read `src[i..i + 16]` and the
        // store writes `dst[i..i + 16]` for `i + 16 <= done <= len`.
        unsafe {
            let (vinv, lo, hi) = (_mm_set1_ps(inv), _mm_set1_ps(-QMAX), _mm_set1_ps(QMAX));
            let load = |i: usize| {
                let v = _mm_mul_ps(_mm_loadu_ps(src.as_ptr().add(i)), vinv);
                // NaN to 0 (as `quantize`), then the clamp.
                let v = _mm_and_ps(v, _mm_cmpord_ps(v, v));
                _mm_cvtps_epi32(_mm_min_ps(_mm_max_ps(v, lo), hi))
            };
            for i in (0..done).step_by(16) {
                let lo8 = _mm_packs_epi32(load(i), load(i + 4));
                let hi8 = _mm_packs_epi32(load(i + 8), load(i + 12));
                let bytes = _mm_packs_epi16(lo8, hi8);
                _mm_storeu_si128(dst.as_mut_ptr().add(i).cast(), bytes);
            }
        }
        done
    };
    for (d, &v) in dst[done..].iter_mut().zip(&src[done..]) {
        *d = quantize(v, inv);
    }
}

/// Activations `[k][n]` quantised and packed for the int8 micro-kernel: panel `j` (columns
/// `j * NR..`) is `[k4 / 4][NR][4]` at `data[j * k4 * NR..]`, `k4` being `k` rounded up to 4.
/// `data` may be longer than the panels (a recycled buffer, [`super::scratch`]).
pub struct PanelB8 {
    pub data: Buf<i8>,
    pub k: usize,
    pub k4: usize,
    pub n: usize,
    /// What one activation code is worth.
    pub scale: f32,
    /// Whether every code is `>= 0` (the input is a ReLU's output): the AVX2 kernel then
    /// multiplies them as they are (see `kernel::int8_narrow`). Only the caller can know it.
    pub nonneg: bool,
}

/// The buffer goes back to [`super::scratch`] for the next convolution's panels.
impl Drop for PanelB8 {
    fn drop(&mut self) {
        super::scratch::I8.give(std::mem::take(&mut self.data));
    }
}

impl PanelB8 {
    /// Quantises a row-major `[k][n]` matrix with `scale` and packs it, panel by panel in
    /// parallel, straight into the kernel's layout (no intermediate copy).
    pub fn from_rows(x: &[f32], k: usize, n: usize, scale: f32) -> Self {
        assert_eq!(x.len(), k * n, "PanelB8: {} values for [{k}][{n}]", x.len());
        let k4 = k.div_ceil(KGROUP) * KGROUP;
        let inv = 1.0 / scale;
        let mut data = Buf::zeroed(n.div_ceil(NR) * k4 * NR);
        data.par_chunks_mut((k4 * NR).max(1))
            .enumerate()
            .for_each(|(j, panel)| {
                let (p0, np) = (j * NR, NR.min(n - j * NR));
                for i in 0..k {
                    let src = &x[i * n + p0..i * n + p0 + np];
                    let base = (i / KGROUP) * NR * KGROUP + i % KGROUP;
                    for (c, &v) in src.iter().enumerate() {
                        panel[base + c * KGROUP] = quantize(v, inv);
                    }
                }
            });
        Self {
            data,
            k,
            k4,
            n,
            scale,
            nonneg: false,
        }
    }

    /// im2col of one convolution group straight from its i8 codes (`xq` is `[g.c, g.h, g.w]`,
    /// quantised with `scale`): each panel's `[k][NR]` block is gathered by the same code as the
    /// f32 path's, then regrouped by 4 along `k`. Quantising the input once (not the 9x larger
    /// im2col matrix) is what keeps the integer path's overhead small.
    pub fn im2col(xq: &[i8], g: &Geometry, scale: f32) -> Self {
        let (k, n) = (g.k(), g.n());
        let k4 = k.div_ceil(KGROUP) * KGROUP;
        // Recycled (see `scratch`): `group_by_4` writes every byte of every panel (a fresh
        // zeroed 1.9 MB for ResNet18's stem was a `memset` per image).
        let mut data = super::scratch::I8.take(n.div_ceil(NR) * k4 * NR, true);
        if k > 0 && n > 0 {
            let src = Padded::new(xq, g);
            data.par_chunks_mut(k4 * NR).enumerate().for_each_init(
                || vec![0i8; k * NR],
                |cols, (j, panel)| {
                    // `fill` writes every value of a whole panel; only the last, partial one
                    // keeps values of the previous panel past the last pixel.
                    if (j + 1) * NR > n {
                        cols.fill(0);
                    }
                    src.fill(0, k, j, cols);
                    group_by_4(k, cols, panel);
                },
            );
        }
        Self {
            data,
            k,
            k4,
            n,
            scale,
            nonneg: false,
        }
    }

    /// `l` tokens of `k` features (`x` token-major, `[l][k]`) as the columns of `B`, quantised
    /// with `scale`: a Linear layer over a token sequence.
    pub fn from_tokens(x: &[f32], l: usize, k: usize, scale: f32) -> Self {
        assert_eq!(
            x.len(),
            l * k,
            "PanelB8: {} values for {l} tokens of {k}",
            x.len()
        );
        let k4 = k.div_ceil(KGROUP) * KGROUP;
        let inv = 1.0 / scale;
        // Recycled (see `scratch`): every byte of a real token is written below, and the last
        // panel, whose columns past `l` must be zero, is zeroed first.
        let mut data = super::scratch::I8.take(l.div_ceil(NR) * k4 * NR, true);
        data.par_chunks_mut((k4 * NR).max(1))
            .enumerate()
            .for_each_init(
                || vec![0i8; k4],
                |codes, (j, panel)| {
                    if (j + 1) * NR > l {
                        panel.fill(0);
                    }
                    for c in 0..NR.min(l - j * NR) {
                        // The token's codes in one vectorised pass, then 4 bytes per group of
                        // `k` (a byte store per feature, each quantised alone, was 7% of
                        // DeiT-Tiny's integer path).
                        quantize_into(&x[(j * NR + c) * k..][..k], &mut codes[..k], inv);
                        for (g, q) in codes.chunks_exact(KGROUP).enumerate() {
                            panel[g * NR * KGROUP + c * KGROUP..][..KGROUP].copy_from_slice(q);
                        }
                    }
                },
            );
        Self {
            data,
            k,
            k4,
            n: l,
            scale,
            nonneg: false,
        }
    }
}

/// `[k][NR]` to `[k4 / 4][NR][4]`, every byte of the `k4 / 4` groups written (zeros beyond `k`).
///
/// Each whole group of 4 rows is a 4 x 16 byte transpose of fixed shape: on x86-64 eight SSE2
/// unpacks (`PUNPCKLBW`/`PUNPCKLWD`) instead of 64 single-byte stores (the byte loop was about 5%
/// of the integer path's time); elsewhere a loop over fixed-size arrays.
fn group_by_4(k: usize, cols: &[i8], panel: &mut [i8]) {
    const QUAD: usize = NR * KGROUP;
    let whole = k / KGROUP;
    for (src, dst) in cols
        .chunks_exact(QUAD)
        .zip(panel.chunks_exact_mut(QUAD))
        .take(whole)
    {
        let src: &[i8; QUAD] = src.try_into().expect("a whole quad");
        let dst: &mut [i8; QUAD] = dst.try_into().expect("a whole quad");
        transpose_quad(src, dst);
    }
    // The last, partial group (fewer than 4 rows; zeros for the missing ones).
    let tail = &cols[whole * QUAD..k * NR];
    if tail.is_empty() {
        return;
    }
    let dst = &mut panel[whole * QUAD..(whole + 1) * QUAD];
    dst.fill(0);
    for (l, row) in tail.chunks_exact(NR).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            dst[c * KGROUP + l] = v;
        }
    }
    debug_assert!(k.div_ceil(KGROUP) * QUAD <= panel.len());
}

/// `dst[c * 4 + l] = src[l * NR + c]`: 4 rows of `NR` bytes to `NR` columns of 4.
#[inline(always)]
fn transpose_quad(src: &[i8; NR * KGROUP], dst: &mut [i8; NR * KGROUP]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        const _: () = assert!(NR == 16 && KGROUP == 4);
        // SSE2 is part of x86-64's baseline: no detection needed. Rows 0/1 and 2/3 interleaved
        // by bytes, then the pairs by 16-bit words: each 16-byte result is 4 columns of 4.
        // SAFETY: SSE2 is always present on x86-64; the loads and stores stay inside the two
        // 64-byte arrays.
        unsafe {
            let p = src.as_ptr().cast::<__m128i>();
            let (r0, r1, r2, r3) = (
                _mm_loadu_si128(p),
                _mm_loadu_si128(p.add(1)),
                _mm_loadu_si128(p.add(2)),
                _mm_loadu_si128(p.add(3)),
            );
            let (t0, t1) = (_mm_unpacklo_epi8(r0, r1), _mm_unpackhi_epi8(r0, r1));
            let (t2, t3) = (_mm_unpacklo_epi8(r2, r3), _mm_unpackhi_epi8(r2, r3));
            let q = dst.as_mut_ptr().cast::<__m128i>();
            _mm_storeu_si128(q, _mm_unpacklo_epi16(t0, t2));
            _mm_storeu_si128(q.add(1), _mm_unpackhi_epi16(t0, t2));
            _mm_storeu_si128(q.add(2), _mm_unpacklo_epi16(t1, t3));
            _mm_storeu_si128(q.add(3), _mm_unpackhi_epi16(t1, t3));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for c in 0..NR {
        for l in 0..KGROUP {
            dst[c * KGROUP + l] = src[l * NR + c];
        }
    }
}

/// Rows per block of a task (a multiple of `MR`, and of [`QUAD`] so a task's rows are whole
/// quads), and the unit within which rows are reordered by width.
const MC: usize = 48;
/// The finest unit of a task's rows when they are not reordered: a multiple of `MR`, of
/// [`QUAD`] and of AVX-512 VNNI's 12-row blocks, so that tasks can split a layer's rows evenly
/// between the threads (ResNet18's 512 rows in 48-row units are 11 tasks, 6 and 5 per thread).
/// Also the least number of rows per task that [`Split`] aims for.
const FINE: usize = 12;
/// Where AVX-512 VNNI's tasks may cut a layer's rows: any quad, as its 12-, 8- and 4-row blocks
/// cover any multiple of 4 ([`super::kernel::int8_vnni::block_rows`]). In units of 12,
/// ResNet50's 256-row layers were 22 units of which the last had 4 rows: 132 rows for one
/// thread, 124 for the other (its 14x14 layers ran 1.7x as fast on two threads as on one).
const VNNI_CUT: usize = QUAD;
const _: () = assert!(MC.is_multiple_of(MR) && MC.is_multiple_of(QUAD));
const _: () =
    assert!(FINE.is_multiple_of(MR) && FINE.is_multiple_of(QUAD) && MC.is_multiple_of(FINE));

/// A layer's weights ready for the integer path, made once at load: every row's codes as i8,
/// `k4` apart and zero-padded (rows too, to a multiple of `MR`), each row's code sum (the
/// correction of the kernels that make the activations unsigned: AVX2's 7-bit one and VNNI)
/// and, per block of `MR` rows, how many groups the AVX2 kernel's i16 pairs may add up, for
/// flipped and for unsigned activations ([`int8_narrow::depth`]). About one byte per weight,
/// against four for an f32 copy.
///
/// Where the kernel's sums depend on the codes' width (AVX2's, `kernel::int8_narrow`; AMX's
/// 16-row blocks keep the same units), the rows are ordered by bit width within each task's
/// [`MC`] rows (stable), so that blocks hold rows of one width: a block with one 8-bit row must
/// take the exact AVX2 kernel, which with a random mix of 2–8 bits was 60% of the blocks (one
/// or two per task once 8-bit rows came last), and a block's depth is its widest row's. VNNI's
/// sums are exact for every width: there the rows keep their order, and tasks may start at any
/// multiple of [`FINE`] rows.
pub struct WeightsI8 {
    pub rows: usize,
    pub k: usize,
    pub k4: usize,
    codes: Buf<i8>,
    sums: Vec<i32>,
    depth: Vec<[u8; 2]>,
    /// Per stored row, the output row it computes (a permutation within each task's rows).
    order: Vec<usize>,
    /// How a convolution's input reaches these columns.
    layout: InputLayout,
    /// The unit of a task's rows: [`MC`] when the rows are reordered within it (and on AMX),
    /// [`VNNI_CUT`] for AVX-512 VNNI's blocks, else [`FINE`].
    granule: usize,
}

/// The layout of an integer convolution's input, which fixes the order of its weights' columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputLayout {
    /// Channel-major codes, PyTorch's `(channel, ky, kx)` columns (and any Linear layer).
    Rows,
    /// [`Quads`], columns in [`super::quads::column_order`].
    Quads,
    /// [`super::taps::TapRows`], columns in [`super::taps::column_order`].
    Taps,
}

impl WeightsI8 {
    /// Unpacks a packed matrix (validated: every row is 2–8 bits wide).
    pub fn new(m: &PackedMatrix) -> Self {
        Self::with_columns(m, None, InputLayout::Rows)
    }

    /// [`WeightsI8::new`] with the columns permuted: column `j` is the matrix's column
    /// `columns[j]`, or zero for `None` (for convolutions over [`super::quads`], whose `k` runs
    /// over channel quads: [`super::quads::column_order`]), for an input in `layout`. The row
    /// sums are unchanged.
    pub fn with_columns(
        m: &PackedMatrix,
        columns: Option<&[Option<usize>]>,
        layout: InputLayout,
    ) -> Self {
        debug_assert!(columns.is_none_or(|c| c.iter().flatten().all(|&j| j < m.cols)));
        let rows = m.rows;
        let k = columns.map_or(m.cols, <[_]>::len);
        let k4 = k.div_ceil(KGROUP) * KGROUP;
        // Whole tasks of rows, so a 16-row AMX block never reads past the codes.
        let padded = rows.div_ceil(MC) * MC;
        let offsets = m.row_offsets();
        // Rows by width within each task's rows (stable), the padding rows last; in their
        // order where the kernel is exact for every width (VNNI's, AMX's: there a block's rows
        // are its output rows, which `finish_quads` finishes straight into quads).
        let path = int8_path();
        let sorted = !path.uses_row_sums() && path != super::kernel::int8::Int8Path::Amx;
        let mut order: Vec<usize> = Vec::with_capacity(padded);
        for t0 in (0..rows).step_by(MC) {
            let start = order.len();
            order.extend(t0..(t0 + MC).min(rows));
            if sorted {
                order[start..].sort_by_key(|&r| m.bits[r]);
            }
        }
        order.extend(rows..padded);
        let mut codes = Buf::zeroed(padded * k4);
        codes
            .par_chunks_mut(k4.max(1))
            .take(rows)
            .zip(order.par_iter())
            .for_each_init(
                || vec![0i8; if columns.is_some() { m.cols } else { 0 }],
                |stored, (row, &r)| {
                    let data = &m.data[offsets[r]..offsets[r + 1]];
                    let Some(columns) = columns else {
                        let ok = pack::unpack_row_i8(data, m.bits[r], 0, &mut row[..k]);
                        debug_assert!(ok, "validated rows unpack");
                        return;
                    };
                    let ok = pack::unpack_row_i8(data, m.bits[r], 0, stored);
                    debug_assert!(ok, "validated rows unpack");
                    for (d, from) in row.iter_mut().zip(columns) {
                        *d = from.map_or(0, |j| stored[j]);
                    }
                },
            );
        // And a block's worth more of zero sums: a block from any quad reads 12 of them
        // (`block_sums`, `blocks_vnni`), whatever its rows.
        let sums = codes
            .chunks_exact(k4.max(1))
            .take(padded)
            .map(row_sum)
            .chain(std::iter::repeat_n(0, FINE))
            .collect();
        // Per block of `MR` stored rows, its depth for flipped and for unsigned activations.
        let depth = codes
            .chunks_exact((MR * k4).max(1))
            .map(|block| {
                let max = block.iter().map(|&c| u32::from(c.unsigned_abs())).max();
                let max = max.unwrap_or(0);
                [false, true].map(|unsigned| int8_narrow::depth(max, unsigned))
            })
            .collect();
        Self {
            rows,
            k,
            k4,
            codes,
            sums,
            depth,
            order,
            layout,
            // AMX's 16-row blocks keep whole tasks of `MC` rows (the codes are padded to them).
            granule: match path {
                _ if sorted => MC,
                super::kernel::int8::Int8Path::Amx => MC,
                super::kernel::int8::Int8Path::Avx512Vnni => VNNI_CUT,
                _ => FINE,
            },
        }
    }

    /// Whether these weights multiply an im2col of [`Quads`] (made by [`WeightsI8::with_columns`]).
    pub fn reads_quads(&self) -> bool {
        self.layout == InputLayout::Quads
    }

    /// The layout their convolution's input takes.
    pub fn layout(&self) -> InputLayout {
        self.layout
    }

    /// Rows `r0..r0 + mr` (one task's, `r0` a multiple of [`MC`]) against one or two panels
    /// (`ps`, each `k4 * NR` codes) in AMX blocks of 32 or 16 rows x 2 panels ([`amx_rows`]; a
    /// single panel goes in as both), rescaled by `scale` into the rows of `dst` (`ld` apart,
    /// `ps[0]` at column 0), each row at its output row; `np` is how many columns of each panel
    /// are real. (AVX-512 VNNI's 12-row blocks store their floats themselves:
    /// [`WeightsI8::blocks_vnni`].)
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    fn amx_blocks(
        &self,
        ps: &[&[i8]],
        np: [usize; 2],
        (r0, mr): (usize, usize),
        scale: f32,
        dst: Shared<f32>,
        ld: usize,
    ) {
        use super::kernel::int8_amx::{COLS, ROWS};
        let k4 = self.k4;
        assert!(
            MC.is_multiple_of(ROWS)
                && (r0 + mr.div_ceil(ROWS) * ROWS) * k4 <= self.codes.len()
                && ps.iter().all(|p| p.len() >= k4 * NR)
                && (1..=2).contains(&ps.len()),
            "amx_blocks: extents"
        );
        let (p0, p1) = (ps[0], ps[ps.len() - 1]);
        let mut acc = [0i32; 2 * ROWS * COLS];
        let (mut rb, r1) = (r0, r0 + mr);
        while rb < r1 {
            // SAFETY: AMX (the caller's path); rows are padded to whole tasks (`MC`, a
            // multiple of 16), so every block's rows exist (checked above), and whole panels.
            let span = unsafe { amx_rows(self, (rb, r1), (p0, p1), &mut acc) };
            for r in 0..span.min(r1 - rb) {
                let o = self.order[rb + r] - r0;
                for (h, &np) in np.iter().enumerate().take(ps.len()) {
                    // SAFETY: row `o < mr`, columns `h * NR..+np` of the caller's rectangle,
                    // which it owns.
                    let dst = unsafe { dst.slice(o * ld + h * NR, np) };
                    rescale(dst, &acc[r * COLS + h * NR..], scale);
                }
            }
            rb += span;
        }
    }

    /// [`WeightsI8::amx_blocks`] for AVX-512 VNNI's 12-row blocks, the kernel storing each block's
    /// floats straight into its output rows ([`block_avx512_vnni_f32`](super::kernel::int8_vnni::block_avx512_vnni_f32)); a lone panel through
    /// the one-panel blocks ([`block_one_avx512_vnni_f32`](super::kernel::int8_vnni::block_one_avx512_vnni_f32)), not in as both, and a pair whose
    /// second panel is at most half real (a 7x7 map's fourth: 1 column of 16) as two lone
    /// panels, the second through the half-panel blocks where the CPU has them.
    ///
    /// `narrow`: the last panel's real columns alone ([`narrow_columns`]) when it is among
    /// `ps` and has at most `NARROW_COLS`: its blocks then multiply those
    /// (`block_narrow_avx512_vnni_f32`).
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    fn blocks_vnni(
        &self,
        ps: &[Src],
        np: [usize; 2],
        (r0, mr): (usize, usize),
        scale: f32,
        dst: Shared<f32>,
        ld: usize,
        narrow: Option<&[u8]>,
    ) {
        use super::kernel::int8_vnni::{
            block_avx512_vnni_f32, block_first_avx512_vnni_f32, block_half_avx512_vnni_f32,
            block_narrow_avx512_vnni_f32, block_one_avx512_vnni_f32, block_rows,
            half_blocks_available, narrow_width, BlockOut, BLOCK_ROWS,
        };
        if ps.len() == 2 && np[1] <= NR / 2 {
            self.blocks_vnni(&ps[..1], [np[0], 0], (r0, mr), scale, dst, ld, None);
            let dst = dst.offset(NR);
            return self.blocks_vnni(&ps[1..], [np[1], 0], (r0, mr), scale, dst, ld, narrow);
        }
        let k4 = self.k4;
        assert!(
            MC.is_multiple_of(BLOCK_ROWS)
                && r0.is_multiple_of(self.granule)
                && (r0 + mr).div_ceil(MC) * MC * k4 <= self.codes.len()
                && ps.iter().all(|p| match p {
                    Src::Packed(p) => p.len() >= k4 * NR,
                    Src::Direct(_, taps) => taps.len() * KGROUP >= k4,
                })
                && (1..=2).contains(&ps.len())
                && np.iter().all(|&c| c <= NR),
            "blocks_vnni: extents"
        );
        let (b0, b1) = (ps[0].vnni(k4), ps[ps.len() - 1].vnni(k4));
        let lone = ps.len() == 1;
        // A lone panel of at most 8 real columns: the half-panel blocks (AVX-512VL too).
        let half = lone && np[0] <= NR / 2 && half_blocks_available();
        let cols = [np[0], if lone { 0 } else { np[1] }];
        let narrow = narrow.filter(|_| lone && np[0] <= super::kernel::int8_vnni::NARROW_COLS);
        assert!(
            narrow.is_none_or(|c| c.len() >= narrow_width(np[0]) * k4),
            "blocks_vnni: narrow columns"
        );
        let mut done = 0;
        while done < mr {
            let (first, rows) = (r0 + done, block_rows(mr - done));
            let out = BlockOut {
                rows: std::array::from_fn(|r| {
                    if r < rows.min(mr - done) {
                        // The stored row's output row (reordered within this task's rows).
                        dst.offset((self.order[first + r] - r0) * ld).0
                    } else {
                        std::ptr::null_mut()
                    }
                }),
                cols,
                scale,
            };
            // Rows are padded to whole tasks (`MC`, a multiple of 12, checked above) and a
            // block never passes the task's end, so its 12 sums exist.
            let sums: &[i32; BLOCK_ROWS] = self.sums[first..first + BLOCK_ROWS]
                .try_into()
                .expect("a block's row sums");
            let a = self.codes[first * k4..].as_ptr();
            if let Some(c) = narrow {
                let c = c.as_ptr();
                // SAFETY: as below; `c` holds `narrow_width(np[0])` columns of `k4` bytes
                // (checked above), the kernel's `M`, at least `np[0]`.
                unsafe {
                    match (rows, np[0]) {
                        (4, 1) => block_narrow_avx512_vnni_f32::<4, 1>(k4, a, k4, sums, c, &out),
                        (8, 1) => block_narrow_avx512_vnni_f32::<8, 1>(k4, a, k4, sums, c, &out),
                        (_, 1) => block_narrow_avx512_vnni_f32::<12, 1>(k4, a, k4, sums, c, &out),
                        (4, 2) => block_narrow_avx512_vnni_f32::<4, 2>(k4, a, k4, sums, c, &out),
                        (8, 2) => block_narrow_avx512_vnni_f32::<8, 2>(k4, a, k4, sums, c, &out),
                        (_, 2) => block_narrow_avx512_vnni_f32::<12, 2>(k4, a, k4, sums, c, &out),
                        (4, _) => block_narrow_avx512_vnni_f32::<4, 4>(k4, a, k4, sums, c, &out),
                        (8, _) => block_narrow_avx512_vnni_f32::<8, 4>(k4, a, k4, sums, c, &out),
                        (_, _) => block_narrow_avx512_vnni_f32::<12, 4>(k4, a, k4, sums, c, &out),
                    }
                }
                done += rows;
                continue;
            }
            // SAFETY: `int8_path` chose AVX-512 VNNI (so the CPU has it); the block's `rows`
            // rows of `k4` codes exist (padded to whole tasks, checked above), and each panel
            // has `k4 * NR` codes; every non-null row is an output row `< mr` of the caller's
            // rectangle, which owns its columns `0..NR + cols[1]` (or `cols[0]`); a half block
            // only where the CPU has AVX-512VL (`half`).
            unsafe {
                match (rows, lone) {
                    (4, false) => block_first_avx512_vnni_f32::<4>(k4, a, k4, sums, b0, b1, &out),
                    (8, false) => block_first_avx512_vnni_f32::<8>(k4, a, k4, sums, b0, b1, &out),
                    (_, false) => block_avx512_vnni_f32(k4, a, k4, sums, b0, b1, &out),
                    (4, true) if half => block_half_avx512_vnni_f32::<4>(k4, a, k4, sums, b0, &out),
                    (8, true) if half => block_half_avx512_vnni_f32::<8>(k4, a, k4, sums, b0, &out),
                    (_, true) if half => {
                        block_half_avx512_vnni_f32::<BLOCK_ROWS>(k4, a, k4, sums, b0, &out)
                    }
                    (4, true) => block_one_avx512_vnni_f32::<4>(k4, a, k4, sums, b0, &out),
                    (8, true) => block_one_avx512_vnni_f32::<8>(k4, a, k4, sums, b0, &out),
                    (_, true) => block_one_avx512_vnni_f32::<BLOCK_ROWS>(k4, a, k4, sums, b0, &out),
                }
            }
            done += rows;
        }
    }

    /// The `MR x NR` i32 tile of row block `g` (rows `g * MR..`) against one panel of `B`, whose
    /// codes are all `>= 0` when `unsigned`.
    #[inline]
    fn tile(&self, g: usize, panel: &[i8], unsigned: bool, acc: &mut [i32; MR * NR]) {
        let a = &self.codes[g * MR * self.k4..(g + 1) * MR * self.k4];
        let sums: &[i32; MR] = self.sums[g * MR..(g + 1) * MR]
            .try_into()
            .expect("MR sums per block");
        if int8_path().uses_row_sums() {
            // VNNI: exact for every code width, so no narrow/wide split.
            tile_with_sums(self.k4, a, self.k4, sums, panel, acc);
        } else {
            let (k4, depth) = (self.k4, self.depth[g][usize::from(unsigned)]);
            int8_narrow::tile(k4, a, k4, sums, panel, depth, unsigned, acc);
        }
    }

    /// [`WeightsI8::tile`]'s sums times `out.scale` stored into `out`'s rows: straight from the
    /// registers where the AVX2 kernels take the block ([`int8_narrow::tile_f32`]), else through
    /// the tile's `i32` sums ([`rescale`]); the same floats either way.
    ///
    /// # Safety
    /// As [`int8_narrow::tile_f32`] for `out`'s rows.
    unsafe fn tile_into(
        &self,
        g: usize,
        panel: &[i8],
        unsigned: bool,
        out: int8_narrow::FloatRows,
    ) {
        if !int8_path().uses_row_sums() {
            let a = &self.codes[g * MR * self.k4..(g + 1) * MR * self.k4];
            let sums: &[i32; MR] = self.sums[g * MR..(g + 1) * MR]
                .try_into()
                .expect("MR sums per block");
            let (k4, depth) = (self.k4, self.depth[g][usize::from(unsigned)]);
            // SAFETY: the caller's guarantee for the rows.
            if unsafe { int8_narrow::tile_f32(k4, a, k4, sums, panel, depth, unsigned, out) } {
                return;
            }
        }
        let mut acc = [0i32; MR * NR];
        self.tile(g, panel, unsigned, &mut acc);
        for (r, &p) in out.rows.iter().enumerate().filter(|(_, p)| !p.is_null()) {
            // SAFETY: the caller guarantees `out.cols` writable floats at each non-null row.
            let dst = unsafe { std::slice::from_raw_parts_mut(p, out.cols) };
            rescale(dst, &acc[r * NR..], out.scale);
        }
    }
}

/// `out` (`w.rows x b.n`, row-major) = epilogue(`b.scale * W * B`), in i32 per tile and rescaled
/// once; parallel over blocks of rows.
pub fn gemm_i8(w: &WeightsI8, b: &PanelB8, out: &mut [f32], epi: Epilogue) {
    gemm_i8_requant(w, b, out, epi, None, None);
}

/// Where an epilogue writes the output's codes for the next integer layers.
pub enum CodesOut<'a> {
    /// Row-major like the output (`[rows][n]`).
    Rows(&'a mut [i8]),
    /// In quads (the output's `n` pixels being the shape's `h x w`), for convolutions that
    /// read them so ([`super::quads`]).
    Quads(&'a mut Quads),
}

/// [`gemm_i8`], and when `requant` is `Some((codes, scale))` also `quantize(out[i], 1 / scale)`
/// for every output into `codes`, computed in the epilogue: the next layer's 8-bit input (its
/// calibrated scale), the same codes it would get by quantising `out` itself, without another
/// pass over the tensor. `out` is written for the steps that read floats (residual adds,
/// pooling, the logits); an empty `out` with `requant` keeps the codes alone, the floats passing
/// through each task's own buffer (see [`gemm_task`]).
pub fn gemm_i8_requant(
    w: &WeightsI8,
    b: &PanelB8,
    out: &mut [f32],
    epi: Epilogue,
    requant: Option<(CodesOut, f32)>,
    res8: Option<Residual8>,
) {
    gemm_panels(w, Panels::Packed(b), out, epi, requant, res8);
}

/// [`gemm_i8_requant`] for a convolution `geo` over codes stored to be gathered ([`Quads`],
/// [`TapRows`]; worth `scale`), whose panels each task gathers just before it multiplies them
/// ([`GatherPanels::fill_panel`]), instead of all of them first ([`Quads::im2col`]): the panel
/// is then in the core's cache for every block of rows, and the layer's whole `B` (1.8 MB for a
/// ResNet18 first-stage convolution) is never written out and read back. Tasks then own all
/// rows of a range of panels, so this is for layers of many pixels ([`gathers_pay`]).
#[allow(clippy::too_many_arguments)]
pub fn gemm_i8_gather(
    w: &WeightsI8,
    src: &dyn GatherPanels,
    geo: &Geometry,
    (scale, nonneg): (f32, bool),
    out: &mut [f32],
    epi: Epilogue,
    requant: Option<(CodesOut, f32)>,
    res8: Option<Residual8>,
) {
    // Panels read where they lie, where the blocks can (AVX-512 VNNI).
    let in_place = avx512_vnni_blocks().then(|| src.in_place(geo)).flatten();
    let b = Panels::Gather {
        src,
        geo,
        scale,
        nonneg,
        direct: in_place.as_ref(),
    };
    gemm_panels(w, b, out, epi, requant, res8);
}

/// Whether the integer GEMM runs AVX-512 VNNI's blocks, the only ones that read panels in place
/// ([`InPlace`], their `Panel`s) and take narrow last panels ([`narrow_last`]).
pub(super) fn avx512_vnni_blocks() -> bool {
    #[cfg(target_arch = "x86_64")]
    return int8_path() == super::kernel::int8::Int8Path::Avx512Vnni;
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether [`gemm_i8_gather`] suits a layer of `n` output pixels: at least two panels per
/// thread (ResNet's 14x14 and 7x7 maps too).
///
/// Why so few: packed first ([`Quads::im2col`], in parallel), each thread packs half of the
/// panels, and then every task reads all of them or all their rows' input; gathered, a task
/// reads the input under its own panels, and a map of 14x14 has enough pairs for tasks cut by
/// pixels alone ([`Split`]), so each thread reads what it wrote in the layer before. Where the
/// host gives the two threads cores that share no cache (other chiplets), what one thread
/// wrote and the other read crossed between them, and ResNet18's 14x14 3x3 convolutions took
/// 0.162-0.186 ms against 0.123-0.133 with a shared cache; gathered, 0.137-0.147, and its 7x7
/// ones 0.149-0.168 -> 0.146-0.152 (`step_times`, fastest of 13-17 rounds alternated with the
/// build before, each round's placement measured before and after it; Zen 5, 2 threads). The
/// rule had been about eight panels per thread. On the Xeon with AMX of the same stop (one L3
/// for both), within that host's noise: ResNet18 step sums in its quiet rounds 2.44-2.73 ms
/// against 2.48-2.71 (means 2.62 and 2.57), ResNet50 6.71-7.33 against 6.97-7.22.
pub fn gathers_pay(n: usize) -> bool {
    n.div_ceil(NR) >= 2 * rayon::current_num_threads().max(1)
}

/// Whether [`gemm_i8_gather`] reads every whole panel of convolution `geo` over `q` where it
/// lies ([`InPlace::whole`]): then it suits a layer of any size, as nothing is gathered.
/// ResNet50's 1x1 convolutions at 14x14 and 7x7 packed an im2col that was a copy of their
/// input (6% of such a layer's time on one thread).
pub fn reads_in_place(q: &Quads, geo: &Geometry) -> bool {
    avx512_vnni_blocks() && q.whole_in_place(geo)
}

/// Where the integer GEMM's activation panels come from.
#[derive(Clone, Copy)]
pub(super) enum Panels<'a> {
    /// All packed beforehand.
    Packed(&'a PanelB8),
    /// Gathered per task ([`Quads`] or [`TapRows`]).
    Gather {
        src: &'a dyn GatherPanels,
        geo: &'a Geometry,
        scale: f32,
        /// Whether every code is `>= 0` ([`PanelB8::nonneg`]).
        nonneg: bool,
        /// The panels that can be read where they lie, and how.
        direct: Option<&'a InPlace<'a>>,
    },
}

/// A panel as a task hands it to the kernels: packed bytes (`k4 * NR`, [`Panels::panel`]), or
/// where it lies in the input: its first window and its groups' offsets ([`InPlace`], AVX-512
/// VNNI only).
#[derive(Clone, Copy)]
enum Src<'a> {
    Packed(&'a [i8]),
    // Only AVX-512 VNNI's blocks read them (`avx512_vnni_blocks`).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Direct(*const i8, &'a [u32]),
}

impl<'a> Src<'a> {
    /// The packed bytes: the kernels of every path but AVX-512 VNNI take only these.
    fn packed(self) -> &'a [i8] {
        match self {
            Src::Packed(p) => p,
            Src::Direct(..) => unreachable!("panels in place go to the AVX-512 VNNI blocks only"),
        }
    }

    /// The panel as the AVX-512 VNNI blocks read it: packed (`k4 * NR` codes) or in place
    /// through its groups' offsets (one per 4 of the `k4`).
    #[cfg(target_arch = "x86_64")]
    fn vnni(self, k4: usize) -> super::kernel::int8_vnni::Panel {
        use super::kernel::int8_vnni::Panel;
        match self {
            Src::Packed(p) => {
                assert!(
                    p.len() >= k4 * NR,
                    "VNNI panels: {} codes for k {k4}",
                    p.len()
                );
                Panel::packed(p.as_ptr())
            }
            Src::Direct(base, taps) => {
                assert!(
                    taps.len() * KGROUP >= k4,
                    "VNNI panels in place: {} groups",
                    taps.len()
                );
                Panel {
                    base,
                    offsets: taps.as_ptr(),
                }
            }
        }
    }
}

/// A convolution's input stored so that each task can gather its own panels of `B`: its
/// codes in [`Quads`] or in [`TapRows`].
pub trait GatherPanels: Sync {
    /// `k` of convolution `g`'s panels (a multiple of 4).
    fn panel_k(&self, g: &Geometry) -> usize;
    /// Panel `j` of convolution `g` (`panel_k * NR` bytes), every byte written.
    fn fill_panel(&self, g: &Geometry, j: usize, panel: &mut [i8]);
    /// Where convolution `g`'s panels can be read in place, if anywhere.
    fn in_place(&self, _g: &Geometry) -> Option<InPlace<'_>> {
        None
    }
}

impl GatherPanels for Quads {
    fn panel_k(&self, g: &Geometry) -> usize {
        Quads::panel_k(self, g)
    }
    fn fill_panel(&self, g: &Geometry, j: usize, panel: &mut [i8]) {
        Quads::fill_panel(self, g, j, panel)
    }
    fn in_place(&self, g: &Geometry) -> Option<InPlace<'_>> {
        Quads::in_place(self, g)
    }
}

impl GatherPanels for TapRows {
    fn panel_k(&self, g: &Geometry) -> usize {
        taps::panel_k(g.c, g.kernel)
    }
    fn fill_panel(&self, g: &Geometry, j: usize, panel: &mut [i8]) {
        TapRows::fill_panel(self, g, j, panel)
    }
}

impl Panels<'_> {
    /// `(k, k4, n, scale)`.
    fn dims(&self) -> (usize, usize, usize, f32) {
        match *self {
            Panels::Packed(b) => (b.k, b.k4, b.n, b.scale),
            Panels::Gather {
                src, geo, scale, ..
            } => {
                let k = src.panel_k(geo);
                (k, k, geo.n(), scale)
            }
        }
    }

    /// Whether every code is `>= 0` ([`PanelB8::nonneg`]).
    fn nonneg(&self) -> bool {
        match *self {
            Panels::Packed(b) => b.nonneg,
            Panels::Gather { nonneg, .. } => nonneg,
        }
    }

    /// Panel `j`: a slice of the packed ones, or gathered into `buf`.
    fn panel<'s>(&'s self, j: usize, k4: usize, buf: &'s mut Buf<i8>) -> &'s [i8] {
        match *self {
            Panels::Packed(b) => &b.data[j * k4 * NR..(j + 1) * k4 * NR],
            Panels::Gather { src, geo, .. } => {
                // Grown only (zeros written), never shrunk: layers alternate between `k`s,
                // and shrinking made every longer one write its zeros again.
                if buf.len() < k4 * NR {
                    buf.resize(k4 * NR, 0);
                }
                let panel = &mut buf[..k4 * NR];
                src.fill_panel(geo, j, panel);
                panel
            }
        }
    }

    /// Panel `j` where it lies when it can be read so ([`InPlace::panel`]), else
    /// [`Panels::panel`].
    fn src<'s>(&'s self, j: usize, k4: usize, buf: &'s mut Buf<i8>) -> Src<'s> {
        if let Panels::Gather {
            direct: Some(d), ..
        } = *self
        {
            if let Some(p) = d.panel(j) {
                return Src::Direct(p, d.taps());
            }
        }
        Src::Packed(self.panel(j, k4, buf))
    }
}

fn gemm_panels(
    w: &WeightsI8,
    b: Panels,
    out: &mut [f32],
    epi: Epilogue,
    requant: Option<(CodesOut, f32)>,
    res8: Option<Residual8>,
) {
    let (k, _, n, _) = b.dims();
    debug_assert!(
        epi.residual.is_none() || res8.is_none(),
        "one residual, as floats or as codes"
    );
    if let Some(r) = &res8 {
        r.check(w.rows, n);
    }
    assert_eq!(
        w.k, k,
        "gemm_i8: weights have {} columns, B has {k} rows",
        w.k
    );
    // No floats kept: only the codes leave the tasks.
    let codes_only = out.is_empty() && requant.is_some();
    assert!(
        codes_only || out.len() == w.rows * n,
        "gemm_i8 output size: {} for {} x {n}",
        out.len(),
        w.rows
    );
    if w.rows == 0 || n == 0 {
        return;
    }
    // Where the codes go, as raw pointers: tasks write disjoint rectangles of them.
    let target = match requant {
        None => Target::None,
        Some((CodesOut::Rows(codes), scale)) => {
            assert_eq!(codes.len(), w.rows * n, "gemm_i8: requantised output size");
            Target::Rows(Shared(codes.as_mut_ptr()), 1.0 / scale)
        }
        Some((CodesOut::Quads(quads), scale)) => {
            let shape = quads.shape;
            assert!(
                shape.c == w.rows && shape.h * shape.w == n && quads.data.len() >= shape.len(),
                "gemm_i8: {} x {n} outputs requantised into quads of {shape:?}",
                w.rows
            );
            Target::Quads(Shared(quads.data.as_mut_ptr()), shape, 1.0 / scale, 0)
        }
    };
    // Tasks take every row of their panels where each panel would be gathered once per task:
    // gathered panels, and panels in place over many pixels (each pair then serves all rows
    // from the core's cache). A small map read in place is cut by rows too, as packed ones.
    let gather = match b {
        Panels::Packed(_) => false,
        Panels::Gather { direct, .. } => !direct.is_some_and(InPlace::whole) || gathers_pay(n),
    };
    let threads = rayon::current_num_threads().max(1);
    let split = Split::new(w.rows, w.granule, n.div_ceil(NR), gather, threads);
    let to = (!codes_only).then_some(TaskOut {
        base: Shared(out.as_mut_ptr()),
        ld: n,
        row0: 0,
        col0: 0,
    });
    super::tasks::each(split.tasks(), |t| {
        let (rows, panels) = split.task(t);
        // SAFETY: tasks own disjoint rectangles (rows `rows`, panels `panels`) of `out` and of
        // the codes, which outlive the loop.
        unsafe { gemm_task(w, &b, rows, panels, to, &epi, &target, res8.as_ref()) };
    });
}

/// Tasks per thread where gathered panels are cut by pairs alone (every task takes all rows),
/// each a job of its own ([`super::tasks`]): a thread that is done takes the next task of the
/// other's share instead of waiting for it, where the two cores run at different speeds.
///
/// Why four: they cost nothing more to compute than two (a column task reads the rows' weights
/// once per pair of panels however the pairs are shared out). ResNet50's integer path, fq's
/// blocks of 8 runs interleaved with onnxruntime's in one session (36 rounds, Zen 3 KVM, 2
/// threads): median 33.9 -> 30.5 ms (onnxruntime 27.8), fastest 24.3 -> 24.6; eight per thread
/// gave 31.4.
const STEALABLE: usize = 4;

/// How [`gemm_panels`] cuts a layer into tasks: rectangles of rows (whole units of the
/// weights' granule) by ranges of panels (whole pairs: the blocks take two), about two per
/// thread and of near-equal size, each writing its rectangle of the output and of the codes in
/// place.
///
/// Why two: each task reads its panels (a row task) or its rows' weights (a column task) again,
/// and every task is a handover between threads. Four per thread was the Xeon of stop 53's
/// choice; on the Zen 5 EPYC of stop 56 two ran ResNet50's integer steps 5.266-5.274 ->
/// 5.194-5.202 ms (its 14x14 and 7x7 layers, cut by rows, 3-9% faster each), ResNet18's 2.158
/// -> 2.147, the token models within 0.3%; one per thread gave 5.215 and 2.127, but leaves
/// the layer to the slower thread whenever one starts late (alternated builds, 4 rounds).
/// Gathered panels cut by pairs alone are the exception: [`STEALABLE`] per thread.
///
/// Why near-equal: rayon hands each thread a contiguous half of the tasks, so the thread with
/// the larger half sets the layer's time. Cut in fixed sizes, ResNet18's 56x56 layers were 8
/// tasks of 26, .., 26 and 14 panels (104 against 92 per thread) and its 512-row layers 11
/// tasks of 48 rows (6 against 5).
///
/// Why rectangles: rows alone made 2 and 3 tasks of ResNet18's 64- and 128-row layers;
/// splitting those by columns into buffers of their own, copied back, was a tenth of its
/// integer path on AMX. Gathered panels: a task takes every row of its panels (each panel
/// gathered once), unless there are fewer pairs of them than tasks wanted: then the rows are
/// cut into one part per thread as well, and each panel is gathered once per thread. Cut by
/// pairs alone, ResNet50's 7x7 downsampling pair (2 pairs, the last panel narrow) gave one
/// thread 32 pixels and the other 17 (208 against 154 µs of work); cut by rows too, it ran in
/// 0.189 ms instead of 0.212 (`step_times`, fastest of 3 alternated rounds, Zen 5 at 2
/// threads). Stop 58 cut the rows of its 14x14 pair (7 pairs: 96 pixels against 100 with the
/// narrow panel, 165 against 185 µs) as well, 0.191 -> 0.185 ms; cut by pixels instead, each
/// thread reads only the input it wrote the layer before, which is what counts where the two
/// threads share no cache ([`gathers_pay`]). One thread: one task, every row of each pair of
/// panels in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Split {
    rows: usize,
    granule: usize,
    panels: usize,
    /// Tasks along the rows and along the panels.
    row_tasks: usize,
    col_tasks: usize,
}

impl Split {
    fn new(rows: usize, granule: usize, panels: usize, gather: bool, threads: usize) -> Self {
        // As many row tasks as whole units of at least `FINE` rows (cut at `granule`'s).
        let (units, pairs) = (rows.div_ceil(granule.max(FINE)), panels.div_ceil(2));
        let want = if threads > 1 { 2 * threads } else { 1 };
        // Gathered panels too few to share out evenly: the rows cut per thread as well.
        let row_tasks = match gather {
            false => units.clamp(1, want),
            true if pairs < want => units.clamp(1, threads),
            true => 1,
        };
        let col_tasks = match gather && row_tasks == 1 && threads > 1 {
            true => pairs.min(STEALABLE * threads),
            false => pairs.min(want.div_ceil(row_tasks)).max(1),
        };
        Self {
            rows,
            granule,
            panels,
            row_tasks,
            col_tasks,
        }
    }

    fn tasks(&self) -> usize {
        self.row_tasks * self.col_tasks
    }

    /// Task `t`'s rows and panels: part `i` of `parts` of `units` starts at `units * i / parts`.
    fn task(&self, t: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let cut = |units: usize, parts: usize, i: usize| units * i / parts;
        let (i, j) = (t / self.col_tasks, t % self.col_tasks);
        let units = self.rows.div_ceil(self.granule);
        let rows = |i| (cut(units, self.row_tasks, i) * self.granule).min(self.rows);
        let pairs = self.panels.div_ceil(2);
        let panels = |j| (cut(pairs, self.col_tasks, j) * 2).min(self.panels);
        (rows(i)..rows(i + 1), panels(j)..panels(j + 1))
    }
}

/// Where a task of the integer GEMM writes its floats: output row `o`, column `c` at
/// `base + (o - row0) * ld + c - col0` (the whole output, or a task's own buffer).
#[derive(Clone, Copy)]
pub(super) struct TaskOut {
    pub base: Shared<f32>,
    pub ld: usize,
    pub row0: usize,
    pub col0: usize,
}

/// One task of the integer GEMM: rows `rows` (whole [`MC`] blocks from a multiple of it) by
/// panels `panels` of `b`, rescaled into `to`, then the epilogue and the codes of `target` for
/// the same rows while they are in the core's cache.
///
/// `to: None` (codes only): the floats go to the thread's own buffer, which stays in the core's
/// cache from task to task. Written to the layer's output instead, they were written back to
/// memory for nobody: on ResNet50's integer path, where most values are read only as codes,
/// that was about a twentieth of the time.
///
/// `res8`: the residual as codes ([`Residual8`]), dequantised for the task's rectangle into the
/// thread's own buffer just before the epilogue adds it.
///
/// # Safety
/// `to` must hold the task's rectangle (rows `rows`, columns of `panels` clipped to `n`) and
/// the target its codes, both written by no one else meanwhile; the epilogue's residual, when
/// there is one, is `[w.rows][n]`, as is `res8` ([`Residual8::check`]).
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_task(
    w: &WeightsI8,
    b: &Panels,
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
    to: Option<TaskOut>,
    epi: &Epilogue,
    target: &Target,
    res8: Option<&Residual8>,
) {
    let (_, k4, n, scale) = b.dims();
    debug_assert!(
        to.is_some() || !matches!(target, Target::None),
        "a task keeps its floats or its codes"
    );
    #[cfg(target_arch = "x86_64")]
    let panels = match (to, target) {
        (None, Target::Quads(data, shape, inv, first)) => match quad_blocks(w, epi, rows.clone()) {
            Some(blocks) => {
                let out = super::finish_quads::QuadsOut {
                    data: *data,
                    shape: *shape,
                    inv: *inv,
                    first: *first,
                };
                let res = match (res8, epi.residual) {
                    (Some(r), _) => super::finish_quads::BlockResidual::Codes(*r),
                    (None, Some(v)) => super::finish_quads::BlockResidual::Floats(v),
                    (None, None) => super::finish_quads::BlockResidual::None,
                };
                let end = blocks.end(n, panels.clone());
                let fused = (rows.clone(), panels.start..end);
                // SAFETY: the caller's contract; `quad_blocks` checked the path and the rows.
                unsafe { quads_task(blocks, (w, b, epi), None, fused, res, out) };
                if end == panels.end {
                    return;
                }
                // A last narrow panel (and its pair): the blocks that take it, below.
                end..panels.end
            }
            None => panels,
        },
        _ => panels,
    };
    let (r0, r1) = (rows.start, rows.end);
    let (j0, j1) = (panels.start, panels.end);
    let (c0, c1) = (j0 * NR, (j1 * NR).min(n));
    let width = c1 - c0;
    // Bands of rows finished one after the other ([`bands_pay`]), their panels gathered once
    // for all of them into `all`; else one band of all the task's rows.
    let banded = bands_pay(r1 - r0, width, k4 * NR * (j1 - j0), res8.is_some());
    let band = if banded { MC } else { r1 - r0 };
    let mut all = TASK_PANELS.with(|p| p.take());
    if banded {
        if let Panels::Gather { src, geo, .. } = b {
            // Grown only, as `Panels::panel`'s buffers.
            if all.len() < (j1 - j0) * k4 * NR {
                all.resize((j1 - j0) * k4 * NR, 0);
            }
            for (j, panel) in (j0..j1).zip(all.chunks_exact_mut(k4 * NR)) {
                src.fill_panel(geo, j, panel);
            }
        }
    }
    // Panel `j` of `all` (or of the packed ones), in a banded task.
    let gathered = |j: usize| match b {
        Panels::Packed(p) => Src::Packed(&p.data[j * k4 * NR..(j + 1) * k4 * NR]),
        Panels::Gather { .. } => Src::Packed(&all[(j - j0) * k4 * NR..][..k4 * NR]),
    };
    let mut staged = Buf::new();
    if to.is_none() {
        // Stale contents are fine: the tiles write every value of a band's rectangle.
        staged = kept_buffer(&STAGED, band.min(r1 - r0) * width);
    }
    let mut bufs = PANELS.with(|p| p.take());
    let mut narrow = NARROW.with(|c| c.take());
    let mut resid = Buf::new();
    if res8.is_some() {
        // Stale contents are fine: each band dequantises its rows' residual into it first.
        resid = kept_buffer(&RESIDUAL, band.min(r1 - r0) * width);
    }
    // The layer's last panel, when the narrow blocks take it (1 to 4 real columns).
    let last = n.div_ceil(NR).saturating_sub(1);
    let narrow_last = narrow_last(n, last, j0..j1);
    for rb in (r0..r1).step_by(band) {
        let re = (rb + band).min(r1);
        // Where this band's floats go: the caller's, or the staged buffer from its first row.
        let to = to.unwrap_or(TaskOut {
            base: Shared(staged.as_mut_ptr()),
            ld: width,
            row0: rb,
            col0: c0,
        });
        let at = |o: usize, c: usize| to.base.offset((o - to.row0) * to.ld + c - to.col0);
        for j in (j0..j1).step_by(2) {
            let count = if j + 1 < j1 { 2 } else { 1 };
            let ps: [Src; 2] = if banded {
                [gathered(j), gathered(j + count - 1)]
            } else {
                let [buf0, buf1] = &mut bufs;
                let p0 = b.src(j, k4, buf0);
                [
                    p0,
                    if count == 2 {
                        b.src(j + 1, k4, buf1)
                    } else {
                        p0
                    },
                ]
            };
            // Its real columns alone, once for all the band's rows.
            let cols = (narrow_last && (j..j + count).contains(&last)).then(|| {
                narrow_columns(ps[last - j].packed(), k4, n - last * NR, &mut narrow);
                narrow.as_slice()
            });
            for rc in (rb..re).step_by(MC) {
                let mr = MC.min(re - rc);
                tiles(
                    w,
                    n,
                    (scale, b.nonneg()),
                    (rc, mr),
                    &ps[..count],
                    j,
                    at(rc, j * NR),
                    to.ld,
                    cols,
                );
            }
        }
        // SAFETY: the caller's contract: this task alone owns row `r`'s columns `c0..c1` in
        // `to`.
        let row = |r: usize| unsafe { at(r, c0).slice(0, width) };
        if let Some(r) = res8 {
            let need = (re - rb) * width;
            r.dequantize(rb..re, c0..c1, n, &mut resid[..need]);
        }
        let finish = |o: usize| {
            let res = match res8 {
                Some(_) => Some(&resid[(o - rb) * width..(o - rb + 1) * width]),
                None => epi.residual.map(|v| &v[o * n + c0..o * n + c1]),
            };
            finish_row(row(o), epi, o, res);
        };
        // The epilogue, then the codes of the same rows while they are in the core's cache:
        // row by row, or quad by quad (four rows per plane of codes).
        match target {
            Target::None => (rb..re).for_each(finish),
            Target::Rows(codes, inv) => {
                for o in rb..re {
                    finish(o);
                    // SAFETY: the caller's contract (the codes of the task's rectangle).
                    let q = unsafe { codes.slice(o * n + c0, width) };
                    quantize_into(row(o), q, *inv);
                }
            }
            Target::Quads(data, shape, inv, first) => {
                // This band's rows are whole quads (`MC` is a multiple of 4).
                for q0 in (rb..re).step_by(QUAD) {
                    let count = QUAD.min(re - q0);
                    let mut channels: [&[f32]; QUAD] = [&[]; QUAD];
                    for (l, ch) in channels.iter_mut().enumerate().take(count) {
                        finish(q0 + l);
                        *ch = row(q0 + l);
                    }
                    let plane = data.offset(q0 / QUAD * shape.plane()).0;
                    // SAFETY: the plane of quad `q0 / 4` lies in the codes (asserted by the
                    // caller); this task alone writes its pixels `c0..c1`.
                    unsafe {
                        store_quad_pixels(plane, shape, &channels[..count], c0 - first, *inv)
                    };
                }
            }
        }
    }
    PANELS.with(|p| p.set(bufs));
    NARROW.with(|c| c.set(narrow));
    TASK_PANELS.with(|p| p.set(all));
    if staged.capacity() > 0 {
        STAGED.with(|s| s.set(staged));
    }
    if resid.capacity() > 0 {
        RESIDUAL.with(|s| s.set(resid));
    }
}

/// Whether [`gemm_task`] runs a task of `rows` rows by `width` columns in bands of [`MC`] rows,
/// each finished (epilogue, residual, codes) before the next band's sums, its `panel_bytes`
/// of panels gathered once for all the bands: on the paths of the 6x16 tile (AVX2 and the
/// others without AMX or AVX-512 VNNI, whose blocks keep the order they were tuned in), where
/// the task's floats (4 bytes an output, twice with a `residual` read from codes) would not
/// stay in a core's L2 cache ([`BAND_FLOATS`]) and its panels would ([`BAND_PANELS`]).
///
/// Why: a task's floats are written by the tiles, read and written by the epilogue and read
/// again for the codes, every row block at each pair of panels in turn; on AVX2 a 56x56
/// layer's task is 256 rows by 784 pixels, 800 KB of floats and as many of its residual,
/// which a Zen 3 core's 512 KB L2 does not hold, so each pass went to L3. A band of 48 rows is
/// 150 KB. In ResNet50 on that Zen 3 (stop 67, `step_times` with `FQ_NO_BANDS` alternated, 3 +
/// 3 processes, twice): its 64-to-256 layers on 56x56 0.65-0.67 -> 0.46-0.47 ms, with the
/// residual 0.75-0.77 -> 0.58; step sums 28.3 -> 27.4 and 29.2 -> 27.1 ms.
fn bands_pay(rows: usize, width: usize, panel_bytes: usize, residual: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    if matches!(
        int8_path(),
        super::kernel::int8::Int8Path::Amx | super::kernel::int8::Int8Path::Avx512Vnni
    ) {
        return false;
    }
    let floats = rows * width * if residual { 2 } else { 1 };
    BANDS.load(std::sync::atomic::Ordering::Relaxed)
        && rows > MC
        && floats * std::mem::size_of::<f32>() > BAND_FLOATS
        && panel_bytes <= BAND_PANELS
}

/// Whether [`bands_pay`] may band a task at all ([`set_bands`]).
static BANDS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Lets [`gemm_task`] run tasks in bands where they pay (`true`, the default) or never: the
/// same values either way, only the order of the work (the switch is the process's, as the
/// caches it is about are; `Executor::set_int8_bands`).
pub(super) fn set_bands(on: bool) {
    BANDS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Bytes of a task's floats above which [`bands_pay`].
const BAND_FLOATS: usize = 256 << 10;
/// Bytes of a task's panels up to which [`bands_pay`].
const BAND_PANELS: usize = 192 << 10;

/// This thread's buffer kept in `cell`, at least `len` floats long, stale contents; back with
/// `cell.set`. Never shortened, so a later, larger task zero-fills nothing it held before.
fn kept_buffer(
    cell: &'static std::thread::LocalKey<std::cell::Cell<Buf<f32>>>,
    len: usize,
) -> Buf<f32> {
    let mut v = cell.with(|c| c.take());
    if v.len() < len {
        v.resize(len, 0.0);
    }
    v
}

/// The blocks a codes-only task into quads finishes straight into them ([`quads_task`]).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QuadBlocks {
    /// AMX's 32- and 16-row blocks of packed panels.
    Amx,
    /// AVX-512 VNNI's 12-, 8- and 4-row blocks, panels packed or in place.
    Vnni,
}

#[cfg(target_arch = "x86_64")]
impl QuadBlocks {
    /// The end of the panels of `panels` (of a map of `n` pixels) that these blocks take: all
    /// on AMX; on VNNI all but the map's last panel when it has 5 to 8 real columns, which
    /// `WeightsI8::blocks_vnni`'s half blocks compute where a whole panel would be 16. A last
    /// panel of 1 to 4 (a 7x7 map's 49th column, a 14x14 map's last 4) the blocks take
    /// through the narrow kernel ([`BlockPanels::of`]): through the float buffer of the task's
    /// rows, its epilogue called row by row for 1 to 4 floats, it was 6% of ResNet50's
    /// integer path on one thread (Zen 5).
    fn end(self, n: usize, panels: std::ops::Range<usize>) -> usize {
        let last = n.div_ceil(NR).saturating_sub(1);
        match self {
            QuadBlocks::Vnni
                if panels.contains(&last)
                    && (super::kernel::int8_vnni::NARROW_COLS + 1..=NR / 2)
                        .contains(&(n - last * NR)) =>
            {
                last
            }
            _ => panels.end,
        }
    }
}

/// Whether a codes-only task into quads runs [`quads_task`], and with which blocks: AMX or
/// AVX-512 VNNI blocks finished on AVX-512F, no GELU, and the task's rows in their order (each
/// block row its output row) from a whole quad.
#[cfg(target_arch = "x86_64")]
fn quad_blocks(w: &WeightsI8, epi: &Epilogue, rows: std::ops::Range<usize>) -> Option<QuadBlocks> {
    use super::kernel::int8::Int8Path;
    let blocks = match int8_path() {
        Int8Path::Amx => QuadBlocks::Amx,
        Int8Path::Avx512Vnni => QuadBlocks::Vnni,
        _ => return None,
    };
    (super::kernel::path() == super::kernel::KernelPath::Avx512F
        && !epi.gelu
        && rows.start.is_multiple_of(QUAD)
        && w.order[rows.clone()].iter().copied().eq(rows))
    .then_some(blocks)
}

/// [`gemm_task`] for a task that keeps only codes in quads: each block's sums finished
/// straight into the quads ([`super::finish_quads`]) while they are in the core's cache, with no
/// float buffer, the residual `res` added.
///
/// Why: through a float buffer of the task's rows, the sums were written as floats, read and
/// written again by the epilogue, and read once more for the codes. On Zen 5's AVX-512 VNNI,
/// ResNet50's 64→256 1x1 convolutions on 56x56 took 0.16–0.17 ms so, against onnxruntime's
/// 0.08 for the same convolution (its kernel requantises in one pass).
///
/// With `first` (a pair's first convolution, [`gemm_i8_pair`]), each block of it is computed
/// first and finished into floats in L1, which are the block's residual instead of `res`.
///
/// # Safety
/// As [`gemm_task`]; [`quad_blocks`] gives `blocks` for each convolution, the panels start at
/// an even one (pairs from there, the last maybe alone) and none lies past
/// [`QuadBlocks::end`], and `first`'s output is the same `[rows][n]` as the second's.
#[cfg(target_arch = "x86_64")]
unsafe fn quads_task(
    blocks: QuadBlocks,
    (w, b, epi): (&WeightsI8, &Panels, &Epilogue),
    first: Option<(&WeightsI8, &Panels, &Epilogue)>,
    (rows, panels): (std::ops::Range<usize>, std::ops::Range<usize>),
    res: super::finish_quads::BlockResidual,
    out: super::finish_quads::QuadsOut,
) {
    use super::finish_quads::{
        finish_block, finish_block_floats, prefetch_ahead, BlockResidual, COLD_BYTES,
    };
    use super::kernel::int8_amx::{COLS, ROWS};
    let (_, k4, n, scale) = b.dims();
    // The activations' scale of the first's sums.
    let scale_p = first.map_or(0.0, |(_, bp, _)| bp.dims().3);
    let (r0, r1) = (rows.start, rows.end);
    let (j0, j1) = (panels.start, panels.end);
    debug_assert!(j1 <= blocks.end(n, j0..j1));
    // The last row a block may compute (padding rows computed, not stored): AMX's blocks are
    // whole 16s from `r0`, VNNI's end inside the weights' rows padded to whole tasks.
    let end = match blocks {
        QuadBlocks::Amx => r0 + (r1 - r0).div_ceil(ROWS) * ROWS,
        QuadBlocks::Vnni => r1.div_ceil(MC) * MC,
    };
    assert!(
        end * k4 <= w.codes.len()
            && end <= w.sums.len()
            && first.is_none_or(|(wp, ..)| end * wp.k4 <= wp.codes.len() && end <= wp.sums.len()),
        "quads_task: rows past the codes"
    );
    let mut bufs = PANELS.with(|p| p.take());
    let mut bufs_p = PAIR_PANELS.with(|p| p.take());
    let [mut narrow, mut narrow_p] = NARROWS.with(|c| c.take());
    let (mut acc, mut floats) = ([0i32; 2 * ROWS * COLS], [0f32; 2 * ROWS * COLS]);
    // A large output's lines asked for ahead of its blocks (see `prefetch_ahead`).
    let cold = out.shape.len() >= COLD_BYTES;
    for j in (j0..j1).step_by(2) {
        let pair = j + 1 < j1;
        let ps = BlockPanels::of(blocks, b, (j, pair), (k4, n), &mut bufs, &mut narrow);
        let ps_first = first.map(|(wp, bp, _)| {
            BlockPanels::of(
                blocks,
                bp,
                (j, pair),
                (wp.k4, n),
                &mut bufs_p,
                &mut narrow_p,
            )
        });
        let np = [
            NR.min(n - j * NR),
            if pair { NR.min(n - (j + 1) * NR) } else { 0 },
        ];
        let yx = out.halves(j * NR);
        // Rows `o..` of a block of `span` rows from `rb`, each 16-row part's real ones.
        let parts = |rb: usize, span: usize| {
            (0..span.div_ceil(ROWS)).map(move |h| {
                let o = rb + h * ROWS;
                (h, o, ROWS.min(span - h * ROWS).min(r1 - o))
            })
        };
        let mut rb = r0;
        while rb < r1 {
            if let (Some((wp, _, epi_p)), Some(pp)) = (first, ps_first) {
                // SAFETY: `blocks`' CPU features (`quad_blocks`); the rows' codes and sums
                // (asserted above), whole panels.
                let span = unsafe { block_sums(wp, (rb, r1), pp, &mut acc) };
                for (h, o, rows) in parts(rb, span) {
                    let sums = &acc[h * ROWS * COLS..][..ROWS * COLS];
                    let dst = &mut floats[h * ROWS * COLS..][..ROWS * COLS];
                    let (sums, dst) = (
                        sums.try_into().expect("a block"),
                        dst.try_into().expect("a block"),
                    );
                    // SAFETY: AVX-512F (`quad_blocks`); rows `o..` of the first's epilogue.
                    unsafe { finish_block_floats(sums, o, rows, np, scale_p, epi_p, dst) };
                }
            }
            // SAFETY: as above; the span depends on `rb` and `r1` alone, so it is the first's.
            let span = unsafe { block_sums(w, (rb, r1), ps, &mut acc) };
            for (h, o, rows) in parts(rb, span) {
                let sums = (&acc[h * ROWS * COLS..][..ROWS * COLS])
                    .try_into()
                    .expect("a 16-row block");
                let res = match first {
                    Some(_) => BlockResidual::Block(
                        (&floats[h * ROWS * COLS..][..ROWS * COLS])
                            .try_into()
                            .expect("a 16-row block"),
                    ),
                    None => res,
                };
                // SAFETY: AVX-512F (`quad_blocks`); the block's rows are output rows `o..`, its
                // pixels this task's, which no other task writes.
                unsafe { finish_block(sums, o, rows, (j * NR, n, yx), np, scale, epi, res, out) };
                if cold {
                    // SAFETY: AVX-512F, as above.
                    unsafe { prefetch_ahead(&out, &res, (o, rows), j * NR) };
                }
            }
            rb += span;
        }
    }
    PANELS.with(|p| p.set(bufs));
    PAIR_PANELS.with(|p| p.set(bufs_p));
    NARROWS.with(|c| c.set([narrow, narrow_p]));
}

/// One or two panels as [`quads_task`]'s blocks read them: packed pairs for AMX (a lone panel
/// as both), VNNI panels (packed or in place) with the second absent for a lone one, and a
/// map's narrow last panel on VNNI as its real columns ([`narrow_columns`]), after the pair's
/// first panel when there is one.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum BlockPanels<'s> {
    Amx(&'s [i8], &'s [i8]),
    Vnni(
        super::kernel::int8_vnni::Panel,
        Option<super::kernel::int8_vnni::Panel>,
    ),
    /// The block's left panel, if the narrow one is its right; the narrow panel's columns and
    /// real count.
    Narrow(Option<super::kernel::int8_vnni::Panel>, &'s [u8], usize),
}

#[cfg(target_arch = "x86_64")]
impl<'s> BlockPanels<'s> {
    /// Panels `j` and, with `pair`, `j + 1` of `b` (`k4 * NR` codes each, `n` columns in
    /// all), gathered into `bufs` where they are neither packed nor read in place; on VNNI a
    /// narrow last one ([`QuadBlocks::end`]) as its columns in `narrow`.
    fn of(
        blocks: QuadBlocks,
        b: &'s Panels,
        (j, pair): (usize, bool),
        (k4, n): (usize, usize),
        bufs: &'s mut [Buf<i8>; 2],
        narrow: &'s mut Vec<u8>,
    ) -> Self {
        match blocks {
            QuadBlocks::Amx => {
                let (p0, p1) = panel_pair(b, (j, pair), k4, bufs);
                BlockPanels::Amx(p0, p1)
            }
            QuadBlocks::Vnni => {
                let [buf0, buf1] = bufs;
                let last = j + usize::from(pair);
                let m = n - last * NR;
                if m <= super::kernel::int8_vnni::NARROW_COLS {
                    // The map's last panel (only it has fewer than 16 columns), gathered.
                    let left = if pair {
                        narrow_columns(b.src(last, k4, buf1).packed(), k4, m, narrow);
                        Some(b.src(j, k4, buf0).vnni(k4))
                    } else {
                        narrow_columns(b.src(last, k4, buf0).packed(), k4, m, narrow);
                        None
                    };
                    return BlockPanels::Narrow(left, narrow, m);
                }
                let p0 = b.src(j, k4, buf0).vnni(k4);
                BlockPanels::Vnni(p0, pair.then(|| b.src(j + 1, k4, buf1).vnni(k4)))
            }
        }
    }
}

/// The sums of `w`'s rows from `rb` (of a task's rows up to `r1`) against one block's panels
/// into `acc` (`[16][32]` per 16 rows): AMX's 32 or 16 rows ([`amx_rows`]), VNNI's 12, 8 or 4
/// ([`super::kernel::int8_vnni::block_rows`]); returns how many (rows past `r1` are padding).
///
/// # Safety
/// The blocks' CPU features; `w`'s codes and row sums hold the rows the block computes (see
/// [`quads_task`]), and each panel `w.k4 * NR` codes.
#[cfg(target_arch = "x86_64")]
unsafe fn block_sums(
    w: &WeightsI8,
    (rb, r1): (usize, usize),
    ps: BlockPanels,
    acc: &mut [i32; 2 * super::kernel::int8_amx::ROWS * super::kernel::int8_amx::COLS],
) -> usize {
    use super::kernel::int8_vnni::{
        block_narrow_sums_avx512_vnni as narrow, block_one_sums_avx512_vnni as one,
        block_sums_avx512_vnni as two, narrow_width, BLOCK_ROWS,
    };
    match ps {
        // SAFETY: the caller's contract.
        BlockPanels::Amx(p0, p1) => unsafe { amx_rows(w, (rb, r1), (p0, p1), acc) },
        BlockPanels::Narrow(left, cols, m) => {
            let (k4, rows, a, sums, out) = vnni_operands(w, (rb, r1), acc);
            let width = narrow_width(m);
            assert!(
                cols.len() >= width * k4,
                "narrow columns: {} bytes",
                cols.len()
            );
            let c0 = if left.is_some() { NR } else { 0 };
            let cols = cols.as_ptr();
            // SAFETY: the caller's contract: AVX-512 VNNI, the block's rows and panels; the
            // columns hold `width` columns of `k4` codes (asserted).
            unsafe {
                if let Some(b0) = left {
                    match rows {
                        4 => one::<4>(k4, a, k4, sums, b0, out),
                        8 => one::<8>(k4, a, k4, sums, b0, out),
                        _ => one::<BLOCK_ROWS>(k4, a, k4, sums, b0, out),
                    }
                }
                macro_rules! narrow_rows {
                    ($m:literal) => {
                        match rows {
                            4 => narrow::<4, $m>(k4, a, k4, sums, cols, out, c0),
                            8 => narrow::<8, $m>(k4, a, k4, sums, cols, out, c0),
                            _ => narrow::<BLOCK_ROWS, $m>(k4, a, k4, sums, cols, out, c0),
                        }
                    };
                }
                match width {
                    1 => narrow_rows!(1),
                    2 => narrow_rows!(2),
                    _ => narrow_rows!(4),
                }
            }
            rows
        }
        BlockPanels::Vnni(b0, b1) => {
            let (k4, rows, a, sums, out) = vnni_operands(w, (rb, r1), acc);
            // SAFETY: the caller's contract: AVX-512 VNNI, the block's rows and panels.
            unsafe {
                match (rows, b1) {
                    (4, Some(b1)) => two::<4>(k4, a, k4, sums, b0, b1, out),
                    (8, Some(b1)) => two::<8>(k4, a, k4, sums, b0, b1, out),
                    (_, Some(b1)) => two::<BLOCK_ROWS>(k4, a, k4, sums, b0, b1, out),
                    (4, None) => one::<4>(k4, a, k4, sums, b0, out),
                    (8, None) => one::<8>(k4, a, k4, sums, b0, out),
                    (_, None) => one::<BLOCK_ROWS>(k4, a, k4, sums, b0, out),
                }
            }
            rows
        }
    }
}

/// What [`block_sums`]' VNNI blocks take for `w`'s rows from `rb` (of a task's rows up to `r1`):
/// `k4`, how many rows the block computes, its first row's codes, the block's row sums and the
/// part of `acc` it writes.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::type_complexity)]
fn vnni_operands<'a>(
    w: &'a WeightsI8,
    (rb, r1): (usize, usize),
    acc: &'a mut [i32; 2 * super::kernel::int8_amx::ROWS * super::kernel::int8_amx::COLS],
) -> (
    usize,
    usize,
    *const i8,
    &'a [i32; super::kernel::int8_vnni::BLOCK_ROWS],
    &'a mut [i32; super::kernel::int8_vnni::SUM_ROWS * super::kernel::int8_vnni::BLOCK_COLS],
) {
    use super::kernel::int8_vnni::{block_rows, BLOCK_COLS, BLOCK_ROWS, SUM_ROWS};
    let (k4, rows) = (w.k4, block_rows(r1 - rb));
    let sums = w.sums[rb..rb + BLOCK_ROWS]
        .try_into()
        .expect("a block's row sums");
    let out = (&mut acc[..SUM_ROWS * BLOCK_COLS])
        .try_into()
        .expect("a 16-row block");
    (k4, rows, w.codes[rb * k4..].as_ptr(), sums, out)
}

/// Panels `j` and `j + 1` of `b` (`j` as both when not `pair`), `k4 * NR` codes each, gathered
/// into `bufs` where they are not packed.
#[cfg(target_arch = "x86_64")]
fn panel_pair<'s>(
    b: &'s Panels,
    (j, pair): (usize, bool),
    k4: usize,
    [buf0, buf1]: &'s mut [Buf<i8>; 2],
) -> (&'s [i8], &'s [i8]) {
    let p0 = b.src(j, k4, buf0).packed();
    let p1 = if pair {
        b.src(j + 1, k4, buf1).packed()
    } else {
        p0
    };
    assert!(
        p0.len() >= k4 * NR && p1.len() >= k4 * NR,
        "amx_quads_task: panels"
    );
    (p0, p1)
}

/// The AMX sums of `w`'s rows from `rb` (of a task's rows up to `r1`) against one pair of panels
/// into `acc` (`[16][32]` per 16 rows): 32 rows ([`block32`](super::kernel::int8_amx::block32)) while that many are real, else 16
/// ([`block`](super::kernel::int8_amx::block)); returns how many.
///
/// # Safety
/// AMX; `w`'s codes hold 16 rows (32 for 32) from `rb`, and each panel `w.k4 * NR` codes.
#[cfg(target_arch = "x86_64")]
unsafe fn amx_rows(
    w: &WeightsI8,
    (rb, r1): (usize, usize),
    (p0, p1): (&[i8], &[i8]),
    acc: &mut [i32; 2 * super::kernel::int8_amx::ROWS * super::kernel::int8_amx::COLS],
) -> usize {
    use super::kernel::int8_amx::{block, block32, COLS, ROWS};
    let (k4, a) = (w.k4, w.codes[rb * w.k4..].as_ptr());
    if r1 - rb >= 2 * ROWS {
        // SAFETY: the caller's contract, 32 rows.
        unsafe { block32(k4, a, k4, p0.as_ptr(), p1.as_ptr(), acc) };
        2 * ROWS
    } else {
        let half: &mut [i32; ROWS * COLS] = (&mut acc[..ROWS * COLS])
            .try_into()
            .expect("a 16-row block");
        // SAFETY: the caller's contract, 16 rows.
        unsafe { block(k4, a, k4, p0.as_ptr(), p1.as_ptr(), half) };
        ROWS
    }
}

/// The GEMM panels of an integer convolution `geo` over quads `q` worth `scale`: gathered per
/// task where that pays ([`gemm_i8_gather`]'s rule), else packed into `packed` first.
#[cfg(target_arch = "x86_64")]
pub(super) fn quad_panels<'a>(
    q: &'a Quads,
    geo: &'a Geometry,
    (scale, nonneg): (f32, bool),
    packed: &'a mut Option<PanelB8>,
) -> Panels<'a> {
    if gathers_pay(geo.n()) || reads_in_place(q, geo) {
        return Panels::Gather {
            src: q,
            geo,
            scale,
            nonneg,
            direct: None,
        };
    }
    let mut b = q.im2col(geo, scale);
    b.nonneg = nonneg;
    Panels::Packed(packed.insert(b))
}

/// Whether two integer convolutions of the same output of `n` pixels, the first's floats read
/// only as the second's residual, can run as one pair of blocks ([`gemm_i8_pair`]): see
/// [`pair_blocks`].
pub(super) fn pair_fuses(
    first: (&WeightsI8, &Epilogue),
    second: (&WeightsI8, &Epilogue),
    n: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    return pair_blocks(first, second, n).is_some();
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (first, second, n);
        false
    }
}

/// The blocks that run a pair ([`pair_fuses`]): the same AMX or AVX-512 VNNI blocks for both
/// ([`quad_blocks`]: AVX-512F, rows in their order, no GELU), rows of the same count and
/// granule, and (VNNI) every panel one the blocks take ([`QuadBlocks::end`]).
#[cfg(target_arch = "x86_64")]
fn pair_blocks(
    first: (&WeightsI8, &Epilogue),
    second: (&WeightsI8, &Epilogue),
    n: usize,
) -> Option<QuadBlocks> {
    let panels = n.div_ceil(NR);
    let [a, b] = [first, second].map(|(w, epi)| quad_blocks(w, epi, 0..w.rows));
    a.filter(|&a| {
        Some(a) == b
            && first.0.rows == second.0.rows
            && first.0.granule == second.0.granule
            && a.end(n, 0..panels) == panels
    })
}

/// Two integer convolutions of the same `[rows][n]` output as one: the first's output
/// (`first`: weights, panels, epilogue) is only the second's residual, so each task computes a
/// block of the first into the core's cache, then the same block of the second, adds the
/// first's floats as its residual and writes the second's codes into `codes`' quads with
/// `scale` ([`super::finish_quads`]). The first's floats, a whole tensor written and read back
/// (3.2 MB at ResNet50's 56x56 downsampling), are never stored. The same floats and codes as the
/// two convolutions apart. [`pair_fuses`] must hold. Its tasks are [`quads_task`]'s.
#[cfg(target_arch = "x86_64")]
pub(super) fn gemm_i8_pair(
    first: (&WeightsI8, Panels, &Epilogue),
    second: (&WeightsI8, Panels, &Epilogue),
    codes: &mut Quads,
    scale: f32,
) {
    let (wp, bp, epi_p) = first;
    let (w, b, epi) = second;
    let blocks = pair_blocks((wp, epi_p), (w, epi), b.dims().2)
        .expect("gemm_i8_pair: not a pair the blocks fuse");
    let ((kp, _, np_, _), (k, _, n, _)) = (bp.dims(), b.dims());
    let shape = codes.shape;
    assert!(
        wp.k == kp
            && w.k == k
            && np_ == n
            && shape.c == w.rows
            && shape.h * shape.w == n
            && codes.data.len() >= shape.len(),
        "gemm_i8_pair: extents"
    );
    if w.rows == 0 || n == 0 {
        return;
    }
    let gather = [bp, b].iter().any(|b| matches!(b, Panels::Gather { .. }));
    let threads = rayon::current_num_threads().max(1);
    let split = Split::new(w.rows, w.granule, n.div_ceil(NR), gather, threads);
    let out = super::finish_quads::QuadsOut {
        data: Shared(codes.data.as_mut_ptr()),
        shape,
        inv: 1.0 / scale,
        first: 0,
    };
    super::tasks::each(split.tasks(), |t| {
        let (rows, panels) = split.task(t);
        // SAFETY: tasks own disjoint rectangles of the codes; `pair_blocks` gave both
        // convolutions' blocks, which take every panel.
        unsafe {
            quads_task(
                blocks,
                (w, &b, epi),
                Some((wp, &bp, epi_p)),
                (rows, panels),
                super::finish_quads::BlockResidual::None,
                out,
            )
        };
    });
}

/// A residual added from its codes instead of its floats: the value's codes as its producer's
/// epilogue wrote them for the integer convolutions reading it, times their `scale`.
///
/// Why: on ResNet50's integer path the first stages' residual stream (56x56x256, 3.2 MB of
/// floats per block) was written by one block and read back by the next, when its codes are
/// a quarter of that and are written anyway; with the residual read from them, the block's
/// output needs no floats at all. The values differ from the floats by the codes' rounding
/// (at most half a step of the next convolution's input scale), as onnxruntime's quantised
/// models add their residuals (`QLinearAdd`) too.
#[derive(Clone, Copy)]
pub enum Residual8<'a> {
    /// Channel-major codes, `[c][h * w]`.
    Rows(&'a [i8], f32),
    Quads(&'a Quads, f32),
}

impl Residual8<'_> {
    /// That the codes hold a residual of `rows` channels by `n` pixels.
    fn check(&self, rows: usize, n: usize) {
        let ok = match self {
            Residual8::Rows(codes, _) => codes.len() == rows * n,
            Residual8::Quads(q, _) => {
                let s = q.shape;
                s.c == rows && s.h * s.w == n && q.data.len() >= s.len()
            }
        };
        assert!(ok, "gemm_i8: a residual's codes for {rows} x {n} outputs");
    }

    /// `dst[(o - rows.start) * cols.len() + c - cols.start] = residual[o][c] * scale`: the
    /// residual of a task's rectangle (rows from a multiple of 4, as tasks' are).
    fn dequantize(
        &self,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
        n: usize,
        dst: &mut [f32],
    ) {
        let width = cols.len();
        match *self {
            Residual8::Rows(codes, scale) => {
                for (o, d) in rows.zip(dst.chunks_exact_mut(width)) {
                    let src = &codes[o * n + cols.start..o * n + cols.end];
                    for (d, &q) in d.iter_mut().zip(src) {
                        *d = f32::from(q) * scale;
                    }
                }
            }
            Residual8::Quads(q, scale) => {
                assert!(
                    rows.start.is_multiple_of(QUAD),
                    "residual rows from a whole quad"
                );
                let (r0, r1) = (rows.start, rows.end);
                for (q0, d) in (r0..r1).step_by(QUAD).zip(dst.chunks_mut(QUAD * width)) {
                    let mut channels: [&mut [f32]; QUAD] = Default::default();
                    let mut count = 0;
                    for (ch, row) in channels.iter_mut().zip(d.chunks_exact_mut(width)) {
                        *ch = row;
                        count += 1;
                    }
                    let plane = &q.data[q0 / QUAD * q.shape.plane()..][..q.shape.plane()];
                    // SAFETY: a whole plane of the shape (checked), read only; the pixels
                    // `cols` lie in it (`cols.end <= n = h * w`).
                    unsafe {
                        load_quad_pixels(
                            plane.as_ptr(),
                            &q.shape,
                            &mut channels[..count],
                            cols.start,
                            scale,
                        )
                    };
                }
            }
        }
    }
}

/// Whether [`gemm_task`] hands the layer's last panel `last` (of an output `n` wide), when
/// among its `panels`, to the narrow blocks: AVX-512 VNNI's `block_narrow_avx512_vnni_f32`, for
/// at most `NARROW_COLS` real columns.
fn narrow_last(n: usize, last: usize, panels: std::ops::Range<usize>) -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx512_vnni_blocks()
        && n - last * NR <= super::kernel::int8_vnni::NARROW_COLS
        && panels.contains(&last);
    // Elsewhere no kernel takes narrow panels.
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (n, last, panels);
        false
    }
}

#[cfg(target_arch = "x86_64")]
use super::kernel::int8_vnni::narrow_columns;
#[cfg(not(target_arch = "x86_64"))]
fn narrow_columns(_: &[i8], _: usize, _: usize, _: &mut Vec<u8>) {
    unreachable!("no narrow blocks here (`narrow_last`)")
}

thread_local! {
    /// Each thread's buffer for a narrow last panel's columns ([`narrow_columns`]).
    static NARROW: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    /// Each thread's buffers for a narrow last panel's columns in [`quads_task`]: the
    /// convolution's, and a pair's first's.
    #[cfg(target_arch = "x86_64")]
    static NARROWS: std::cell::Cell<[Vec<u8>; 2]> = const { std::cell::Cell::new([Vec::new(), Vec::new()]) };
    /// Each thread's two buffers for gathered panels ([`Panels::Gather`]), kept between tasks:
    /// fresh ones per task were an allocation and a zero fill of up to 73 KB each (every byte is
    /// then overwritten by the gather), 1.4 MB of `memset` per ResNet18 image.
    static PANELS: std::cell::Cell<[Buf<i8>; 2]> = const { std::cell::Cell::new([Buf::new(), Buf::new()]) };
    /// Each thread's buffer for the floats of a task that keeps only codes ([`gemm_task`]).
    static STAGED: std::cell::Cell<Buf<f32>> = const { std::cell::Cell::new(Buf::new()) };
    /// Each thread's two buffers for the first convolution's gathered panels in
    /// [`gemm_i8_pair`].
    static PAIR_PANELS: std::cell::Cell<[Buf<i8>; 2]> = const { std::cell::Cell::new([Buf::new(), Buf::new()]) };
    /// Each thread's buffer for a banded task's gathered panels ([`bands_pay`]).
    static TASK_PANELS: std::cell::Cell<Buf<i8>> = const { std::cell::Cell::new(Buf::new()) };
    /// Each thread's buffer for a task's residual read from codes ([`Residual8`]).
    static RESIDUAL: std::cell::Cell<Buf<f32>> = const { std::cell::Cell::new(Buf::new()) };
}

/// Rows `r0..r0 + mr` of `w` against one or two panels `ps` (the first one panel `j` of an
/// output `n` wide), rescaled by `scale` into the rows of `dst` (`ld` apart, `ps[0]` at column 0),
/// each at its output row; `unsigned`: the panels' codes are all `>= 0`.
#[allow(clippy::too_many_arguments)]
fn tiles(
    w: &WeightsI8,
    n: usize,
    (scale, unsigned): (f32, bool),
    (r0, mr): (usize, usize),
    ps: &[Src],
    j: usize,
    dst: Shared<f32>,
    ld: usize,
    narrow: Option<&[u8]>,
) {
    let np = [NR.min(n - j * NR), NR.min(n.saturating_sub((j + 1) * NR))];
    #[cfg(target_arch = "x86_64")]
    match int8_path() {
        super::kernel::int8::Int8Path::Amx => {
            let packed = [ps[0].packed(), ps[ps.len() - 1].packed()];
            return w.amx_blocks(&packed[..ps.len()], np, (r0, mr), scale, dst, ld);
        }
        super::kernel::int8::Int8Path::Avx512Vnni => {
            return w.blocks_vnni(ps, np, (r0, mr), scale, dst, ld, narrow);
        }
        _ => {}
    }
    debug_assert!(narrow.is_none(), "narrow blocks on AVX-512 VNNI only");
    for (h, bp) in ps.iter().map(|p| p.packed()).enumerate() {
        for g in 0..mr.div_ceil(MR) {
            // Each stored row's place: its output row (reordered within this task's rows),
            // columns `h * NR..+np` of this task's rectangle.
            let mut rows = [std::ptr::null_mut(); MR];
            for (r, p) in rows.iter_mut().enumerate().take(MR.min(mr - g * MR)) {
                *p = dst.offset((w.order[r0 + g * MR + r] - r0) * ld + h * NR).0;
            }
            let out = int8_narrow::FloatRows {
                rows,
                cols: np[h],
                scale,
            };
            // SAFETY: each row is one of the task's `mr` output rows (`w.order` reorders them
            // within the task), `np[h]` columns from `h * NR`: this task's rectangle, which it
            // alone writes.
            unsafe { w.tile_into(r0 / MR + g, bp, unsigned, out) };
        }
    }
}

/// `dst[i] = sums[i] * scale`: a tile's exact sums to floats (what one activation code is worth).
#[inline]
fn rescale(dst: &mut [f32], sums: &[i32], scale: f32) {
    for (d, &s) in dst.iter_mut().zip(sums) {
        *d = s as f32 * scale;
    }
}

/// Where [`gemm_i8_requant`]'s tasks write the output's codes, with `1 / scale`.
pub(super) enum Target {
    None,
    Rows(Shared<i8>, f32),
    /// Quads of `QuadShape` with `1 / scale`, whose pixel 0 is the layer's pixel `usize` (0:
    /// the whole layer's; else a band of it, `super::stem_pool`).
    Quads(Shared<i8>, QuadShape, f32, usize),
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::gemm::{gemm, PanelB, Rows};
    use super::*;

    /// The fixed-shape transpose against the packing's definition (`pack_b`), for every `k`
    /// around whole groups of 4.
    #[test]
    fn group_by_4_is_pack_b() {
        for k in 0..=13 {
            let cols: Vec<i8> = (0..k * NR).map(|j| (j * 7 % 251) as i8).collect();
            // Stale bytes first: every byte must be written.
            let mut panel = vec![0x55i8; k.div_ceil(KGROUP) * KGROUP * NR];
            group_by_4(k, &cols, &mut panel);
            assert_eq!(panel, crate::exec::kernel::int8::pack_b(k, &cols), "k {k}");
        }
    }

    /// `f()` in a pool of `threads` threads; under WASI, which has no threads, on the calling
    /// thread (so the tests that vary the pool still run their one-thread case there).
    pub(crate) fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        #[cfg(target_family = "wasm")]
        {
            let _ = threads;
            f()
        }
        #[cfg(not(target_family = "wasm"))]
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool")
            .install(f)
    }

    /// Pseudo-random values in `[-1, 1)`, the same for a seed on every target.
    pub(crate) fn lcg(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    /// Mixed 2–8-bit rows of random codes, their scales, and a bias.
    pub(crate) fn weights(rows: usize, k: usize) -> (PackedMatrix, Vec<i8>, Vec<f32>) {
        let mut next = lcg(7);
        let bits: Vec<u8> = (0..rows).map(|r| 2 + (r % 7) as u8).collect();
        let codes: Vec<i8> = (0..rows * k)
            .map(|j| {
                let max = pack::max_code(bits[j / k]) as f32;
                (next() * max).round() as i8
            })
            .collect();
        let scales: Vec<f32> = (0..rows).map(|r| 0.01 + 0.001 * r as f32).collect();
        let bias: Vec<f32> = (0..rows).map(|r| 0.1 * r as f32 - 1.0).collect();
        let m = PackedMatrix::from_codes(k, bits, &codes, scales).unwrap();
        (m, codes, bias)
    }

    /// A layer's tasks cover each of its rows and panels once, start at whole units of rows
    /// and whole pairs of panels, and differ by at most one unit of rows and one pair of
    /// panels (so each thread's half of them is within a task of the other's); one thread
    /// gets one task; gathered panels go whole to their tasks unless there are fewer pairs
    /// than tasks wanted (then the rows are cut, one part per thread). Shapes of ResNet18's and
    /// ResNet50's integer layers and odd ones.
    #[test]
    fn tasks_cover_a_layer_once_in_near_equal_parts() {
        for threads in [1, 2, 3, 8] {
            for (rows, panels) in [(64, 196), (128, 49), (512, 4), (512, 13), (1000, 1), (5, 3)] {
                for (granule, gather) in
                    [(FINE, false), (FINE, true), (MC, false), (VNNI_CUT, false)]
                {
                    let split = Split::new(rows, granule, panels, gather, threads);
                    let mut seen = vec![0u8; rows * panels];
                    let (mut heights, mut widths) = (Vec::new(), Vec::new());
                    for t in 0..split.tasks() {
                        let (r, p) = split.task(t);
                        assert!(r.start % granule == 0 && p.start % 2 == 0, "{split:?}: {t}");
                        heights.push(r.len().div_ceil(granule));
                        widths.push(p.len().div_ceil(2));
                        for i in r {
                            for j in p.clone() {
                                seen[i * panels + j] += 1;
                            }
                        }
                    }
                    assert!(seen.iter().all(|&c| c == 1), "{split:?}");
                    let spread = |v: &[usize]| v.iter().max().unwrap() - v.iter().min().unwrap();
                    assert!(spread(&heights) <= 1 && spread(&widths) <= 1, "{split:?}");
                    assert!(threads > 1 || split.tasks() == 1);
                    let few = panels.div_ceil(2) < 2 * threads;
                    assert!(!gather || split.row_tasks == 1 || few, "{split:?}");
                    assert!(!gather || split.row_tasks <= threads, "{split:?}");
                    if gather && few && threads > 1 {
                        let units = rows.div_ceil(granule.max(FINE));
                        assert_eq!(split.row_tasks, units.min(threads), "{split:?}");
                    }
                    if gather && !few && threads > 1 {
                        let stealable = panels.div_ceil(2).min(STEALABLE * threads);
                        assert_eq!(split.col_tasks, stealable, "{split:?}");
                    }
                }
            }
        }
    }

    /// The chunked, parallel maximum equals the serial fold's for lengths around its 16-lane
    /// blocks and its chunks, with NaN, infinities and the largest value in the tail.
    #[test]
    fn dynamic_scale_is_the_serial_fold() {
        let serial = |x: &[f32]| {
            let m = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            if m > 0.0 && m.is_finite() {
                m / QMAX
            } else {
                1.0
            }
        };
        let mut next = lcg(5);
        for n in [0, 1, 15, 16, 17, 33, 1 << 15, (1 << 15) + 5, 100_003] {
            let mut x: Vec<f32> = (0..n).map(|_| next() * 3.0).collect();
            assert_eq!(dynamic_scale(&x), serial(&x), "n {n}");
            if n > 2 {
                x[n - 1] = -9.5;
                assert_eq!(dynamic_scale(&x), 9.5 / QMAX, "n {n}, largest last");
                x[n / 2] = f32::NAN;
                assert_eq!(dynamic_scale(&x), serial(&x), "n {n}, a NaN");
                x[1] = f32::NEG_INFINITY;
                assert_eq!(dynamic_scale(&x), 1.0, "n {n}, an infinity");
            }
        }
    }

    /// The vectorised quantiser equals the scalar one on ties, the clamp, infinities and NaN,
    /// over lengths around its 16-value steps.
    #[test]
    fn quantize_into_is_quantize() {
        let mut next = lcg(17);
        for len in [0, 1, 15, 16, 17, 40, 100] {
            let mut x: Vec<f32> = (0..len).map(|_| next() * 300.0).collect();
            let specials = [0.5, 1.5, 2.5, -0.5, -2.5, 126.5, 127.5, -127.5, 1e9];
            for (v, s) in x
                .iter_mut()
                .zip(specials.iter().chain(&[f32::INFINITY, f32::NAN]))
            {
                *v = *s;
            }
            let want: Vec<i8> = x.iter().map(|&v| quantize(v, 1.0)).collect();
            let mut got = vec![0i8; len];
            quantize_into(&x, &mut got, 1.0);
            assert_eq!(got, want, "len {len}");
        }
    }

    /// Every output equals the rescale of an i64 sum over the same codes, bit for bit: the
    /// integer accumulation is exact, whichever micro-kernel ran; also with activations `>= 0`
    /// declared so (`nonneg`: the AVX2 kernel then multiplies them unflipped, the 8-bit rows too),
    /// at the largest codes (127) and on pseudo-random ones, and with `k` past one i16 run.
    #[test]
    fn sums_are_exact_and_rescaled_once() {
        // Row counts whose tasks end in blocks of 12, 8 and 4 rows on AVX-512 VNNI (64: 48 +
        // 8 + 8; 20: 12 + 8; 100: 2 x 48 + 4; 3: one 4-row block).
        for (rows, nonneg, k) in [
            (45, false, 147),
            (64, false, 147),
            (20, false, 147),
            (100, false, 147),
            (3, false, 147),
            (45, true, 147),
            (100, true, 1000),
            (7, true, 36),
        ] {
            let n = 53;
            let (m, codes, bias) = weights(rows, k);
            let mut next = lcg(3);
            let x: Vec<f32> = (0..k * n)
                .map(|i| match (nonneg, i % 3) {
                    (false, _) => next() * 3.0,
                    (true, 0) => 3.0,
                    (true, _) => next().abs() * 3.0,
                })
                .collect();
            let scale = dynamic_scale(&x);
            let mut b = PanelB8::from_rows(&x, k, n, scale);
            b.nonneg = nonneg;
            let inv = 1.0 / scale;
            let q: Vec<i8> = x.iter().map(|&v| quantize(v, inv)).collect();
            let res: Vec<f32> = (0..rows * n).map(|_| next() * 2.0).collect();
            // The exact sums, once for all four forms below.
            let sums: Vec<i64> = (0..rows * n)
                .map(|i| {
                    let (o, p) = (i / n, i % n);
                    (0..k)
                        .map(|j| i64::from(codes[o * k + j]) * i64::from(q[j * n + p]))
                        .sum()
                })
                .collect();
            // Every form of the epilogue (residual or not, ReLU or not), bit for bit.
            for (residual, relu) in [(false, true), (true, false), (true, true), (false, false)] {
                let mut out = vec![0f32; rows * n];
                let epi = Epilogue {
                    scale: Some(&m.scales),
                    bias: Some(&bias),
                    residual: residual.then_some(&res[..]),
                    relu,
                    gelu: false,
                };
                gemm_i8(&WeightsI8::new(&m), &b, &mut out, epi);
                for o in 0..rows {
                    for p in 0..n {
                        let sum = sums[o * n + p];
                        let mut want = (sum as f32 * scale) * m.scales[o] + bias[o];
                        if residual {
                            want += res[o * n + p];
                        }
                        if relu {
                            want = want.max(0.0);
                        }
                        assert_eq!(
                            out[o * n + p].to_bits(),
                            want.to_bits(),
                            "{rows} rows, nonneg {nonneg}, residual {residual}, relu {relu}: \
                             row {o}, column {p}"
                        );
                    }
                }
            }
        }
    }

    /// Against the f32 path on the same weights: within the activations' quantisation error.
    #[test]
    fn agrees_with_the_f32_gemm_within_the_quantisation_error() {
        let (rows, k, n) = (30, 288, 40);
        let (m, _, bias) = weights(rows, k);
        let mut next = lcg(11);
        let x: Vec<f32> = (0..k * n).map(|_| next()).collect();
        let epi = Epilogue {
            scale: Some(&m.scales),
            bias: Some(&bias),
            residual: None,
            relu: false,
            gelu: false,
        };
        let offsets = m.row_offsets();
        let mut want = vec![0f32; rows * n];
        let mut panels = Buf::zeroed(n.div_ceil(NR) * k * NR);
        for j in 0..n.div_ceil(NR) {
            for i in 0..k {
                for c in 0..NR.min(n - j * NR) {
                    panels[(j * k + i) * NR + c] = x[i * n + j * NR + c];
                }
            }
        }
        let pb = PanelB { data: panels, k, n };
        gemm(
            &Rows::Packed {
                m: &m,
                offsets: &offsets,
            },
            0,
            rows,
            &pb,
            &mut want,
            epi,
        );
        let scale = dynamic_scale(&x);
        let mut got = vec![0f32; rows * n];
        let b8 = PanelB8::from_rows(&x, k, n, scale);
        gemm_i8(&WeightsI8::new(&m), &b8, &mut got, epi);
        for o in 0..rows {
            // Each activation is off by at most scale / 2: |error| <= s_w * sum_k |code| * scale / 2.
            let codes_abs: f32 = {
                let mut row = vec![0f32; k];
                pack::unpack_row(&m.data[offsets[o]..offsets[o + 1]], m.bits[o], 0, &mut row);
                row.iter().map(|v| v.abs()).sum()
            };
            let bound = m.scales[o] * codes_abs * scale / 2.0 + 1e-4;
            for p in 0..n {
                let (a, b) = (got[o * n + p], want[o * n + p]);
                assert!(
                    (a - b).abs() <= bound,
                    "row {o}, column {p}: {a} vs {b} (bound {bound})"
                );
            }
        }
    }

    /// The i8 im2col equals quantising the f32 im2col, element for element, for a strided,
    /// padded 3x3 convolution (ragged last panel, `k` not a multiple of 4).
    #[test]
    fn im2col_of_codes_is_the_quantised_f32_im2col() {
        let g = Geometry {
            c: 3,
            h: 9,
            w: 7,
            kernel: 3,
            stride: 2,
            padding: 1,
            ho: 5,
            wo: 4,
        };
        let mut next = lcg(5);
        let x: Vec<f32> = (0..3 * 9 * 7).map(|_| next() * 2.0).collect();
        let scale = dynamic_scale(&x);
        let xq: Vec<i8> = x.iter().map(|&v| quantize(v, 1.0 / scale)).collect();
        let got = PanelB8::im2col(&xq, &g, scale);
        let f = super::super::im2col::im2col(&x, &g);
        let (k, n) = (g.k(), g.n());
        let mut rows = vec![0f32; k * n];
        for j in 0..n.div_ceil(NR) {
            for i in 0..k {
                for c in 0..NR.min(n - j * NR) {
                    rows[i * n + j * NR + c] = f.data[(j * k + i) * NR + c];
                }
            }
        }
        let want = PanelB8::from_rows(&rows, k, n, scale);
        assert_eq!((got.k, got.k4, got.n), (want.k, want.k4, want.n));
        assert_eq!(got.data, want.data);
    }

    /// Tokens as columns: the same panels as the transposed matrix through `from_rows`.
    #[test]
    fn tokens_pack_like_their_transpose() {
        let (l, k) = (37, 23);
        let mut next = lcg(9);
        let x: Vec<f32> = (0..l * k).map(|_| next()).collect();
        let mut xt = vec![0f32; k * l];
        for t in 0..l {
            for i in 0..k {
                xt[i * l + t] = x[t * k + i];
            }
        }
        let s = dynamic_scale(&x);
        assert_eq!(
            PanelB8::from_tokens(&x, l, k, s).data,
            PanelB8::from_rows(&xt, k, l, s).data
        );
    }

    #[test]
    fn dynamic_scale_of_zeros_and_quantisation_clamps() {
        assert_eq!(dynamic_scale(&[0.0, -0.0]), 1.0);
        assert_eq!(dynamic_scale(&[1.0, -2.54]), 2.54 / QMAX);
        assert_eq!(quantize(1e9, 1.0), 127);
        assert_eq!(quantize(-1e9, 1.0), -127);
        assert_eq!(quantize(f32::NAN, 1.0), 0);
        // Ties to even, like torch.quantize_per_tensor.
        assert_eq!(quantize(2.5, 1.0), 2);
        assert_eq!(quantize(-3.5, 1.0), -4);
        assert_eq!(quantize(0.49, 1.0), 0);
        assert_eq!(quantize(-126.6, 1.0), -127);
    }
}
