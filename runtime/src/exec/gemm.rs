//! Packed GEMM: `out[o][p] = epilogue(sum_k W[o][k] * B[k][p])` with the weight rows unpacked from
//! their 2–8-bit codes on the fly, one cache block at a time.
//!
//! Blocking follows the usual CPU GEMM scheme: a task owns `mc` output rows and walks K in blocks
//! of `KC`; per block it unpacks its rows straight into a row-major buffer (small enough for L2;
//! the micro-kernel reads the rows in place, so there is no packing pass beyond the unpacking),
//! then sweeps every `NR`-column panel of `B` (whose `KC x NR` block stays in L1) through the
//! micro-kernel. Scales, bias, residual and ReLU are applied once at the end, so the integer codes
//! are multiplied as small exact floats and each row's scale is a single multiply per output.

use rayon::prelude::*;

use super::buf::Buf;
use super::disjoint::Shared;
use super::epilogue::finish_row;
use super::kernel::{dot_rows, pairs_pay, tile, tile_pair, tile_pair_to, MR, NR};
use crate::format::{pack, PackedMatrix};

/// K block: a multiple of the packing chunk, so every block starts on a chunk boundary.
pub(super) const KC: usize = 256;
const _: () = assert!(KC.is_multiple_of(pack::CHUNK));

/// The rows of a weight matrix, as stored.
pub enum Rows<'a> {
    /// Bit-packed codes; `offsets[r]..offsets[r + 1]` is row `r` of `m.data`.
    Packed {
        m: &'a PackedMatrix,
        offsets: &'a [usize],
    },
    /// Row-major f32.
    F32 { data: &'a [f32], cols: usize },
    /// Row-major codes unpacked to i8 (their values as the packed rows give them).
    I8 { data: &'a [i8], cols: usize },
}

impl Rows<'_> {
    /// Writes `W[row][k0 .. k0 + out.len()]` into `out`.
    #[inline(always)]
    pub(super) fn load(&self, row: usize, k0: usize, out: &mut [f32]) {
        match self {
            Rows::Packed { m, offsets } => {
                let ok = pack::unpack_row(
                    &m.data[offsets[row]..offsets[row + 1]],
                    m.bits[row],
                    k0,
                    out,
                );
                // The model was validated: every row holds its codes at a width of 2..=8.
                debug_assert!(ok);
            }
            Rows::F32 { data, cols } => {
                out.copy_from_slice(&data[row * cols + k0..][..out.len()]);
            }
            Rows::I8 { data, cols } => {
                let src = &data[row * cols + k0..][..out.len()];
                for (o, &q) in out.iter_mut().zip(src) {
                    *o = f32::from(q);
                }
            }
        }
    }

    /// Rows `row0..row0 + m` of `k` weights as whole `MR`-row tiles, row-major: in place when
    /// [`Rows::in_place`] allows, else unpacked ([`unpacked_rows`]).
    pub(super) fn tiles(&self, row0: usize, m: usize, k: usize) -> RowTiles<'_> {
        match self.in_place(row0, m.div_ceil(MR) * MR) {
            Some(a) => RowTiles::InPlace(a),
            None => RowTiles::Unpacked(unpacked_rows(self, row0, m, k)),
        }
    }

    /// Rows `row0..row0 + rows`, row-major and `cols` apart, when they can be read where they
    /// are: f32 weights holding that many rows (a tile's rows past the layer's last are the zero
    /// rows [`unpacked_rows`] appends). The kernels then read them in place, with no copy.
    pub(super) fn in_place(&self, row0: usize, rows: usize) -> Option<&[f32]> {
        match self {
            Rows::F32 { data, cols } if data.len() >= (row0 + rows) * cols => {
                Some(&data[row0 * cols..(row0 + rows) * cols])
            }
            _ => None,
        }
    }
}

/// Every row of `m` unpacked to i8 codes, row-major (`m.cols` apart), rows in parallel.
pub fn codes_i8(m: &PackedMatrix) -> Buf<i8> {
    let mut codes = Buf::zeroed(m.rows * m.cols);
    let offsets = m.row_offsets();
    if m.cols > 0 {
        codes
            .par_chunks_mut(m.cols)
            .enumerate()
            .for_each(|(r, row)| {
                let ok =
                    pack::unpack_row_i8(&m.data[offsets[r]..offsets[r + 1]], m.bits[r], 0, row);
                // The model was validated: every row holds its codes at a width of 2..=8.
                debug_assert!(ok);
            });
    }
    codes
}

/// Rows `row0..row0 + rows` (of `k` weights) of `w` as f32 row-major, with zero rows up to a
/// whole number of `MR`-row tiles, so that every tile of the f32 path can read them in place
/// (`Rows::in_place`).
///
/// Why: the f32 path unpacked every weight of every convolution on every run (and each row block
/// of [`gemm`] once per column task), 16% of ResNet18's f32 time on AVX-512. The executor keeps
/// this copy once the f32 path has run (4 bytes a weight, what an f32 runtime holds anyway) and
/// drops it when the integer path is chosen.
pub fn unpacked_rows(w: &Rows, row0: usize, rows: usize, k: usize) -> Buf<f32> {
    let mut data = Buf::zeroed(rows.div_ceil(MR) * MR * k);
    if k > 0 {
        data.par_chunks_mut(k)
            .take(rows)
            .enumerate()
            .for_each(|(r, row)| w.load(row0 + r, 0, row));
    }
    data
}

/// Weight rows as whole tiles ([`Rows::tiles`]): where they are, or unpacked into a buffer that
/// starts on a cache line.
pub(super) enum RowTiles<'a> {
    InPlace(&'a [f32]),
    Unpacked(Buf<f32>),
}

impl std::ops::Deref for RowTiles<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            RowTiles::InPlace(a) => a,
            RowTiles::Unpacked(b) => b,
        }
    }
}

/// What happens to a row's sums: `relu(sum * scale + bias + residual)`, then `gelu` of that when
/// `gelu` is set; every slice is indexed by the output row (relative to the call), `residual`
/// like `out`.
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    pub scale: Option<&'a [f32]>,
    pub bias: Option<&'a [f32]>,
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
    /// The exact GELU ([`super::vmath::gelu`]) on each finished row while it is still in cache:
    /// how a transformer MLP's first Linear absorbs the GELU after it (the plan sets it on
    /// Linear steps only), saving a pass and a copy of the block's largest tensor.
    pub gelu: bool,
}

/// The right-hand matrix `[k][n]`, packed in panels of `NR` columns: `data[(j * k + i) * NR + c]`
/// is `B[i][j * NR + c]`. Columns past `n` in the last panel hold anything finite or not; they
/// only reach outputs that are discarded.
pub struct PanelB {
    pub data: Buf<f32>,
    pub k: usize,
    pub n: usize,
}

impl PanelB {
    pub fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }
}

/// `out` (`rows x b.n`, row-major) = epilogue(`W[row0 .. row0 + rows] * B`), parallel over
/// rectangles of rows and panels.
///
/// Why rectangles: with row blocks alone, a layer of few rows (ResNet18's first stage: 64) made
/// eight tasks of 12 rows at two threads, and each task streamed the whole of `B` (7 MB there)
/// for two tiles per panel: the GEMM ran at the memory's pace (about half of `torch.mm` on
/// AVX-512). A task now takes a block of rows and a range of panels (`Split`), so `B` is
/// read about once per row block and each panel serves many tiles from L1.
pub fn gemm(w: &Rows, row0: usize, rows: usize, b: &PanelB, out: &mut [f32], epi: Epilogue) {
    let (k, n) = (b.k, b.n);
    assert_eq!(out.len(), rows * n, "gemm output size");
    assert!(b.data.len() >= b.panels() * k * NR, "gemm B panels");
    if rows == 0 || n == 0 {
        return;
    }
    let split = Split::new(rows, b.panels());
    let base = Shared(out.as_mut_ptr());
    super::tasks::each(split.tasks(), |t| {
        let (r0, j0, j1) = split.task(t);
        let m = split.mc.min(rows - r0);
        let (c0, c1) = (j0 * NR, (j1 * NR).min(n));
        // This task's rectangle, one row segment at a time: rows `r0..r0 + m`, columns `c0..c1`.
        let seg = |r: usize| {
            // SAFETY: tasks cover disjoint rectangles of `out` (`Split`), so each segment is
            // written by this task alone; it lies inside `out` (`r0 + r < rows`, `c1 <= n`), and
            // `out` outlives the parallel loop.
            unsafe { base.slice((r0 + r) * n + c0, c1 - c0) }
        };
        let groups = m.div_ceil(MR);
        let in_place = w.in_place(row0 + r0, groups * MR);
        // Otherwise the block's rows, row-major; rows past `m` (filling the last tile) stay zero.
        let mut buf = match in_place {
            Some(_) => Buf::new(),
            None => Buf::zeroed(groups * MR * KC.min(k.max(1))),
        };
        // The last panel by dot products when it has few columns ([`thin_columns`]).
        let thin = thin_pays() && j1 > j0 && j1 == b.panels() && n - (j1 - 1) * NR <= THIN;
        let jt = if thin { j1 - 1 } else { j1 };
        let mut sums = if thin { vec![0f32; m] } else { Vec::new() };
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            // Group `g`'s rows start at `a[g * MR * lda]`.
            let (a, lda) = match in_place {
                Some(rows) => (&rows[k0..], k),
                None => {
                    for (i, row) in buf.chunks_exact_mut(kc).take(m).enumerate() {
                        w.load(row0 + r0 + i, k0, row);
                    }
                    (&buf[..], kc)
                }
            };
            if pairs_pay() {
                let origin = base.offset(r0 * n + c0);
                pair_tiles((a, lda), m, (j0, jt), (k0, kc), b, (origin, &seg));
            } else {
                for j in j0..jt {
                    panel_tiles((a, lda), m, (j, j0), (k0, kc), b, &seg);
                }
            }
            // After the panels, which brought the block's rows into cache.
            if thin {
                thin_columns((a, lda), (jt, j0), (k0, kc), b, (&mut sums, &seg));
            }
        }
        for r in 0..m {
            let (o, row) = (r0 + r, seg(r));
            if k == 0 {
                row.fill(0.0);
            }
            let res = epi.residual.map(|res| &res[o * n + c0..o * n + c1]);
            finish_row(row, &epi, o, res);
        }
    });
}

/// How [`gemm`] (and `conv_direct`) share a product out: `row_tasks` blocks of `mc` rows by
/// `col_tasks` ranges of panels, about four tasks per thread, split along the cheaper side.
///
/// Why that split: every column range reads all of its rows' weights and every row block all of
/// its columns of `B`, so `r` row blocks by `c` column ranges read `rows * c + columns * r`
/// (times `k`). ResNet18's first stage (64 rows, 3136 columns) wants column ranges alone; its
/// last (512 rows of 4608 weights, 49 columns) wants row blocks alone: split into two column
/// ranges, it read its 9.4 MB of weights twice per image, at the memory's pace. The ranges
/// differ by at most one pair of panels, so two threads get equal shares where equal chunks
/// left one of them a chunk behind (ResNet18's second stage: 7 chunks).
pub(super) struct Split {
    /// Rows per row block (a whole number of tiles).
    pub mc: usize,
    row_tasks: usize,
    col_tasks: usize,
    /// Panels per unit of the column ranges: 2 where the GEMM walks pairs of panels.
    unit: usize,
    panels: usize,
}

impl Split {
    pub fn new(rows: usize, panels: usize) -> Self {
        let tasks = 4 * rayon::current_num_threads().max(1);
        let unit = if pairs_pay() { 2 } else { 1 };
        let units = panels.div_ceil(unit).max(1);
        let cols = |r: usize| tasks.div_ceil(r).min(units);
        let cost = |r: usize| rows * cols(r) + panels * NR * r;
        // Enough tasks for the threads, where the product has them.
        let most = rows.div_ceil(MR).max(1);
        let enough = tasks.min(most * units);
        let row_tasks = (1..=most)
            .filter(|&r| r * cols(r) >= enough)
            .min_by_key(|&r| cost(r))
            .unwrap_or(most);
        let mc = rows.div_ceil(row_tasks).div_ceil(MR) * MR;
        let row_tasks = rows.div_ceil(mc).max(1);
        let col_tasks = tasks.div_ceil(row_tasks).min(units);
        Split {
            mc,
            row_tasks,
            col_tasks,
            unit,
            panels,
        }
    }

    pub fn tasks(&self) -> usize {
        self.row_tasks * self.col_tasks
    }

    /// Task `t`'s first row and panels `j0..j1`.
    pub fn task(&self, t: usize) -> (usize, usize, usize) {
        let (r, c) = (t / self.col_tasks, t % self.col_tasks);
        let units = self.panels.div_ceil(self.unit);
        let at = |c: usize| (c * units / self.col_tasks * self.unit).min(self.panels);
        (r * self.mc, at(c), at(c + 1))
    }
}

/// `dst = src` on the first `KC` block, `dst += src` on the others.
#[inline]
pub(super) fn add_or_set(dst: &mut [f32], src: &[f32], first: bool) {
    let src = &src[..dst.len()];
    if first {
        dst.copy_from_slice(src);
    } else {
        dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
    }
}

/// One `KC` block of a [`gemm`] task over pairs of panels ([`tile_pair`]): rows `a` (`m` rows
/// of `kc`, `lda` apart, in `MR` groups) against rows `k0..k0 + kc` of panels `j0..j1`, added
/// into the task's row segments `seg(r)` (column 0 = panel `j0`; set on the first block), whose
/// first starts at `origin`, the rows `b.n` apart.
///
/// Whole pairs go from the registers straight into the rows, `2 MR` of them per call
/// ([`tile_pair_to`]); an accumulator block and a pass adding it into the rows (the rest) cost
/// the layer shapes of the benchmark 5-10% (stop 50).
fn pair_tiles<'s>(
    (a, lda): (&[f32], usize),
    m: usize,
    (j0, j1): (usize, usize),
    (k0, kc): (usize, usize),
    b: &PanelB,
    (origin, seg): (Shared<f32>, &impl Fn(usize) -> &'s mut [f32]),
) {
    let (k, n) = (b.k, b.n);
    let mut acc = [0f32; MR * 2 * NR];
    for j in (j0..j1).step_by(2) {
        if j + 1 == j1 {
            // A lone last panel: the one-panel kernel, not a pair computing it twice (ResNet18's
            // layer3 shape, 13 panels: a seventh of the work was that).
            panel_tiles((a, lda), m, (j, j0), (k0, kc), b, seg);
            continue;
        }
        let panel = |j: usize| &b.data[(j * k + k0) * NR..(j * k + k0 + kc) * NR];
        let bb = (panel(j), panel(j + 1));
        if (j + 2) * NR <= n {
            let mut r = 0;
            while r < m {
                let rows = (2 * MR).min(m - r);
                let to = origin.offset(r * n + (j - j0) * NR).0;
                // SAFETY: rows `r..r + rows` of the task's rectangle, columns `(j - j0) NR` to
                // `(j - j0 + 2) NR` of its segments: inside its columns (`(j + 2) NR <= n` and
                // `j + 1 < j1`) and its rows (`r + rows <= m`); tasks own disjoint rectangles.
                // `a` holds whole `MR`-row groups up to `m`, so the block's rows are there.
                unsafe { tile_pair_to(kc, &a[r * lda..], lda, bb, (to, n, rows, k0 > 0)) };
                r += rows;
            }
            continue;
        }
        // A ragged last pair: its sums through an accumulator, the columns past `n` dropped.
        for g in 0..m.div_ceil(MR) {
            tile_pair(kc, &a[g * MR * lda..], lda, bb, &mut acc);
            for r in 0..MR.min(m - g * MR) {
                let row = seg(g * MR + r);
                for h in 0..2 {
                    let p0 = (j + h - j0) * NR;
                    let np = NR.min(n - (j + h) * NR);
                    add_or_set(&mut row[p0..p0 + np], &acc[r * 2 * NR + h * NR..], k0 == 0);
                }
            }
        }
    }
}

/// One `KC` block of a [`gemm`] task against panel `j` alone ([`tile`], `MR` rows at a time):
/// rows `a` as in [`pair_tiles`], added into the task's row segments `seg(r)` (column 0 = panel
/// `j0`; set on the first block).
fn panel_tiles<'s>(
    (a, lda): (&[f32], usize),
    m: usize,
    (j, j0): (usize, usize),
    (k0, kc): (usize, usize),
    b: &PanelB,
    seg: &impl Fn(usize) -> &'s mut [f32],
) {
    let (k, n) = (b.k, b.n);
    let bb = &b.data[(j * k + k0) * NR..(j * k + k0 + kc) * NR];
    let (p0, np) = ((j - j0) * NR, NR.min(n - j * NR));
    let mut acc = [0f32; MR * NR];
    for g in 0..m.div_ceil(MR) {
        tile(kc, &a[g * MR * lda..], lda, bb, &mut acc);
        for r in 0..MR.min(m - g * MR) {
            add_or_set(&mut seg(g * MR + r)[p0..p0 + np], &acc[r * NR..], k0 == 0);
        }
    }
}

/// Columns of a last panel that [`gemm`] sums by dot products ([`thin_columns`]) instead of
/// the micro-kernel, where that pays ([`thin_pays`]): at most this many.
///
/// Why: the kernel computes a whole `NR`-column panel whatever the columns it holds, so a last
/// panel of one column cost as much as a full one. ResNet18's last stage (49 pixels: three
/// panels and one column) then ran at 77% of the kernel's rate at best, on the AVX2 path 76% of
/// `torch.mm` (the Xeon of stop 61). A column by dot products reads the task's weight rows once
/// more, from L2, which cost a quarter to a third of a panel there: 512 x 4608 x 49 on two
/// threads took 1.59 ms with it, against 1.94 for the 64 columns the kernel computed without it
/// (48 columns: 1.41-1.47, 52: 1.85-1.89).
const THIN: usize = 4;

/// Whether [`THIN`] last panels go by dot products: on the AVX2 path. On AVX-512F the GEMM
/// walks pairs of panels, and a pair's second panel costs little beside its first (both read the
/// same broadcast weights, whose loads bound the kernel), less than another pass over the
/// weights: with it, 512 x 4608 x 49 took 0.96-1.18 ms, more than 64 columns without it,
/// 0.92-0.95 (stop 61).
fn thin_pays() -> bool {
    super::kernel::path() == super::kernel::KernelPath::Avx2Fma
}

/// One `KC` block of the last panel `j` of a [`gemm`] task, of at most [`THIN`] columns, by dot
/// products: each column of `B` gathered into a vector, the task's `sums.len()` rows of `a` (as
/// in [`pair_tiles`]) dotted with it ([`dot_rows`]) into `sums`, then added into the task's row
/// segments `seg(r)` (column 0 = panel `j0`; set on the first block).
fn thin_columns<'s>(
    (a, lda): (&[f32], usize),
    (j, j0): (usize, usize),
    (k0, kc): (usize, usize),
    b: &PanelB,
    (sums, seg): (&mut [f32], &impl Fn(usize) -> &'s mut [f32]),
) {
    let (k, n) = (b.k, b.n);
    let p0 = (j - j0) * NR;
    let mut x = [0f32; KC];
    let panel = &b.data[(j * k + k0) * NR..(j * k + k0 + kc) * NR];
    for c in 0..n - j * NR {
        for (v, step) in x.iter_mut().zip(panel.chunks_exact(NR)) {
            *v = step[c];
        }
        dot_rows((a, lda), &x[..kc], sums);
        for (r, &s) in sums.iter().enumerate() {
            let v = &mut seg(r)[p0 + c];
            *v = if k0 == 0 { s } else { *v + s };
        }
    }
}

/// `out[o] = epilogue(W[row0 + o] . x)` for a single input vector (a Linear layer on one image).
pub fn gemv(w: &Rows, row0: usize, x: &[f32], out: &mut [f32], epi: Epilogue) {
    let path = super::kernel::path();
    out.par_chunks_mut(64).enumerate().for_each(|(t, chunk)| {
        // SAFETY: `path` only returns a path this CPU has.
        unsafe { gemv_chunk_on(path, w, row0 + t * 64, x, chunk, &epi, t * 64) }
    });
}

/// [`gemv_chunk`] compiled for the vector width of `path`: on x86-64's baseline (SSE2) the
/// conversion of i8 codes and the eight-lane dot product took 0.22 ms of ResNet50's integer
/// path for its 2048 x 1000 head. The same operations in the same order (no FMA), so the same
/// sums.
///
/// # Safety
/// The CPU must have `path` ([`super::kernel::KernelPath::available`]).
unsafe fn gemv_chunk_on(
    path: super::kernel::KernelPath,
    w: &Rows,
    row0: usize,
    x: &[f32],
    out: &mut [f32],
    epi: &Epilogue,
    o0: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(w: &Rows, row0: usize, x: &[f32], out: &mut [f32], epi: &Epilogue, o0: usize) {
            gemv_chunk(w, row0, x, out, epi, o0)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(w: &Rows, row0: usize, x: &[f32], out: &mut [f32], epi: &Epilogue, o0: usize) {
            gemv_chunk(w, row0, x, out, epi, o0)
        }
        use super::kernel::KernelPath;
        match (path, w) {
            (KernelPath::Avx512F, Rows::I8 { data, cols }) => {
                // SAFETY: as below.
                return unsafe {
                    super::gemv_i8::gemv_i8_avx512(data, *cols, row0, x, out, epi, o0)
                };
            }
            (KernelPath::Avx512F, _) => {
                // SAFETY: the caller guarantees the CPU has the path's features.
                return unsafe { avx512(w, row0, x, out, epi, o0) };
            }
            (KernelPath::Avx2Fma, Rows::I8 { data, cols }) => {
                // SAFETY: as above.
                return unsafe { super::gemv_i8::gemv_i8_avx2(data, *cols, row0, x, out, epi, o0) };
            }
            (KernelPath::Avx2Fma, _) => {
                // SAFETY: as above.
                return unsafe { avx2(w, row0, x, out, epi, o0) };
            }
            _ => {}
        }
    }
    let _ = path;
    gemv_chunk(w, row0, x, out, epi, o0)
}

/// `out[i] = epilogue(W[row0 + i] . x)` for the rows of one task (`o0`: the first one's output
/// index, for the epilogue's per-row scale and bias), four rows at a time: each row's dot
/// product is one chain of eight-lane additions ([`dot`]), so a row alone waits on the adds'
/// latency; four rows' chains interleave.
#[inline(always)]
fn gemv_chunk(w: &Rows, row0: usize, x: &[f32], out: &mut [f32], epi: &Epilogue, o0: usize) {
    const ROWS: usize = 4;
    let k = x.len();
    let mut buf = [[0f32; KC]; ROWS];
    for (g, outs) in out.chunks_mut(ROWS).enumerate() {
        let mut sums = [0f32; ROWS];
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            for (i, row) in buf.iter_mut().enumerate().take(outs.len()) {
                w.load(row0 + g * ROWS + i, k0, &mut row[..kc]);
            }
            let xs = &x[k0..k0 + kc];
            if outs.len() == ROWS {
                let d = dot4(
                    [&buf[0][..kc], &buf[1][..kc], &buf[2][..kc], &buf[3][..kc]],
                    xs,
                );
                for (s, d) in sums.iter_mut().zip(d) {
                    *s += d;
                }
            } else {
                for (s, row) in sums.iter_mut().zip(&buf).take(outs.len()) {
                    *s += dot(&row[..kc], xs);
                }
            }
        }
        finish_sums(outs, &sums, epi, o0 + g * ROWS);
    }
}

/// `outs[i] = epilogue(sums[i])` for outputs `first..` (their scale, bias and residual): the
/// end of every GEMV row, here and in `gemv_i8`.
#[inline]
pub(super) fn finish_sums(outs: &mut [f32], sums: &[f32], epi: &Epilogue, first: usize) {
    for (i, (o, &sum)) in outs.iter_mut().zip(sums).enumerate() {
        let mut v = [sum];
        let r = first + i;
        let res = epi.residual.map(|rs| &rs[r..r + 1]);
        finish_row(&mut v, epi, r, res);
        *o = v[0];
    }
}

/// [`dot`] of four rows with one `b`, their chains interleaved: each result is exactly what
/// [`dot`] gives for its row (the same operations in the same order).
#[inline(always)]
fn dot4(a: [&[f32]; 4], b: &[f32]) -> [f32; 4] {
    let n = b.len() / 8 * 8;
    let mut acc = [[0f32; 8]; 4];
    for j in (0..n).step_by(8) {
        let y = &b[j..j + 8];
        for (acc, a) in acc.iter_mut().zip(&a) {
            let x = &a[j..j + 8];
            for i in 0..8 {
                acc[i] += x[i] * y[i];
            }
        }
    }
    std::array::from_fn(|r| {
        let tail: f32 = a[r][n..].iter().zip(&b[n..]).map(|(x, y)| x * y).sum();
        acc[r].iter().sum::<f32>() + tail
    })
}

/// Eight partial sums, so the compiler can vectorise the reduction.
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::super::int8_gemm::tests::{lcg, weights};
    use super::*;

    /// A thin last panel's columns ([`thin_columns`], whatever the CPU's path: the GEMM takes
    /// it on AVX2 alone) over two K blocks: set by the first, added by the second, the other
    /// columns of the rows untouched.
    #[test]
    fn thin_columns_sum_a_last_panel() {
        let (m, k, n) = (7, KC + 40, 2 * NR + 3);
        let mut next = lcg(9);
        let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
        let bmat: Vec<f32> = (0..k * n).map(|_| next()).collect();
        let mut data = Buf::filled(n.div_ceil(NR) * k * NR, f32::NAN);
        for i in 0..k {
            for p in 0..n {
                data[((p / NR) * k + i) * NR + p % NR] = bmat[i * n + p];
            }
        }
        let b = PanelB { data, k, n };
        let mut out = vec![f32::NAN; m * n];
        let base = Shared(out.as_mut_ptr());
        // SAFETY: row `r < m` of `out`, one caller at a time.
        let seg = |r: usize| unsafe { base.slice(r * n, n) };
        let mut sums = vec![0f32; m];
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            thin_columns((&a[k0..], k), (2, 0), (k0, kc), &b, (&mut sums, &seg));
        }
        for r in 0..m {
            for p in 0..n {
                let got = out[r * n + p];
                if p < 2 * NR {
                    assert!(got.is_nan(), "row {r} column {p} written");
                    continue;
                }
                let want: f32 = (0..k).map(|i| a[r * k + i] * bmat[i * n + p]).sum();
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "row {r} column {p}"
                );
            }
        }
    }

    /// The GEMV over rows unpacked once to i8 codes gives exactly the GEMV over the packed rows
    /// (2- to 8-bit rows, `k` past one `KC` block, a bias and ReLU).
    #[test]
    fn gemv_over_i8_codes_is_the_packed_one() {
        let (rows, k) = (70, KC + 77);
        let (m, codes, bias) = weights(rows, k);
        let mut next = lcg(5);
        let x: Vec<f32> = (0..k).map(|_| next() * 2.0).collect();
        let epi = Epilogue {
            scale: Some(&m.scales),
            bias: Some(&bias),
            residual: None,
            relu: true,
            gelu: false,
        };
        let offsets = m.row_offsets();
        let (mut want, mut got) = (vec![0f32; rows], vec![0f32; rows]);
        gemv(
            &Rows::Packed {
                m: &m,
                offsets: &offsets,
            },
            0,
            &x,
            &mut want,
            epi,
        );
        let unpacked = codes_i8(&m);
        assert_eq!(unpacked, codes);
        gemv(
            &Rows::I8 {
                data: &unpacked,
                cols: k,
            },
            0,
            &x,
            &mut got,
            epi,
        );
        assert_eq!(got, want);
        // Four rows' interleaved dot products are each row's own, bit for bit.
        let rows4: Vec<Vec<f32>> = (0..4)
            .map(|r| {
                codes[r * k..(r + 1) * k]
                    .iter()
                    .map(|&q| f32::from(q))
                    .collect()
            })
            .collect();
        let d = dot4([&rows4[0], &rows4[1], &rows4[2], &rows4[3]], &x);
        for (r, row) in rows4.iter().enumerate() {
            assert_eq!(d[r].to_bits(), dot(row, &x).to_bits(), "row {r}");
        }
    }
}
