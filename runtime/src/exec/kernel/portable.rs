//! The portable micro-kernel: plain loops the compiler vectorises for whatever target it builds.
//! It is the reference every ISA-specific kernel is tested against, and the path of any CPU
//! without one.

use super::{MR, NR};

/// `out[r * NR + c] = sum_i a[r * lda + i] * b[i * NR + c]` for `i < k` (extents checked by the caller).
pub fn tile(k: usize, a: &[f32], lda: usize, b: &[f32], out: &mut [f32; MR * NR]) {
    let mut acc = [[0f32; NR]; MR];
    for (i, bk) in b.chunks_exact(NR).take(k).enumerate() {
        for (r, row) in acc.iter_mut().enumerate() {
            let av = a[r * lda + i];
            for (c, &bv) in row.iter_mut().zip(bk) {
                *c += av * bv;
            }
        }
    }
    for (dst, row) in out.chunks_exact_mut(NR).zip(&acc) {
        dst.copy_from_slice(row);
    }
}
