//! WebAssembly SIMD128 micro-kernel (the browser's CPU path).
//!
//! WebAssembly has no run-time feature detection: a module either uses SIMD128 or it does not,
//! and a browser without it refuses the whole module. So this file is compiled only when the
//! build enables `simd128` (`scripts/web-build.sh` does; every current browser has it), and
//! `path()` then reports it unconditionally.
//!
//! Register budget: engines map a `v128` to an SSE/AVX `xmm` register (16 on x86-64) or a NEON
//! `q` register (32). The whole 6x16 tile would need 24 accumulators plus the `B` row and a
//! broadcast, which spills on x86-64 hosts, the common case for a clinic laptop. So the tile is
//! computed as two 6x8 halves: 12 accumulators + 2 `B` vectors + 1 broadcast = 15 registers.
//! Each half re-reads the 6 `A` values per `k` (scalar loads that hit L1); measured in
//! docs/web/STATUS.md against the compiler's autovectorised portable loop.
//!
//! No fused multiply-add: baseline SIMD128 has none (relaxed-simd's `relaxed_madd` may or may
//! not fuse, depending on the host, so results would differ between machines). A multiply then
//! an add, in the same `k` order as `portable.rs`, makes this kernel equal to the portable one
//! bit for bit, which the test below checks on arbitrary floats.

use super::{MR, NR};
use core::arch::wasm32::*;

/// Columns per half tile: two `f32x4` vectors.
const HALF: usize = 8;

/// # Safety
/// `a` must hold `MR` rows of `k` floats `lda` apart and `b` `k * NR` floats (the caller,
/// `kernel::tile`, checks the slice lengths).
pub unsafe fn tile_simd128(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    out: &mut [f32; MR * NR],
) {
    let o = out.as_mut_ptr();
    for h in 0..NR / HALF {
        // SAFETY: every offset stays inside `a` (`r * lda + i` with `r < MR`, `i < k <= lda`),
        // `b` (`i * NR + h * HALF + 4 + 3 < k * NR`) and `out` (`r * NR + h * HALF + 7 < MR * NR`);
        // `v128_load`/`v128_store` have no alignment requirement.
        unsafe {
            let mut acc = [[f32x4_splat(0.0); 2]; MR];
            let mut bp = b.add(h * HALF);
            for i in 0..k {
                let b0 = v128_load(bp as *const v128);
                let b1 = v128_load(bp.add(4) as *const v128);
                let ap = a.add(i);
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = f32x4_splat(*ap.add(r * lda));
                    row[0] = f32x4_add(row[0], f32x4_mul(av, b0));
                    row[1] = f32x4_add(row[1], f32x4_mul(av, b1));
                }
                bp = bp.add(NR);
            }
            for (r, row) in acc.iter().enumerate() {
                let dst = o.add(r * NR + h * HALF);
                v128_store(dst as *mut v128, row[0]);
                v128_store(dst.add(4) as *mut v128, row[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{path, portable, tile, KernelPath};
    use super::*;

    /// Arbitrary floats (not just small integers, whose sums are exact in any order), every `k`
    /// from 0 to 70, a ragged `lda`: the SIMD128 kernel equals the portable loop bit for bit,
    /// since both multiply, round, add and round in the same `k` order.
    #[test]
    fn simd128_equals_portable_bit_for_bit() {
        assert_eq!(path(), KernelPath::Simd128);
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for k in 0..=70 {
            let lda = k + 3;
            let a: Vec<f32> = (0..lda * MR).map(|_| next()).collect();
            let b: Vec<f32> = (0..k * NR).map(|_| next()).collect();
            let (mut x, mut y) = ([f32::NAN; MR * NR], [f32::NAN; MR * NR]);
            tile(k, &a, lda, &b, &mut x);
            portable::tile(k, &a, lda, &b, &mut y);
            for (j, (u, v)) in x.iter().zip(&y).enumerate() {
                assert_eq!(u.to_bits(), v.to_bits(), "k {k}, element {j}: {u} vs {v}");
            }
        }
    }
}
