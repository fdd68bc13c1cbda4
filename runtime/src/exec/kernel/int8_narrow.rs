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
/// add up before they could leave i16: a pair of products is at most `2 * 255 * max_abs`
/// (activations made unsigned). 0 for 8-bit codes (the exact kernel), 1 for 7-bit ones
/// ([`tile`] as before), 4 for 5-bit, 8 for 4-bit, 16 for 3-bit (capped at 64).
pub fn depth(max_abs: u32) -> u8 {
    (32767 / (510 * max_abs.max(1))).min(64) as u8
}

/// [`super::int8::tile`] for rows whose codes all lie in `-64..=63`, pairs of products added in
/// i16 over `depth` groups ([`depth`] of the rows' largest code, at least 1) before they widen
/// to i32; `a_sums[r]` must be `sum_i a[r * lda + i]` over `i < k`. Falls back to the exact
/// kernel where there is no faster one (the sums are then unused).
pub fn tile(
    k: usize,
    a: &[i8],
    lda: usize,
    a_sums: &[i32; MR],
    b: &[i8],
    depth: u8,
    out: &mut [i32; MR * NR],
) {
    // The chosen integer path, not the CPU's flags, decides: `FQ_MAX_ISA` may have lowered it.
    #[cfg(target_arch = "x86_64")]
    if super::int8::int8_path() == super::int8::Int8Path::Avx2 {
        super::int8::check_extents(k, a, lda, b);
        // SAFETY: `int8_path` chose AVX2, so the CPU has it; the extents were checked; the
        // caller's `depth` bounds the i16 sums.
        unsafe {
            if depth >= 2 {
                tile_deferred(k, a.as_ptr(), lda, a_sums, b.as_ptr(), depth.into(), out)
            } else {
                tile_maddubs(k, a.as_ptr(), lda, a_sums, b.as_ptr(), out)
            }
        };
        return;
    }
    let _ = (a_sums, depth);
    tile_exact(k, a, lda, b, out);
}

/// # Safety
/// AVX2 must be available; `a` must hold `MR` rows of `k` codes in `-64..=63`, `lda` apart, `b`
/// `k * NR` codes packed `[k / 4][NR][4]`, and `k` must be a multiple of 4.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_maddubs(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; MR],
    b: *const i8,
    out: &mut [i32; MR * NR],
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees the CPU feature and the extents (see `# Safety`): group
    // `g < k / 4` reads `b[g * 64..g * 64 + 64]` and `a[r * lda + 4g..+4]` for `r < MR`; the
    // stores write `out[r * NR..r * NR + 16]`.
    unsafe {
        let flip = _mm256_set1_epi8(i8::MIN);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); 2]; MR];
        for g in 0..k / KGROUP {
            let bp = b.add(g * NR * KGROUP);
            // Columns 0..8 and 8..16, 4 codes each, as x + 128.
            let b0 = _mm256_xor_si256(_mm256_loadu_si256(bp.cast()), flip);
            let b1 = _mm256_xor_si256(_mm256_loadu_si256(bp.add(32).cast()), flip);
            for (r, row) in acc.iter_mut().enumerate() {
                let w =
                    _mm256_set1_epi32(a.add(r * lda + g * KGROUP).cast::<i32>().read_unaligned());
                let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(b0, w), ones);
                let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(b1, w), ones);
                row[0] = _mm256_add_epi32(row[0], p0);
                row[1] = _mm256_add_epi32(row[1], p1);
            }
        }
        let o = out.as_mut_ptr();
        for (r, row) in acc.iter().enumerate() {
            // Take back the + 128 of every activation: 128 * sum_k a[r][k], wrapping like the sums.
            let fix = _mm256_set1_epi32(a_sums[r].wrapping_mul(128));
            _mm256_storeu_si256(o.add(r * NR).cast(), _mm256_sub_epi32(row[0], fix));
            _mm256_storeu_si256(o.add(r * NR + 8).cast(), _mm256_sub_epi32(row[1], fix));
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
/// `-max_abs..=max_abs` for a `max_abs` whose [`depth`] is at least `depth`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_deferred(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; MR],
    b: *const i8,
    depth: usize,
    out: &mut [i32; MR * NR],
) {
    use std::arch::x86_64::*;
    const HALF: usize = MR / 2;
    // SAFETY: as in `tile_maddubs`.
    unsafe {
        let flip = _mm256_set1_epi8(i8::MIN);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); 2]; MR];
        let groups = k / KGROUP;
        // Three rows at a time: their 6 i16 sums, the two columns' registers, the flip, a
        // broadcast and a product fit AVX2's 16 registers (all six rows' 12 spilled one sum to
        // the stack and back every group, a store-to-load on its chain).
        for (h, half) in acc.chunks_exact_mut(HALF).enumerate() {
            let a = a.add(h * HALF * lda);
            let mut g0 = 0;
            while g0 < groups {
                let end = (g0 + depth).min(groups);
                let mut pairs = [[_mm256_setzero_si256(); 2]; HALF];
                for g in g0..end {
                    let bp = b.add(g * NR * KGROUP);
                    let b0 = _mm256_xor_si256(_mm256_loadu_si256(bp.cast()), flip);
                    let b1 = _mm256_xor_si256(_mm256_loadu_si256(bp.add(32).cast()), flip);
                    for (r, row) in pairs.iter_mut().enumerate() {
                        let w = _mm256_set1_epi32(
                            a.add(r * lda + g * KGROUP).cast::<i32>().read_unaligned(),
                        );
                        row[0] = _mm256_add_epi16(row[0], _mm256_maddubs_epi16(b0, w));
                        row[1] = _mm256_add_epi16(row[1], _mm256_maddubs_epi16(b1, w));
                    }
                }
                for (row, p) in half.iter_mut().zip(&pairs) {
                    row[0] = _mm256_add_epi32(row[0], _mm256_madd_epi16(p[0], ones));
                    row[1] = _mm256_add_epi32(row[1], _mm256_madd_epi16(p[1], ones));
                }
                g0 = end;
            }
        }
        let o = out.as_mut_ptr();
        for (r, row) in acc.iter().enumerate() {
            let fix = _mm256_set1_epi32(a_sums[r].wrapping_mul(128));
            _mm256_storeu_si256(o.add(r * NR).cast(), _mm256_sub_epi32(row[0], fix));
            _mm256_storeu_si256(o.add(r * NR + 8).cast(), _mm256_sub_epi32(row[1], fix));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::int8::{pack_b, tile_portable};
    use super::*;

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
            tile(k, &a, k, &sums, &b, 1, &mut got);
            tile_portable(k, &a, k, &b, &mut want);
            assert_eq!(got, want, "case {case}, k {k}");
        }
    }

    /// The i16 pairs added over [`depth`] groups give the portable loop's sums bit for bit at
    /// every code width's extremes (all `-max_abs`, all `max_abs - 1`, the largest activations,
    /// the sums nearest to leaving i16) and on pseudo-random codes, for `k` with a partial last
    /// run of groups; one group more than [`depth`] would leave i16 (checked on the bound).
    #[test]
    fn deferred_pairs_match_the_portable_loop() {
        assert_eq!(
            [1, 2, 4, 8, 16, 32, 64, 128].map(depth),
            [64, 32, 16, 8, 4, 2, 1, 0]
        );
        let mut s = 9u64;
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as u32
        };
        for max_abs in [1u32, 2, 4, 8, 16, 32] {
            let d = depth(max_abs);
            assert!(2 * 255 * max_abs * u32::from(d) <= 32767);
            assert!(2 * 255 * max_abs * (u32::from(d) + 1) > 32767 || d == 64);
            for (case, k) in [(0, 4096usize), (1, 4096), (2, 1004), (3, 68)] {
                let a: Vec<i8> = (0..MR * k)
                    .map(|_| match case {
                        0 => -(max_abs as i32) as i8,
                        1 => (max_abs - 1) as i8,
                        _ => ((next() % (2 * max_abs)) as i32 - max_abs as i32) as i8,
                    })
                    .collect();
                let cols: Vec<i8> = (0..k * NR)
                    .map(|j| match case {
                        0 | 1 => 127,
                        _ if j % 5 == 0 => -127,
                        _ => (next() % 255) as i32 as i8,
                    })
                    .collect();
                let b = pack_b(k, &cols);
                let mut sums = [0i32; MR];
                for (r, s) in sums.iter_mut().enumerate() {
                    *s = a[r * k..(r + 1) * k].iter().map(|&v| i32::from(v)).sum();
                }
                let (mut got, mut want) = ([0i32; MR * NR], [0i32; MR * NR]);
                tile(k, &a, k, &sums, &b, d, &mut got);
                tile_portable(k, &a, k, &b, &mut want);
                assert_eq!(got, want, "max |code| {max_abs}, case {case}, k {k}");
            }
        }
    }
}
