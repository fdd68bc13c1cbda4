//! aarch64 integer micro-kernels over the layout of `int8.rs` (`B` packed `[k / 4][NR][4]`).
//!
//! - `tile_sdot` (dot-product extension): the 6x16 tile in 24 q-register accumulators; per group
//!   of 4 `k`, 4 loads of `B` (16 columns x 4 bytes) and, per row, one broadcast load of the
//!   row's 4 weight bytes and 4 `SDOT`s (64 multiply-adds). Written with `asm!` because the
//!   `vdotq_s32` intrinsic is still unstable (`stdarch_neon_dotprod`) on our stable toolchain.
//! - `tile_smlal` (plain NEON, for cores without the extension): one row at a time, 16
//!   accumulators (one per column, holding the 4 partial sums of `k mod 4`); `B` and the row's
//!   4 weights are widened to i16 (`SXTL`) and multiplied-accumulated long into i32 (`SMLAL`,
//!   `SMLAL2`), exact for every i8 pair; the 4 partial sums are added pairwise (`ADDP`) at the end.
//!
//! Integer sums are associative (modulo 2^32), so both equal the portable loop bit for bit.

use std::arch::aarch64::*;

use super::int8::{KGROUP, MR, NR};

/// The row's 4 weight codes of group `g`, as one 32-bit value (any alignment).
///
/// # Safety
/// `p` must be valid for reading 4 bytes.
#[inline(always)]
unsafe fn load4(p: *const i8) -> i32 {
    // SAFETY: the caller guarantees 4 readable bytes; `read_unaligned` needs no alignment.
    unsafe { p.cast::<i32>().read_unaligned() }
}

/// # Safety
/// The CPU must have the dot-product extension; `a` must hold `MR` rows of `k` codes `lda` apart,
/// `b` `k * NR` codes packed `[k / 4][NR][4]`, and `k` must be a multiple of 4.
#[target_feature(enable = "dotprod")]
pub unsafe fn tile_sdot(
    k: usize,
    a: *const i8,
    lda: usize,
    b: *const i8,
    out: &mut [i32; MR * NR],
) {
    // SAFETY: the caller guarantees the CPU feature and the extents (see `# Safety`): group
    // `g < k / 4` reads `b[g * 64..g * 64 + 64]` and `a[r * lda + 4g..+4]` for `r < MR`, and the
    // stores write `out[r * NR + 4j..+4]` for `j < 4`. `SDOT` only reads and writes registers.
    unsafe {
        let mut acc = [[vdupq_n_s32(0); 4]; MR];
        for g in 0..k / KGROUP {
            let bp = b.add(g * NR * KGROUP);
            let b0 = vld1q_s8(bp);
            let b1 = vld1q_s8(bp.add(16));
            let b2 = vld1q_s8(bp.add(32));
            let b3 = vld1q_s8(bp.add(48));
            for (r, row) in acc.iter_mut().enumerate() {
                let w = vreinterpretq_s8_s32(vdupq_n_s32(load4(a.add(r * lda + g * KGROUP))));
                std::arch::asm!(
                    "sdot {c0:v}.4s, {b0:v}.16b, {w:v}.16b",
                    "sdot {c1:v}.4s, {b1:v}.16b, {w:v}.16b",
                    "sdot {c2:v}.4s, {b2:v}.16b, {w:v}.16b",
                    "sdot {c3:v}.4s, {b3:v}.16b, {w:v}.16b",
                    c0 = inout(vreg) row[0],
                    c1 = inout(vreg) row[1],
                    c2 = inout(vreg) row[2],
                    c3 = inout(vreg) row[3],
                    b0 = in(vreg) b0,
                    b1 = in(vreg) b1,
                    b2 = in(vreg) b2,
                    b3 = in(vreg) b3,
                    w = in(vreg) w,
                    options(pure, nomem, nostack, preserves_flags),
                );
            }
        }
        let o = out.as_mut_ptr();
        for (r, row) in acc.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                vst1q_s32(o.add(r * NR + 4 * j), *v);
            }
        }
    }
}

/// # Safety
/// `a` must hold `MR` rows of `k` codes `lda` apart, `b` `k * NR` codes packed `[k / 4][NR][4]`,
/// and `k` must be a multiple of 4 (NEON is baseline on aarch64).
pub unsafe fn tile_smlal(
    k: usize,
    a: *const i8,
    lda: usize,
    b: *const i8,
    out: &mut [i32; MR * NR],
) {
    // SAFETY: the caller guarantees the extents (see `# Safety`): for row `r < MR` and group
    // `g < k / 4` the loads read `a[r * lda + 4g..+4]` and `b[g * 64..g * 64 + 64]`, and the
    // stores write `out[r * NR + 4j..+4]` for `j < 4`.
    unsafe {
        let o = out.as_mut_ptr();
        for r in 0..MR {
            // acc[c] lane l: the sum over groups of a[4g + l] * B[4g + l][c].
            let mut acc = [vdupq_n_s32(0); NR];
            for g in 0..k / KGROUP {
                let w = vreinterpret_s8_s32(vdup_n_s32(load4(a.add(r * lda + g * KGROUP))));
                // The row's 4 codes twice, as i16: [w0 w1 w2 w3 w0 w1 w2 w3].
                let w16 = vmovl_s8(w);
                let w_lo = vget_low_s16(w16);
                let bp = b.add(g * NR * KGROUP);
                for (j, quad) in acc.chunks_exact_mut(4).enumerate() {
                    // Columns 4j..4j+4, 4 codes each.
                    let bq = vld1q_s8(bp.add(16 * j));
                    let lo = vmovl_s8(vget_low_s8(bq));
                    let hi = vmovl_high_s8(bq);
                    quad[0] = vmlal_s16(quad[0], vget_low_s16(lo), w_lo);
                    quad[1] = vmlal_high_s16(quad[1], lo, w16);
                    quad[2] = vmlal_s16(quad[2], vget_low_s16(hi), w_lo);
                    quad[3] = vmlal_high_s16(quad[3], hi, w16);
                }
            }
            for (j, quad) in acc.chunks_exact(4).enumerate() {
                let p01 = vpaddq_s32(quad[0], quad[1]);
                let p23 = vpaddq_s32(quad[2], quad[3]);
                vst1q_s32(o.add(r * NR + 4 * j), vpaddq_s32(p01, p23));
            }
        }
    }
}
