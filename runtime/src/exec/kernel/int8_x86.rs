//! x86-64 integer micro-kernel over the layout of `int8.rs` (`B` packed `[k / 4][NR][4]`).
//!
//! `tile_avx2` (AVX2): exact for every pair of i8 codes. Per group of 4 `k`, 16 bytes of `B` (4
//! columns x 4 codes) are sign-extended to sixteen i16 (`VPMOVSXBW`) and multiplied by the row's
//! 4 codes, widened and repeated in every 64-bit lane, with `VPMADDWD`, which adds the products in
//! pairs into i32 (`2 x 128 x 128` fits easily). Each column thus collects two partial sums (`k`
//! mod 4 in {0, 1} and {2, 3}), added once at the end.
//!
//! Why not `VPMADDUBSW`, the usual AVX2 int8 instruction: it multiplies u8 by s8 and *saturates*
//! the i16 pair sums, so `2 x 255 x -128` is clipped, and 8-bit channels would be wrong; with
//! 2–7-bit weight codes it is exact, which is issue 16's faster variant to add next to this one.
//! CPUs with VNNI (`VPDPBUSD`) run `int8_vnni.rs` instead; this is the kernel of AVX2-only ones.
//!
//! Registers: the 6x16 tile needs 24 i32x8 accumulators at two per column quad, more than AVX2's
//! 16, so the tile is computed as two 6x8 halves (12 accumulators, 2 `B` registers and the
//! broadcast weights each), reading the weight rows twice.
//!
//! Integer sums are associative (modulo 2^32), so the result equals the portable loop bit for bit.

use std::arch::x86_64::*;

use super::int8::{KGROUP, MR, NR};

/// # Safety
/// AVX2 must be available; `a` must hold `MR` rows of `k` codes `lda` apart, `b` `k * NR` codes
/// packed `[k / 4][NR][4]`, and `k` must be a multiple of 4.
#[target_feature(enable = "avx2")]
pub unsafe fn tile_avx2(
    k: usize,
    a: *const i8,
    lda: usize,
    b: *const i8,
    out: &mut [i32; MR * NR],
) {
    // SAFETY: the caller guarantees the CPU feature and the extents (see `# Safety`): group
    // `g < k / 4` reads `a[r * lda + 4g..+4]` for `r < MR` and `b[g * 64 + 32h..+32]` for the
    // half `h < 2`; the stores write the local `pairs` array.
    unsafe {
        // pairs[r][c][p]: row r, column c, partial sum p (k mod 4 in {2p, 2p + 1}).
        let mut pairs = [[[0i32; 2]; NR]; MR];
        for half in 0..2 {
            let mut acc = [[_mm256_setzero_si256(); 2]; MR];
            for g in 0..k / KGROUP {
                let bp = b.add(g * NR * KGROUP + half * 32);
                let b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(bp.cast()));
                let b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(bp.add(16).cast()));
                for (r, row) in acc.iter_mut().enumerate() {
                    let w4 = a.add(r * lda + g * KGROUP).cast::<i32>().read_unaligned();
                    // The 4 codes as i16 in the low 64 bits, then in every 64-bit lane.
                    let w = _mm256_broadcastq_epi64(_mm_cvtepi8_epi16(_mm_cvtsi32_si128(w4)));
                    row[0] = _mm256_add_epi32(row[0], _mm256_madd_epi16(b0, w));
                    row[1] = _mm256_add_epi32(row[1], _mm256_madd_epi16(b1, w));
                }
            }
            for (r, row) in acc.iter().enumerate() {
                for (q, v) in row.iter().enumerate() {
                    // Lanes: columns 4q'..4q'+4 of this half, two partial sums each.
                    let mut lanes = [0i32; 8];
                    _mm256_storeu_si256(lanes.as_mut_ptr().cast(), *v);
                    for (c, pair) in lanes.chunks_exact(2).enumerate() {
                        pairs[r][half * 8 + q * 4 + c] = [pair[0], pair[1]];
                    }
                }
            }
        }
        for (dst, row) in out.chunks_exact_mut(NR).zip(&pairs) {
            for (d, p) in dst.iter_mut().zip(row) {
                *d = p[0].wrapping_add(p[1]);
            }
        }
    }
}
