//! The integer tile on x86-64 CPUs without AVX2 but with SSSE3: the small boxes clinics buy
//! (Intel's Celeron and Pentium Silver of the Gemini Lake and Jasper Lake lines have SSE4.2 and
//! no AVX at all), and every x86-64 CPU since 2006 but AMD's K10.
//!
//! The AVX2 narrow kernel's arithmetic ([`super::int8_narrow`]) on 128-bit registers:
//! `PMADDUBSW` multiplies the activations made unsigned (`x + 128`, or as they are when they
//! are all `>= 0`) by weight codes of at most 7 bits, whose pair sums cannot saturate; the pairs
//! add up in i16 (`PADDW`) over `depth` groups of 4 `k`, as far as the rows' widest code allows,
//! before `PMADDWD` by ones widens them to i32; the `+ 128` is taken back with the rows' code
//! sums. The same integers as the portable loop, bit for bit. Rows it cannot take (8-bit codes
//! under activations that may be negative) go to [`tile_exact`], SSE2's widened `PMADDWD`.
//!
//! Why: without it such a CPU ran the integer path on the portable loop, which the compiler
//! cannot turn into these instructions: on the Zen 3 of stop 70 under `FQ_MAX_ISA=portable`,
//! ResNet18's integer path took 356 ms against 57 ms for its f32 path (SSE2 floats), 74% of it
//! in that loop, so a model with activation scales, which the runtime takes the integer path
//! for, ran six times slower than without them.
//!
//! Registers: a group's 16 columns are four registers of `B`; two rows at a time keep their
//! eight i16 sums, the four of `B`, the broadcast codes, a product and the flip in 15 of the 16;
//! the i32 sums of all six rows wait on the stack (touched once per `depth` groups).

use std::arch::x86_64::*;

use super::int8::{KGROUP, MR, NR};

/// Columns per register: 4 (each 4 codes of `k`).
const COLS: usize = 4;
/// Registers per group of `B`: `NR / COLS`.
const REGS: usize = NR / COLS;
/// Rows at a time.
const ROWS: usize = 2;

/// `out[r * NR + c] = sum_i a[r * lda + i] * b_ic` ([`super::int8::tile`]), the pair sums
/// added in i16 over `depth` groups; activation codes `unsigned` (all `>= 0`) taken as they
/// are, the others made unsigned (`x + 128`, the `128 * a_sums[r]` taken back).
///
/// # Safety
/// SSSE3 must be available; `a` must hold `MR` rows of `k` codes `lda` apart, whose largest
/// magnitude has a [`super::int8_narrow::depth`] (for `unsigned` activations or not) of at
/// least `depth >= 1`; `b` `k * NR` codes packed `[k / 4][NR][4]`; `k` a multiple of 4;
/// `a_sums[r]` the wrapping sum of row `r`'s codes.
pub unsafe fn tile(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; MR],
    b: *const i8,
    (depth, unsigned): (usize, bool),
    out: &mut [i32; MR * NR],
) {
    // SAFETY: the caller's guarantees.
    unsafe {
        if unsigned {
            tile_flip::<false>(k, a, lda, a_sums, b, depth, out)
        } else {
            tile_flip::<true>(k, a, lda, a_sums, b, depth, out)
        }
    }
}

/// [`tile`] with the activations made unsigned (`FLIP`) or taken as they are.
///
/// # Safety
/// As [`tile`], with `unsigned` = `!FLIP`.
#[target_feature(enable = "ssse3")]
unsafe fn tile_flip<const FLIP: bool>(
    k: usize,
    a: *const i8,
    lda: usize,
    a_sums: &[i32; MR],
    b: *const i8,
    depth: usize,
    out: &mut [i32; MR * NR],
) {
    debug_assert!(depth >= 1);
    let flip = _mm_set1_epi8(i8::MIN);
    let ones = _mm_set1_epi16(1);
    let groups = k / KGROUP;
    let mut acc = [[_mm_setzero_si128(); REGS]; MR];
    // SAFETY: the caller guarantees the CPU feature and the extents: group `g < k / 4` reads
    // `b[g * 64..g * 64 + 64]` and `a[r * lda + 4g..+4]` for `r < MR`.
    unsafe {
        for (h, rows) in acc.chunks_exact_mut(ROWS).enumerate() {
            let a = a.add(h * ROWS * lda);
            let mut g0 = 0;
            while g0 < groups {
                let end = (g0 + depth).min(groups);
                let mut pairs = [[_mm_setzero_si128(); REGS]; ROWS];
                for g in g0..end {
                    let bp = b.add(g * NR * KGROUP);
                    let bs: [__m128i; REGS] = std::array::from_fn(|q| {
                        let v = _mm_loadu_si128(bp.add(q * 16).cast());
                        if FLIP {
                            _mm_xor_si128(v, flip)
                        } else {
                            v
                        }
                    });
                    for (r, row) in pairs.iter_mut().enumerate() {
                        let w = _mm_set1_epi32(
                            a.add(r * lda + g * KGROUP).cast::<i32>().read_unaligned(),
                        );
                        for (p, bq) in row.iter_mut().zip(bs) {
                            *p = _mm_add_epi16(*p, _mm_maddubs_epi16(bq, w));
                        }
                    }
                }
                for (row, p) in rows.iter_mut().zip(&pairs) {
                    for (s, p) in row.iter_mut().zip(p) {
                        *s = _mm_add_epi32(*s, _mm_madd_epi16(*p, ones));
                    }
                }
                g0 = end;
            }
        }
        for (r, row) in acc.iter().enumerate() {
            // Take back the + 128 of every activation: 128 * sum_k a[r][k], wrapping like the sums.
            let fix = _mm_set1_epi32(if FLIP { a_sums[r].wrapping_mul(128) } else { 0 });
            for (q, v) in row.iter().enumerate() {
                let o = out.as_mut_ptr().add(r * NR + q * COLS);
                _mm_storeu_si128(o.cast(), _mm_sub_epi32(*v, fix));
            }
        }
    }
}

/// `out[r * NR + c] = sum_i a[r * lda + i] * b_ic` exactly for every pair of i8 codes
/// ([`super::int8::tile`]), in SSE2 alone: the kernel of this path for the rows [`tile`] cannot
/// take (8-bit codes under activations that may be negative, `depth` 0). Each 4 columns' codes
/// sign-extended to i16 (`PUNPCKLBW` with themselves, then `PSRAW` by 8), multiplied by the
/// row's 4 codes repeated in both halves with `PMADDWD`, which adds the products in pairs into
/// i32 (`2 x 128 x 128` fits easily): each column collects two partial sums, added at the end.
/// Two rows and 8 columns at a time: 8 sums, 4 registers of `B` and the row's codes.
///
/// # Safety
/// `a` must hold `MR` rows of `k` codes `lda` apart, `b` `k * NR` codes packed `[k / 4][NR][4]`,
/// and `k` must be a multiple of 4 (SSE2 is part of x86-64's baseline).
pub unsafe fn tile_exact(
    k: usize,
    a: *const i8,
    lda: usize,
    b: *const i8,
    out: &mut [i32; MR * NR],
) {
    // SAFETY: group `g < k / 4` reads `b[g * 64 + 32 h..+32]` for the half `h < 2` and
    // `a[r * lda + 4g..+4]` for `r < MR`: the caller's extents.
    unsafe {
        for h in 0..2 {
            for r0 in (0..MR).step_by(ROWS) {
                // acc[r][q]: row r0 + r, columns h * 8 + 2q and + 1, two partial sums each.
                let mut acc = [[_mm_setzero_si128(); 4]; ROWS];
                for g in 0..k / KGROUP {
                    let bp = b.add(g * NR * KGROUP + h * 32);
                    let [e0, e1] = widen(_mm_loadu_si128(bp.cast()));
                    let [e2, e3] = widen(_mm_loadu_si128(bp.add(16).cast()));
                    for (r, row) in acc.iter_mut().enumerate() {
                        let w4 = a
                            .add((r0 + r) * lda + g * KGROUP)
                            .cast::<i32>()
                            .read_unaligned();
                        // The 4 codes as i16 in the low half, repeated in the high one.
                        let w = widen(_mm_cvtsi32_si128(w4))[0];
                        let w = _mm_unpacklo_epi64(w, w);
                        for (s, e) in row.iter_mut().zip([e0, e1, e2, e3]) {
                            *s = _mm_add_epi32(*s, _mm_madd_epi16(e, w));
                        }
                    }
                }
                for (r, row) in acc.iter().enumerate() {
                    for (q, v) in row.iter().enumerate() {
                        let mut lanes = [0i32; 4];
                        _mm_storeu_si128(lanes.as_mut_ptr().cast(), *v);
                        let c = (r0 + r) * NR + h * 8 + 2 * q;
                        out[c] = lanes[0].wrapping_add(lanes[1]);
                        out[c + 1] = lanes[2].wrapping_add(lanes[3]);
                    }
                }
            }
        }
    }
}

/// Sixteen codes as two registers of eight i16 (the low and the high 8 bytes), each byte
/// doubled into a 16-bit lane and shifted back arithmetically.
#[inline]
fn widen(v: __m128i) -> [__m128i; 2] {
    // SAFETY: SSE2 is part of x86-64's baseline.
    unsafe {
        [
            _mm_srai_epi16::<8>(_mm_unpacklo_epi8(v, v)),
            _mm_srai_epi16::<8>(_mm_unpackhi_epi8(v, v)),
        ]
    }
}
