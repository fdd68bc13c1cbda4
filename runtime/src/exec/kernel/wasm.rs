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
//! Each half re-reads the 6 `A` values per `k` (one `load32_splat` each, from L1). Measured
//! (`speed::tile_speed`, V8): 15-21 GFLOP/s against 14-17 for a one-pass 6x16 tile and 10-13.5
//! for the portable loop as LLVM autovectorises it for simd128.
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
                    // One `v128.load32_splat` (a `vbroadcastss` on x86-64 hosts), not a scalar
                    // load and a shuffle.
                    let av = v128_load32_splat(ap.add(r * lda) as *const u32);
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

#[cfg(test)]
mod speed {
    use super::super::{portable, MR, NR};
    use super::tile_simd128;
    use std::time::Instant;

    /// Not a check: GFLOP/s of this kernel, of a one-pass 6x16 variant and of the portable loop
    /// (as LLVM vectorises it for simd128) on one tile of ResNet18's typical `k = 3 * 3 * 64`,
    /// 5 rounds. Run it with V8's optimising tier from the start (a wasm function that never
    /// returns is not tiered up, so the baseline compiler's code would be timed):
    /// `node --no-liftoff tests/web/wasi-run.mjs target/wasm32-wasip1/release/deps/fq_runtime-*.wasm
    /// tile_speed --ignored --nocapture` after `FQ_WASM_RELEASE=1 tests/web/kernel-wasm.sh`.
    /// Measured 2026-12-01 (AMD EPYC, contended): this kernel 15-21 GFLOP/s, one-pass 14-17,
    /// portable 10-13.5.
    /// The alternative: the whole 6x16 tile in one pass, 24 accumulators (spills on x86-64).
    unsafe fn full_tile(
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        out: &mut [f32; MR * NR],
    ) {
        use core::arch::wasm32::*;
        // SAFETY: as in `tile_simd128`.
        unsafe {
            let mut acc = [[f32x4_splat(0.0); 4]; MR];
            for i in 0..k {
                let bp = b.add(i * NR);
                let bv = [
                    v128_load(bp as *const v128),
                    v128_load(bp.add(4) as *const v128),
                    v128_load(bp.add(8) as *const v128),
                    v128_load(bp.add(12) as *const v128),
                ];
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = v128_load32_splat(a.add(r * lda + i) as *const u32);
                    for (c, x) in row.iter_mut().enumerate() {
                        *x = f32x4_add(*x, f32x4_mul(av, bv[c]));
                    }
                }
            }
            let o = out.as_mut_ptr();
            for (r, row) in acc.iter().enumerate() {
                for (c, x) in row.iter().enumerate() {
                    v128_store(o.add(r * NR + c * 4) as *mut v128, *x);
                }
            }
        }
    }

    #[test]
    #[ignore]
    fn tile_speed() {
        let k = 576;
        let a: Vec<f32> = (0..k * MR).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * NR).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut out = [0f32; MR * NR];
        let reps = 20_000;
        let gflops = |secs: f64| (2 * MR * NR * k * reps) as f64 / secs / 1e9;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..reps {
                // SAFETY: `a` holds MR rows of k floats (lda = k), `b` k * NR floats.
                unsafe { tile_simd128(k, a.as_ptr(), k, b.as_ptr(), &mut out) };
                std::hint::black_box(&mut out);
            }
            let s = gflops(t.elapsed().as_secs_f64());
            let t = Instant::now();
            for _ in 0..reps {
                portable::tile(k, std::hint::black_box(&a), k, &b, &mut out);
                std::hint::black_box(&mut out);
            }
            let p = gflops(t.elapsed().as_secs_f64());
            let t = Instant::now();
            for _ in 0..reps {
                // SAFETY: as above.
                unsafe { full_tile(k, a.as_ptr(), k, b.as_ptr(), &mut out) };
                std::hint::black_box(&mut out);
            }
            let f = gflops(t.elapsed().as_secs_f64());
            eprintln!("tile k={k}: simd128 {s:.1} GFLOP/s, one-pass 6x16 {f:.1}, portable (autovectorised) {p:.1} GFLOP/s");
        }
    }
}
