//! aarch64 f32 micro-kernel. NEON (Advanced SIMD) is part of the aarch64 baseline, so this path
//! needs no run-time check; it is chosen on every aarch64 CPU.
//!
//! The 6x16 tile lives in 24 of the 32 q registers (6 rows x 4 vectors of 4 floats); each step
//! of `k` loads the 4 vectors of `B`'s row and multiplies them by one weight per tile row with
//! `FMLA (by element)`, 24 FMAs for 4 loads plus 6 scalar loads. That keeps both 128-bit FMA pipes
//! of a Cortex-A76-class core busy (see bench/results.md, "ARM (estimate)"). Every FMA is fused
//! and the sum runs over `k` in order, as in the AVX2+FMA kernel.

use super::{MR, NR};

/// # Safety
/// `a` must hold `MR` rows of `k` floats `lda` apart and `b` `k * NR` floats.
pub unsafe fn tile_neon(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    out: &mut [f32; MR * NR],
) {
    use std::arch::aarch64::*;
    // SAFETY: NEON is baseline on aarch64; the caller guarantees the extents (see `# Safety`), and
    // every pointer offset below stays inside `a` (row `r < MR`, column `i < k`), `b` (`i * NR + 16
    // <= k * NR`) and `out` (`r * NR + 16 <= MR * NR`).
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); 4]; MR];
        for i in 0..k {
            let bp = b.add(i * NR);
            let bv = [
                vld1q_f32(bp),
                vld1q_f32(bp.add(4)),
                vld1q_f32(bp.add(8)),
                vld1q_f32(bp.add(12)),
            ];
            let ap = a.add(i);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = *ap.add(r * lda);
                for (c, v) in row.iter_mut().zip(&bv) {
                    *c = vfmaq_n_f32(*c, *v, av);
                }
            }
        }
        let o = out.as_mut_ptr();
        for (r, row) in acc.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                vst1q_f32(o.add(r * NR + 4 * j), *v);
            }
        }
    }
}
