//! x86-64 micro-kernels. AVX2+FMA: the tile lives in twelve 256-bit registers, the classic 6x16
//! shape that keeps both FMA pipes busy.

use super::{MR, NR};

/// # Safety
/// AVX2 and FMA must be available; `a` must hold `MR` rows of `k` floats `lda` apart and `b`
/// `k * NR` floats.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tile_avx2(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    out: &mut [f32; MR * NR],
) {
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
