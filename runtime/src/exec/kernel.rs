//! The GEMM micro-kernel: an `MR x NR` tile of `A * B` from packed panels, in registers.
//!
//! `A` is `MR` rows of `k` weights, row `r` at `a[r * lda..]` (rows as the unpacker writes them,
//! so packing `A` is no more than unpacking it), `B` is packed `[k][NR]`. On x86-64 with AVX2 and
//! FMA (checked at run time) the tile lives in twelve 256-bit registers, the classic 6x16 shape
//! that keeps both FMA pipes busy; elsewhere a portable loop that the compiler vectorises.

/// Rows of the tile (output channels).
pub const MR: usize = 6;
/// Columns of the tile (output pixels).
pub const NR: usize = 16;

/// `tile[r * NR + c] = sum_i a[r * lda + i] * b[i * NR + c]` for `i < k`.
pub fn tile(k: usize, a: &[f32], lda: usize, b: &[f32], out: &mut [f32; MR * NR]) {
    assert!(
        lda >= k && a.len() >= (MR - 1) * lda + k && b.len() >= k * NR,
        "micro-kernel panels too short"
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the features are present and the panel lengths were checked above.
        unsafe { tile_avx2(k, a.as_ptr(), lda, b.as_ptr(), out) };
        return;
    }
    tile_portable(k, a, lda, b, out);
}

fn tile_portable(k: usize, a: &[f32], lda: usize, b: &[f32], out: &mut [f32; MR * NR]) {
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

/// # Safety
/// AVX2 and FMA must be available; `a` must hold `MR` rows of `k` floats `lda` apart and `b`
/// `k * NR` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(k: usize, a: *const f32, lda: usize, b: *const f32, out: &mut [f32; MR * NR]) {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees the CPU features and the extents (see `# Safety`); every
    // pointer offset below stays inside `a`, `b` and `out`.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for i in 0..k {
            let bp = b.add(i * NR);
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            let ap = a.add(i);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*ap.add(r * lda));
                row[0] = _mm256_fmadd_ps(av, b0, row[0]);
                row[1] = _mm256_fmadd_ps(av, b1, row[1]);
            }
        }
        let o = out.as_mut_ptr();
        for (r, row) in acc.iter().enumerate() {
            _mm256_storeu_ps(o.add(r * NR), row[0]);
            _mm256_storeu_ps(o.add(r * NR + 8), row[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_portable_loop() {
        let (k, lda) = (37, 40);
        let a: Vec<f32> = (0..lda * MR).map(|i| (i % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..k * NR).map(|i| (i % 7) as f32 * 0.5 - 1.0).collect();
        let (mut x, mut y) = ([0f32; MR * NR], [0f32; MR * NR]);
        tile(k, &a, lda, &b, &mut x);
        tile_portable(k, &a, lda, &b, &mut y);
        // Small integers and halves: exact in f32 whatever the summation order.
        assert_eq!(x, y);
        let r = 5;
        let want: f32 = (0..k).map(|i| a[r * lda + i] * b[i * NR + 3]).sum();
        assert_eq!(y[r * NR + 3], want);
    }
}
