//! Convolution with `B` read where it lies, in the padded input: no im2col.
//!
//! Over the padded width `wp`, output position `q = oy * wp + ox` of tap `(c, ky, kx)` of a
//! stride-1 convolution reads the padded input at `c * pitch + ky * wp + kx + q`. A panel of `NR`
//! consecutive positions is therefore `NR` consecutive floats of the input, at an offset that
//! depends on the tap alone ([`Taps`]), and the micro-kernel reads its `B` rows straight from
//! there ([`tile_pair_taps_to`]). Positions with `ox >= wo`, where a window wraps into the next row
//! (`kernel - 1` of every `wp`: 2 of 58 on ResNet's first stage), are computed and dropped when
//! the rows are written out. A stride-`s` convolution reads the input split into `s x s` phases
//! ([`Phases`]), where the same holds.
//!
//! Why: the im2col path copied every input value `kernel²` times into panels per task and K
//! block (10% of ResNet18's f32 time on AVX-512), and copied each task's output block into place
//! afterwards (5%). Here each task finishes its own columns straight into the output.
//!
//! AVX-512F and AVX2 ([`pays`]), whose micro-kernels read taps; the other paths keep im2col.
//! On AVX2 (Zen 3) im2col, the copies of task blocks and their zeroing were 17% of ResNet18's
//! f32 time.

use rayon::prelude::*;

use super::buf::Buf;
use super::disjoint::Shared;
use super::epilogue::finish_row;
use super::gemm::{Epilogue, Split, KC};
use super::im2col::Geometry;
use super::kernel::{path, tile_pair_taps_tiled_to, tile_pair_taps_to, KernelPath, Taps, MR, NR};
use super::phases::phase_of_row;
use super::scratch;

/// K block of a 1x1 convolution read in place: half of [`KC`].
///
/// Why: each of its taps is a channel plane of its own, so a pair's `B` for a block of `KC` taps
/// is 256 runs of 128 bytes in as many planes (2-3 lines each, 32-48 KB), more than the L1 cache
/// keeps beside the weight rows and the output block, and at 56x56 (planes 196 lines apart) they
/// fall into a quarter of its sets; every row tile then read `B` again from L2. A 3x3
/// convolution's taps share their lines (a channel's nine taps lie in three rows), so its blocks
/// keep `KC`. Timed alone, 2 threads, cold buffers (the Xeon of stop 51, 2 rounds): ResNet50's
/// and TinyViT's 256-to-64 on 56x56 0.49-0.51 -> 0.46-0.47 ms, 256-to-128 0.87-0.88 -> 0.80-0.85,
/// 512-to-128 on 28x28 0.48 -> 0.42-0.45, 256-to-1024 on 14x14 0.38-0.39 -> 0.36; the layers of
/// 2048 channels on 7x7 within 2% (64 taps was faster still at 56x56 and slower on the small maps).
/// In ResNet50 (`step_times`, 3 rounds alternated): its 256-to-64 layers on 56x56 0.48-0.49 ->
/// 0.44-0.46 ms, its 256-to-128 0.92-0.94 -> 0.83-0.89 ms, the rest within noise; with
/// `conv_lanes` on the same blocks (its 1x1 layers of 14x14 and 7x7), those later 1x1 layers
/// together 10.2-10.8 -> 9.9-10.2 ms.
const KC_POINTWISE: usize = 128;

/// Whether [`conv_direct`] reads this convolution's input where it lies: a 1x1 stride-1 one
/// without padding.
fn in_place(g: &Geometry) -> bool {
    g.kernel == 1 && g.stride == 1 && g.padding == 0
}

/// The K block of a convolution: [`KC_POINTWISE`] for one read in place ([`in_place`]), [`KC`]
/// for the others. `conv_lanes` sums in the same blocks, for the same floats.
pub(super) fn k_block(g: &Geometry) -> usize {
    if in_place(g) {
        KC_POINTWISE
    } else {
        KC
    }
}

/// Whether [`conv_direct`] runs a task's row blocks one after the other, each over all of the
/// task's positions and finished ([`finish_row`]) as soon as its sums are done, rather than
/// every row block at each pair of positions in turn: for a convolution read in place
/// ([`in_place`]: the 1x1 ones).
///
/// Why: a 1x1 convolution's few multiply-adds per output (64 for ResNet50's 64-to-256) leave
/// its stores a large share of the time, and a pair written by every row block in turn touches
/// as many output rows, 12.5 KB apart at 56x56, as the layer has channels (256), each line
/// missing the caches. A row block over consecutive pairs writes 12 rows onward, line after
/// line, and its rows are still in L1 when their epilogue (bias, residual, ReLU) runs; the
/// `B` it reads again per block is the task's (100 KB, in L2), asked for into L1 by the kernel
/// a pair ahead ([`Ahead::InKernel`]). A single-core model of the layer (cold output): stores
/// cost 20-25% of its time in pair order, 10-15% in row order. (In pair order, asking for the
/// next call's output lines with `prefetchw` had paid since stop 51: ResNet50's 64-to-256 on
/// 56x56 0.54-0.92 -> 0.48-0.72 ms; in row order it no longer did, ResNet50's and TinyViT-5M's
/// 1x1 layers within 0.95-1.04 either way at stop 66, and it went.) In ResNet50 (2 threads, the Xeon
/// of stop 66, one process alternating both orders run by run, fastest of 30 runs each over 4
/// processes): 64-to-256 on 56x56 0.430-0.488 -> 0.331-0.404 ms, 256-to-64 0.346-0.360 ->
/// 0.321-0.327, 256-to-128 0.696 -> 0.616, 64-to-64 0.097 -> 0.087; on the AVX2 path
/// (`FQ_MAX_ISA=avx2`, the B prefetched by [`prefetch_pair`] for the first block only)
/// 64-to-256 1.02-1.17 -> 0.95-1.10, 256-to-128 1.90 -> 1.56.
///
/// On the AVX2 path only where a task's `B` (`g.c` planes of its `positions`) stays in a core's
/// L2 cache ([`BY_ROWS_MAX_B`]), since each row block reads all of it again: ResNet50's
/// 1024-to-256 on 14x14 has 800 KB of it per task, which a Zen 3 core's 512 KB L2 does not
/// hold, and every row block then read it from L3. In ResNet50 on the Zen 3 of stop 67
/// (`step_times`, f32, 2 threads, 2 processes each, alternated, the fastest of each step): its
/// 1024-to-256 layers 1.10-1.25 -> 0.78-0.95 ms, 1024-to-512 2.11 -> 1.60, 2048-to-512 1.34 ->
/// 0.98, 512-to-256 on 28x28 1.76 -> 1.24 (0.62-0.85 of their time); on a noisy host, where
/// the layers this does not change took 0.75-1.04 of theirs in the same processes, so the
/// gain is the difference. The AVX-512F machines measured have 1-2 MB of L2 a core,
/// and run their small maps' 1x1 layers on `conv_lanes` anyway.
fn by_rows(g: &Geometry, positions: usize) -> bool {
    let fits = g.c * positions * std::mem::size_of::<f32>() <= BY_ROWS_MAX_B;
    in_place(g) && (path() != KernelPath::Avx2Fma || fits)
}

/// Bytes of a task's `B` up to which [`by_rows`].
const BY_ROWS_MAX_B: usize = 256 << 10;

/// How [`sums`] asks for the next pair's `B` before the kernel reads it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Ahead {
    /// All its taps at once, a pair ahead, before a pair's row blocks run ([`prefetch_pair`]).
    Pairs,
    /// Tap by tap, by the kernel as it reads the same tap of this pair (AVX-512F's interleaved
    /// tiles: `kernel::tile_pair_taps_tiled_to`), spread over the call rather than a burst of
    /// up to 256 prefetches. Measured against [`Ahead::Pairs`] on the first block of
    /// [`by_rows`]' order (the Xeon of stop 66, as there): ResNet50's 1x1 layers on 56x56 2-9%
    /// faster (256-to-128 0.745 -> 0.682 ms); on the 7x7 stem and the stride-2 3x3, which run
    /// pair by pair, 1-4% slower, so those keep [`Ahead::Pairs`].
    InKernel,
    /// None: `B` is in L2 from the previous row block (the AVX2 kernels, which do not read
    /// ahead, in [`by_rows`]' later blocks).
    Nothing,
}

impl Ahead {
    /// For a row block of [`by_rows`]' order, the first of its task or not.
    fn in_block(a: Tiles, first: bool) -> Self {
        match a {
            Tiles::Interleaved(_) if path() == KernelPath::Avx512F => Ahead::InKernel,
            _ if first => Ahead::Pairs,
            _ => Ahead::Nothing,
        }
    }
}

/// Positions per kernel call: a pair of panels.
const PAIR: usize = 2 * NR;
/// Rows per kernel call.
const ROWS: usize = 2 * MR;

/// Whether [`conv_direct`] runs this convolution group: on the AVX-512F and AVX2 paths.
pub fn pays(geo: &Geometry) -> bool {
    matches!(path(), KernelPath::Avx512F | KernelPath::Avx2Fma) && geo.k() > 0 && geo.n() > 0
}

/// A convolution's weights as [`sums`]' kernels read them: whole `MR`-row tiles (rows past the
/// layer's last zero), `k` weights a row.
#[derive(Clone, Copy)]
pub enum Tiles<'a> {
    /// Row-major, rows `k` apart: what [`for_kernel`] gives on paths without interleaved
    /// kernels; both layouts give the same floats (the tests run each).
    Rows(&'a [f32]),
    /// Each tile `k`-major, step `i` of tile `t` its `MR` rows' weights at `(t * k + i) * MR`
    /// ([`interleave`]): the AVX-512F and AVX2 kernels' (`kernel::tile_pair_taps_tiled_to`).
    ///
    /// Why: a 12-row block broadcasts one weight of each row per step; rows `k` apart took an
    /// address computation each (integer instructions beside the FMAs), here two pointers and
    /// fixed offsets. Timed alone (2 threads, the Xeon of stop 53, alternated): 64 to 256
    /// channels 1x1 on 56x56 0.45-0.46 -> 0.40-0.41 ms, the 7x7 stem 1.00-1.02 -> 0.93-0.96,
    /// 128 to 128 3x3 stride 2 on 56x56 0.99-1.03 -> 0.96, 256 to 256 stride 2 on 28x28 1.17
    /// -> 1.08.
    Interleaved(&'a [f32]),
}

impl<'a> Tiles<'a> {
    /// Weights that [`for_kernel`] laid out.
    pub fn of(w: &'a [f32]) -> Self {
        if interleaves() {
            Tiles::Interleaved(w)
        } else {
            Tiles::Rows(w)
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Tiles::Rows(a) | Tiles::Interleaved(a) => a.len(),
        }
    }
}

/// Whether this CPU's kernel reads [`Tiles::Interleaved`]: on the AVX-512F and AVX2 paths.
///
/// AVX2 since stop 67: its 6x16 kernel broadcast each step's six weights from six rows `k`
/// apart (six lines at a time; the same set of the L1 cache at `K` = 1024). In ResNet50 on the
/// Zen 3 of stop 67 (`step_times`, f32, 2 threads, 6 processes each, alternated, the fastest
/// of each step): step sum 58.2 -> 54.4 ms; in the first 3 + 3 processes most of its 1x1
/// layers on 56x56 and 28x28 0.66-0.93 of their time, the stem and the stride-2 3x3 ones
/// (which also read tiles) 0.78-0.93.
pub(super) fn interleaves() -> bool {
    matches!(path(), KernelPath::Avx512F | KernelPath::Avx2Fma)
}

/// Whole row-major `MR`-row tiles of `k` weights a row as this CPU's kernel reads them
/// ([`Tiles::of`]): interleaved ([`interleave`]) on AVX-512F and AVX2, as they are elsewhere.
pub fn for_kernel(rows: Buf<f32>, k: usize) -> Buf<f32> {
    if interleaves() {
        interleave(&rows, k)
    } else {
        rows
    }
}

/// Whole row-major `MR`-row tiles (`k` weights a row) with each tile `k`-major
/// ([`Tiles::Interleaved`]).
pub(super) fn interleave(rows: &[f32], k: usize) -> Buf<f32> {
    let mut t = Buf::zeroed(rows.len());
    if k > 0 {
        t.par_chunks_mut(MR * k)
            .zip(rows.par_chunks(MR * k))
            .for_each(|(dst, src)| {
                for (i, step) in dst.chunks_exact_mut(MR).enumerate() {
                    for (r, v) in step.iter_mut().enumerate() {
                        *v = src[r * k + i];
                    }
                }
            });
    }
    t
}

/// `out = epilogue(conv(x))` for one group: `x` is `[geo.c, geo.h, geo.w]`, `a` the group's `m`
/// weight rows as whole `MR`-row tiles ([`Tiles`]; the sums of rows past `m` are dropped),
/// `out` is `[m, ho * wo]`; `epi`'s rows are the group's.
pub fn conv_direct(x: &[f32], geo: &Geometry, a: Tiles, m: usize, out: &mut [f32], epi: Epilogue) {
    let g = geo;
    let (k, n) = (g.k(), g.n());
    assert!(k > 0 && n > 0, "conv_direct: {g:?}");
    let groups = m.div_ceil(MR);
    assert!(a.len() >= groups * MR * k, "conv_direct: weight rows");
    assert_eq!(out.len(), m * n, "conv_direct: output size");
    let input = TapInput::new(x, g);
    let (wp, positions) = (input.wp, input.positions);
    let reader = input.reader();
    // The column of `out` of the first real pixel at or after position `q`.
    let real = |q: usize| (q / wp) * g.wo + (q % wp).min(g.wo);
    let base = Shared(out.as_mut_ptr());
    // Tasks are rectangles of rows and panels of positions, as in `gemm`.
    let split = Split::new(m, positions.div_ceil(NR));
    super::tasks::each(split.tasks(), |t| {
        let (r0, j0, j1) = split.task(t);
        let rows = split.mc.min(m - r0);
        let (q0, q1) = (j0 * NR, (j1 * NR).min(positions));
        let width = (q1 - q0).div_ceil(PAIR) * PAIR;
        // Where the sums go. With one position per pixel (`wp == wo`: 1x1 convolutions without
        // padding), whole pairs go straight into the output rows and only a ragged last pair
        // into `c`; otherwise all of them go into `c`, whose real columns are copied out after.
        // (Copying the block out was 15-25% of a 1x1 convolution's time.)
        let straight = wp == g.wo;
        let full = if straight { (q1 - q0) / PAIR * PAIR } else { 0 };
        let ldc = width - full;
        // Recycled, stale contents: the first K block sets every row and column of it.
        let mut c = scratch::F32.take(rows * ldc, true);
        let cp = c.as_mut_ptr();
        // A convolution read in place runs its row blocks one after the other ([`by_rows`]).
        let by_rows = by_rows(g, q1 - q0);
        let dest = |gr: usize, j: usize| {
            if j < full {
                (base.offset((r0 + gr) * n + q0 + j).0, n)
            } else {
                (cp.wrapping_add(gr * ldc + j - full), ldc)
            }
        };
        let (p0, p1) = (real(q0), real(q1));
        // Rows `i0..i1` of the task, their sums done: copied into place where they are not
        // (the ragged last pair, or every pair when positions are not pixels), and finished.
        let finish = |i0: usize, i1: usize| {
            for i in i0..i1 {
                let (o, row) = (r0 + i, &c[i * ldc..(i + 1) * ldc]);
                // SAFETY: tasks own disjoint rectangles: rows `r0..r0 + rows` by positions
                // `q0..q1`, so by columns `p0..p1` (`real` is monotone); they lie in row `o < m` of
                // `out` (`p1 <= n`), which outlives the parallel loop.
                let dst = unsafe { base.slice(o * n + p0, p1 - p0) };
                if straight {
                    // Positions are pixels (`p0 == q0`); the whole pairs are in place.
                    dst[full..].copy_from_slice(&row[..q1 - q0 - full]);
                } else {
                    let mut d = 0;
                    let mut q = q0;
                    while q < q1 {
                        let (oy, ox) = (q / wp, q % wp);
                        if ox < g.wo {
                            let end = (oy * wp + g.wo).min(q1);
                            dst[d..d + end - q].copy_from_slice(&row[q - q0..end - q0]);
                            d += end - q;
                        }
                        q = (oy + 1) * wp;
                    }
                    debug_assert_eq!(d, p1 - p0);
                }
                let res = epi.residual.map(|v| &v[o * n + p0..o * n + p1]);
                finish_row(dst, &epi, o, res);
            }
        };
        // Every call's `dest` rows are `r0 + gr..` (fewer than `rows - gr`), each `2 NR` floats
        // from column `q0 + j`: in the output, columns below `q0 + full <= q1`, inside this
        // task's rectangle (tasks own disjoint ones); in `c`, columns below `ldc`, of rows
        // below `rows`.
        if by_rows {
            for gr in (0..rows).step_by(ROWS) {
                let end = (gr + ROWS).min(rows);
                let ahead = Ahead::in_block(a, gr == 0);
                let dest = |g2: usize, j: usize| dest(gr + g2, j);
                // SAFETY: as above, for rows `gr..end` of the task.
                unsafe { sums(&reader, a, (r0 + gr, end - gr), (q0, width), ahead, dest) };
                finish(gr, end);
            }
        } else {
            // SAFETY: as above, for all the task's rows.
            unsafe { sums(&reader, a, (r0, rows), (q0, width), Ahead::Pairs, dest) };
            finish(0, rows);
        }
        scratch::F32.give(c);
    });
}

/// A convolution's input as [`sums`] reads it: its taps, and the floats they index: the input
/// itself for a convolution read in place ([`in_place`]), else its [`Phases`] in a recycled
/// buffer (given back when this is dropped).
pub(super) struct TapInput<'a> {
    g: &'a Geometry,
    x: &'a [f32],
    taps: Taps,
    buf: Buf<f32>,
    /// Where the phases lie in `buf`; `None` when read in place.
    phases: Option<std::ops::Range<usize>>,
    /// Output position `q = oy * wp + ox` ([`Phases`]' row pitch).
    pub(super) wp: usize,
    /// Positions up to the last real pixel's (pairs of positions are computed past it).
    pub(super) positions: usize,
}

impl<'a> TapInput<'a> {
    pub(super) fn new(x: &'a [f32], g: &'a Geometry) -> Self {
        let ph = Phases::new(g);
        let wp = ph.wp;
        let positions = (g.ho - 1) * wp + g.wo;
        // A 1x1 stride-1 convolution without padding reads its input where it lies: the copy
        // (with a channel pitch and an alignment of its own) cost more than it saved on inputs
        // of many channels (TinyViT's 256-to-64 on 56x56: 0.30 of 0.47 ms at two threads).
        if in_place(g) {
            let n = g.n();
            let taps = Taps::new((0..g.c).map(|c| c * n).collect());
            return Self {
                g,
                x,
                taps,
                buf: Buf::new(),
                phases: None,
                wp,
                positions,
            };
        }
        let taps = ph.taps(g.kernel);
        // A task's pairs start at a panel (not always an even one) and may end one panel past
        // the last position's.
        let reach = (positions.div_ceil(NR) + 1) * NR + taps.max();
        // On a cache line (every `Buf` is), so that a pair's loads at aligned taps (every tap
        // of a 1x1 convolution, a third of a 3x3's) each touch one line.
        let len = ph.len().max(reach);
        let mut buf = scratch::F32.take(len, true);
        ph.fill(x, &mut buf);
        let phases = Some(0..len);
        Self {
            g,
            x,
            taps,
            buf,
            phases,
            wp,
            positions,
        }
    }

    /// The reader of the floats the taps index.
    pub(super) fn reader(&self) -> TapReader<'_> {
        let src = match &self.phases {
            Some(r) => &self.buf[r.clone()],
            None => &self.x[..self.g.c * self.g.n()],
        };
        let copied = Taps::new((0..self.taps.offsets().len()).map(|i| i * PAIR).collect());
        TapReader {
            src,
            taps: &self.taps,
            copied,
            kb: k_block(self.g),
        }
    }
}

impl Drop for TapInput<'_> {
    fn drop(&mut self) {
        scratch::F32.give(std::mem::take(&mut self.buf));
    }
}

/// Where a pair of positions' `B` lies: in the input at the pair's position plus each tap or,
/// for the last pairs, whose taps would read past it, in a copy (row `i` at `i * PAIR`).
pub(super) struct TapReader<'a> {
    src: &'a [f32],
    taps: &'a Taps,
    copied: Taps,
    /// The K block ([`k_block`]).
    kb: usize,
}

impl TapReader<'_> {
    /// `B` of the pair at position `at`: the floats, where they start, and the taps; a copy is
    /// made into `own` (kept for the next call at the same position).
    fn pair<'s>(
        &'s self,
        at: usize,
        own: &'s mut Option<(usize, Buf<f32>)>,
    ) -> (&'s [f32], usize, &'s Taps) {
        if at + PAIR + self.taps.max() <= self.src.len() {
            return (self.src, at, self.taps);
        }
        if own.as_ref().is_none_or(|(p, _)| *p != at) {
            let src = self.src;
            let mut b = Buf::zeroed(self.copied.offsets().len() * PAIR);
            for (row, &t) in b.chunks_exact_mut(PAIR).zip(self.taps.offsets()) {
                let from = (t + at).min(src.len());
                let have = (src.len() - from).min(PAIR);
                row[..have].copy_from_slice(&src[from..from + have]);
            }
            *own = Some((at, b));
        }
        (&own.as_ref().expect("just made").1, 0, &self.copied)
    }
}

/// The sums of weight rows `r0..r0 + rows` (`a`: whole `MR`-row tiles, [`Tiles`]) at the
/// positions `q0..q0 + width` (whole pairs), K block by K block: the kernel call for rows
/// `r0 + gr..` and the pair at `q0 + j` stores to `dest(gr, j)` (a pointer and its row pitch),
/// setting its sums in the first K block and adding them in the others.
/// The next pair's `B` is asked for as `ahead` says (the kernel reads ahead only in
/// [`Tiles::Interleaved`]).
///
/// # Safety
/// Every pointer `dest` returns must be valid for writing `2 NR` floats in each of
/// `min(2 MR, rows - gr)` rows, its pitch apart, which nothing else reads or writes meanwhile.
pub(super) unsafe fn sums(
    input: &TapReader,
    a: Tiles,
    (r0, rows): (usize, usize),
    (q0, width): (usize, usize),
    ahead: Ahead,
    mut dest: impl FnMut(usize, usize) -> (*mut f32, usize),
) {
    let k = input.taps.offsets().len();
    // The copied `B` of a pair that needs one, with its position.
    let mut own: Option<(usize, Buf<f32>)> = None;
    for k0 in (0..k).step_by(input.kb) {
        let kc = input.kb.min(k - k0);
        for j in (0..width).step_by(PAIR) {
            if ahead == Ahead::Pairs && j + PAIR < width {
                prefetch_pair(input.src, q0 + j + PAIR, &input.taps.offsets()[k0..k0 + kc]);
            }
            for gr in (0..rows).step_by(ROWS) {
                let (to, ld) = dest(gr, j);
                let to = (to, ld, ROWS.min(rows - gr), k0 > 0);
                let b = input.pair(q0 + j, &mut own);
                let r = r0 + gr;
                // SAFETY: the caller's guarantee for `to`; `b`'s taps read inside its floats.
                unsafe {
                    match a {
                        Tiles::Rows(a) => {
                            tile_pair_taps_to(&a[r * k + k0..], k, (b.0, b.1), (b.2, k0, kc), to)
                        }
                        // `r` starts a tile: tasks and blocks start on whole tiles.
                        Tiles::Interleaved(t) => tile_pair_taps_tiled_to(
                            (&t[r * k + k0 * MR..], k),
                            (b.0, b.1),
                            (b.2, k0, kc),
                            to,
                            if ahead == Ahead::InKernel && j + PAIR < width {
                                PAIR
                            } else {
                                0
                            },
                        ),
                    }
                };
            }
        }
    }
}

/// Asks for the `B` of the pair of panels at position `at` (its `2 NR` floats at each tap), a
/// pair ahead of the one the kernel multiplies while this one's row tiles run.
///
/// Why: a pair reads one short run per tap, each in a channel plane of its own (a 1x1
/// convolution of 64 channels: 64 runs, 12.5 KB apart at 56x56), more streams than the hardware
/// prefetcher follows; the kernel then waited on `B` loads from L2 and L3 (`perf annotate`: the
/// hottest instructions of ResNet50's f32 path). Alternated on the Xeon of stop 48 (`step_times`,
/// 2 threads, 8 rounds): ResNet50's first-stage 1x1 convolutions 0.49-0.91 -> 0.42-0.84 ms each
/// (64 to 256 channels on 56x56: 0.90-0.91 -> 0.77-0.84), its f32 step sum 35.2-37.9 -> 34.4-36.9
/// ms. Prefetches never fault, so positions past the input need no check.
fn prefetch_pair(src: &[f32], at: usize, taps: &[usize]) {
    #[cfg(target_arch = "x86_64")]
    for &t in taps {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = src.as_ptr().wrapping_add(t + at);
        // SAFETY: `_mm_prefetch` is a hint (SSE, in every x86-64 CPU); it reads nothing and
        // never faults, whatever the address.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(NR) as *const i8);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (src, at, taps);
}

/// The padded input split by phase: for stride `s`, phase `(py, px)` holds the padded input's
/// rows `s y + py` and columns `s x + px` (`hp` by `wp` of them per channel, zeros past the
/// border), so a tap of a strided convolution also reads `NR` consecutive floats for `NR`
/// consecutive output pixels. Stride 1 has the one phase: the padded input itself.
pub(super) struct Phases {
    c: usize,
    h: usize,
    w: usize,
    padding: usize,
    stride: usize,
    /// Phases per axis: `min(stride, kernel)` (a 1x1 stride-2 convolution reads phase (0, 0)
    /// alone).
    count: usize,
    hp: usize,
    pub(super) wp: usize,
}

impl Phases {
    pub(super) fn new(g: &Geometry) -> Self {
        let s = g.stride;
        let (hp, wp) = (g.h + 2 * g.padding, g.w + 2 * g.padding);
        Phases {
            c: g.c,
            h: g.h,
            w: g.w,
            padding: g.padding,
            stride: s,
            count: s.min(g.kernel),
            hp: hp.div_ceil(s),
            wp: wp.div_ceil(s),
        }
    }

    fn plane(&self) -> usize {
        self.hp * self.wp
    }

    /// Floats from one channel's plane to the next: the plane rounded up to whole 64-byte lines,
    /// an odd number of them.
    ///
    /// Why: the kernel reads one tap of every channel in turn, `pitch` apart. ResNet50's 56x56
    /// planes are 196 lines, so those reads fell into 16 of the L1 cache's 64 sets and evicted
    /// each other (a pair's `B`, 32 KB, should stay in L1 for every row tile); an odd number of
    /// lines spreads them over all 64.
    fn pitch(&self) -> usize {
        let lines = self.plane().div_ceil(16);
        (lines | 1) * 16
    }

    pub(super) fn len(&self) -> usize {
        self.count * self.count * self.c * self.pitch()
    }

    /// Where tap `(c, ky, kx)` of output position 0 lies: output position `oy * wp + ox` reads
    /// padded row `s oy + ky`, column `s ox + kx`, that is phase `(ky % s, kx % s)` at row
    /// `oy + ky / s`, column `ox + kx / s`.
    fn tap(&self, c: usize, ky: usize, kx: usize) -> usize {
        let s = self.stride;
        let phase = (ky % s) * self.count + kx % s;
        (phase * self.c + c) * self.pitch() + (ky / s) * self.wp + kx / s
    }

    /// Every tap's offset ([`Phases::tap`]) in the weights' column order: channel, then `ky`,
    /// then `kx`, for a `kernel x kernel` window.
    pub(super) fn taps(&self, kernel: usize) -> Taps {
        let taps = (0..self.c)
            .flat_map(|c| (0..kernel).flat_map(move |ky| (0..kernel).map(move |kx| (c, ky, kx))))
            .map(|(c, ky, kx)| self.tap(c, ky, kx))
            .collect();
        Taps::new(taps)
    }

    /// Writes every element of `dst`: the phases of `x`, then zeros to the end.
    pub(super) fn fill(&self, x: &[f32], dst: &mut [f32]) {
        let (s, p, plane) = (self.stride, self.padding, self.plane());
        let (planes, tail) = dst.split_at_mut(self.len());
        tail.fill(0.0);
        if (s, self.count) == (2, 2) {
            return self.fill_pairs(x, planes);
        }
        if s > 2 && self.count == s {
            return self.fill_rows(x, planes);
        }
        planes
            .par_chunks_mut(self.pitch())
            .enumerate()
            .for_each(|(i, dst)| {
                let (phase, c) = (i / self.c, i % self.c);
                let (py, px) = (phase / self.count, phase % self.count);
                let src = &x[c * self.h * self.w..][..self.h * self.w];
                let (dst, gap) = dst.split_at_mut(plane);
                gap.fill(0.0);
                for (y, row) in dst.chunks_exact_mut(self.wp).enumerate() {
                    // Padded row `s y + py` is input row `s y + py - p`, if any.
                    let Some(input) = (s * y + py)
                        .checked_sub(p)
                        .filter(|&r| r < self.h)
                        .map(|r| &src[r * self.w..][..self.w])
                    else {
                        row.fill(0.0);
                        continue;
                    };
                    if s == 1 {
                        // Zeros, the row, zeros.
                        row[..p].fill(0.0);
                        row[p..p + self.w].copy_from_slice(input);
                        row[p + self.w..].fill(0.0);
                        continue;
                    }
                    // Phase column `x` is input column `s x + px - p`: zeros where that lies
                    // outside the input.
                    row.fill(0.0);
                    phase_of_row(input, s, p, px, row);
                }
            });
    }

    /// [`Phases::fill`] where every column phase is read (`count == stride`, as in a patch
    /// embedding: a 16x16 window at stride 16), each padded input row read once into all of its
    /// column phases, row `y` of the `stride` phase planes of its row phase.
    ///
    /// Why: phase by phase, a row of a phase plane gathered its few floats from an input row
    /// that the next phase read again, a call per plane row (10,752 of 14 floats for DeiT-Tiny's
    /// 16x16 patches): that fill was 40% of the convolution's time (`perf`). On Zen 5 at two
    /// threads (alternated): the patch embedding alone 0.221-0.229 -> 0.182-0.187 ms, in
    /// DeiT-Tiny's f32 path (`step_times`) 0.236 -> 0.198.
    fn fill_rows(&self, x: &[f32], planes: &mut [f32]) {
        let (s, c, p, pitch, plane, wp) = (
            self.stride,
            self.c,
            self.padding,
            self.pitch(),
            self.plane(),
            self.wp,
        );
        // The planes of row phase `py`, column phase `px` and channel `ch` at `px * c + ch`.
        planes
            .par_chunks_mut(s * c * pitch)
            .enumerate()
            .for_each(|(py, block)| {
                for dst in block.chunks_exact_mut(pitch) {
                    dst[plane..].fill(0.0);
                }
                for ch in 0..c {
                    let src = &x[ch * self.h * self.w..][..self.h * self.w];
                    for y in 0..self.hp {
                        // Padded row `s y + py` is input row `s y + py - p`, if any; padded
                        // column `s j + px` input column `s j + px - p`, if any.
                        let input = (s * y + py)
                            .checked_sub(p)
                            .filter(|&r| r < self.h)
                            .map(|r| &src[r * self.w..][..self.w]);
                        for px in 0..s {
                            let row = &mut block[(px * c + ch) * pitch + y * wp..][..wp];
                            let Some(input) = input else {
                                row.fill(0.0);
                                continue;
                            };
                            for (j, v) in row.iter_mut().enumerate() {
                                *v = (s * j + px)
                                    .checked_sub(p)
                                    .and_then(|col| input.get(col))
                                    .copied()
                                    .unwrap_or(0.0);
                            }
                        }
                    }
                }
            });
    }

    /// [`Phases::fill`] at stride 2 with both column phases (every 3x3 and 7x7 stride-2
    /// convolution): each input row is read once and split into its even and odd columns, the
    /// two phases of one phase row, and only the padding around them is zeroed.
    ///
    /// Why: phase by phase, each row was read twice and every phase row zeroed before its
    /// columns were written over the zeros; that fill was 14% of TinyViT-5M's 32-to-64 stride-2
    /// convolution's time on one core (the Xeon of stop 52, `perf`).
    fn fill_pairs(&self, x: &[f32], planes: &mut [f32]) {
        let (c, p, pitch, plane) = (self.c, self.padding, self.pitch(), self.plane());
        // Padded column `2 j + px` is input column `2 j + px - p`: the input's even columns go
        // to phase `p % 2` from its column `p / 2`, the odd ones to the other from `(p + 1) / 2`.
        let starts = (p / 2, p.div_ceil(2));
        planes
            .par_chunks_mut(2 * c * pitch)
            .enumerate()
            .for_each(|(py, block)| {
                let (px0, px1) = block.split_at_mut(c * pitch);
                px0.par_chunks_mut(pitch)
                    .zip(px1.par_chunks_mut(pitch))
                    .enumerate()
                    .for_each(|(ch, (d0, d1))| {
                        let src = &x[ch * self.h * self.w..][..self.h * self.w];
                        let (even, odd) = if p % 2 == 0 { (d0, d1) } else { (d1, d0) };
                        let (even, gap_e) = even.split_at_mut(plane);
                        let (odd, gap_o) = odd.split_at_mut(plane);
                        gap_e.fill(0.0);
                        gap_o.fill(0.0);
                        let rows = even
                            .chunks_exact_mut(self.wp)
                            .zip(odd.chunks_exact_mut(self.wp));
                        for (y, (re, ro)) in rows.enumerate() {
                            // Padded row `2 y + py` is input row `2 y + py - p`, if any.
                            match (2 * y + py).checked_sub(p).filter(|&r| r < self.h) {
                                Some(r) => split_row(&src[r * self.w..][..self.w], starts, re, ro),
                                None => {
                                    re.fill(0.0);
                                    ro.fill(0.0);
                                }
                            }
                        }
                    });
            });
    }
}

/// `even[e0 + j] = src[2 j]` and `odd[o0 + j] = src[2 j + 1]` for the input's columns, zeros
/// elsewhere in both rows.
fn split_row(src: &[f32], (e0, o0): (usize, usize), even: &mut [f32], odd: &mut [f32]) {
    let (ne, no) = (src.len().div_ceil(2), src.len() / 2);
    assert!(
        e0 + ne <= even.len() && o0 + no <= odd.len(),
        "split_row: row widths"
    );
    even[..e0].fill(0.0);
    even[e0 + ne..].fill(0.0);
    odd[..o0].fill(0.0);
    odd[o0 + no..].fill(0.0);
    let (even, odd) = (&mut even[e0..e0 + ne], &mut odd[o0..o0 + no]);
    #[cfg(target_arch = "x86_64")]
    if super::kernel::path() == KernelPath::Avx512F {
        // SAFETY: the path is AVX-512F only where the CPU has it; `even` holds the `ne` and
        // `odd` the `no` outputs of `src`'s `len` columns.
        unsafe { split_avx512(src, even, odd) };
        return;
    }
    for (j, v) in even.iter_mut().enumerate() {
        *v = src[2 * j];
    }
    for (j, v) in odd.iter_mut().enumerate() {
        *v = src[2 * j + 1];
    }
}

/// [`split_row`]'s columns on AVX-512F, sixteen of each a step (the last ones masked).
///
/// # Safety
/// AVX-512F must be available; `even` must hold `ceil(len / 2)` floats and `odd` `len / 2`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn split_avx512(src: &[f32], even: &mut [f32], odd: &mut [f32]) {
    use std::arch::x86_64::*;
    let (len, ne, no) = (src.len(), even.len(), odd.len());
    debug_assert!(ne == len.div_ceil(2) && no == len / 2);
    let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let mask = |count: usize| ((1u32 << count.min(16)) - 1) as __mmask16;
    for j in (0..ne).step_by(16) {
        let left = len - 2 * j;
        // SAFETY: block `j / 16` reads `src[2 j..]`, at most 32 floats and only those before
        // `len`, and writes `even[j..]` and `odd[j..]`, only those before `ne` and `no`.
        unsafe {
            let lo = _mm512_maskz_loadu_ps(mask(left), src.as_ptr().add(2 * j));
            let hi =
                _mm512_maskz_loadu_ps(mask(left.saturating_sub(16)), src.as_ptr().add(2 * j + 16));
            let e = _mm512_permutex2var_ps(lo, evens, hi);
            let o = _mm512_permutex2var_ps(lo, odds, hi);
            _mm512_mask_storeu_ps(even.as_mut_ptr().add(j), mask(ne - j), e);
            _mm512_mask_storeu_ps(odd.as_mut_ptr().add(j), mask(no.saturating_sub(j)), o);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The convolution by its definition, with `relu(sum * scale + bias + residual)` (its sums
    /// in f64, rounded once).
    pub(crate) fn naive(x: &[f32], g: &Geometry, w: &[f32], m: usize, epi: &Epilogue) -> Vec<f32> {
        let (k, n) = (g.k(), g.n());
        let mut out = vec![0f32; m * n];
        for o in 0..m {
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    let mut sum = 0f64;
                    for c in 0..g.c {
                        for ky in 0..g.kernel {
                            for kx in 0..g.kernel {
                                let (y, xx) = (oy * g.stride + ky, ox * g.stride + kx);
                                let y = y.checked_sub(g.padding).filter(|&y| y < g.h);
                                let xx = xx.checked_sub(g.padding).filter(|&v| v < g.w);
                                if let (Some(y), Some(xx)) = (y, xx) {
                                    let wi = o * k + (c * g.kernel + ky) * g.kernel + kx;
                                    sum +=
                                        f64::from(w[wi]) * f64::from(x[(c * g.h + y) * g.w + xx]);
                                }
                            }
                        }
                    }
                    let p = oy * g.wo + ox;
                    let mut v = sum as f32 * epi.scale.map_or(1.0, |s| s[o]);
                    v +=
                        epi.bias.map_or(0.0, |b| b[o]) + epi.residual.map_or(0.0, |r| r[o * n + p]);
                    out[o * n + p] = if epi.relu { v.max(0.0) } else { v };
                }
            }
        }
        out
    }

    /// Against the definition on every path (on those without the taps kernel the gathered
    /// panels run): 3x3, 1x1, 5x5, 7x7 and 16x16, strides 1 to 4 and 16, padded and not, rows
    /// of several tasks and of less than a pair, channels past one K block, row counts off the
    /// tile, from stale scratch buffers.
    /// The operands are small integers and halves, so every sum is exact whatever its order.
    #[test]
    fn matches_the_definition() {
        for (c, h, w, kernel, stride, padding, m) in [
            (3, 9, 11, 3, 1, 1, 5usize),
            (64, 13, 10, 3, 1, 1, 7),
            (5, 4, 3, 1, 1, 0, 6),
            // 1x1 without padding: sums straight into the output, a ragged last pair apart.
            (6, 9, 8, 1, 1, 0, 13),
            (16, 12, 12, 1, 1, 0, 10),
            // ... over more channels than one K block of them (`KC_POINTWISE`).
            (300, 6, 7, 1, 1, 0, 14),
            // ... row block after row block (`by_rows`), several blocks past the first.
            (20, 10, 13, 1, 1, 0, 40),
            (2, 7, 40, 5, 1, 2, 13),
            (30, 3, 3, 3, 1, 1, 2),
            (8, 3, 4, 3, 1, 1, 40),
            // The stem, the strided 3x3 and 1x1 convolutions, odd sizes, stride 3.
            (3, 23, 20, 7, 2, 3, 9),
            (40, 9, 8, 3, 2, 1, 7),
            (7, 9, 10, 1, 2, 0, 8),
            (2, 11, 13, 3, 3, 1, 3),
            // Stride 2 with even padding (0, 2) and rows of more than 32 columns (both column
            // phases from one pass, `fill_pairs`).
            (4, 11, 9, 3, 2, 0, 5),
            (3, 12, 13, 5, 2, 2, 6),
            (2, 5, 70, 3, 2, 1, 4),
            // Every column phase read (`fill_rows`): patch embeddings (16x16 at stride 16, sizes
            // off the patch), 4x4 at stride 4 padded.
            (3, 35, 37, 16, 16, 0, 7),
            (3, 32, 48, 16, 16, 0, 13),
            (5, 10, 9, 4, 4, 1, 6),
        ] {
            let g = Geometry::of(c, h, w, kernel, stride, padding);
            let (k, n) = (g.k(), g.n());
            let x: Vec<f32> = (0..c * h * w).map(|i| (i % 7) as f32 - 3.0).collect();
            let mut wts = vec![0f32; m.div_ceil(MR) * MR * k];
            for (i, v) in wts.iter_mut().take(m * k).enumerate() {
                *v = (i % 5) as f32 * 0.5 - 1.0;
            }
            let scale: Vec<f32> = (0..m).map(|o| 0.25 * (o % 3 + 1) as f32).collect();
            let bias: Vec<f32> = (0..m).map(|o| o as f32 - 2.0).collect();
            let res: Vec<f32> = (0..m * n).map(|i| (i % 3) as f32).collect();
            scratch::F32.give_everywhere(|| Buf::filled(1 << 16, f32::NAN));
            for residual in [None, Some(&res[..])] {
                let epi = Epilogue {
                    scale: Some(&scale),
                    bias: Some(&bias),
                    residual,
                    relu: residual.is_some(),
                    gelu: false,
                };
                // Both layouts of the weights, where the kernel reads interleaved ones: the same
                // floats (a wrong tile or step there fails).
                let tiled = interleave(&wts, k);
                let mut layouts = vec![Tiles::Rows(&wts)];
                if interleaves() {
                    layouts.push(Tiles::Interleaved(&tiled));
                }
                for a in layouts {
                    let mut got = vec![f32::NAN; m * n];
                    conv_direct(&x, &g, a, m, &mut got, epi);
                    assert_eq!(got, naive(&x, &g, &wts, m, &epi), "{g:?}, {m} rows");
                }
            }
        }
    }
}
