//! SSE2 versions of `vmath`, the x86-64 baseline: what a CPU without AVX2 and FMA (Intel's
//! Celeron and Pentium Silver of the Atom lines, the small boxes of a clinic) or
//! `FQ_MAX_ISA=portable|ssse3` runs, four lanes at a time, the tail (1 to 3 floats) through a
//! stack copy. SSE2 is part of every x86-64 CPU, so there is nothing to detect.
//!
//! `exp` is `wasm.rs`'s, operation for operation (GELU is AVX2's form, [`gelu4`]): no
//! fused multiply-add (each `a * b + c` rounds twice, as the scalar loop's), `round` by
//! `CVTPS2DQ` (nearest, ties to even, in the default rounding mode). `MINPS`/`MAXPS` return
//! their second operand when either is NaN, so the clamps take `x` second and a NaN argument
//! stays NaN.
//!
//! Why: the scalar loops of `portable.rs` call libm's `expf` per element, which the compiler
//! cannot vectorise; under `FQ_MAX_ISA=ssse3` on the Zen 3 of stop 70, GELU (`vmath::gelu` and
//! the `expf` it called) was 27% of TinyViT-5M's integer path, and it ran at 0.094 elements/ns
//! on one thread (`vmath_speed`) against 0.80 for AVX2's loops.

use super::coeffs::*;
use std::arch::x86_64::*;

/// `e^x` on four lanes.
#[inline]
fn exp4(x: __m128) -> __m128 {
    // SAFETY: SSE2 is part of the x86-64 baseline (all intrinsics below).
    unsafe {
        let x = _mm_min_ps(_mm_set1_ps(EXP_HI), _mm_max_ps(_mm_set1_ps(EXP_LO), x));
        let ni = _mm_cvtps_epi32(_mm_mul_ps(x, _mm_set1_ps(LOG2E)));
        let n = _mm_cvtepi32_ps(ni);
        // `n * LN2_HI` is exact, so `r` carries only the rounding of `n * LN2_LO`.
        let r = _mm_sub_ps(x, _mm_mul_ps(n, _mm_set1_ps(LN2_HI)));
        let r = _mm_sub_ps(r, _mm_mul_ps(n, _mm_set1_ps(LN2_LO)));
        let mut p = _mm_set1_ps(P[0]);
        for &c in &P[1..] {
            p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(c));
        }
        // e^r = 1 + r + r^2 p(r)
        let r2 = _mm_mul_ps(r, r);
        let er = _mm_add_ps(_mm_add_ps(_mm_mul_ps(p, r2), r), _mm_set1_ps(1.0));
        // `n` is an integer in [-126, 127]: 2^n from the exponent bits.
        let bits = _mm_slli_epi32::<23>(_mm_add_epi32(ni, _mm_set1_epi32(127)));
        _mm_mul_ps(er, _mm_castsi128_ps(bits))
    }
}

/// GELU on four lanes in PyTorch's form, `x/2 (1 + erf(x/sqrt 2))`, as AVX2's (`x86.rs`:
/// `erf(t) = t P(t^2) / Q(t^2)` on `t` clamped to `[-4, 4]`, 0 where `x < -4 sqrt 2`), each
/// multiply-add rounded twice: within 2e-7 max(1, |x|) of the exact GELU, as PyTorch's float
/// GELU.
///
/// Why: the `erfcc` fit it replaces took a division and an `exp` per register, 0.20-0.21
/// elements/ns on one thread of the Zen 3 of stop 71 (`vmath_speed`), 0.52 here; TinyViT-5M's
/// integer path under `FQ_MAX_ISA=ssse3` (6 M GELUs an image) went from 46.5 to 32.5 ms of step
/// sums with it.
#[inline]
fn gelu4(x: __m128) -> __m128 {
    // SAFETY: SSE2 is part of the x86-64 baseline (all intrinsics below).
    unsafe {
        let (lo, hi) = (_mm_set1_ps(-4.0), _mm_set1_ps(4.0));
        let t = _mm_mul_ps(x, _mm_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
        // `MAXPS`/`MINPS` return their second operand, `t`, when it is NaN.
        let t = _mm_min_ps(hi, _mm_max_ps(lo, t));
        let t2 = _mm_mul_ps(t, t);
        let mut p = _mm_set1_ps(ERF_P[0]);
        for &c in &ERF_P[1..] {
            p = _mm_add_ps(_mm_mul_ps(p, t2), _mm_set1_ps(c));
        }
        let mut q = _mm_set1_ps(ERF_Q[0]);
        for &c in &ERF_Q[1..] {
            q = _mm_add_ps(_mm_mul_ps(q, t2), _mm_set1_ps(c));
        }
        let erf = _mm_div_ps(_mm_mul_ps(t, p), q);
        let hx = _mm_mul_ps(_mm_set1_ps(0.5), x);
        // Past the clamp on the negative side the sum `1 + erf` is rounding error: 0 there.
        let gone = _mm_cmple_ps(t, lo);
        _mm_andnot_ps(gone, _mm_add_ps(_mm_mul_ps(hx, erf), hx))
    }
}

/// `f` over `x` in place, four lanes at a time, the tail through a zero-padded stack copy (so
/// no load or store reaches past the slice).
#[inline]
fn map4(x: &mut [f32], mut f: impl FnMut(__m128) -> __m128) {
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly four floats; unaligned loads and stores.
        unsafe { _mm_storeu_ps(c.as_mut_ptr(), f(_mm_loadu_ps(c.as_ptr()))) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut buf = [0f32; 4];
        buf[..tail.len()].copy_from_slice(tail);
        // SAFETY: `buf` holds four floats.
        unsafe { _mm_storeu_ps(buf.as_mut_ptr(), f(_mm_loadu_ps(buf.as_ptr()))) };
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
    // SAFETY: SSE2 is part of the x86-64 baseline.
    let s = unsafe { _mm_set1_ps(shift) };
    let mut chunks = x.chunks_exact_mut(4);
    // SAFETY: as above.
    let mut acc = unsafe { _mm_setzero_ps() };
    for c in &mut chunks {
        // SAFETY: `c` holds exactly four floats; unaligned loads and stores.
        unsafe {
            let e = exp4(_mm_sub_ps(_mm_loadu_ps(c.as_ptr()), s));
            _mm_storeu_ps(c.as_mut_ptr(), e);
            acc = _mm_add_ps(acc, e);
        }
    }
    let mut lanes = [0f32; 4];
    // SAFETY: four floats.
    unsafe { _mm_storeu_ps(lanes.as_mut_ptr(), acc) };
    let mut sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        // SAFETY: as above.
        map4(tail, |v| exp4(unsafe { _mm_sub_ps(v, s) }));
        sum += tail.iter().sum::<f32>();
    }
    sum
}
