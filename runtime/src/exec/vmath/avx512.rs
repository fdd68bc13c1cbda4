//! AVX-512F versions of `vmath`: sixteen lanes at a time, the tail through masked loads and
//! stores.
//!
//! The same algorithms and constants as `x86.rs` (AVX2+FMA, eight lanes; `coeffs.rs`), so the
//! accuracy bounds the tests measure hold for both. Why a second x86 file: on an AVX-512 CPU the
//! 256-bit loops left half of each vector unit idle, and GELU alone was 9% of DeiT-Tiny's integer
//! path (issue 16, Sapphire Rapids). NaN is kept through the clamp of `exp`'s argument as there.

use super::coeffs::*;
use std::arch::x86_64::*;

/// `e^x` on sixteen lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp16(x: __m512) -> __m512 {
    // `max(lo, x)` returns `x` when `x` is NaN (the second operand), and so does `min(hi, x)`.
    let x = _mm512_min_ps(
        _mm512_set1_ps(EXP_HI),
        _mm512_max_ps(_mm512_set1_ps(EXP_LO), x),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(P[0]);
    for &c in &P[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    // e^r = 1 + r + r^2 p(r)
    let r2 = _mm512_mul_ps(r, r);
    let er = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
    let bits = _mm512_slli_epi32::<23>(_mm512_add_epi32(
        _mm512_cvtps_epi32(n),
        _mm512_set1_epi32(127),
    ));
    _mm512_mul_ps(er, _mm512_castsi512_ps(bits))
}

/// GELU on sixteen lanes: `x/2 * erfc(-x/sqrt 2)` with the `erfcc` fit.
#[inline]
#[target_feature(enable = "avx512f")]
fn gelu16(x: __m512) -> __m512 {
    let z = _mm512_mul_ps(
        _mm512_abs_ps(x),
        _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2),
    );
    let far = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(z, _mm512_set1_ps(GELU_Z_MAX));
    let z = _mm512_min_ps(z, _mm512_set1_ps(GELU_Z_MAX));
    let one = _mm512_set1_ps(1.0);
    let t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(0.5), z, one));
    let mut poly = _mm512_set1_ps(ERFC[0]);
    for &c in &ERFC[1..] {
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(c));
    }
    // r = erfc(|u|) for u = -x/sqrt 2; erfc(u) = r when x <= 0, 2 - r when x > 0.
    let r = _mm512_mul_ps(t, exp16(_mm512_fnmadd_ps(z, z, poly)));
    let r = _mm512_maskz_mov_ps(!far, r);
    let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_setzero_ps());
    let e = _mm512_mask_blend_ps(positive, r, _mm512_sub_ps(_mm512_set1_ps(2.0), r));
    _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5), x), e)
}

/// The lanes of a tail of `n < 16` elements.
fn tail_mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn gelu_avx512(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(16);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly sixteen floats; unaligned loads and stores.
        unsafe { _mm512_storeu_ps(c.as_mut_ptr(), gelu16(_mm512_loadu_ps(c.as_ptr()))) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let m = tail_mask(tail.len());
        // SAFETY: the mask covers exactly the tail's elements (masked lanes are not accessed).
        unsafe {
            let v = gelu16(_mm512_maskz_loadu_ps(m, tail.as_ptr()));
            _mm512_mask_storeu_ps(tail.as_mut_ptr(), m, v);
        }
    }
}

/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn exp_shifted_sum_avx512(x: &mut [f32], shift: f32) -> f32 {
    let s = _mm512_set1_ps(shift);
    let mut acc = _mm512_setzero_ps();
    let mut chunks = x.chunks_exact_mut(16);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly sixteen floats; unaligned loads and stores.
        unsafe {
            let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(c.as_ptr()), s));
            _mm512_storeu_ps(c.as_mut_ptr(), e);
            acc = _mm512_add_ps(acc, e);
        }
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let m = tail_mask(tail.len());
        // SAFETY: the mask covers exactly the tail's elements (masked lanes are not accessed);
        // only they are added to the sum.
        unsafe {
            let e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, tail.as_ptr()), s));
            _mm512_mask_storeu_ps(tail.as_mut_ptr(), m, e);
            acc = _mm512_mask_add_ps(acc, m, acc, e);
        }
    }
    _mm512_reduce_add_ps(acc)
}
