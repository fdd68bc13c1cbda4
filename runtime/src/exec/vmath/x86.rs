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
    // `max(lo, x)` returns `x` when `x` is NaN (the second operand), and so does `min(hi, x)`.
    let x = _mm256_min_ps(
        _mm256_set1_ps(EXP_HI),
        _mm256_max_ps(_mm256_set1_ps(EXP_LO), x),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(LOG2E),
    ));
    let r = _mm256_fnmadd_ps(
        n,
        _mm256_set1_ps(LN2_LO),
        _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x),
    );
    let mut p = _mm256_set1_ps(P[0]);
    for &c in &P[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    // e^r = 1 + r + r^2 p(r), times 2^n built in the exponent bits.
    let er = _mm256_add_ps(
        _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r),
        _mm256_set1_ps(1.0),
    );
    let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    _mm256_mul_ps(er, _mm256_castsi256_ps(bits))
}

/// GELU on eight lanes ([`gelu8n_erf`]).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn gelu8(x: __m256) -> __m256 {
    gelu8n_erf([x])[0]
}

/// GELU on `N` registers as PyTorch's CPU kernel writes it, `x/2 (1 + erf(x/sqrt 2))`, with
/// `erf(t) = t P(t^2) / Q(t^2)` on `t` clamped to `[-4, 4]` ([`ERF_P`], [`ERF_Q`]), and 0 where
/// `x < -4 sqrt 2` (the exact value there is above -5e-8). Each step on all `N` registers
/// before the next: independent chains side by side. An element's value depends on it alone.
///
/// Accuracy is PyTorch's class, absolute: within 1.94e-7 max(1, |x|) of the exact GELU on
/// [-10, 10] (400,000 points; PyTorch 2.15's own `F.gelu` in f32 1.55e-7 by the same measure),
/// so relative error grows where GELU is small (6.6e-5 for x >= -3, 3.5e-3 at x = -4, as
/// PyTorch's 9.2e-4 there). The other paths keep `erfc` fits good to 2e-6 relative there.
///
/// Why: the piecewise `erfc` fit this replaces (8 pieces of degree 8, a permute per
/// coefficient) ran 1.03-1.29 elements/ns on one Zen 3 thread, 4096 floats in L1; this runs
/// 2.19-2.28 (no permutes, one division). GELU was about a tenth of TinyViT-5M's f32 time: its
/// step sums 21.49 -> 20.46 ms (`step_times`, 2 threads, 3 + 3 processes alternated), the
/// steps with a GELU 15-41% faster.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn gelu8n_erf<const N: usize>(x: [__m256; N]) -> [__m256; N] {
    let (lo, hi) = (_mm256_set1_ps(-4.0), _mm256_set1_ps(4.0));
    let s = _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2);
    // `max(lo, t)` and `min(hi, t)` return `t` when it is NaN (their second operand).
    let t: [__m256; N] =
        std::array::from_fn(|i| _mm256_min_ps(hi, _mm256_max_ps(lo, _mm256_mul_ps(x[i], s))));
    let t2: [__m256; N] = std::array::from_fn(|i| _mm256_mul_ps(t[i], t[i]));
    let mut p = [_mm256_set1_ps(ERF_P[0]); N];
    for &c in &ERF_P[1..] {
        let c = _mm256_set1_ps(c);
        p = std::array::from_fn(|i| _mm256_fmadd_ps(p[i], t2[i], c));
    }
    let mut q = [_mm256_set1_ps(ERF_Q[0]); N];
    for &c in &ERF_Q[1..] {
        let c = _mm256_set1_ps(c);
        q = std::array::from_fn(|i| _mm256_fmadd_ps(q[i], t2[i], c));
    }
    let half = _mm256_set1_ps(0.5);
    std::array::from_fn(|i| {
        let erf = _mm256_div_ps(_mm256_mul_ps(t[i], p[i]), q[i]);
        let hx = _mm256_mul_ps(half, x[i]);
        // Past the clamp on the negative side the sum `1 + erf` is rounding error: 0 there.
        let gone = _mm256_cmp_ps::<_CMP_LE_OQ>(t[i], lo);
        _mm256_andnot_ps(gone, _mm256_fmadd_ps(hx, erf, hx))
    })
}

/// Registers per step of [`gelu_avx2`]: independent chains side by side.
const GROUP: usize = 4;

/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gelu_avx2(x: &mut [f32]) {
    let mut groups = x.chunks_exact_mut(GROUP * 8);
    for c in &mut groups {
        let p = c.as_mut_ptr();
        // SAFETY: `c` holds exactly `GROUP * 8` floats; unaligned loads and stores.
        unsafe {
            let v = gelu8n_erf::<GROUP>(std::array::from_fn(|i| _mm256_loadu_ps(p.add(8 * i))));
            for (i, v) in v.into_iter().enumerate() {
                _mm256_storeu_ps(p.add(8 * i), v);
            }
        }
    }
    let mut chunks = groups.into_remainder().chunks_exact_mut(8);
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
