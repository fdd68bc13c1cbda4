//! The AVX-512F f32 micro-kernel: the same 6x16 tile as AVX2's, one 512-bit register per row.
//!
//! Six accumulators alone would leave the two 512-bit FMA pipes of an Intel core half idle (an
//! FMA's 4-cycle latency needs 8 independent chains), so even and odd `k` go to two sets of six,
//! added at the store: 12 chains, 12 of the 32 zmm registers, one 64-byte load of `B` and six
//! broadcasts of `A` per `k`. That sums in another order than the portable loop, so the result
//! agrees with it within rounding (bit for bit on sums that are exact in f32).
//!
//! As in `int8_vnni.rs`, the loop is written once (`f32_tile!`) over a few register operations,
//! instantiated for the hardware and, in tests, for a plain-Rust model of them (with `mul_add`,
//! which rounds once like `VFMADD231PS`), so its indexing is tested on every x86 CPU and the
//! hardware form wherever the CPU has AVX-512F.

use super::{MR, NR};

/// The tile loop over an ops module `$ops` (`V`, `LANES`, `zero`, `load`, `splat`, `fmadd`,
/// `add`, `store`), in the body of an `unsafe fn` with the kernel's arguments.
macro_rules! f32_tile {
    ($ops:ident, $k:ident, $a:ident, $lda:ident, $b:ident, $out:ident) => {{
        const REGS: usize = NR / $ops::LANES;
        // SAFETY: the caller guarantees the CPU features and the extents: step `i < k` reads
        // `b[i * NR..i * NR + NR]` and `a[r * lda + i]` for `r < MR`; the stores write `out`.
        unsafe {
            let mut acc = [[[$ops::zero(); REGS]; MR]; 2];
            let mut i = 0;
            while i < $k {
                // Even `k` into set 0, odd into set 1 (the last odd one alone when `k` is odd).
                let steps = if i + 1 < $k { 2 } else { 1 };
                for (s, set) in acc.iter_mut().enumerate().take(steps) {
                    let bp = $b.add((i + s) * NR);
                    let mut cols = [$ops::zero(); REGS];
                    for (h, c) in cols.iter_mut().enumerate() {
                        *c = $ops::load(bp.add(h * $ops::LANES));
                    }
                    let ap = $a.add(i + s);
                    for (r, row) in set.iter_mut().enumerate() {
                        let av = $ops::splat(ap.add(r * $lda));
                        for (x, c) in row.iter_mut().zip(&cols) {
                            *x = $ops::fmadd(av, *c, *x);
                        }
                    }
                }
                i += steps;
            }
            let o = $out.as_mut_ptr();
            for r in 0..MR {
                for h in 0..REGS {
                    let v = $ops::add(acc[0][r][h], acc[1][r][h]);
                    $ops::store(o.add(r * NR + h * $ops::LANES), v);
                }
            }
        }
    }};
}

mod zmm {
    use std::arch::x86_64::*;

    pub type V = __m512;
    pub const LANES: usize = 16;

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn zero() -> V {
        _mm512_setzero_ps()
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn load(p: *const f32) -> V {
        // SAFETY: the caller guarantees 16 readable floats at `p`.
        unsafe { _mm512_loadu_ps(p) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn splat(p: *const f32) -> V {
        // SAFETY: the caller guarantees a readable float at `p`.
        unsafe { _mm512_set1_ps(*p) }
    }

    /// `a * b + c`, rounded once.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fmadd(a: V, b: V, c: V) -> V {
        _mm512_fmadd_ps(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn add(a: V, b: V) -> V {
        _mm512_add_ps(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn store(p: *mut f32, v: V) {
        // SAFETY: the caller guarantees 16 writable floats at `p`.
        unsafe { _mm512_storeu_ps(p, v) }
    }
}

/// # Safety
/// AVX-512F must be available; `a` must hold `MR` rows of `k` floats `lda` apart and `b`
/// `k * NR` floats.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_avx512(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    out: &mut [f32; MR * NR],
) {
    f32_tile!(zmm, k, a, lda, b, out)
}

/// Two panels at once: `out[r * 2 NR + h * NR + c]` is row `r` against column `c` of panel `h`
/// (`b0`, `b1`, each `[k][NR]`), a 6x32 tile.
///
/// Why: the 6x16 tile issues 6 FMAs per 7 loads (one row of `B`, six broadcasts of `A`), and a
/// Sapphire Rapids core loads two 64-byte values per cycle while it retires two FMAs, so the
/// loads bound it near half of the FMA peak (the f32 GEMM measured 48–62% of `torch.mm` here,
/// issue 16). Two panels share the broadcasts: 12 FMAs per 8 loads, 12 independent chains (an
/// FMA's 4-cycle latency needs 8), in 14 of the 32 registers. Each sum runs over `k` in order, as
/// the portable loop's.
///
/// # Safety
/// AVX-512F must be available; `a` must hold `MR` rows of `k` floats `lda` apart, `b0` and `b1`
/// `k * NR` floats each.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_pair_avx512(
    k: usize,
    a: *const f32,
    lda: usize,
    (b0, b1): (*const f32, *const f32),
    out: &mut [f32; MR * 2 * NR],
) {
    // SAFETY: the caller's guarantees.
    unsafe { rows_pair::<MR, _>(k, a, lda, Panels(b0, b1), out) }
}

/// [`tile_pair_avx512`] (up to `MR` rows) or [`tile_block_avx512`] (up to `2 MR`) with the sums
/// of the first `rows` rows set into, or with `add` added to, the `2 NR` floats at `c + r *
/// ldc`: straight from the registers into a token GEMM's output rows.
///
/// # Safety
/// AVX-512F must be available; `a` must hold `MR` rows (`2 MR` when `rows > MR`) of `k` floats
/// `lda` apart, `b0` and `b1` `k * NR` floats each, and `c` `(rows - 1) * ldc + 2 NR` floats,
/// `rows <= 2 MR`.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_pair_to_avx512(
    k: usize,
    a: *const f32,
    lda: usize,
    (b0, b1): (*const f32, *const f32),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller's guarantees.
    unsafe { pair_to(k, a, lda, Panels(b0, b1), (c, ldc, rows, add)) }
}

/// [`tile_pair_avx512`] with the two panels' row `i` at `src + taps[i]` (panel 0) and `NR`
/// floats after it (panel 1): `B` read where it lies, e.g. in a convolution's padded input
/// (`exec::conv_direct`), instead of from packed panels. The sums of the first `rows` rows go
/// straight to `c` (row `r` at `c + r * ldc`, 32 floats), set or, with `add`, added.
///
/// # Safety
/// AVX-512F must be available; `a` must hold the rows read, `k` floats `lda` apart, `taps` `k`
/// offsets, `src` `taps[i] + 2 NR` floats for every `i < k`, and `c` `(rows - 1) * ldc + 2 NR`
/// floats, `rows <= 2 MR`; more than `MR` rows read `2 MR` rows of `a` (a 12x32 block).
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_pair_taps_avx512(
    k: usize,
    a: *const f32,
    lda: usize,
    (src, taps): (*const f32, *const usize),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller's guarantees.
    unsafe { pair_to(k, a, lda, Taps(src, taps), (c, ldc, rows, add)) }
}

/// The sums of `rows` rows of `a` (a 6x32 tile up to `MR`, a 12x32 block beyond) against the
/// two panels `b`, set or added at `c + r * ldc` ([`store_pair`]).
///
/// # Safety
/// As [`tile_pair_to_avx512`], with `b`'s rows where the kernel's caller vouched for them.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn pair_to<B: PairRows>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: B,
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller's guarantees.
    unsafe {
        if rows > MR {
            let acc = sums_pair::<{ 2 * MR }, _>(k, a, lda, b);
            store_pair(&acc, (c, ldc, rows, add));
        } else {
            let acc = sums_pair::<MR, _>(k, a, lda, b);
            store_pair(&acc, (c, ldc, rows, add));
        }
    }
}

/// Sets or adds the first `rows` rows of `acc` at `c + r * ldc`.
///
/// # Safety
/// AVX-512F must be available; `c + r * ldc` must hold `2 NR` writable floats for `r < rows`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_pair(
    acc: &[[std::arch::x86_64::__m512; 2]],
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's guarantees.
    unsafe {
        for (r, row) in acc.iter().enumerate().take(rows) {
            let p = c.add(r * ldc);
            let (mut v0, mut v1) = (row[0], row[1]);
            if add {
                v0 = _mm512_add_ps(v0, _mm512_loadu_ps(p));
                v1 = _mm512_add_ps(v1, _mm512_loadu_ps(p.add(NR)));
            }
            _mm512_storeu_ps(p, v0);
            _mm512_storeu_ps(p.add(NR), v1);
        }
    }
}

/// Where row `i` of the two panels of [`rows_pair`] lies.
trait PairRows: Copy {
    /// # Safety
    /// `i` must be within the rows the caller of the kernel vouched for.
    unsafe fn row(self, i: usize) -> (*const f32, *const f32);

    /// Row `i` of both panels in registers.
    ///
    /// # Safety
    /// As [`PairRows::row`]; AVX-512F must be available.
    #[inline(always)]
    unsafe fn load(self, i: usize) -> (std::arch::x86_64::__m512, std::arch::x86_64::__m512) {
        use std::arch::x86_64::_mm512_loadu_ps;
        // SAFETY: the caller's guarantees.
        unsafe {
            let (b0, b1) = self.row(i);
            (_mm512_loadu_ps(b0), _mm512_loadu_ps(b1))
        }
    }
}

/// Packed panels, rows `NR` floats apart.
#[derive(Clone, Copy)]
struct Panels(*const f32, *const f32);

/// Rows of a pair of panels ([`Panels`]) asked for ahead of their use, into L1: 2 KB a panel.
///
/// Why: weights that do not stay in cache (ResNet18's last stage: 9.4 MB a convolution, 16.8 MB
/// Winograd-transformed) stream from L3 or memory, each panel row used by at most a few kernel
/// blocks at batch 1, and the hardware prefetcher alone kept the two streams of a pair fed at
/// a quarter of the bandwidth the cores have (28 GB/s each from L3 on the Xeon of stop 48).
/// ResNet18's last three 3x3 convolutions (Winograd) took 1.23-1.27 ms each without it, 1.00-1.04
/// with it, at two threads on that Xeon; a prefetch 12 to 96 rows ahead did about as well.
/// Prefetching past a panel's end touches no memory the kernel may not read (no fault; at worst
/// a wasted line).
const PREFETCH_ROWS: usize = 32;

impl PairRows for Panels {
    #[inline(always)]
    unsafe fn row(self, i: usize) -> (*const f32, *const f32) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let ahead = (i + PREFETCH_ROWS) * NR;
        // SAFETY: prefetches are hints that never fault (`wrapping_add`: the address need not
        // be in bounds); the kernel's caller guarantees `k * NR` floats in each panel.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(self.0.wrapping_add(ahead) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(self.1.wrapping_add(ahead) as *const i8);
            (self.0.add(i * NR), self.1.add(i * NR))
        }
    }
}

/// Packed panels of whole numbers as `i16` or `i8` (rows `NR` apart), each turned into its
/// float as it is loaded: Winograd's transformed weights times 4 as `i16`
/// (`exec::winograd::Transformed::Quarters`), a packed layer's weight codes as `i8` for
/// `exec::conv_lanes`: half or a quarter of the bytes of the floats, for the layers whose
/// weights come from memory. Prefetched as [`Panels`], the same bytes ahead.
#[derive(Clone, Copy)]
struct Wholes<T>(*const T, *const T);

/// The integer types of [`Wholes`]: 16 of them loaded and widened to floats.
trait Whole: Copy {
    /// # Safety
    /// AVX-512F must be available; `p` must hold 16 values.
    unsafe fn floats(p: *const Self) -> std::arch::x86_64::__m512;
}

impl Whole for i16 {
    #[inline(always)]
    unsafe fn floats(p: *const i16) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // SAFETY: the caller's guarantees.
        unsafe {
            let v = _mm256_loadu_si256(p as *const __m256i);
            _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(v))
        }
    }
}

impl Whole for i8 {
    #[inline(always)]
    unsafe fn floats(p: *const i8) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // SAFETY: the caller's guarantees.
        unsafe {
            let v = _mm_loadu_si128(p as *const __m128i);
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v))
        }
    }
}

impl<T: Whole> PairRows for Wholes<T> {
    #[inline(always)]
    unsafe fn row(self, _: usize) -> (*const f32, *const f32) {
        unreachable!("whole numbers are loaded, not read as floats")
    }

    #[inline(always)]
    unsafe fn load(self, i: usize) -> (std::arch::x86_64::__m512, std::arch::x86_64::__m512) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // The bytes `Panels` asks for ahead: `PREFETCH_ROWS` rows of floats.
        let ahead = i * NR + PREFETCH_ROWS * NR * 4 / std::mem::size_of::<T>();
        // SAFETY: prefetches never fault; the kernel's caller guarantees `k * NR` values in
        // each panel.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(self.0.wrapping_add(ahead) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(self.1.wrapping_add(ahead) as *const i8);
            (T::floats(self.0.add(i * NR)), T::floats(self.1.add(i * NR)))
        }
    }
}

/// [`tile_pair_to_avx512`] on panels of `i16` whole numbers ([`Wholes`]).
///
/// # Safety
/// As [`tile_pair_to_avx512`], `b0` and `b1` holding `k * NR` values each.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_pair_halves_to_avx512(
    k: usize,
    a: *const f32,
    lda: usize,
    (b0, b1): (*const i16, *const i16),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller's guarantees.
    unsafe { pair_to(k, a, lda, Wholes(b0, b1), (c, ldc, rows, add)) }
}

/// Rows at offsets from one base (the second panel `NR` after the first).
#[derive(Clone, Copy)]
struct Taps(*const f32, *const usize);

impl PairRows for Taps {
    #[inline(always)]
    unsafe fn row(self, i: usize) -> (*const f32, *const f32) {
        // SAFETY: the kernel's caller guarantees `k` offsets and `2 NR` floats at each.
        unsafe {
            let p = self.0.add(*self.1.add(i));
            (p, p.add(NR))
        }
    }
}

/// [`Taps`] whose row `i` also asks for the `2 NR` floats `self.2` past it into L1: the same
/// taps of the next pair of positions, one step of the call at a time.
#[derive(Clone, Copy)]
struct TapsAhead(*const f32, *const usize, usize);

impl PairRows for TapsAhead {
    #[inline(always)]
    unsafe fn row(self, i: usize) -> (*const f32, *const f32) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: as [`Taps`]' rows; the prefetches are hints that never fault
        // (`wrapping_add`: the address may lie past the source).
        unsafe {
            let (p, second) = Taps(self.0, self.1).row(i);
            let q = p.wrapping_add(self.2);
            _mm_prefetch::<_MM_HINT_T0>(q as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(NR) as *const i8);
            (p, second)
        }
    }
}

/// [`tile_pair_avx512`] on twice the rows: a 12x32 block, 24 accumulators of the 32 registers,
/// 2 loads of `B` and 12 broadcasts per 24 FMAs (against 8 per 12 for the 6x32 tile), for the
/// token Linear layers, whose `A` (the tokens) has rows to spare: their GEMMs were most of
/// DeiT-Tiny's f32 time.
///
/// # Safety
/// AVX-512F must be available; `a` must hold `2 * MR` rows of `k` floats `lda` apart, `b0` and
/// `b1` `k * NR` floats each.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_block_avx512(
    k: usize,
    a: *const f32,
    lda: usize,
    (b0, b1): (*const f32, *const f32),
    out: &mut [f32; 2 * MR * 2 * NR],
) {
    // SAFETY: the caller's guarantees.
    unsafe { rows_pair::<{ 2 * MR }, _>(k, a, lda, Panels(b0, b1), out) }
}

/// `ROWS` rows of `a` against two panels, each sum over `k` in order.
///
/// # Safety
/// As [`tile_pair_avx512`] with `ROWS` rows; `out` holds `ROWS * 2 * NR` floats.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn rows_pair<const ROWS: usize, B: PairRows>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: B,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    debug_assert!(out.len() >= ROWS * 2 * NR);
    // SAFETY: the caller's guarantees; the stores write `out`.
    unsafe {
        let acc = sums_pair::<ROWS, B>(k, a, lda, b);
        let o = out.as_mut_ptr();
        for (r, row) in acc.iter().enumerate() {
            _mm512_storeu_ps(o.add(r * 2 * NR), row[0]);
            _mm512_storeu_ps(o.add(r * 2 * NR + NR), row[1]);
        }
    }
}

/// The sums of `ROWS` rows of `a` against two panels, in registers, each over `k` in order.
///
/// # Safety
/// AVX-512F must be available; step `i < k` reads `NR` floats at each of `b.row(i)` and
/// `a[r * lda + i]` for `r < ROWS`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn sums_pair<const ROWS: usize, B: PairRows>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: B,
) -> [[std::arch::x86_64::__m512; 2]; ROWS] {
    // SAFETY: the caller's guarantees.
    unsafe { sums_pair_at::<ROWS, B, RowMajor>(k, RowMajor(a, lda), b) }
}

/// Where element `(r, i)` of a kernel's `A` lies.
trait ARows: Copy {
    /// # Safety
    /// `(r, i)` must be within the rows the caller of the kernel vouched for.
    unsafe fn at(self, r: usize, i: usize) -> *const f32;
}

/// Rows `lda` apart, each row's `k` contiguous: tokens, or weight rows.
#[derive(Clone, Copy)]
struct RowMajor(*const f32, usize);

impl ARows for RowMajor {
    #[inline(always)]
    unsafe fn at(self, r: usize, i: usize) -> *const f32 {
        // SAFETY: the kernel's caller guarantees the rows.
        unsafe { self.0.add(r * self.1 + i) }
    }
}

/// Weight rows in `MR`-row tiles, each `k`-major (step `i` of a tile: its `MR` rows' floats,
/// together), tiles `self.1` floats apart: a 12-row block's 12 broadcasts read two runs at fixed
/// offsets from two pointers, where rows `lda` apart took an address computation each
/// ([`tile_pair_taps_tiled_avx512`]).
#[derive(Clone, Copy)]
struct Tiles(*const f32, usize);

impl ARows for Tiles {
    #[inline(always)]
    unsafe fn at(self, r: usize, i: usize) -> *const f32 {
        // SAFETY: the kernel's caller guarantees the tiles.
        unsafe { self.0.add((r / MR) * self.1 + i * MR + r % MR) }
    }
}

/// [`tile_pair_taps_avx512`] with `A` in `k`-major tiles ([`Tiles`]): row `r`'s step `i` at
/// `a[(r / MR) * stride + i * MR + r % MR]`.
/// With `ahead > 0`, `B` is read as [`TapsAhead`].
///
/// # Safety
/// As [`tile_pair_taps_avx512`], `a` holding those floats for the rows of the block (`MR` up to
/// `MR` rows, else `2 MR`) and `i < k`.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_pair_taps_tiled_avx512(
    k: usize,
    (a, stride): (*const f32, usize),
    (src, taps): (*const f32, *const usize),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
    ahead: usize,
) {
    // SAFETY: the caller's guarantees.
    unsafe {
        if ahead > 0 {
            cols_to(
                k,
                Tiles(a, stride),
                TapsAhead(src, taps, ahead),
                (c, ldc, rows, add),
            )
        } else {
            cols_to(k, Tiles(a, stride), Taps(src, taps), (c, ldc, rows, add))
        }
    }
}

/// Rows adjacent, each row's `k` apart by `ka`: the pixels of a channel-major `[k][n]` input
/// as the rows ([`tile_pair_cols_to_avx512`]).
#[derive(Clone, Copy)]
struct ColMajor(*const f32, usize);

impl ARows for ColMajor {
    #[inline(always)]
    unsafe fn at(self, r: usize, i: usize) -> *const f32 {
        // SAFETY: the kernel's caller guarantees the rows.
        unsafe { self.0.add(r + i * self.1) }
    }
}

/// Pixels in blocks of `NR` channels (`exec::blocked`), each block a plane of `self.1` floats
/// with a pixel's `NR` channels together: step `i`'s twelve broadcasts lie `NR` floats apart
/// at one address per step ([`tile_pair_blocked_to_avx512`]).
#[derive(Clone, Copy)]
struct Blocked(*const f32, usize);

impl ARows for Blocked {
    #[inline(always)]
    unsafe fn at(self, r: usize, i: usize) -> *const f32 {
        // SAFETY: the kernel's caller guarantees the rows.
        unsafe { self.0.add((i / NR) * self.1 + r * NR + i % NR) }
    }
}

/// Rows adjacent, each row's `k` at its own offset (`taps[i]`): the positions of a
/// convolution's padded input as the rows ([`tile_pair_tap_cols_to_avx512`]).
#[derive(Clone, Copy)]
struct TapCols(*const f32, *const usize);

impl ARows for TapCols {
    #[inline(always)]
    unsafe fn at(self, r: usize, i: usize) -> *const f32 {
        // SAFETY: the kernel's caller guarantees the taps and the rows.
        unsafe { self.0.add(*self.1.add(i) + r) }
    }
}

/// [`tile_pair_cols_to_avx512`] with `A`'s element `(r, i)` at `src[taps[i] + r]`: the rows are
/// consecutive output positions of a convolution over its padded input (`exec::conv_direct`'s
/// phases), the columns its taps.
///
/// # Safety
/// AVX-512F must be available; `src` must hold `src[taps[i] + r]` for `i < k` and `r < ` the
/// block's rows (`MR` for `rows <= MR`, else `2 MR`), `taps` `k` offsets, `b0` and `b1` `k * NR`
/// floats each, and `c` `(rows - 1) * ldc + 2 NR` floats, `rows <= 2 MR`.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_pair_tap_cols_to_avx512(
    k: usize,
    (src, taps): (*const f32, *const usize),
    (b0, b1): (*const f32, *const f32),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller's guarantees.
    unsafe { cols_to(k, TapCols(src, taps), Panels(b0, b1), (c, ldc, rows, add)) }
}

/// The sums of `rows` rows of `a` (a 6x32 tile up to `MR`, a 12x32 block beyond) against the
/// two panels `b`, set or added at `c + r * ldc` ([`store_pair`]).
///
/// # Safety
/// As the kernels that call it, with `a`'s rows where their callers vouched for them.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn cols_to<A: ARows, B: PairRows>(
    k: usize,
    a: A,
    b: B,
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller's guarantees.
    unsafe {
        if rows > MR {
            let acc = sums_pair_at::<{ 2 * MR }, _, _>(k, a, b);
            store_pair(&acc, (c, ldc, rows, add));
        } else {
            let acc = sums_pair_at::<MR, _, _>(k, a, b);
            store_pair(&acc, (c, ldc, rows, add));
        }
    }
}

/// [`tile_pair_to_avx512`] with `A`'s element `(r, i)` at `a[r + i * ka]`: the rows are pixels
/// of a channel-major input (`ka` its pixels per channel) and `B` the weight panels, so the
/// sums of a 1x1 convolution come out with its output channels along the registers' lanes
/// (`exec::conv_lanes`).
///
/// # Safety
/// AVX-512F must be available; `a` must hold `a[r + i * ka]` for `r < ` the block's rows (`MR`
/// for `rows <= MR`, else `2 MR`) and `i < k`, `b0` and `b1` `k * NR` floats each, and `c`
/// `(rows - 1) * ldc + 2 NR` floats, `rows <= 2 MR`.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_pair_cols_to_avx512(
    k: usize,
    (a, ka): (*const f32, usize),
    (b0, b1): (*const f32, *const f32),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller's guarantees.
    unsafe { cols_to(k, ColMajor(a, ka), Panels(b0, b1), (c, ldc, rows, add)) }
}

/// [`tile_pair_cols_to_avx512`] with `A`'s element `(r, i)` at
/// `a[(i / NR) * plane + r * NR + i % NR]`: an input in blocks of `NR` channels
/// (`exec::blocked`).
///
/// # Safety
/// As [`tile_pair_cols_to_avx512`], `a` holding those elements.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_pair_blocked_to_avx512(
    k: usize,
    (a, plane): (*const f32, usize),
    (b0, b1): (*const f32, *const f32),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller's guarantees.
    unsafe { cols_to(k, Blocked(a, plane), Panels(b0, b1), (c, ldc, rows, add)) }
}

/// [`tile_pair_blocked_to_avx512`] on panels of `i8` whole numbers ([`Wholes`]).
///
/// # Safety
/// As [`tile_pair_blocked_to_avx512`], `b0` and `b1` holding `k * NR` values each.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_pair_blocked_bytes_to_avx512(
    k: usize,
    (a, plane): (*const f32, usize),
    (b0, b1): (*const i8, *const i8),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller's guarantees.
    unsafe { cols_to(k, Blocked(a, plane), Wholes(b0, b1), (c, ldc, rows, add)) }
}

/// [`tile_pair_cols_to_avx512`] on panels of `i8` whole numbers ([`Wholes`]).
///
/// # Safety
/// As [`tile_pair_cols_to_avx512`], `b0` and `b1` holding `k * NR` values each.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_pair_cols_bytes_to_avx512(
    k: usize,
    (a, ka): (*const f32, usize),
    (b0, b1): (*const i8, *const i8),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller's guarantees.
    unsafe { cols_to(k, ColMajor(a, ka), Wholes(b0, b1), (c, ldc, rows, add)) }
}

/// [`tile_pair_tap_cols_to_avx512`] on panels of `i8` whole numbers ([`Wholes`]).
///
/// # Safety
/// As [`tile_pair_tap_cols_to_avx512`], `b0` and `b1` holding `k * NR` values each.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_pair_tap_cols_bytes_to_avx512(
    k: usize,
    (src, taps): (*const f32, *const usize),
    (b0, b1): (*const i8, *const i8),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller's guarantees.
    unsafe { cols_to(k, TapCols(src, taps), Wholes(b0, b1), (c, ldc, rows, add)) }
}

/// [`sums_pair`] with `A` wherever `a` says.
///
/// # Safety
/// AVX-512F must be available; step `i < k` reads `NR` floats at each of `b.row(i)` and
/// `a.at(r, i)` for `r < ROWS`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn sums_pair_at<const ROWS: usize, B: PairRows, A: ARows>(
    k: usize,
    a: A,
    b: B,
) -> [[std::arch::x86_64::__m512; 2]; ROWS] {
    use std::arch::x86_64::*;
    // SAFETY: the caller's guarantees.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
        for i in 0..k {
            let (c0, c1) = b.load(i);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.at(r, i));
                row[0] = _mm512_fmadd_ps(av, c0, row[0]);
                row[1] = _mm512_fmadd_ps(av, c1, row[1]);
            }
        }
        acc
    }
}

/// [`f32_tile!`] over the plain-Rust model (tests only).
///
/// # Safety
/// As [`tile_avx512`], without the CPU feature.
#[cfg(test)]
pub unsafe fn tile_model(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    out: &mut [f32; MR * NR],
) {
    f32_tile!(model, k, a, lda, b, out)
}

/// A plain-Rust model of the register operations, lane for lane.
#[cfg(test)]
mod model {
    pub type V = [f32; 16];
    pub const LANES: usize = 16;

    pub unsafe fn zero() -> V {
        [0.0; 16]
    }

    pub unsafe fn load(p: *const f32) -> V {
        // SAFETY: the kernel's caller guarantees 16 readable floats at `p`.
        std::array::from_fn(|l| unsafe { *p.add(l) })
    }

    pub unsafe fn splat(p: *const f32) -> V {
        // SAFETY: the kernel's caller guarantees a readable float at `p`.
        [unsafe { *p }; 16]
    }

    pub unsafe fn fmadd(a: V, b: V, c: V) -> V {
        std::array::from_fn(|l| a[l].mul_add(b[l], c[l]))
    }

    pub unsafe fn add(a: V, b: V) -> V {
        std::array::from_fn(|l| a[l] + b[l])
    }

    pub unsafe fn store(p: *mut f32, v: V) {
        for (l, x) in v.iter().enumerate() {
            // SAFETY: the kernel's caller guarantees 16 writable floats at `p`.
            unsafe { *p.add(l) = *x };
        }
    }
}
