//! The portable integer micro-kernel: the reference every integer kernel is tested against,
//! written straight from the packed layout (`B` as `[k / 4][NR][4]`, see `int8.rs`).

use super::int8::{KGROUP, MR, NR};

/// `out[r * NR + c] = sum_i a[r * lda + i] * B[i][c]`, wrapping like the hardware (extents and
/// `k % 4 == 0` checked by the caller).
pub fn tile(k: usize, a: &[i8], lda: usize, b: &[i8], out: &mut [i32; MR * NR]) {
    let mut acc = [[0i32; NR]; MR];
    for (g, group) in b.chunks_exact(NR * KGROUP).take(k / KGROUP).enumerate() {
        for (r, row) in acc.iter_mut().enumerate() {
            let w = &a[r * lda + g * KGROUP..r * lda + (g + 1) * KGROUP];
            for (sum, col) in row.iter_mut().zip(group.chunks_exact(KGROUP)) {
                let dot: i32 = w
                    .iter()
                    .zip(col)
                    .map(|(&x, &y)| i32::from(x) * i32::from(y))
                    .sum();
                *sum = sum.wrapping_add(dot);
            }
        }
    }
    for (dst, row) in out.chunks_exact_mut(NR).zip(&acc) {
        dst.copy_from_slice(row);
    }
}
