//! WebAssembly SIMD128 integer micro-kernel over the layout of `int8.rs` (`B` packed
//! `[k / 4][NR][4]`), compiled when the build enables `simd128` (as `wasm.rs`).
//!
//! SIMD128 has no 8-bit dot product, but `i32x4.dot_i16x8_s` (x86's `PMADDWD`): per group of 4
//! `k`, 16 bytes of `B` (4 columns x 4 codes) are widened to two `i16x8` and multiplied by the
//! row's 4 codes, widened and repeated, adding products in pairs into i32 (`2 x 128 x 128` fits).
//! Each column collects two partial sums, added at the end. Exact for every pair of i8 codes,
//! so equal to the portable loop bit for bit.
//!
//! Registers (16 on an x86-64 host): one column quad at a time, 6 rows x 2 accumulators, the two
//! widened `B` halves and the row's weights: 15.

use super::int8::{KGROUP, MR, NR};
use core::arch::wasm32::*;

/// # Safety
/// `a` must hold `MR` rows of `k` codes `lda` apart, `b` `k * NR` codes packed `[k / 4][NR][4]`,
/// and `k` must be a multiple of 4 (the caller, `int8::tile_on`, checks the extents).
pub unsafe fn tile_simd128(
    k: usize,
    a: *const i8,
    lda: usize,
    b: *const i8,
    out: &mut [i32; MR * NR],
) {
    // SAFETY: group `g < k / 4` reads `b[g * 64 + 16q..+16]` for the quad `q < 4` and
    // `a[r * lda + 4g..+4]` for `r < MR`; loads have no alignment requirement; the stores go to
    // the local `lanes` array.
    unsafe {
        for q in 0..NR / 4 {
            let mut acc = [[i32x4_splat(0); 2]; MR];
            for g in 0..k / KGROUP {
                let bq = v128_load(b.add(g * NR * KGROUP + 16 * q) as *const v128);
                let (lo, hi) = (i16x8_extend_low_i8x16(bq), i16x8_extend_high_i8x16(bq));
                for (r, row) in acc.iter_mut().enumerate() {
                    // The row's 4 codes in every 32-bit lane, widened: [w0 w1 w2 w3 w0 w1 w2 w3].
                    let w4 = v128_load32_splat(a.add(r * lda + g * KGROUP) as *const u32);
                    let w = i16x8_extend_low_i8x16(w4);
                    row[0] = i32x4_add(row[0], i32x4_dot_i16x8(lo, w));
                    row[1] = i32x4_add(row[1], i32x4_dot_i16x8(hi, w));
                }
            }
            for (r, row) in acc.iter().enumerate() {
                for (h, v) in row.iter().enumerate() {
                    // Lanes: [c p0, c p1, c+1 p0, c+1 p1] for columns c = 4q + 2h, c + 1.
                    let mut lanes = [0i32; 4];
                    v128_store(lanes.as_mut_ptr() as *mut v128, *v);
                    let c = r * NR + 4 * q + 2 * h;
                    out[c] = lanes[0].wrapping_add(lanes[1]);
                    out[c + 1] = lanes[2].wrapping_add(lanes[3]);
                }
            }
        }
    }
}
