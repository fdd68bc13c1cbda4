//! SSE2 versions of `vmath`, the x86-64 baseline: what a CPU without AVX2 and FMA (Intel's
//! Celeron and Pentium Silver of the Atom lines, the small boxes of a clinic) or
//! `FQ_MAX_ISA=portable|ssse3` runs, four lanes at a time, the tail (1 to 3 floats) through a
//! stack copy. SSE2 is part of every x86-64 CPU, so there is nothing to detect.
//!
//! The same algorithms and constants (`coeffs.rs`) as `wasm.rs`, operation for operation: no
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

/// GELU on four lanes: `x/2 * erfc(-x/sqrt 2)` with the `erfcc` fit.
#[inline]
fn gelu4(x: __m128) -> __m128 {
    // SAFETY: SSE2 is part of the x86-64 baseline (all intrinsics below).
    unsafe {
        let abs = _mm_castsi128_ps(_mm_set1_epi32(i32::MAX));
        let z = _mm_mul_ps(
            _mm_and_ps(x, abs),
            _mm_set1_ps(std::f32::consts::FRAC_1_SQRT_2),
        );
        let far = _mm_cmpgt_ps(z, _mm_set1_ps(GELU_Z_MAX));
        let z = _mm_min_ps(_mm_set1_ps(GELU_Z_MAX), z);
        let one = _mm_set1_ps(1.0);
        let t = _mm_div_ps(one, _mm_add_ps(_mm_mul_ps(_mm_set1_ps(0.5), z), one));
        let mut poly = _mm_set1_ps(ERFC[0]);
        for &c in &ERFC[1..] {
            poly = _mm_add_ps(_mm_mul_ps(poly, t), _mm_set1_ps(c));
        }
        // r = erfc(|u|) for u = -x/sqrt 2; erfc(u) = r when x <= 0, 2 - r when x > 0.
        let r = _mm_mul_ps(t, exp4(_mm_sub_ps(poly, _mm_mul_ps(z, z))));
        let r = _mm_andnot_ps(far, r);
        let positive = _mm_cmpgt_ps(x, _mm_setzero_ps());
        let e = _mm_or_ps(
            _mm_and_ps(positive, _mm_sub_ps(_mm_set1_ps(2.0), r)),
            _mm_andnot_ps(positive, r),
        );
        _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(0.5), x), e)
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
