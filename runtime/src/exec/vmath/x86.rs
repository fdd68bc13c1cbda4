//! AVX2+FMA versions of `vmath`: eight lanes at a time, a masked-free tail through a stack copy.
//!
//! The algorithms and constants are in `coeffs.rs` (shared with `neon.rs` and `wasm.rs`). NaN is
//! kept through the clamp of `exp`'s argument (the operand order of `max`/`min` below passes NaN
//! through).

use super::coeffs::*;
use std::arch::x86_64::*;

/// `e^x` on eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp8(x: __m256) -> __m256 {
    exp8n([x])[0]
}

/// `e^x` on `N` registers of eight lanes, each step on all of them before the next (independent
/// chains side by side: see [`gelu_avx2`]).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp8n<const N: usize>(x: [__m256; N]) -> [__m256; N] {
    // `max(lo, x)` returns `x` when `x` is NaN (the second operand), and so does `min(hi, x)`.
    let (lo, hi) = (_mm256_set1_ps(EXP_LO), _mm256_set1_ps(EXP_HI));
    let x: [__m256; N] = std::array::from_fn(|i| _mm256_min_ps(hi, _mm256_max_ps(lo, x[i])));
    let log2e = _mm256_set1_ps(LOG2E);
    let n: [__m256; N] = std::array::from_fn(|i| {
        _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
            x[i], log2e,
        ))
    });
    let (hi2, lo2) = (_mm256_set1_ps(LN2_HI), _mm256_set1_ps(LN2_LO));
    let r: [__m256; N] =
        std::array::from_fn(|i| _mm256_fnmadd_ps(n[i], lo2, _mm256_fnmadd_ps(n[i], hi2, x[i])));
    let mut p = [_mm256_set1_ps(P[0]); N];
    for &c in &P[1..] {
        let c = _mm256_set1_ps(c);
        p = std::array::from_fn(|i| _mm256_fmadd_ps(p[i], r[i], c));
    }
    let one = _mm256_set1_ps(1.0);
    std::array::from_fn(|i| {
        // e^r = 1 + r + r^2 p(r), times 2^n built in the exponent bits.
        let er = _mm256_add_ps(_mm256_fmadd_ps(p[i], _mm256_mul_ps(r[i], r[i]), r[i]), one);
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n[i]),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(er, _mm256_castsi256_ps(bits))
    })
}

/// GELU on eight lanes: `x/2 * erfc(-x/sqrt 2)` with the `erfcc` fit.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn gelu8(x: __m256) -> __m256 {
    gelu8n([x])[0]
}

/// [`gelu8`] on `N` registers, each step on all of them before the next (see [`gelu_avx2`]).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn gelu8n<const N: usize>(x: [__m256; N]) -> [__m256; N] {
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let half_sqrt = _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2);
    let z: [__m256; N] =
        std::array::from_fn(|i| _mm256_mul_ps(_mm256_and_ps(x[i], abs_mask), half_sqrt));
    let zmax = _mm256_set1_ps(GELU_Z_MAX);
    let far: [__m256; N] = std::array::from_fn(|i| _mm256_cmp_ps::<_CMP_GT_OQ>(z[i], zmax));
    let z: [__m256; N] = std::array::from_fn(|i| _mm256_min_ps(z[i], zmax));
    let (one, half) = (_mm256_set1_ps(1.0), _mm256_set1_ps(0.5));
    let t: [__m256; N] =
        std::array::from_fn(|i| _mm256_div_ps(one, _mm256_fmadd_ps(half, z[i], one)));
    let mut poly = [_mm256_set1_ps(ERFC[0]); N];
    for &c in &ERFC[1..] {
        let c = _mm256_set1_ps(c);
        poly = std::array::from_fn(|i| _mm256_fmadd_ps(poly[i], t[i], c));
    }
    // r = erfc(|u|) for u = -x/sqrt 2; erfc(u) = r when x <= 0, 2 - r when x > 0.
    let e = exp8n::<N>(std::array::from_fn(|i| {
        _mm256_fnmadd_ps(z[i], z[i], poly[i])
    }));
    let two = _mm256_set1_ps(2.0);
    std::array::from_fn(|i| {
        let r = _mm256_blendv_ps(_mm256_mul_ps(t[i], e[i]), _mm256_setzero_ps(), far[i]);
        let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(x[i], _mm256_setzero_ps());
        let e = _mm256_blendv_ps(r, _mm256_sub_ps(two, r), positive);
        _mm256_mul_ps(_mm256_mul_ps(half, x[i]), e)
    })
}

/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gelu_avx2(x: &mut [f32]) {
    // Four registers per step: one register's chain (a division, ten dependent FMAs, `exp`)
    // is about 90 cycles long, and one at a time left Zen 3 waiting on it (0.5 elements/ns);
    // four independent chains side by side keep its pipes busy. The same operations per lane.
    let mut quads = x.chunks_exact_mut(4 * 8);
    for c in &mut quads {
        let p = c.as_mut_ptr();
        // SAFETY: `c` holds exactly 32 floats; unaligned loads and stores.
        unsafe {
            let v = gelu8n::<4>(std::array::from_fn(|i| _mm256_loadu_ps(p.add(8 * i))));
            for (i, v) in v.into_iter().enumerate() {
                _mm256_storeu_ps(p.add(8 * i), v);
            }
        }
    }
    let mut chunks = quads.into_remainder().chunks_exact_mut(8);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly eight floats; unaligned loads and stores.
        unsafe { _mm256_storeu_ps(c.as_mut_ptr(), gelu8(_mm256_loadu_ps(c.as_ptr()))) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut buf = [0f32; 8];
        buf[..tail.len()].copy_from_slice(tail);
        // SAFETY: `buf` holds eight floats.
        unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), gelu8(_mm256_loadu_ps(buf.as_ptr()))) };
        let n = tail.len();
        tail.copy_from_slice(&buf[..n]);
    }
}

/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp_shifted_sum_avx2(x: &mut [f32], shift: f32) -> f32 {
    let s = _mm256_set1_ps(shift);
    let mut acc = _mm256_setzero_ps();
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly eight floats; unaligned loads and stores.
        unsafe {
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), s));
            _mm256_storeu_ps(c.as_mut_ptr(), e);
            acc = _mm256_add_ps(acc, e);
        }
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds eight floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    let mut sum: f32 = lanes.iter().sum();
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut buf = [0f32; 8];
        buf[..tail.len()].copy_from_slice(tail);
        // SAFETY: `buf` holds eight floats.
        unsafe {
            _mm256_storeu_ps(
                buf.as_mut_ptr(),
                exp8(_mm256_sub_ps(_mm256_loadu_ps(buf.as_ptr()), s)),
            )
        };
        let n = tail.len();
        tail.copy_from_slice(&buf[..n]);
        sum += tail.iter().sum::<f32>();
    }
    sum
}
