//! WebAssembly SIMD128 versions of `vmath` (the browser's CPU path): four lanes at a time, the
//! tail (1 to 3 floats) through a stack copy. Compiled only when the build enables `simd128`
//! (`scripts/web-build.sh` and `tests/web/kernel-wasm.sh` do): wasm has no run-time detection.
//! The intrinsics are safe functions on wasm32 (an engine refuses a module with instructions it
//! lacks instead of running them), so only the loads and stores through pointers are `unsafe`.
//!
//! The same algorithms and constants (`coeffs.rs`) as `x86.rs`, with two differences:
//! - no fused multiply-add (baseline SIMD128 has none; relaxed-simd's `relaxed_madd` fuses or
//!   not depending on the host), so each `a * b + c` rounds twice, as the portable loop does;
//!   the accuracy bounds of the tests hold all the same;
//! - the clamp of `exp`'s argument uses `pmin`/`pmax` (`b < a ? b : a`, `a < b ? b : a`), which
//!   engines lower to a single `minps`/`maxps` on x86-64 hosts (the NaN-propagating `min`/`max`
//!   take several instructions), and with `x` first they pass a NaN `x` through, as on x86-64.
//!
//! Measured (`vmath_speed` in `mod.rs`, 1M floats, V8 in Node 20 with `--no-liftoff`, AMD EPYC
//! with AVX2+FMA, 2 shared cores, 2026-12-02), elements per ns: GELU 0.20 against 0.08-0.11 for
//! the portable loop (1.8-2.5x), `exp_shifted_sum` 0.69-0.70 against 0.21-0.23 (3.1x). Native
//! AVX2+FMA on the same CPU: 0.55 and 1.83-1.87. Tried and not kept (within the noise of the
//! shared machine, +0-15%): two vectors per iteration, and `round` by adding `1.5 * 2^23`
//! (no `nearest` and `trunc_sat`). Dropping the division changed nothing either: GELU's cost is
//! its two long dependent polynomial chains, without FMA. GELU in PyTorch's form ([`gelu4`],
//! stop 71), on the Zen 3 EPYC under Node's V8 (`--no-liftoff`, the builds before and after
//! alternated): 0.18-0.19 -> 0.56-0.69 elements/ns.

use super::coeffs::*;
use core::arch::wasm32::*;

/// `e^x` on four lanes.
#[inline]
fn exp4(x: v128) -> v128 {
    let x = f32x4_pmin(f32x4_pmax(x, f32x4_splat(EXP_LO)), f32x4_splat(EXP_HI));
    let n = f32x4_nearest(f32x4_mul(x, f32x4_splat(LOG2E)));
    // `n * LN2_HI` is exact, so `r` carries only the rounding of `n * LN2_LO`.
    let r = f32x4_sub(x, f32x4_mul(n, f32x4_splat(LN2_HI)));
    let r = f32x4_sub(r, f32x4_mul(n, f32x4_splat(LN2_LO)));
    let mut p = f32x4_splat(P[0]);
    for &c in &P[1..] {
        p = f32x4_add(f32x4_mul(p, r), f32x4_splat(c));
    }
    // e^r = 1 + r + r^2 p(r)
    let r2 = f32x4_mul(r, r);
    let er = f32x4_add(f32x4_add(f32x4_mul(p, r2), r), f32x4_splat(1.0));
    // `n` is an integer in [-126, 127]: 2^n from the exponent bits.
    let bits = i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(n), i32x4_splat(127)), 23);
    f32x4_mul(er, bits)
}

/// GELU on four lanes in PyTorch's form, `x/2 (1 + erf(x/sqrt 2))`, as AVX2's (`x86.rs`:
/// `erf(t) = t P(t^2) / Q(t^2)` on `t` clamped to `[-4, 4]`, 0 where `x < -4 sqrt 2`), each
/// multiply-add rounded twice: within 2e-7 max(1, |x|) of the exact GELU, as PyTorch's float
/// GELU. (The `erfcc` fit it replaced took the same division plus an `exp`.)
#[inline]
fn gelu4(x: v128) -> v128 {
    let lo = f32x4_splat(-4.0);
    let t = f32x4_mul(x, f32x4_splat(std::f32::consts::FRAC_1_SQRT_2));
    // `pmax(t, lo)` is `t < lo ? lo : t` and `pmin(t, hi)` `hi < t ? hi : t`: a NaN `t` passes.
    let t = f32x4_pmin(f32x4_pmax(t, lo), f32x4_splat(4.0));
    let t2 = f32x4_mul(t, t);
    let mut p = f32x4_splat(ERF_P[0]);
    for &c in &ERF_P[1..] {
        p = f32x4_add(f32x4_mul(p, t2), f32x4_splat(c));
    }
    let mut q = f32x4_splat(ERF_Q[0]);
    for &c in &ERF_Q[1..] {
        q = f32x4_add(f32x4_mul(q, t2), f32x4_splat(c));
    }
    let erf = f32x4_div(f32x4_mul(t, p), q);
    let hx = f32x4_mul(f32x4_splat(0.5), x);
    // Past the clamp on the negative side the sum `1 + erf` is rounding error: 0 there.
    let gone = f32x4_le(t, lo);
    v128_andnot(f32x4_add(f32x4_mul(hx, erf), hx), gone)
}

/// `f` over `x` in place, four lanes at a time, the tail through a zero-padded stack copy (so
/// no load or store reaches past the slice).
#[inline]
fn map4(x: &mut [f32], mut f: impl FnMut(v128) -> v128) {
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly four floats; `v128_load`/`v128_store` need no alignment.
        unsafe {
            let p = c.as_mut_ptr() as *mut v128;
            v128_store(p, f(v128_load(p)));
        }
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut buf = [0f32; 4];
        buf[..tail.len()].copy_from_slice(tail);
        // SAFETY: `buf` holds four floats.
        unsafe {
            let p = buf.as_mut_ptr() as *mut v128;
            v128_store(p, f(v128_load(p)));
        }
        let n = tail.len();
        tail.copy_from_slice(&buf[..n]);
    }
}

/// `x[i] = gelu(x[i])`.
pub fn gelu(x: &mut [f32]) {
    map4(x, gelu4);
}

/// `x[i] = exp(x[i] - shift)`, returning their sum.
pub fn exp_shifted_sum(x: &mut [f32], shift: f32) -> f32 {
    let s = f32x4_splat(shift);
    let mut chunks = x.chunks_exact_mut(4);
    let mut acc = f32x4_splat(0.0);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly four floats; unaligned loads and stores.
        unsafe {
            let p = c.as_mut_ptr() as *mut v128;
            let e = exp4(f32x4_sub(v128_load(p), s));
            v128_store(p, e);
            acc = f32x4_add(acc, e);
        }
    }
    let mut sum = f32x4_extract_lane::<0>(acc)
        + f32x4_extract_lane::<1>(acc)
        + f32x4_extract_lane::<2>(acc)
        + f32x4_extract_lane::<3>(acc);
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        map4(tail, |v| exp4(f32x4_sub(v, s)));
        sum += tail.iter().sum::<f32>();
    }
    sum
}
