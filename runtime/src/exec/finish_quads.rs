//! An AMX or AVX-512 VNNI block's integer sums finished straight into the next layer's quads:
//! rescale, folded batch norm and bias, the residual, ReLU and the requantisation, sixteen
//! pixels of four channels at a time in AVX-512 registers, for a value kept as codes alone.
//!
//! Why: with a value's floats not kept (`Executor::floats_read`), the integer GEMM still
//! rescaled each block into a float buffer, ran the epilogue over it, then read it again to
//! write the codes: four passes of four bytes per output for one byte of codes. ResNet50's
//! first-stage 1x1 convolutions do 64 multiply-adds per output, so those passes, not AMX, set
//! their time (0.32–0.40 ms against onnxruntime's 0.12 for the same 64→256 convolution, whose
//! MLAS kernel requantises its sums in one pass). Here one pass reads the block's sums and
//! writes the codes.
//!
//! The same floats as the passes, operation for operation (`sum as f32 * scale`, then
//! `v * s + b`, `+ r`, `max(v, 0)`, then `quantize`), so the same codes:
//! `requantising_in_the_epilogue_changes_no_logit` compares the logits with those of the
//! float passes bit for bit.

use std::arch::x86_64::*;

use super::disjoint::Shared;
use super::gemm::Epilogue;
use super::int8_gemm::Residual8;
use super::kernel::int8_amx::{COLS, ROWS};
use super::quads::{channels_avx512, code_lanes_avx512, pixel_lanes_avx512, QuadShape, Q};

/// Where a block's residual comes from.
#[derive(Clone, Copy)]
pub(super) enum BlockResidual<'a> {
    None,
    /// The floats, `[rows][n]`.
    Floats(&'a [f32]),
    /// The same block of another convolution, finished ([`finish_block_floats`]): row `r` of
    /// the block (output row `o0 + r`) at `r * 32`.
    Block(&'a [f32; ROWS * COLS]),
    Codes(Residual8<'a>),
}

/// The quads a block's codes go to: the whole tensor's codes, its shape and `1 / scale`; or a
/// part of a tensor as quads of its own (`first`, the layer's pixel that is its pixel 0: a
/// band of the integer stem's rows, `super::stem_pool`).
#[derive(Clone, Copy)]
pub(super) struct QuadsOut {
    pub data: Shared<i8>,
    pub shape: QuadShape,
    pub inv: f32,
    pub first: usize,
}

impl QuadsOut {
    /// The (row, column) of a block's two halves' first pixels, `p0` and `p0 + 16` of the
    /// layer: worked out once per pair of panels for all its blocks, as [`finish_block`] takes
    /// them (two divisions per block had been a tenth of its scalar work).
    pub(super) fn halves(&self, p0: usize) -> [(usize, usize); 2] {
        let w = self.shape.w.max(1);
        [0, 16].map(|d| ((p0 + d - self.first) / w, (p0 + d - self.first) % w))
    }
}

/// Finishes rows `o0..o0 + rows` (`o0` a multiple of 4, `rows <= 16`) of a block `acc`
/// (`[16][32]` sums, row `r` output row `o0 + r`: an AMX block, or a VNNI one's 12, 8 or 4
/// rows) for pixels `p0..p0 + np[0]` (its left half) and `p0 + 16..p0 + 16 + np[1]` (its right
/// half) of `n`, into `out`'s quads: every output's code, and zeros in the lanes of a last
/// quad short of channels. `yx`: the halves' first pixels as (row, column), from
/// [`QuadsOut::halves`].
///
/// # Safety
/// AVX-512F must be available; the pixels lie in the tensor (`p0 + 16 + np[1] <= h * w`, and
/// `p0 + np[0]` when `np[1] == 0`), its rows are `out`'s channels and the residual's; no one
/// else writes those pixels of those quads meanwhile.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn finish_block(
    acc: &[i32; ROWS * COLS],
    o0: usize,
    rows: usize,
    (p0, n, yx): (usize, usize, [(usize, usize); 2]),
    np: [usize; 2],
    scale: f32,
    epi: &Epilogue,
    res: BlockResidual,
    out: QuadsOut,
) {
    debug_assert!(o0.is_multiple_of(Q) && rows <= ROWS && !epi.gelu);
    debug_assert_eq!(yx, out.halves(p0));
    let block = (acc, o0, rows, (p0, n, yx), np, scale, epi, out);
    // One instance per residual and ReLU, each residual's load inlined in it.
    macro_rules! finish {
        ($res:expr) => {{
            let res = $res;
            // SAFETY: the caller's contract, passed on.
            unsafe {
                if epi.relu {
                    finish_rows::<true>(block, res)
                } else {
                    finish_rows::<false>(block, res)
                }
            }
        }};
    }
    // Each residual's load: AVX-512F and the residual's extents are the caller's contract.
    macro_rules! load {
        ($f:ident($($arg:expr),*)) => {
            Some(|at: Rows| {
                // SAFETY: see above.
                unsafe { $f($($arg,)* at) }
            })
        };
    }
    match res {
        BlockResidual::None => finish!(None::<fn(Rows) -> [__m512; Q]>),
        BlockResidual::Block(v) => finish!(load!(block_rows(v))),
        BlockResidual::Floats(v) => finish!(load!(float_rows(v))),
        BlockResidual::Codes(Residual8::Rows(codes, s)) => finish!(load!(code_rows(codes, s))),
        BlockResidual::Codes(Residual8::Quads(q, s)) => finish!(load!(quad_rows(q, s))),
    }
}

/// The rows of a residual one quad of a block reads: channels `o..o + count` (rows
/// `r..r + count` of the block) for pixels `px..px + m` (of `n` per channel; `px` at row and
/// column `yx`), `mask` the `m` lanes.
#[derive(Clone, Copy)]
struct Rows {
    o: usize,
    r: usize,
    count: usize,
    px: usize,
    m: usize,
    n: usize,
    mask: __mmask16,
    yx: (usize, usize),
}

/// A block as [`finish_rows`] takes it: `acc`, `o0`, `rows`, `(p0, n, yx)`, `np`, `scale`,
/// the epilogue and the quads out (see [`finish_block`]).
type Block<'a> = (
    &'a [i32; ROWS * COLS],
    usize,
    usize,
    (usize, usize, [(usize, usize); 2]),
    [usize; 2],
    f32,
    &'a Epilogue<'a>,
    QuadsOut,
);

/// [`finish_block`] with its ReLU fixed.
///
/// Why the shape: the per-output work is about ten vector operations, and the first version,
/// which looked each row's batch-norm scale and bias up through their `Option`s, checked the
/// residual and the ReLU, and chose a masked or a plain load for every sixteen outputs, ran
/// about twenty-five scalar instructions beside each vector (`perf annotate`, Zen 5): here
/// those choices are made once per block or once per four rows, and the rows' scale and bias
/// are read from one array each, the vectors' broadcasts folded into their multiplies.
#[target_feature(enable = "avx512f")]
unsafe fn finish_rows<const RELU: bool>(
    (acc, o0, rows, (p0, n, yx), np, scale, epi, out): Block,
    residual: Option<impl Fn(Rows) -> [__m512; Q]>,
) {
    // Each row's scale and bias; rows past `rows` zero (with zero sums, zero codes).
    let (mut s, mut b) = ([0f32; ROWS], [0f32; ROWS]);
    for r in 0..rows {
        s[r] = epi.scale.map_or(1.0, |v| v[o0 + r]);
        b[r] = epi.bias.map_or(0.0, |v| v[o0 + r]);
    }
    let (vscale, vinv) = (_mm512_set1_ps(scale), _mm512_set1_ps(out.inv));
    // Where the quads hold a part of the layer (`first > 0`) there is no residual (whose map
    // has the same rows and columns as the output's, so `yx` serves it too).
    debug_assert!(out.first == 0 || residual.is_none());
    for q in 0..rows.div_ceil(Q) {
        let o = o0 + q * Q;
        let count = Q.min(rows - q * Q);
        let plane = out.data.offset(o / Q * out.shape.plane());
        let sb: (&[f32; Q], &[f32; Q]) = (
            s[q * Q..][..Q].try_into().expect("four rows"),
            b[q * Q..][..Q].try_into().expect("four rows"),
        );
        for (h, &m) in np.iter().enumerate() {
            if m == 0 {
                continue;
            }
            let px = p0 + h * 16;
            let mask = ((1u32 << m) - 1) as __mmask16;
            // SAFETY: row `q * Q + l < 16` of the block, lanes past `m` masked; rows past
            // `count` stay zero.
            let sums = unsafe { block_sums(acc, q * Q, h, count, m, mask) };
            let at = Rows {
                o,
                r: q * Q,
                count,
                px,
                m,
                n,
                mask,
                yx: yx[h],
            };
            let lanes = match &residual {
                Some(f) => quad_lanes::<RELU, true>(sums, sb, vscale, vinv, &f(at)),
                None => {
                    quad_lanes::<RELU, false>(sums, sb, vscale, vinv, &[_mm512_setzero_ps(); Q])
                }
            };
            // SAFETY: pixels `px..px + m` of this quad's plane: the caller's contract.
            unsafe { store_pixels(lanes, m, plane, &out.shape, px - out.first, yx[h]) };
        }
    }
}

/// How many pairs of panels ahead of a block [`prefetch_ahead`] asks for the lines it will write.
pub(super) const AHEAD_PAIRS: usize = 2;

/// Outputs of at least this many bytes of codes have their lines asked for ahead
/// ([`prefetch_ahead`]): more than half a Zen 5 core's L2, so their buffer comes back from the
/// pool cold, last touched before the rest of the network streamed its weights through the
/// caches. Smaller ones are mostly still cached, and there the prefetches only cost issue slots.
pub(super) const COLD_BYTES: usize = 512 << 10;

/// Asks for the lines that rows `o..o + rows` of the output (whole quads from `o`) will be
/// written to [`AHEAD_PAIRS`] pairs of panels after pixel `px`, for writing (`PREFETCHW`), and
/// the same pixels of a residual in quads for reading.
///
/// Why: a task of a map with many pixels takes every row of each pair of panels in turn, so
/// per pair it writes two lines in each of the output's planes (64 planes for a 256-channel
/// output), 12.5 KB apart on a 56x56 map: too many streams for the hardware prefetcher, and
/// when the pool hands the step a buffer last touched an image earlier, each line's read for
/// ownership waits on L3 or memory. ResNet50's first-stage 64->256 convolutions wrote such
/// buffers: one thread, 0.43-0.57 ms against 0.29 for the same convolution writing a buffer
/// just released (`step_times`, Zen 5); asked for two pairs ahead, 0.30-0.41.
///
/// # Safety
/// AVX-512F (only for the attribute: prefetches never fault, and the addresses are computed
/// without dereferencing).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn prefetch_ahead(
    out: &QuadsOut,
    res: &BlockResidual,
    (o, rows): (usize, usize),
    px: usize,
) {
    let shape = &out.shape;
    let (px, w) = (px + AHEAD_PAIRS * 2 * 16, shape.w.max(1));
    if px >= shape.h * w || out.first != 0 {
        return;
    }
    let at = shape.at(px / w, px % w);
    let residual = match res {
        BlockResidual::Codes(Residual8::Quads(q, _)) => Some(q),
        _ => None,
    };
    for q in (o..o + rows).step_by(Q) {
        let line = out.data.0.wrapping_add(q / Q * shape.plane() + at);
        // Two lines: the pair's 32 pixels of four codes.
        _mm_prefetch::<_MM_HINT_ET0>(line.cast_const());
        _mm_prefetch::<_MM_HINT_ET0>(line.wrapping_add(64).cast_const());
        if let Some(r) = residual {
            let line = r.data.as_ptr().wrapping_add(q / Q * r.shape.plane() + at);
            _mm_prefetch::<_MM_HINT_T0>(line);
            _mm_prefetch::<_MM_HINT_T0>(line.wrapping_add(64));
        }
    }
}

/// Rows `r..r + count` of a block's sums, half `h`'s sixteen lanes (those past `m` zero);
/// zeros for the rows past `count`. A whole half loads unmasked: the kernel has just stored
/// it, and a masked load waits for the stores to land where a plain one takes their values.
///
/// # Safety
/// AVX-512F; `r + count <= 16`.
#[target_feature(enable = "avx512f")]
unsafe fn block_sums(
    acc: &[i32; ROWS * COLS],
    r: usize,
    h: usize,
    count: usize,
    m: usize,
    mask: __mmask16,
) -> [__m512i; Q] {
    debug_assert!(r + count <= ROWS && h < 2 && m <= 16);
    let at = |l: usize| acc.as_ptr().wrapping_add((r + l) * COLS + h * 16);
    let mut sums = [_mm512_setzero_si512(); Q];
    // SAFETY: rows `r..r + count` of the block (the caller's contract), 16 lanes each.
    unsafe {
        if m == 16 {
            for (l, v) in sums.iter_mut().enumerate().take(count) {
                *v = _mm512_loadu_si512(at(l).cast());
            }
        } else {
            for (l, v) in sums.iter_mut().enumerate().take(count) {
                *v = _mm512_maskz_loadu_epi32(mask, at(l));
            }
        }
    }
    sums
}

/// Four rows' sixteen sums finished into sixteen pixels of four codes: `rescale` then
/// `epilogue::affine` (separate multiplies and adds, no FMA), the residual `r` (with `RES`),
/// the ReLU (with `RELU`), then the codes.
#[target_feature(enable = "avx512f")]
fn quad_lanes<const RELU: bool, const RES: bool>(
    sums: [__m512i; Q],
    (s, b): (&[f32; Q], &[f32; Q]),
    vscale: __m512,
    vinv: __m512,
    r: &[__m512; Q],
) -> __m512i {
    let mut codes = [_mm512_setzero_si512(); Q];
    for l in 0..Q {
        let v = _mm512_mul_ps(_mm512_cvtepi32_ps(sums[l]), vscale);
        let mut v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(s[l])), _mm512_set1_ps(b[l]));
        if RES {
            v = _mm512_add_ps(v, r[l]);
        }
        codes[l] = if RELU {
            // After the ReLU no value is below 0 or NaN (`max` gives its second operand for a
            // NaN), so of `code_lanes_avx512`'s clamps only the upper one can act: the same
            // codes, one operation fewer.
            let v = _mm512_mul_ps(_mm512_max_ps(v, _mm512_setzero_ps()), vinv);
            _mm512_cvtps_epi32(_mm512_min_ps(_mm512_set1_ps(127.0), v))
        } else {
            code_lanes_avx512(v, vinv)
        };
    }
    // Sixteen pixels of four codes: one 32-bit lane each.
    pixel_lanes_avx512(codes)
}

/// `dst[r * 32 + c] = epilogue(sum[r][c] * scale)` for the block's rows `o0..o0 + rows` and
/// each half's `np` real columns (the others left as they are): the floats `rescale` and
/// `epilogue::affine` give (no residual), kept for the next convolution's block in
/// `int8_gemm::gemm_i8_pair`.
///
/// # Safety
/// AVX-512F must be available; `epi`'s scale and bias hold the block's rows.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn finish_block_floats(
    acc: &[i32; ROWS * COLS],
    o0: usize,
    rows: usize,
    np: [usize; 2],
    scale: f32,
    epi: &Epilogue,
    dst: &mut [f32; ROWS * COLS],
) {
    debug_assert!(rows <= ROWS && !epi.gelu && epi.residual.is_none());
    let (vscale, zero) = (_mm512_set1_ps(scale), _mm512_setzero_ps());
    for r in 0..rows {
        let o = o0 + r;
        let (s, b) = (
            _mm512_set1_ps(epi.scale.map_or(1.0, |s| s[o])),
            _mm512_set1_ps(epi.bias.map_or(0.0, |b| b[o])),
        );
        for (h, &m) in np.iter().enumerate() {
            let mask = ((1u32 << m) - 1) as __mmask16;
            let at = r * COLS + h * 16;
            // SAFETY: 16 lanes of row `r < 16` of both blocks, lanes past `m` masked.
            unsafe {
                let v = _mm512_mul_ps(
                    _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mask, acc.as_ptr().add(at))),
                    vscale,
                );
                let mut v = _mm512_add_ps(_mm512_mul_ps(v, s), b);
                if epi.relu {
                    v = _mm512_max_ps(v, zero);
                }
                _mm512_mask_storeu_ps(dst.as_mut_ptr().add(at), mask, v);
            }
        }
    }
}

// The residual's loaders below are asked to be inlined into `finish_rows`, one copy per
// residual: out of line, each call returned its four vectors through memory, once per quad and
// half of every block. Inlined, ResNet50's first-stage 64->256 convolutions with a residual ran
// in 0.128 ms instead of 0.159, ResNet18's 3x3 ones with a residual in 0.138 instead of 0.149,
// the whole integer paths 2.33 -> 2.28 ms (ResNet18) and 5.74 -> 5.55 (ResNet50, `step_times`,
// Zen 5, 2 threads; one thread 10.94 -> 10.44). Whether LLVM inlined them had turned on
// unrelated changes to `int8_gemm::quads_task`.

/// A finished block's rows as the residual ([`BlockResidual::Block`]): row `r + l` of the
/// block, this half's lanes (blocks start at even panels), lanes past `m` zero.
///
/// # Safety
/// AVX-512F; `r + count <= 16`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn block_rows(v: &[f32; ROWS * COLS], at: Rows) -> [__m512; Q] {
    let mut rows = [_mm512_setzero_ps(); Q];
    let h = at.px % COLS / 16;
    debug_assert!(at.px.is_multiple_of(16) && at.r + at.count <= ROWS);
    for (l, row) in rows.iter_mut().enumerate().take(at.count) {
        // SAFETY: row `r + l < 16` of the block, 16 lanes from `h * 16`.
        *row =
            unsafe { _mm512_maskz_loadu_ps(at.mask, v.as_ptr().add((at.r + l) * COLS + h * 16)) };
    }
    rows
}

/// The residual's floats (`[rows][n]`) of the quad's channels and pixels, lanes past `m` zero.
///
/// # Safety
/// AVX-512F; the pixels and channels lie in `v`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn float_rows(v: &[f32], at: Rows) -> [__m512; Q] {
    let mut rows = [_mm512_setzero_ps(); Q];
    for (l, r) in rows.iter_mut().enumerate().take(at.count) {
        let i = (at.o + l) * at.n + at.px;
        debug_assert!(i + at.m <= v.len());
        // SAFETY: the caller's contract; masked lanes are not read.
        *r = unsafe { _mm512_maskz_loadu_ps(at.mask, v.as_ptr().add(i)) };
    }
    rows
}

/// The residual's channel-major codes (scale `s`) of the quad's channels and pixels, as floats,
/// lanes past `m` zero.
///
/// # Safety
/// AVX-512F; the pixels and channels lie in `codes`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn code_rows(codes: &[i8], s: f32, at: Rows) -> [__m512; Q] {
    let mut rows = [_mm512_setzero_ps(); Q];
    for (l, r) in rows.iter_mut().enumerate().take(at.count) {
        let mut buf = [0i8; 16];
        let i = (at.o + l) * at.n + at.px;
        buf[..at.m].copy_from_slice(&codes[i..i + at.m]);
        // SAFETY: 16 bytes of `buf`.
        let c = unsafe { _mm_loadu_si128(buf.as_ptr().cast()) };
        *r = _mm512_mul_ps(
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c)),
            _mm512_set1_ps(s),
        );
    }
    rows
}

/// The residual's quads (scale `s`) of the quad's four channels and pixels, as floats, lanes
/// past `m` zero: one load of sixteen pixels of four codes where the quads have no padding.
///
/// # Safety
/// AVX-512F; the pixels and channels lie in `q`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn quad_rows(q: &super::quads::Quads, s: f32, at: Rows) -> [__m512; Q] {
    let plane = &q.data[at.o / Q * q.shape.plane()..][..q.shape.plane()];
    let mut v = _mm512_setzero_si512();
    if q.shape.pad == 0 {
        // Rows end to end: the pixels are one run at `4 px` (no division for it).
        debug_assert!((at.px + at.m) * Q <= plane.len());
        let p = plane.as_ptr().wrapping_add(at.px * Q);
        // SAFETY: pixels `px..px + m` lie in the plane; masked lanes are not read.
        v = unsafe {
            if at.m == 16 {
                _mm512_loadu_si512(p.cast())
            } else {
                _mm512_maskz_loadu_epi32(at.mask, p.cast())
            }
        };
    } else {
        debug_assert_eq!(q.shape.w * at.yx.0 + at.yx.1, at.px);
        q.shape.runs_at(at.yx, at.m, |p, run, i| {
            // Pixel `p`'s lane at `i`: the register starts `p` pixels before it (masked lanes
            // are neither read nor faulted).
            let mask = (((1u32 << run) - 1) << p) as __mmask16;
            let base = plane.as_ptr().wrapping_add(i).wrapping_sub(p * Q);
            debug_assert!(i + run * Q <= plane.len());
            // SAFETY: the unmasked lanes are pixels `p..p + run`, inside the plane.
            v = unsafe { _mm512_mask_loadu_epi32(v, mask, base.cast()) };
        });
    }
    channels_avx512(v, _mm512_set1_ps(s))
}

/// Writes lanes `0..m` of `lanes` (pixels `px..`, the first at row and column `yx`, four codes
/// each) into a plane of `shape`, run by run, each with one masked store (a call to copy 4 to
/// 64 bytes was a tenth of ResNet50's integer path).
///
/// # Safety
/// AVX-512F; `plane` points to a plane of `shape` whose pixels `px..px + m` (inside `h * w`) no
/// one else touches meanwhile.
#[target_feature(enable = "avx512f")]
unsafe fn store_pixels(
    lanes: __m512i,
    m: usize,
    plane: Shared<i8>,
    shape: &QuadShape,
    px: usize,
    yx: (usize, usize),
) {
    if shape.pad == 0 {
        // Rows end to end: one run at `4 px` (no division for it).
        let mask = ((1u32 << m) - 1) as __mmask16;
        // SAFETY: pixels `px..px + m` of the plane: the caller's contract; masked lanes are
        // neither written nor faulted.
        unsafe { _mm512_mask_storeu_epi32(plane.0.wrapping_add(px * Q).cast(), mask, lanes) };
        return;
    }
    debug_assert_eq!(shape.w * yx.0 + yx.1, px);
    shape.runs_at(yx, m, |p, run, at| {
        let mask = (((1u32 << run) - 1) << p) as __mmask16;
        // Lane `p` lands at byte `at`; the masked lanes are neither written nor faulted.
        let base = plane.0.wrapping_add(at).wrapping_sub(p * Q);
        // SAFETY: the unmasked lanes are pixels `p..p + run`: the caller's contract.
        unsafe { _mm512_mask_storeu_epi32(base.cast(), mask, lanes) };
    });
}
