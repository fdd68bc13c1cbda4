//! x86-64 VNNI integer micro-kernels: `VPDPBUSD` on 512-bit (AVX-512 VNNI: Ice Lake, Sapphire
//! Rapids, Zen 4 and later) and 256-bit registers (AVX-VNNI, the VEX form: Alder Lake and later
//! cores without AVX-512), over the layout of `int8.rs` (`B` packed `[k / 4][NR][4]`).
//!
//! `VPDPBUSD acc, u, s` adds to each i32 lane the four products of the lane's unsigned bytes of
//! `u` by its signed bytes of `s`, wrapping (the `S` form saturates; this one does not), with no
//! i16 intermediate: unlike `VPMADDUBSW` it is exact for 8-bit codes too. Per group of 4 `k`, the
//! 16 columns of `B` are one 64-byte register (4 bytes per column, one lane each), the row's 4
//! weight codes one broadcast 32-bit lane, and the whole 6x16 tile 6 instructions (12 with
//! AVX-VNNI's two 32-byte halves per row): 384 multiply-adds in 6 instructions, against 32 per 7
//! for the exact AVX2 kernel and 64 per 7 for the 7-bit one.
//!
//! Signedness: the activations are the unsigned operand, made so by `x + 128` (`XOR 0x80`), and
//! the weights the signed one, so the sums carry `128 * sum_k a[r][k]`; the caller passes those row
//! sums (computed once per layer at load) and the kernel takes them back at the store. Sums wrap
//! modulo 2^32 on both sides, so the result equals the portable loop bit for bit for every `k`
//! that the contract allows (`MAX_K`).
//!
//! The tile loop is written once (`vnni_tile!`) over a small set of register operations, and
//! instantiated for the two hardware forms and, in tests, for a plain-Rust model of the same
//! operations on 16 and on 8 lanes: the loop's indexing is thus checked against the portable
//! kernel on every machine, including those without VNNI, and the hardware forms wherever the
//! CPU has them. The AVX-512 form has also run the runtime's tests on an emulated Tiger Lake
//! (`tools/avx512-emu`, Bochs); no emulator available here models AVX-VNNI, so its form is
//! checked through the 8-lane model only until a CPU with it runs the tests.

use super::int8::{KGROUP, MR, NR};

/// Rows of a [`block_avx512_vnni`]: two of the tile's row blocks.
pub const BLOCK_ROWS: usize = 2 * MR;
/// Columns of a [`block_avx512_vnni`]: two panels of `NR`.
pub const BLOCK_COLS: usize = 2 * NR;

/// One panel of `B` where a block reads it: group `g` (4 `k` of its `NR` columns, 64 bytes)
/// at `base + g * NR * 4` when packed, or at `base + offsets[g]` when read in place from a
/// convolution's input (`int8_gemm`'s direct panels: a stride-1 convolution's panel of one
/// output row is, for each tap and channel quad, 64 contiguous bytes of the quads).
#[derive(Clone, Copy)]
pub struct Panel {
    pub base: *const i8,
    /// Per group, its offset from `base` (null: packed).
    pub offsets: *const u32,
}

impl Panel {
    /// A packed panel (`[k / 4][NR][4]` at `base`).
    pub fn packed(base: *const i8) -> Self {
        Self {
            base,
            offsets: std::ptr::null(),
        }
    }

    /// Group `g`'s first byte.
    ///
    /// # Safety
    /// `g` must be one of the panel's groups (`offsets`, when not null, has it).
    #[inline(always)]
    pub unsafe fn group(self, g: usize) -> *const i8 {
        if self.offsets.is_null() {
            self.base.wrapping_add(g * NR * KGROUP)
        } else {
            // SAFETY: the caller's contract.
            self.base
                .wrapping_add(unsafe { *self.offsets.add(g) } as usize)
        }
    }
}

/// The loop of every VNNI kernel: `$rows` rows of `A` against the panels `$b...` (each `NR`
/// columns), over an ops module `$ops` (`V`, `LANES`, `zero`, `load_flipped`, `splat4`,
/// `dpbusd`, and what `$store` uses), in the body of an `unsafe fn` with the kernel's
/// arguments; `$store(r, h, at, v, fix)` stores row `r`'s register `h` (`at` = its offset in a
/// row-major block with `NR` columns per panel) less `fix`: as i32 (`store_sums!`) or
/// rescaled floats (`store_floats!`).
///
/// The 6x16 tile (one panel) keeps 6 accumulators in 512-bit registers, too few to hide
/// `VPDPBUSD`'s latency: on Zen 5 it was half of ResNet18's integer path (perf). The 12-row,
/// two-panel block keeps 24, with 2 loads and 12 broadcasts per 24 `VPDPBUSD`, as onnxruntime's
/// MLAS kernel does (`bench/ort_kernels.sh`).
macro_rules! vnni_loop {
    ($ops:ident, $rows:expr, [$($b:ident),+], $k:ident, $a:ident, $lda:ident, $a_sums:ident, $store:expr) => {{
        const REGS: usize = NR / $ops::LANES;
        const PANELS: usize = [$(stringify!($b)),+].len();
        // SAFETY: the caller guarantees the CPU features and the extents: group `g < k / 4`
        // reads `NR * 4` bytes at `b.group(g)` of every panel `b` and `a[r * lda + 4g..+4]`
        // for `r < rows`; the stores write `out[..rows * PANELS * NR]`.
        unsafe {
            let store = $store;
            let mut acc = [[$ops::zero(); PANELS * REGS]; $rows];
            // The next block's rows (contiguous after this block's when `lda` is their length, as
            // `int8_gemm` lays them out), one line-fraction per group: asked for while this
            // block runs, so they are in cache when it starts. A task's first column pair read
            // its rows from L3 or memory with nothing asking ahead of the 12 streams: with this,
            // ResNet50's 14x14 and 7x7 layers ran 4-8% faster in whole runs (Zen 5, stop 57).
            let ahead = $a.wrapping_add($rows * $lda);
            for g in 0..$k / KGROUP {
                $ops::prefetch(ahead.wrapping_add(g * $rows * KGROUP));
                let mut cols = [$ops::zero(); PANELS * REGS];
                for (p, b) in [$($b),+].into_iter().enumerate() {
                    let bp = b.group(g);
                    for h in 0..REGS {
                        cols[p * REGS + h] = $ops::load_flipped(bp.add(h * $ops::LANES * KGROUP));
                    }
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let w = $ops::splat4($a.add(r * $lda + g * KGROUP));
                    for (x, c) in row.iter_mut().zip(&cols) {
                        *x = $ops::dpbusd(*x, *c, w);
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                // Take back the + 128 of every activation, wrapping like the sums.
                let fix = $a_sums[r].wrapping_mul(128);
                for (h, x) in row.iter().enumerate() {
                    store(r, h, (r * PANELS * REGS + h) * $ops::LANES, *x, fix);
                }
            }
        }
    }};
}

/// [`vnni_loop!`]'s store of the sums as i32: row-major in `out` (`at` = `(r * registers per
/// row + h) * lanes`).
macro_rules! store_sums {
    ($ops:ident, $out:ident) => {{
        let o = $out.as_mut_ptr();
        move |_r: usize, _h: usize, at: usize, x: $ops::V, fix: i32| {
            $ops::store_minus(o.add(at), x, fix)
        }
    }};
}

/// [`vnni_loop!`]'s store of the sums rescaled to floats ([`BlockOut`]): row `r`'s register
/// `h` (panel `h` on 512-bit registers) to its output row, the panel's real columns only.
macro_rules! store_floats {
    ($ops:ident, $out:ident) => {{
        let out: &BlockOut = $out;
        move |r: usize, h: usize, _at: usize, x: $ops::V, fix: i32| {
            let row = out.rows[r];
            let cols = out.cols[h * $ops::LANES / NR].saturating_sub(h * $ops::LANES % NR);
            if !row.is_null() && cols > 0 {
                $ops::store_scaled(
                    row.add(h * $ops::LANES),
                    x,
                    fix,
                    out.scale,
                    cols.min($ops::LANES),
                )
            }
        }
    }};
}

/// Where [`block_avx512_vnni_f32`] writes its block: row `r` at `rows[r]` (null: not a real
/// row), the first `cols[p]` columns of panel `p` (`p * NR` floats further), each sum times
/// `scale`.
pub struct BlockOut {
    pub rows: [*mut f32; BLOCK_ROWS],
    pub cols: [usize; 2],
    pub scale: f32,
}

/// The `MR x NR` tile: [`vnni_loop!`] on one panel.
macro_rules! vnni_tile {
    ($ops:ident, $k:ident, $a:ident, $lda:ident, $a_sums:ident, $b:ident, $out:ident) => {{
        let panel = Panel::packed($b);
        vnni_loop!(
            $ops,
            MR,
            [panel],
            $k,
            $a,
            $lda,
            $a_sums,
            store_sums!($ops, $out)
        )
    }};
}

/// The [`BLOCK_ROWS`] x [`BLOCK_COLS`] block: [`vnni_loop!`] on two panels, its store
/// `$store` (`store_sums` into an i32 block, `store_floats` into output rows), made from the ops
/// module and `$out`.
macro_rules! vnni_block {
    ($ops:ident, $k:ident, $a:ident, $lda:ident, $a_sums:ident, $b0:ident, $b1:ident, $store:ident!($out:ident)) => {
        vnni_loop!(
            $ops,
            BLOCK_ROWS,
            [$b0, $b1],
            $k,
            $a,
            $lda,
            $a_sums,
            $store!($ops, $out)
        )
    };
}

/// 512-bit AVX-512 VNNI registers: one per row of the tile.
mod zmm {
    use std::arch::x86_64::*;

    pub type V = __m512i;
    pub const LANES: usize = 16;

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn zero() -> V {
        _mm512_setzero_si512()
    }

    /// 64 activation bytes, each + 128 (the unsigned operand).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn load_flipped(p: *const i8) -> V {
        // SAFETY: the caller guarantees 64 readable bytes at `p`.
        unsafe { _mm512_xor_si512(_mm512_loadu_si512(p.cast()), _mm512_set1_epi8(i8::MIN)) }
    }

    /// Asks for the line at `p` (a hint: any address).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn prefetch(p: *const i8) {
        _mm_prefetch::<_MM_HINT_T0>(p)
    }

    /// The 4 codes at `p` in every 32-bit lane.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn splat4(p: *const i8) -> V {
        // SAFETY: the caller guarantees 4 readable bytes at `p`.
        unsafe { _mm512_set1_epi32(p.cast::<i32>().read_unaligned()) }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn dpbusd(acc: V, u: V, s: V) -> V {
        _mm512_dpbusd_epi32(acc, u, s)
    }

    /// `p[..16] = v - fix` lane by lane.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn store_minus(p: *mut i32, v: V, fix: i32) {
        // SAFETY: the caller guarantees 16 writable i32 at `p`.
        unsafe { _mm512_storeu_si512(p.cast(), _mm512_sub_epi32(v, _mm512_set1_epi32(fix))) }
    }

    /// `p[..n] = (v - fix) as f32 * scale` lane by lane (`n <= 16`; the conversion rounds to
    /// nearest, as `as f32`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn store_scaled(p: *mut f32, v: V, fix: i32, scale: f32, n: usize) {
        let x = _mm512_cvtepi32_ps(_mm512_sub_epi32(v, _mm512_set1_epi32(fix)));
        let x = _mm512_mul_ps(x, _mm512_set1_ps(scale));
        // SAFETY: the caller guarantees `n` writable f32 at `p`; the others are masked off.
        unsafe { _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as u16, x) }
    }
}

/// 256-bit AVX-VNNI registers (VEX-encoded `VPDPBUSD`): two per row of the tile, 12
/// accumulators, 2 column registers and the broadcast weights in AVX2's 16.
mod ymm {
    use std::arch::x86_64::*;

    pub type V = __m256i;
    pub const LANES: usize = 8;

    #[inline]
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn zero() -> V {
        _mm256_setzero_si256()
    }

    #[inline]
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn load_flipped(p: *const i8) -> V {
        // SAFETY: the caller guarantees 32 readable bytes at `p`.
        unsafe { _mm256_xor_si256(_mm256_loadu_si256(p.cast()), _mm256_set1_epi8(i8::MIN)) }
    }

    /// Asks for the line at `p` (a hint: any address).
    #[inline]
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn prefetch(p: *const i8) {
        _mm_prefetch::<_MM_HINT_T0>(p)
    }

    #[inline]
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn splat4(p: *const i8) -> V {
        // SAFETY: the caller guarantees 4 readable bytes at `p`.
        unsafe { _mm256_set1_epi32(p.cast::<i32>().read_unaligned()) }
    }

    #[inline]
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn dpbusd(acc: V, u: V, s: V) -> V {
        _mm256_dpbusd_avx_epi32(acc, u, s)
    }

    #[inline]
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn store_minus(p: *mut i32, v: V, fix: i32) {
        // SAFETY: the caller guarantees 8 writable i32 at `p`.
        unsafe { _mm256_storeu_si256(p.cast(), _mm256_sub_epi32(v, _mm256_set1_epi32(fix))) }
    }
}

/// # Safety
/// AVX-512F, AVX-512BW and AVX-512 VNNI must be available; `a` must hold `MR` rows of `k` codes
/// `lda` apart, `b` `k * NR` codes packed `[k / 4][NR][4]`, `k` must be a multiple of 4 and
/// `a_sums[r]` the wrapping sum of row `r`'s `k` codes.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn tile_avx512_vnni(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; MR],
    b: *const i8,
    out: &mut [i32; MR * NR],
) {
    vnni_tile!(zmm, k, a, lda, a_sums, b, out)
}

/// `out[r * BLOCK_COLS + h * NR + c]` = row `r` of `a` times column `c` of panel `h` (`b0`,
/// `b1`), for `r < BLOCK_ROWS`: two tiles' rows against two panels in one pass.
///
/// # Safety
/// AVX-512F, AVX-512BW and AVX-512 VNNI must be available; `a` must hold `BLOCK_ROWS` rows of
/// `k` codes `lda` apart, `b0` and `b1` each `k * NR` codes packed `[k / 4][NR][4]`, `k` must be
/// a multiple of 4 and `a_sums[r]` the wrapping sum of row `r`'s `k` codes.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn block_avx512_vnni(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; BLOCK_ROWS],
    b0: Panel,
    b1: Panel,
    out: &mut [i32; BLOCK_ROWS * BLOCK_COLS],
) {
    vnni_block!(zmm, k, a, lda, a_sums, b0, b1, store_sums!(out))
}

/// [`block_avx512_vnni`] with the sums rescaled to floats and stored straight into the output
/// rows ([`BlockOut`]): no round trip through an i32 block and a rescale loop per row and panel
/// (that loop was 6% of ResNet50's integer path on Zen 5). The same conversion and multiply as
/// the rescale, so the same floats.
///
/// # Safety
/// As [`block_avx512_vnni`] for `a`, `a_sums`, `b0` and `b1`; every non-null `out.rows[r]`
/// must have `NR + out.cols[1]` writable floats when `out.cols[1] > 0`, else `out.cols[0]`
/// (`cols[p] <= NR`).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn block_avx512_vnni_f32(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; BLOCK_ROWS],
    b0: Panel,
    b1: Panel,
    out: &BlockOut,
) {
    vnni_block!(zmm, k, a, lda, a_sums, b0, b1, store_floats!(out))
}

/// [`block_avx512_vnni_f32`] on the first `ROWS` rows only (8 or 4: 16 or 8 accumulators), for
/// a task's last rows: with 12-row blocks alone a 64-row layer (ResNets' first stage, their
/// stems) computed 72 rows, 12% more than its own.
///
/// # Safety
/// As [`block_avx512_vnni_f32`] for the first `ROWS` rows (`a` holds `ROWS` rows,
/// `out.rows[ROWS..]` are not read); `ROWS <= BLOCK_ROWS`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn block_first_avx512_vnni_f32<const ROWS: usize>(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; BLOCK_ROWS],
    b0: Panel,
    b1: Panel,
    out: &BlockOut,
) {
    vnni_loop!(
        zmm,
        ROWS,
        [b0, b1],
        k,
        a,
        lda,
        a_sums,
        store_floats!(zmm, out)
    )
}

/// [`block_first_avx512_vnni_f32`] against one panel only (`ROWS` of 12, 8 or 4: as many
/// accumulators), for a task's last panel when its count is odd: a 14x14 map's 196 columns are
/// 13 panels, and the thirteenth went in as both panels of a block, 224 columns computed for
/// 196 (a 28x28 map's: 800 for 784). `out.cols[1]` is not read.
///
/// # Safety
/// As [`block_first_avx512_vnni_f32`] without `b1`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn block_one_avx512_vnni_f32<const ROWS: usize>(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; BLOCK_ROWS],
    b0: Panel,
    out: &BlockOut,
) {
    vnni_loop!(zmm, ROWS, [b0], k, a, lda, a_sums, store_floats!(zmm, out))
}

/// Rows of the i32 blocks that [`block_sums_avx512_vnni`] and [`block_one_sums_avx512_vnni`]
/// fill: AMX's 16, so `finish_quads` finishes both paths' blocks (`[16][32]`).
pub const SUM_ROWS: usize = 16;

/// [`vnni_loop!`]'s store of the sums as i32 into a `[SUM_ROWS][BLOCK_COLS]` block: row `r`'s
/// register `h` (panel `h`) at `r * BLOCK_COLS + h * 16`, whatever the number of panels.
macro_rules! store_block_sums {
    ($ops:ident, $out:ident) => {{
        let o = $out.as_mut_ptr();
        move |r: usize, h: usize, _at: usize, x: $ops::V, fix: i32| {
            $ops::store_minus(o.add(r * BLOCK_COLS + h * $ops::LANES), x, fix)
        }
    }};
}

/// The first `ROWS` rows (12, 8 or 4) of a block against two panels, the sums (less the
/// `+ 128`'s share, as every block) as i32 into the first `ROWS` rows of `out`: for blocks
/// finished straight into the next layer's quads (`int8_gemm`'s quads tasks), which read
/// them from there instead of a float buffer of the task's rows.
///
/// # Safety
/// As [`block_avx512_vnni`] for the first `ROWS` rows; `ROWS <= BLOCK_ROWS`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn block_sums_avx512_vnni<const ROWS: usize>(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; BLOCK_ROWS],
    b0: Panel,
    b1: Panel,
    out: &mut [i32; SUM_ROWS * BLOCK_COLS],
) {
    vnni_loop!(
        zmm,
        ROWS,
        [b0, b1],
        k,
        a,
        lda,
        a_sums,
        store_block_sums!(zmm, out)
    )
}

/// [`block_sums_avx512_vnni`] against one panel (the block's left half of `out`).
///
/// # Safety
/// As [`block_sums_avx512_vnni`] without `b1`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn block_one_sums_avx512_vnni<const ROWS: usize>(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; BLOCK_ROWS],
    b0: Panel,
    out: &mut [i32; SUM_ROWS * BLOCK_COLS],
) {
    vnni_loop!(
        zmm,
        ROWS,
        [b0],
        k,
        a,
        lda,
        a_sums,
        store_block_sums!(zmm, out)
    )
}

/// Whether the CPU runs [`block_half_avx512_vnni_f32`]: AVX-512VL besides what the other blocks
/// need (`is_x86_feature_detected!` caches its answer).
pub fn half_blocks_available() -> bool {
    std::arch::is_x86_feature_detected!("avx512vl")
}

/// [`block_one_avx512_vnni_f32`] on the first half of the panel only (its first 8 columns, in
/// 256-bit registers: `VPDPBUSD` with AVX-512VL), for a last panel of at most 8 real columns:
/// a 7x7 map's 49th column, a 14x14 map's last 4.
///
/// # Safety
/// As [`block_one_avx512_vnni_f32`], and AVX-512VL must be available; `out.cols[0] <= 8`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn block_half_avx512_vnni_f32<const ROWS: usize>(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; BLOCK_ROWS],
    b0: Panel,
    out: &BlockOut,
) {
    use std::arch::x86_64::*;
    const HALF: usize = NR / 2;
    debug_assert!(out.cols[0] <= HALF);
    let mut acc = [_mm256_setzero_si256(); ROWS];
    // SAFETY: the caller guarantees the extents: group `g < k / 4` reads the first 32 of its
    // `NR * 4` bytes at `b0.group(g)`, and `a[r * lda + 4g..+4]` for `r < ROWS`.
    unsafe {
        for g in 0..k / KGROUP {
            let cols = _mm256_xor_si256(
                _mm256_loadu_si256(b0.group(g).cast()),
                _mm256_set1_epi8(i8::MIN),
            );
            for (r, x) in acc.iter_mut().enumerate() {
                let w = a.add(r * lda + g * KGROUP).cast::<i32>().read_unaligned();
                *x = _mm256_dpbusd_epi32(*x, cols, _mm256_set1_epi32(w));
            }
        }
        let n = out.cols[0].min(HALF);
        let mask = ((1u32 << n) - 1) as __mmask8;
        for (r, x) in acc.iter().enumerate() {
            let row = out.rows[r];
            if row.is_null() || n == 0 {
                continue;
            }
            // Take back the + 128 of every activation, wrapping like the sums.
            let fix = _mm256_set1_epi32(a_sums[r].wrapping_mul(128));
            let v = _mm256_cvtepi32_ps(_mm256_sub_epi32(*x, fix));
            let v = _mm256_mul_ps(v, _mm256_set1_ps(out.scale));
            // SAFETY: the caller guarantees `cols[0]` writable floats at a non-null row.
            _mm256_mask_storeu_ps(row, mask, v);
        }
    }
}

/// The most real columns of a last panel that [`block_narrow_avx512_vnni_f32`] takes.
pub const NARROW_COLS: usize = 4;

/// The first `ROWS` rows of a block against `M` (at most [`NARROW_COLS`]) columns alone, `k`
/// along the lanes: each 64-byte run of a row's codes times the same run of each column,
/// summed across the lanes at the end. For a map's last panel of 1 to 4 real columns (a 7x7
/// map's 49th, a 14x14 map's last 4), which the half-panel blocks computed 8 columns wide, one
/// `VPDPBUSD` per row and group of 4 `k`: here it is one per row and 64 `k` per column, 4 to
/// 16 times fewer (on Zen 4 those half blocks were 3.7% of ResNet18's integer path).
///
/// `cols` holds column `c`'s `k` codes at `c * k`, each `+ 128` (`XOR 0x80`: the unsigned
/// operand, as the panels' bytes become in the other blocks); the sums are taken back by the
/// rows' sums as there, so they are the same, bit for bit.
///
/// # Safety
/// AVX-512F, AVX-512BW and AVX-512 VNNI must be available; `a` must hold `ROWS` rows of `k`
/// codes `lda` apart, `cols` `M * k` bytes; `k` a multiple of 4, `a_sums[r]` the wrapping sum
/// of row `r`'s codes; every non-null `out.rows[r]`, `r < ROWS`, must have `out.cols[0] <= M`
/// writable floats; `ROWS` a multiple of 4.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn block_narrow_avx512_vnni_f32<const ROWS: usize, const M: usize>(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; BLOCK_ROWS],
    cols: *const u8,
    out: &BlockOut,
) {
    debug_assert!(out.cols[0] <= M);
    let n = out.cols[0].min(M);
    // SAFETY: the caller's contract.
    unsafe {
        narrow_loop::<ROWS, M>(k, a, lda, a_sums, cols, |r, c, sum| {
            let row = out.rows[r];
            if !row.is_null() && c < n {
                // SAFETY: the caller guarantees `cols[0]` writable floats at a non-null row.
                *row.add(c) = sum as f32 * out.scale;
            }
        })
    }
}

/// [`block_narrow_avx512_vnni_f32`]'s sums as i32, row `r`'s column `c` at
/// `r * BLOCK_COLS + c0 + c` of `out` (`c0` 0 or 16: the block's left or right half): for the
/// narrow last panel of a task whose blocks go straight into the next layer's quads
/// (`int8_gemm`'s quads tasks), as [`block_sums_avx512_vnni`] for whole panels.
///
/// # Safety
/// As [`block_narrow_avx512_vnni_f32`] (without `out`'s rows); `c0 + M <= BLOCK_COLS`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn block_narrow_sums_avx512_vnni<const ROWS: usize, const M: usize>(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; BLOCK_ROWS],
    cols: *const u8,
    out: &mut [i32; SUM_ROWS * BLOCK_COLS],
    c0: usize,
) {
    assert!(
        c0 + M <= BLOCK_COLS && ROWS <= SUM_ROWS,
        "narrow sums: the block"
    );
    // SAFETY: the caller's contract.
    unsafe {
        narrow_loop::<ROWS, M>(k, a, lda, a_sums, cols, |r, c, sum| {
            out[r * BLOCK_COLS + c0 + c] = sum;
        })
    }
}

/// The loop of the narrow blocks: `store(r, c, sum)` for each of the `ROWS x M` sums, the
/// `+ 128`'s share taken back.
///
/// # Safety
/// As [`block_narrow_avx512_vnni_f32`].
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn narrow_loop<const ROWS: usize, const M: usize>(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; BLOCK_ROWS],
    cols: *const u8,
    mut store: impl FnMut(usize, usize, i32),
) {
    use std::arch::x86_64::*;
    const GROUP: usize = 4;
    const RUN: usize = 64;
    debug_assert!(M <= NARROW_COLS && ROWS.is_multiple_of(GROUP));
    let (runs, rest) = (k / RUN, k % RUN);
    // Loads the bytes `at..at + n` of a run (`n <= 64`), zeros past them.
    let load = |p: *const u8, n: usize| {
        if n == RUN {
            // SAFETY: the caller guarantees the run's bytes.
            unsafe { _mm512_loadu_si512(p.cast()) }
        } else {
            // SAFETY: as above for the first `n`; the others are masked off, not read.
            unsafe { _mm512_maskz_loadu_epi8((1u64 << n) - 1, p.cast()) }
        }
    };
    // Four rows at a time: 4 x M independent sums hide `VPDPBUSD`'s latency.
    for r0 in (0..ROWS).step_by(GROUP) {
        let mut acc = [[_mm512_setzero_si512(); M]; GROUP];
        let mut step = |at: usize, n: usize| {
            let w: [__m512i; GROUP] =
                std::array::from_fn(|i| load(a.wrapping_add((r0 + i) * lda + at).cast(), n));
            for c in 0..M {
                // Past the row's `n` bytes the codes are zero, so whatever the column holds
                // adds nothing.
                let x = load(cols.wrapping_add(c * k + at), n);
                for (i, row) in acc.iter_mut().enumerate() {
                    row[c] = _mm512_dpbusd_epi32(row[c], x, w[i]);
                }
            }
        };
        for run in 0..runs {
            step(run * RUN, RUN);
        }
        if rest > 0 {
            step(runs * RUN, rest);
        }
        for (i, row_acc) in acc.iter().enumerate() {
            // Take back the + 128 of every activation, wrapping like the sums.
            let fix = a_sums[r0 + i].wrapping_mul(128);
            for (c, x) in row_acc.iter().enumerate() {
                store(r0 + i, c, _mm512_reduce_add_epi32(*x).wrapping_sub(fix));
            }
        }
    }
}

/// The `M` of [`block_narrow_avx512_vnni_f32`] for `m` real columns: 1, 2 or 4.
pub fn narrow_width(m: usize) -> usize {
    match m {
        0 | 1 => 1,
        2 => 2,
        _ => NARROW_COLS,
    }
}

/// Column `c < narrow_width(m)` of a packed panel (`k` codes, `[k / 4][NR][4]`) into
/// `cols[c * k..]`, each byte `+ 128` ([`block_narrow_avx512_vnni_f32`]'s operand): the `m`
/// real ones, and up to 4 with the panel's padding columns (their sums are not stored).
pub fn narrow_columns(panel: &[i8], k: usize, m: usize, cols: &mut Vec<u8>) {
    assert!(
        m <= NARROW_COLS && panel.len() >= k * NR && k.is_multiple_of(KGROUP),
        "narrow_columns: extents"
    );
    let m = narrow_width(m);
    cols.resize(m * k, 0);
    for (c, col) in cols.chunks_exact_mut(k.max(1)).enumerate().take(m) {
        for (g, four) in col.chunks_exact_mut(KGROUP).enumerate() {
            let from = &panel[g * NR * KGROUP + c * KGROUP..][..KGROUP];
            for (d, &v) in four.iter_mut().zip(from) {
                *d = v as u8 ^ 0x80;
            }
        }
    }
}

/// How many rows the next block of a task takes when `left` remain: 12 as long as the rest
/// ends in 8 or 12, else 8 (rows past the layer are padding, computed and not stored); 4 only
/// for a last 1 to 4. An 8-row block runs as fast per multiply-add as a 12-row one, a 4-row one
/// at 80% (Zen 5, k = 576). 64 rows: the first task's 48 in four 12-row blocks, then 8 and 8.
pub fn block_rows(left: usize) -> usize {
    match left {
        0..=4 => 4,
        5..=8 => 8,
        9..=BLOCK_ROWS => BLOCK_ROWS,
        _ if (1..=4).contains(&(left % BLOCK_ROWS)) => 8,
        _ => BLOCK_ROWS,
    }
}

/// [`block_avx512_vnni_f32`]'s loop over the plain-Rust model, tests only.
///
/// # Safety
/// As [`block_avx512_vnni_f32`], without the CPU features.
#[cfg(test)]
pub unsafe fn block_model_f32(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; BLOCK_ROWS],
    b0: Panel,
    b1: Panel,
    out: &BlockOut,
) {
    vnni_block!(model16, k, a, lda, a_sums, b0, b1, store_floats!(out))
}

/// [`block_one_avx512_vnni_f32`]'s loop over the plain-Rust model, tests only.
///
/// # Safety
/// As [`block_one_avx512_vnni_f32`], without the CPU features.
#[cfg(test)]
pub unsafe fn block_one_model_f32<const ROWS: usize>(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; BLOCK_ROWS],
    b0: Panel,
    out: &BlockOut,
) {
    vnni_loop!(
        model16,
        ROWS,
        [b0],
        k,
        a,
        lda,
        a_sums,
        store_floats!(model16, out)
    )
}

/// # Safety
/// AVX2 and AVX-VNNI must be available; otherwise as [`tile_avx512_vnni`].
#[target_feature(enable = "avx2,avxvnni")]
pub unsafe fn tile_avx_vnni(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; MR],
    b: *const i8,
    out: &mut [i32; MR * NR],
) {
    vnni_tile!(ymm, k, a, lda, a_sums, b, out)
}

/// [`vnni_tile!`] over the plain-Rust model of 512-bit registers (one per tile row, as
/// [`tile_avx512_vnni`]) and of 256-bit ones (two per row, as [`tile_avx_vnni`]), tests only.
///
/// # Safety
/// As [`tile_avx512_vnni`], without the CPU features.
#[cfg(test)]
pub unsafe fn tile_model(
    lanes: usize,
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; MR],
    b: *const i8,
    out: &mut [i32; MR * NR],
) {
    match lanes {
        16 => vnni_tile!(model16, k, a, lda, a_sums, b, out),
        8 => vnni_tile!(model8, k, a, lda, a_sums, b, out),
        _ => panic!("registers of 8 or 16 lanes"),
    }
}

/// [`vnni_block!`] over the plain-Rust model of 512-bit registers, tests only.
///
/// # Safety
/// As [`block_avx512_vnni`], without the CPU features.
#[cfg(test)]
pub unsafe fn block_model(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; BLOCK_ROWS],
    b0: Panel,
    b1: Panel,
    out: &mut [i32; BLOCK_ROWS * BLOCK_COLS],
) {
    vnni_block!(model16, k, a, lda, a_sums, b0, b1, store_sums!(out))
}

/// A plain-Rust model of the register operations on `$n` lanes, lane for lane as Intel's
/// pseudocode defines them, so [`vnni_tile!`]'s loop runs (and is tested) on any CPU.
#[cfg(test)]
macro_rules! model_ops {
    ($name:ident, $n:literal) => {
        mod $name {
            /// `$n` lanes of 4 bytes, like a zmm (16) or ymm (8) register.
            pub type V = [[u8; 4]; $n];
            pub const LANES: usize = $n;

            pub unsafe fn zero() -> V {
                [[0; 4]; $n]
            }

            pub unsafe fn load_flipped(p: *const i8) -> V {
                let mut v: V = [[0; 4]; $n];
                for (l, lane) in v.iter_mut().enumerate() {
                    for (j, byte) in lane.iter_mut().enumerate() {
                        // SAFETY: the kernel's caller guarantees `4 * $n` readable bytes at `p`.
                        *byte = unsafe { *p.add(l * 4 + j) } as u8 ^ 0x80;
                    }
                }
                v
            }

            pub unsafe fn prefetch(_: *const i8) {}

            pub unsafe fn splat4(p: *const i8) -> V {
                // SAFETY: the kernel's caller guarantees 4 readable bytes at `p`.
                let w: [u8; 4] = std::array::from_fn(|j| unsafe { *p.add(j) } as u8);
                [w; $n]
            }

            pub unsafe fn dpbusd(acc: V, u: V, s: V) -> V {
                std::array::from_fn(|l| {
                    let dot = (0..4).fold(i32::from_le_bytes(acc[l]), |sum, j| {
                        sum.wrapping_add(i32::from(u[l][j]) * i32::from(s[l][j] as i8))
                    });
                    dot.to_le_bytes()
                })
            }

            pub unsafe fn store_minus(p: *mut i32, v: V, fix: i32) {
                for (l, lane) in v.iter().enumerate() {
                    // SAFETY: the kernel's caller guarantees `$n` writable i32 at `p`.
                    unsafe { *p.add(l) = i32::from_le_bytes(*lane).wrapping_sub(fix) };
                }
            }

            // Only the 16-lane model has a float-storing block.
            #[allow(dead_code)]
            pub unsafe fn store_scaled(p: *mut f32, v: V, fix: i32, scale: f32, n: usize) {
                for (l, lane) in v.iter().enumerate().take(n) {
                    let s = i32::from_le_bytes(*lane).wrapping_sub(fix);
                    // SAFETY: the kernel's caller guarantees `n` writable f32 at `p`.
                    unsafe { *p.add(l) = s as f32 * scale };
                }
            }
        }
    };
}

#[cfg(test)]
model_ops!(model16, 16);
#[cfg(test)]
model_ops!(model8, 8);

#[cfg(test)]
mod tests {
    use super::super::int8::{pack_b, row_sum, tile_portable, Int8Path};
    use super::*;

    /// A block is the portable tiles of its two row blocks against its two panels, bit for
    /// bit, through the 16-lane model on every x86 CPU and the AVX-512 VNNI form where the CPU
    /// has it (said in the log where not); first rows at -128 for the largest sums.
    /// A task's rows (1 to 48) in blocks: fewer than 4 rows of padding computed, no more than
    /// one 4-row block, and only last.
    #[test]
    fn blocks_cover_a_task_with_little_padding() {
        for rows in 1..=48 {
            let mut blocks = Vec::new();
            let mut done = 0;
            while done < rows {
                blocks.push(block_rows(rows - done));
                done += blocks.last().unwrap();
            }
            assert!(done - rows < 4, "{rows} rows: {blocks:?}");
            let fours = blocks.iter().filter(|&&b| b == 4).count();
            assert!(
                fours == 0 || (fours == 1 && blocks.last() == Some(&4)),
                "{rows}: {blocks:?}"
            );
        }
        assert_eq!(block_rows(16), 8);
    }

    #[test]
    fn a_block_is_the_portable_tiles() {
        let hardware = Int8Path::Avx512Vnni.available();
        if !hardware {
            eprintln!("int8_vnni: no AVX-512 VNNI here: the block checked through its model only");
        }
        let mut next = super::super::int8::tests::lcg(5);
        for k in [0usize, 4, 8, 64, 68, 576, 1000] {
            let lda = k + 8;
            let mut a: Vec<i8> = (0..BLOCK_ROWS * lda).map(|_| next()).collect();
            a[..k].fill(-128);
            let sums: [i32; BLOCK_ROWS] = std::array::from_fn(|r| row_sum(&a[r * lda..][..k]));
            let cols: Vec<Vec<i8>> = (0..2)
                .map(|_| (0..k * NR).map(|_| next()).collect())
                .collect();
            let (b0, b1) = (pack_b(k, &cols[0]), pack_b(k, &cols[1]));
            type Block = unsafe fn(
                usize,
                *const i8,
                usize,
                &[i32; BLOCK_ROWS],
                Panel,
                Panel,
                &mut [i32; BLOCK_ROWS * BLOCK_COLS],
            );
            let mut kernels: Vec<(&str, Block)> = vec![("model", block_model)];
            if hardware {
                kernels.push(("avx512-vnni", block_avx512_vnni));
            }
            let mut runs = Vec::new();
            for (name, kernel) in kernels {
                let mut got = [i32::MIN; BLOCK_ROWS * BLOCK_COLS];
                // SAFETY: the model needs no CPU feature, the hardware form is only listed
                // where the CPU has it; `a` has BLOCK_ROWS rows of `k` codes `lda` apart, each
                // panel `k * NR` codes, `k` a multiple of 4.
                unsafe {
                    kernel(
                        k,
                        a.as_ptr(),
                        lda,
                        &sums,
                        Panel::packed(b0.as_ptr()),
                        Panel::packed(b1.as_ptr()),
                        &mut got,
                    )
                };
                runs.push((name, got));
            }
            for (name, got) in runs {
                for (h, b) in [&b0, &b1].into_iter().enumerate() {
                    for r0 in (0..BLOCK_ROWS).step_by(MR) {
                        let mut want = [0i32; MR * NR];
                        tile_portable(k, &a[r0 * lda..], lda, b, &mut want);
                        for r in 0..MR {
                            assert_eq!(
                                &got[(r0 + r) * BLOCK_COLS + h * NR..][..NR],
                                &want[r * NR..][..NR],
                                "{name}: k {k}, row {}, panel {h}",
                                r0 + r
                            );
                        }
                    }
                }
            }
        }
    }

    /// A block's operands from seed `seed` (`k` codes per row): `(k, A, its row sums, the two
    /// packed panels, the block's i32 sums through the model)`.
    #[allow(clippy::type_complexity)]
    fn random_block(
        seed: u64,
        k: usize,
    ) -> (
        usize,
        Vec<i8>,
        [i32; BLOCK_ROWS],
        Vec<Vec<i8>>,
        [i32; BLOCK_ROWS * BLOCK_COLS],
    ) {
        let mut next = super::super::int8::tests::lcg(seed);
        let a: Vec<i8> = (0..BLOCK_ROWS * k).map(|_| next()).collect();
        let sums: [i32; BLOCK_ROWS] = std::array::from_fn(|r| row_sum(&a[r * k..][..k]));
        let b: Vec<Vec<i8>> = (0..2)
            .map(|_| pack_b(k, &(0..k * NR).map(|_| next()).collect::<Vec<_>>()))
            .collect();
        let mut want = [0i32; BLOCK_ROWS * BLOCK_COLS];
        // SAFETY: the model needs no CPU feature; the extents are as the kernel needs.
        unsafe {
            block_model(
                k,
                a.as_ptr(),
                k,
                &sums,
                Panel::packed(b[0].as_ptr()),
                Panel::packed(b[1].as_ptr()),
                &mut want,
            )
        };
        (k, a, sums, b, want)
    }

    /// Pointers to the rows of `out` (`BLOCK_COLS` floats apart) that `real` keeps, null for
    /// the others (rows left out of a block).
    fn row_ptrs(out: &mut [f32], real: impl Fn(usize) -> bool) -> [*mut f32; BLOCK_ROWS] {
        let base = out.as_mut_ptr();
        std::array::from_fn(|r| {
            if real(r) {
                base.wrapping_add(r * BLOCK_COLS)
            } else {
                std::ptr::null_mut()
            }
        })
    }

    /// `out` holds, in each row `real` keeps, its first `cols` sums of `want` times `scale` bit
    /// for bit, and its -7 filling everywhere else.
    fn assert_first_columns(
        out: &[f32],
        want: &[i32],
        real: impl Fn(usize) -> bool,
        cols: usize,
        scale: f32,
        what: &str,
    ) {
        for r in 0..BLOCK_ROWS {
            for c in 0..BLOCK_COLS {
                let v = if real(r) && c < cols {
                    want[r * BLOCK_COLS + c] as f32 * scale
                } else {
                    -7.0
                };
                assert_eq!(
                    out[r * BLOCK_COLS + c].to_bits(),
                    v.to_bits(),
                    "{what}: row {r}, column {c}"
                );
            }
        }
    }

    /// A one-panel block is the first `ROWS` rows of the two-panel block's first panel, bit
    /// for bit, its second panel never written (`cols[1]` set but not read), for 12, 8 and 4
    /// rows, some of them left out, through the model and the hardware forms where the CPU has
    /// them (the half-panel blocks on at most 8 columns).
    #[test]
    fn a_one_panel_block_is_the_first_panel_of_a_block() {
        let hardware = Int8Path::Avx512Vnni.available();
        let (k, a, sums, b, want) = random_block(29, 132);
        type F = unsafe fn(usize, *const i8, usize, &[i32; BLOCK_ROWS], Panel, &BlockOut);
        let mut kernels: Vec<(&str, usize, F)> = vec![
            ("model", 12, block_one_model_f32::<12>),
            ("model", 8, block_one_model_f32::<8>),
            ("model", 4, block_one_model_f32::<4>),
        ];
        if hardware {
            kernels.push(("avx512-vnni", 12, block_one_avx512_vnni_f32::<12>));
            kernels.push(("avx512-vnni", 8, block_one_avx512_vnni_f32::<8>));
            kernels.push(("avx512-vnni", 4, block_one_avx512_vnni_f32::<4>));
        }
        // The half-panel blocks: hardware only (no model of 256-bit AVX-512VL registers), on
        // at most 8 columns.
        let half = hardware && half_blocks_available();
        if half {
            kernels.push(("half", 12, block_half_avx512_vnni_f32::<12>));
            kernels.push(("half", 8, block_half_avx512_vnni_f32::<8>));
            kernels.push(("half", 4, block_half_avx512_vnni_f32::<4>));
        }
        let scale = -0.031f32;
        for (name, rows, kernel) in kernels {
            for cols in [[NR, NR], [7, 0], [1, 3], [8, 0]] {
                if name == "half" && cols[0] > NR / 2 {
                    continue;
                }
                let real = |r: usize| r % 5 != 3 && r < rows;
                let mut out = vec![-7f32; BLOCK_ROWS * BLOCK_COLS];
                let spec = BlockOut {
                    rows: row_ptrs(&mut out, real),
                    cols,
                    scale,
                };
                // SAFETY: as above; every row pointer has BLOCK_COLS floats.
                unsafe { kernel(k, a.as_ptr(), k, &sums, Panel::packed(b[0].as_ptr()), &spec) };
                let what = format!("{name}: {rows} rows, cols {cols:?}");
                assert_first_columns(&out, &want, real, cols[0], scale, &what);
            }
        }
    }

    /// A narrow block is the first 1 to 4 columns of the two-panel block's first panel times
    /// the scale, bit for bit, for 12, 8 and 4 rows (some left out), `k` of whole and partial
    /// 64-byte runs; nothing past its columns written. Hardware only (said in the log where
    /// the CPU has no AVX-512 VNNI).
    #[test]
    fn a_narrow_block_is_the_first_columns_of_a_block() {
        if !Int8Path::Avx512Vnni.available() {
            eprintln!("int8_vnni: no AVX-512 VNNI here: the narrow blocks are not checked");
            return;
        }
        type F = unsafe fn(usize, *const i8, usize, &[i32; BLOCK_ROWS], *const u8, &BlockOut);
        let kernels: [(usize, usize, F); 9] = [
            (12, 1, block_narrow_avx512_vnni_f32::<12, 1>),
            (8, 1, block_narrow_avx512_vnni_f32::<8, 1>),
            (4, 1, block_narrow_avx512_vnni_f32::<4, 1>),
            (12, 2, block_narrow_avx512_vnni_f32::<12, 2>),
            (8, 2, block_narrow_avx512_vnni_f32::<8, 2>),
            (4, 2, block_narrow_avx512_vnni_f32::<4, 2>),
            (12, 4, block_narrow_avx512_vnni_f32::<12, 4>),
            (8, 4, block_narrow_avx512_vnni_f32::<8, 4>),
            (4, 4, block_narrow_avx512_vnni_f32::<4, 4>),
        ];
        let scale = 0.021f32;
        for (seed, k) in [(3, 4), (31, 132), (37, 576), (41, 1000)] {
            let (k, a, sums, b, want) = random_block(seed, k);
            for (rows, width, kernel) in kernels {
                for m in 1..=NARROW_COLS {
                    if narrow_width(m) != width {
                        continue;
                    }
                    let mut cols = Vec::new();
                    narrow_columns(&b[0], k, m, &mut cols);
                    let real = |r: usize| r % 5 != 1 && r < rows;
                    let mut out = vec![-7f32; BLOCK_ROWS * BLOCK_COLS];
                    let spec = BlockOut {
                        rows: row_ptrs(&mut out, real),
                        cols: [m, 0],
                        scale,
                    };
                    // SAFETY: the CPU has AVX-512 VNNI; `a` has BLOCK_ROWS rows of `k` codes,
                    // `cols` `width * k` bytes; every row pointer has BLOCK_COLS floats.
                    unsafe { kernel(k, a.as_ptr(), k, &sums, cols.as_ptr(), &spec) };
                    let what = format!("k {k}, {rows} rows, {m} columns");
                    assert_first_columns(&out, &want, real, m, scale, &what);
                }
            }
        }
    }

    /// Stored as floats, a block is its i32 sums times the scale, bit for bit: rows left out
    /// (null) untouched, panels cut to their real columns (the rest untouched), through the
    /// model and the hardware form where the CPU has it.
    #[test]
    fn a_block_stored_as_floats_is_its_rescaled_sums() {
        let hardware = Int8Path::Avx512Vnni.available();
        let (k, a, sums, b, want) = random_block(13, 68);
        let scale = 0.0137f32;
        type F = unsafe fn(usize, *const i8, usize, &[i32; BLOCK_ROWS], Panel, Panel, &BlockOut);
        let mut kernels: Vec<(&str, F)> = vec![("model", block_model_f32)];
        if hardware {
            kernels.push(("avx512-vnni", block_avx512_vnni_f32));
        }
        for (name, kernel) in kernels {
            for cols in [[NR, NR], [NR, 5], [9, 0], [1, 0]] {
                let mut out = vec![-7f32; BLOCK_ROWS * BLOCK_COLS];
                let base = out.as_mut_ptr();
                let rows = std::array::from_fn(|r| {
                    // Every third row left out; the others written in reverse order.
                    if r % 3 == 2 {
                        std::ptr::null_mut()
                    } else {
                        base.wrapping_add((BLOCK_ROWS - 1 - r) * BLOCK_COLS)
                    }
                });
                let spec = BlockOut { rows, cols, scale };
                let (b0, b1) = (Panel::packed(b[0].as_ptr()), Panel::packed(b[1].as_ptr()));
                // SAFETY: as above; every row pointer has BLOCK_COLS floats.
                unsafe { kernel(k, a.as_ptr(), k, &sums, b0, b1, &spec) };
                for r in 0..BLOCK_ROWS {
                    let got = &out[(BLOCK_ROWS - 1 - r) * BLOCK_COLS..][..BLOCK_COLS];
                    for c in 0..BLOCK_COLS {
                        let stored = r % 3 != 2 && c % NR < cols[c / NR];
                        let v = if stored {
                            want[r * BLOCK_COLS + c] as f32 * scale
                        } else {
                            -7.0
                        };
                        assert_eq!(
                            got[c].to_bits(),
                            v.to_bits(),
                            "{name}: cols {cols:?}, row {r}, column {c}"
                        );
                    }
                }
            }
        }
    }
}
