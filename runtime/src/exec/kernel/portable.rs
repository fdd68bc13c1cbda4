//! The portable micro-kernel: plain loops the compiler vectorises for whatever target it builds.
//! It is the reference every ISA-specific kernel is tested against, and the path of any CPU
//! without one.

use super::{MR, NR};

/// Columns per pass of [`tile`].
const HALF: usize = NR / 2;

/// `out[r * NR + c] = sum_i a[r * lda + i] * b[i * NR + c]` for `i < k` (extents checked by the caller).
///
/// In two passes of half the columns: all 16 columns of 6 rows are 24 SSE registers of sums, more
/// than x86-64's 16, and the compiler kept them on the stack, a store and a reload per
/// multiply-add; half of them (12) stay in registers. Each sum still adds its products in
/// order of `i`, so the floats are the same.
pub fn tile(k: usize, a: &[f32], lda: usize, b: &[f32], out: &mut [f32; MR * NR]) {
    for h in 0..2 {
        let mut acc = [[0f32; HALF]; MR];
        for (i, bk) in b.chunks_exact(NR).take(k).enumerate() {
            let bk: &[f32; HALF] = bk[h * HALF..][..HALF].try_into().expect("half a row of B");
            for (r, row) in acc.iter_mut().enumerate() {
                let av = a[r * lda + i];
                for (c, &bv) in row.iter_mut().zip(bk) {
                    *c += av * bv;
                }
            }
        }
        for (dst, row) in out.chunks_exact_mut(NR).zip(&acc) {
            dst[h * HALF..][..HALF].copy_from_slice(row);
        }
    }
}
