//! The integer tile for weight rows of at most 7 bits (codes in `-64..=63`), where x86's fastest
//! AVX2 integer instruction is exact.
//!
//! `VPMADDUBSW` multiplies unsigned bytes by signed bytes and adds neighbouring products into i16
//! *with saturation*. With the activations made unsigned (`x + 128`, one `XOR 0x80`) and 7-bit
//! weights, a pair is at most `2 x 255 x 64 = 32640 < 32767`: never saturated, so exact. The
//! `+ 128` is taken back once per tile with the row's code sum (`128 * sum_k a[r][k]`), which the
//! caller computes once per layer. 8-bit rows would saturate and must use [`super::int8::tile`].
//!
//! Per group of 4 `k` and row: one broadcast of the row's 4 codes, two `VPMADDUBSW` (16 columns),
//! two `VPMADDWD` by ones (pairs to i32: each 32-bit lane is then one column's whole group) and two
//! adds: 64 multiply-adds in 7 instructions, against 32 in 7 for the exact AVX2 kernel.
//!
//! Narrower codes go further ([`tile_deferred`]): a 4-bit row's pairs are at most `2 x 255 x 8`,
//! so eight groups of them add up in i16 (`VPADDW`) before one `VPMADDWD` widens them, and the
//! multiplies per group and row fall from 4 to 2.25. How far a block of rows may go is its
//! [`depth`], from its widest code, computed once at load.

#[cfg(target_arch = "x86_64")]
use super::int8::KGROUP;
use super::int8::{tile as tile_exact, MR, NR};

/// How many groups of 4 `k` the i16 pairs of rows whose codes lie in `-max_abs..=max_abs` may
/// add up before they could leave i16: a pair of products is at most `2 * 255 * max_abs` for
/// activations made unsigned (`x + 128`), `2 * 127 * max_abs` for activations that are
/// `unsigned` already (codes `0..=127`, a ReLU's output). Flipped: 0 for 8-bit codes (the exact
/// kernel), 1 for 7-bit ones, 4 for 5-bit, 8 for 4-bit, 16 for 3-bit; about twice as many
/// unsigned (1 for 8-bit codes). Capped at 64.
pub fn depth(max_abs: u32, unsigned: bool) -> u8 {
    let top = if unsigned { 127 } else { 255 };
    (32767 / (2 * top * max_abs.max(1))).min(64) as u8
}

/// [`super::int8::tile`] on AVX2 (and on SSSE3, `int8_ssse3.rs`, the same arithmetic on 128-bit
/// registers): pairs of products added in i16 over `depth` groups before
/// they widen to i32 ([`depth`] of the rows' largest code and of `unsigned`, which the caller
/// computes once per block: a division per call was 3% of ResNet50's integer path), the exact
/// kernel where that is 0; activation codes `unsigned` (all `>= 0`, which the caller vouches
/// for) are multiplied as they are, the others made unsigned (`x + 128`). `a_sums[r]` must be
/// `sum_i a[r * lda + i]` over `i < k`. Other paths take the exact kernel (the sums are then
/// unused).
#[allow(clippy::too_many_arguments)]
pub fn tile(
    k: usize,
    a: &[i8],
    lda: usize,
    a_sums: &[i32; MR],
    b: &[i8],
    depth: u8,
    unsigned: bool,
    out: &mut [i32; MR * NR],
) {
    // The chosen integer path, not the CPU's flags, decides: `FQ_MAX_ISA` may have lowered it.
    #[cfg(target_arch = "x86_64")]
    if depth > 0 {
        use super::int8::Int8Path;
        let path = super::int8::int8_path();
        if matches!(path, Int8Path::Avx2 | Int8Path::Ssse3) {
            super::int8::check_extents(k, a, lda, b);
            let (a, b, d) = (a.as_ptr(), b.as_ptr(), usize::from(depth));
            // SAFETY: `int8_path` chose AVX2 or SSSE3, so the CPU has it; the extents were
            // checked; `depth` bounds the i16 sums for the caller's codes (`max_abs`, and
            // `unsigned` activations).
            unsafe {
                match path {
                    Int8Path::Avx2 => {
                        tile_avx2::<2, _>(k, a, lda, a_sums, b, (d, unsigned), x86::Ints(out))
                    }
                    _ => super::int8_ssse3::tile(k, a, lda, a_sums, b, (d, unsigned), out),
                }
            }
            return;
        }
    }
    let _ = (a_sums, depth, unsigned);
    tile_exact(k, a, lda, b, out);
}

/// Output rows of a tile as floats: row `r`'s first `cols` columns at `rows[r]` (null: a row
/// past the block, not stored), each sum times `scale`.
#[derive(Clone, Copy)]
pub struct FloatRows {
    pub rows: [*mut f32; MR],
    pub cols: usize,
    pub scale: f32,
}

/// [`tile`]'s sums, each times `out.scale`, stored straight into `out`'s rows, when the AVX2
/// kernels take the block (`depth > 0` on the AVX2 integer path); `false` (nothing written)
/// otherwise. The same floats as [`tile`] and then `sum as f32 * scale` (one conversion
/// rounding to nearest, one multiply). A panel of at most 8 real columns (`out.cols`) takes
/// the kernels' half-width form: one register of 8 columns per row, half the multiplies.
///
/// Why half-width: a layer's last panel holds what is left of its pixels, 4 of 16 at 14x14
/// (196 pixels) and 1 at 7x7 (49): at full width ResNet50's 7x7 layers multiplied 64 columns
/// for 49.
///
/// Why: the sums went through the tile's `[i32; 96]` on the stack and a rescaling loop the
/// compiler built for SSE2 (a store, a reload and four-lane conversions per row), 7.7% of
/// ResNet50's integer path on AVX2 (`perf`, Zen 3), most of it on those stores and reloads.
///
/// # Safety
/// Each non-null `out.rows[r]` must point to `out.cols <= NR` writable floats that no one else
/// accesses meanwhile; the rest as [`tile`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile_f32(
    k: usize,
    a: &[i8],
    lda: usize,
    a_sums: &[i32; MR],
    b: &[i8],
    depth: u8,
    unsigned: bool,
    out: FloatRows,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if depth > 0 && super::int8::int8_path() == super::int8::Int8Path::Avx2 {
        assert!(out.cols <= NR, "tile_f32: columns");
        super::int8::check_extents(k, a, lda, b);
        let (a, b, d) = (a.as_ptr(), b.as_ptr(), usize::from(depth));
        // SAFETY: as in `tile`; the caller guarantees the rows.
        unsafe {
            if out.cols <= NR / 2 {
                tile_avx2::<1, _>(k, a, lda, a_sums, b, (d, unsigned), x86::Floats(out))
            } else {
                tile_avx2::<2, _>(k, a, lda, a_sums, b, (d, unsigned), x86::Floats(out))
            }
        };
        return true;
    }
    let _ = (k, a, lda, a_sums, b, depth, unsigned, out);
    false
}

/// The AVX2 kernel for `depth` groups (1: [`tile_maddubs`], more: [`tile_deferred`]) and
/// activations `unsigned` or not, its rows into `out`: `W` registers of 8 columns per row (2:
/// all 16; 1: the first 8, whose sink must store no more: the other 8 are not computed).
///
/// # Safety
/// As [`tile_deferred`] (`tile_maddubs` for `depth` 1), with `depth > 0`; the sink's extents.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_avx2<const W: usize, S: x86::Sink>(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; MR],
    b: *const i8,
    (depth, unsigned): (usize, bool),
    out: S,
) {
    // SAFETY: the caller's guarantees.
    unsafe {
        match (depth, unsigned) {
            (1, false) => tile_maddubs::<true, W, _>(k, a, lda, a_sums, b, out),
            (1, true) => tile_maddubs::<false, W, _>(k, a, lda, a_sums, b, out),
            (_, false) => tile_deferred::<true, W, _>(k, a, lda, a_sums, b, depth, out),
            (_, true) => tile_deferred::<false, W, _>(k, a, lda, a_sums, b, depth, out),
        }
    }
}

/// Where the AVX2 tiles put a row's 16 sums: [`x86::Ints`] (the `[i32; 96]` of [`tile`]) or
/// [`x86::Floats`] ([`tile_f32`]).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{FloatRows, MR, NR};
    use std::arch::x86_64::*;

    pub trait Sink {
        /// Row `r`'s sums, columns 0..8 and 8..16.
        ///
        /// # Safety
        /// AVX2 must be available; the sink's own extents.
        unsafe fn row(&mut self, r: usize, v: [__m256i; 2]);
    }

    pub struct Ints<'a>(pub &'a mut [i32; MR * NR]);

    impl Sink for Ints<'_> {
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn row(&mut self, r: usize, v: [__m256i; 2]) {
            let o = self.0.as_mut_ptr();
            // SAFETY: `r < MR`: the row's 16 sums lie in the array.
            unsafe {
                _mm256_storeu_si256(o.add(r * NR).cast(), v[0]);
                _mm256_storeu_si256(o.add(r * NR + 8).cast(), v[1]);
            }
        }
    }

    pub struct Floats(pub FloatRows);

    impl Sink for Floats {
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn row(&mut self, r: usize, v: [__m256i; 2]) {
            let p = self.0.rows[r];
            if p.is_null() {
                return;
            }
            let s = _mm256_set1_ps(self.0.scale);
            let f = v.map(|v| _mm256_mul_ps(_mm256_cvtepi32_ps(v), s));
            // SAFETY: the caller of `tile_f32` guarantees `cols` writable floats at `p`.
            unsafe {
                if self.0.cols == NR {
                    _mm256_storeu_ps(p, f[0]);
                    _mm256_storeu_ps(p.add(8), f[1]);
                } else {
                    let mut t = [0f32; NR];
                    _mm256_storeu_ps(t.as_mut_ptr(), f[0]);
                    _mm256_storeu_ps(t.as_mut_ptr().add(8), f[1]);
                    std::ptr::copy_nonoverlapping(t.as_ptr(), p, self.0.cols);
                }
            }
        }
    }
}

/// The 7-bit tile: `FLIP` makes the activations unsigned (`x + 128`) and takes the `128 *
/// a_sums[r]` back; without it they must be `>= 0` already, and the codes may be 8-bit
/// (`2 x 127 x 128 < 32767`).
///
/// # Safety
/// AVX2 must be available; `a` must hold `MR` rows of `k` codes in `-64..=63` (`-128..=127`
/// without `FLIP`), `lda` apart, `b` `k * NR` codes packed `[k / 4][NR][4]` (all `>= 0` without
/// `FLIP`), and `k` must be a multiple of 4.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_maddubs<const FLIP: bool, const W: usize, S: x86::Sink>(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; MR],
    b: *const i8,
    mut out: S,
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees the CPU feature and the extents (see `# Safety`): group
    // `g < k / 4` reads `b[g * 64..g * 64 + 64]` and `a[r * lda + 4g..+4]` for `r < MR`; each
    // row `r < MR` goes to the sink (its own extents, the caller's).
    unsafe {
        let flip = _mm256_set1_epi8(i8::MIN);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); 2]; MR];
        for g in 0..k / KGROUP {
            let bp = b.add(g * NR * KGROUP);
            // Columns 0..8 and 8..16, 4 codes each, as x + 128.
            let bs: [__m256i; W] = std::array::from_fn(|c| load::<FLIP>(bp.add(32 * c), flip));
            for (r, row) in acc.iter_mut().enumerate() {
                let w =
                    _mm256_set1_epi32(a.add(r * lda + g * KGROUP).cast::<i32>().read_unaligned());
                for (sum, bc) in row.iter_mut().zip(bs) {
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(bc, w), ones);
                    *sum = _mm256_add_epi32(*sum, p);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            // Take back the + 128 of every activation: 128 * sum_k a[r][k], wrapping like the sums.
            let fix = _mm256_set1_epi32(if FLIP { a_sums[r].wrapping_mul(128) } else { 0 });
            out.row(r, row.map(|v| _mm256_sub_epi32(v, fix)));
        }
    }
}

/// [`tile_maddubs`] with the `VPMADDWD` by ones (pairs to i32) and the i32 add once per `depth`
/// groups instead of per group: the pairs of `VPMADDUBSW` add up in i16 (`VPADDW`) meanwhile.
///
/// Why: on AVX2 without VNNI both multiplies run on the same two ports (Zen 3: FP0 and FP3), so
/// per group and row the 7-bit kernel issues 4 multiplies for 64 multiply-adds; with 4-bit rows
/// (`depth` 8) it issues 2.25. The sums are the same integers: every partial sum stays within
/// i16 (`depth` from the rows' largest code), so no add wraps or saturates.
///
/// # Safety
/// AVX2 must be available; as [`tile_maddubs`], with the rows' codes in
/// `-max_abs..=max_abs` for a `max_abs` whose [`depth`] (unsigned when not `FLIP`) is at least
/// `depth`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_deferred<const FLIP: bool, const W: usize, S: x86::Sink>(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; MR],
    b: *const i8,
    depth: usize,
    mut out: S,
) {
    use std::arch::x86_64::*;
    // Rows per pass over `b`: half of them at full width (see below), all at half width.
    let pass = if W == 2 { MR / 2 } else { MR };
    // SAFETY: as in `tile_maddubs`.
    unsafe {
        let flip = _mm256_set1_epi8(i8::MIN);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); 2]; MR];
        let groups = k / KGROUP;
        // Full width, three rows at a time: their 6 i16 sums, the two columns' registers, the
        // flip, a broadcast and a product fit AVX2's 16 registers (all six rows' 12 spilled one
        // sum to the stack and back every group, a store-to-load on its chain). Half width:
        // all six rows' 6.
        for (h, rows) in acc.chunks_exact_mut(pass).enumerate() {
            let a = a.add(h * pass * lda);
            let mut g0 = 0;
            while g0 < groups {
                let end = (g0 + depth).min(groups);
                let mut pairs = [[_mm256_setzero_si256(); W]; MR];
                for g in g0..end {
                    let bp = b.add(g * NR * KGROUP);
                    let bs: [__m256i; W] =
                        std::array::from_fn(|c| load::<FLIP>(bp.add(32 * c), flip));
                    for (r, row) in pairs.iter_mut().enumerate().take(pass) {
                        let w = _mm256_set1_epi32(
                            a.add(r * lda + g * KGROUP).cast::<i32>().read_unaligned(),
                        );
                        for (p, bc) in row.iter_mut().zip(bs) {
                            *p = _mm256_add_epi16(*p, _mm256_maddubs_epi16(bc, w));
                        }
                    }
                }
                for (row, p) in rows.iter_mut().zip(&pairs) {
                    for (sum, pc) in row.iter_mut().zip(p) {
                        *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(*pc, ones));
                    }
                }
                g0 = end;
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let fix = _mm256_set1_epi32(if FLIP { a_sums[r].wrapping_mul(128) } else { 0 });
            out.row(r, row.map(|v| _mm256_sub_epi32(v, fix)));
        }
    }
}

/// 32 activation codes at `p`, made unsigned (`x + 128`, one `XOR 0x80`) when `FLIP`, else as
/// they are (all `>= 0`).
///
/// # Safety
/// AVX2 must be available; `p` must hold 32 readable bytes.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load<const FLIP: bool>(
    p: *const i8,
    flip: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees 32 readable bytes.
    let v = unsafe { _mm256_loadu_si256(p.cast()) };
    if FLIP {
        _mm256_xor_si256(v, flip)
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::int8::{pack_b, tile_portable};
    use super::*;

    /// Whether this CPU can run the SSSE3 kernel, which the tests below run directly (whatever
    /// path `FQ_MAX_ISA` and the CPU choose for [`tile`]).
    fn has_ssse3() -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::arch::is_x86_feature_detected!("ssse3");
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// The SSSE3 kernel's tile (`None` without SSSE3).
    fn ssse3(
        k: usize,
        a: &[i8],
        sums: &[i32; MR],
        b: &[i8],
        depth: u8,
        unsigned: bool,
    ) -> Option<[i32; MR * NR]> {
        if !has_ssse3() {
            return None;
        }
        super::super::int8::check_extents(k, a, k, b);
        #[cfg(target_arch = "x86_64")]
        {
            let mut out = [0i32; MR * NR];
            // SAFETY: the CPU has SSSE3; the extents were checked; the callers' codes have at
            // least this `depth`.
            unsafe {
                let (a, b, d) = (a.as_ptr(), b.as_ptr(), usize::from(depth));
                super::super::int8_ssse3::tile(k, a, k, sums, b, (d, unsigned), &mut out)
            }
            Some(out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (sums, depth, unsigned);
            None
        }
    }

    /// [`tile_f32`]'s floats against `want`'s sums rescaled one by one, for panels of every
    /// width that takes either form (full and half width), where the AVX2 path takes the block;
    /// the columns past `cols` and the rows past the block untouched.
    fn floats_match(
        k: usize,
        a: &[i8],
        sums: &[i32; MR],
        b: &[i8],
        depth: u8,
        unsigned: bool,
        want: &[i32; MR * NR],
    ) {
        let scale = 0.37f32;
        for (cols, stored) in [(1, 6), (4, 5), (8, 6), (9, 3), (16, 6)] {
            let mut got = [f32::NAN; MR * NR];
            let mut rows = [std::ptr::null_mut(); MR];
            for (r, p) in rows.iter_mut().enumerate().take(stored) {
                *p = got[r * NR..].as_mut_ptr();
            }
            let out = FloatRows { rows, cols, scale };
            // SAFETY: each stored row points to `NR >= cols` floats of `got`, used by no one else.
            if !unsafe { tile_f32(k, a, k, sums, b, depth, unsigned, out) } {
                return;
            }
            for r in 0..MR {
                for c in 0..NR {
                    let (g, w) = (got[r * NR + c], want[r * NR + c] as f32 * scale);
                    let ok = if r < stored && c < cols {
                        g == w
                    } else {
                        g.is_nan()
                    };
                    assert!(
                        ok,
                        "row {r} column {c} of {cols} (k {k}, depth {depth}): {g} vs {w}"
                    );
                }
            }
        }
    }

    /// Bit for bit against the portable loop with the widest codes that may come here (-64 and
    /// 63, the 7-bit extremes) against every activation extreme, and on pseudo-random ones.
    #[test]
    fn matches_the_portable_loop_on_7_bit_codes() {
        let mut s = 5u64;
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as u32
        };
        for (case, k) in [(0, 4096usize), (1, 4096), (2, 1000), (3, 68), (4, 0)] {
            let a: Vec<i8> = (0..MR * k)
                .map(|_| match case {
                    0 => -64,
                    1 => 63,
                    _ => (next() % 128) as i8 - 64,
                })
                .collect();
            let cols: Vec<i8> = (0..k * NR)
                .map(|j| match case {
                    0 => -128,
                    1 => {
                        if j % 2 == 0 {
                            127
                        } else {
                            -128
                        }
                    }
                    _ => next() as u8 as i8,
                })
                .collect();
            let b = pack_b(k, &cols);
            let mut sums = [0i32; MR];
            for (r, s) in sums.iter_mut().enumerate() {
                *s = a[r * k..(r + 1) * k].iter().map(|&v| i32::from(v)).sum();
            }
            let (mut got, mut want) = ([0i32; MR * NR], [0i32; MR * NR]);
            tile(k, &a, k, &sums, &b, 1, false, &mut got);
            tile_portable(k, &a, k, &b, &mut want);
            assert_eq!(got, want, "case {case}, k {k}");
            assert_eq!(
                ssse3(k, &a, &sums, &b, 1, false),
                has_ssse3().then_some(want),
                "SSSE3: case {case}, k {k}"
            );
            floats_match(k, &a, &sums, &b, 1, false, &want);
        }
    }

    /// The i16 pairs added over [`depth`] groups give the portable loop's sums bit for bit at
    /// every code width's extremes (all `-max_abs`, all `max_abs - 1`, the largest activations,
    /// the sums nearest to leaving i16) and on pseudo-random codes, for `k` with a partial last
    /// run of groups, with activations made unsigned and with activations `>= 0` taken as they
    /// are (up to 8-bit weights); one group more than [`depth`] would leave i16.
    #[test]
    fn deferred_pairs_match_the_portable_loop() {
        let widths = [1, 2, 4, 8, 16, 32, 64, 128];
        assert_eq!(widths.map(|m| depth(m, false)), [64, 32, 16, 8, 4, 2, 1, 0]);
        assert_eq!(widths.map(|m| depth(m, true)), [64, 64, 32, 16, 8, 4, 2, 1]);
        let mut s = 9u64;
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as u32
        };
        for unsigned in [false, true] {
            let top = if unsigned { 127 } else { 255 };
            for max_abs in widths {
                let d = depth(max_abs, unsigned);
                if d == 0 {
                    continue;
                }
                assert!(2 * top * max_abs * u32::from(d) <= 32767);
                assert!(2 * top * max_abs * (u32::from(d) + 1) > 32767 || d == 64);
                for (case, k) in [(0, 4096usize), (1, 4096), (2, 1004), (3, 68)] {
                    let a: Vec<i8> = (0..MR * k)
                        .map(|_| match case {
                            0 => (-(max_abs as i32)) as i8,
                            1 => (max_abs - 1) as i8,
                            _ => ((next() % (2 * max_abs)) as i32 - max_abs as i32) as i8,
                        })
                        .collect();
                    let cols: Vec<i8> = (0..k * NR)
                        .map(|j| match (case, unsigned) {
                            (0 | 1, _) => 127,
                            (_, true) if j % 5 == 0 => 0,
                            (_, true) => (next() % 128) as i8,
                            (_, false) if j % 5 == 0 => -127,
                            (_, false) => (next() % 255) as i32 as i8,
                        })
                        .collect();
                    let b = pack_b(k, &cols);
                    let mut sums = [0i32; MR];
                    for (r, s) in sums.iter_mut().enumerate() {
                        *s = a[r * k..(r + 1) * k].iter().map(|&v| i32::from(v)).sum();
                    }
                    let (mut got, mut want) = ([0i32; MR * NR], [0i32; MR * NR]);
                    tile(k, &a, k, &sums, &b, d, unsigned, &mut got);
                    tile_portable(k, &a, k, &b, &mut want);
                    assert_eq!(
                        got, want,
                        "max |code| {max_abs}, unsigned {unsigned}, case {case}, k {k}"
                    );
                    assert_eq!(
                        ssse3(k, &a, &sums, &b, d, unsigned),
                        has_ssse3().then_some(want),
                        "SSSE3: max |code| {max_abs}, unsigned {unsigned}, case {case}, k {k}"
                    );
                    floats_match(k, &a, &sums, &b, d, unsigned, &want);
                }
            }
        }
    }
}
