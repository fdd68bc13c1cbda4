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
/// chains side by side: see [`gelu8n`]).
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

/// `z = |x| / sqrt 2` on `N` registers: GELU's argument of `erfc`, up to its sign.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn z_of<const N: usize>(x: [__m256; N]) -> [__m256; N] {
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let half_sqrt = _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2);
    std::array::from_fn(|i| _mm256_mul_ps(_mm256_and_ps(x[i], abs_mask), half_sqrt))
}

/// GELU on eight lanes ([`gelu8n_pieces`]).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn gelu8(x: __m256) -> __m256 {
    gelu8n_pieces([x])[0]
}

/// GELU on `N` registers by the `erfcc` fit, `x/2 * erfc(-x/sqrt 2)`, each step on all of them
/// before the next (four registers' independent chains side by side kept Zen 3 busy where one
/// left it waiting, 0.5 elements/ns): the value of lanes past [`gelu8n_pieces`]' fit.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn gelu8n<const N: usize>(x: [__m256; N]) -> [__m256; N] {
    let z = z_of(x);
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

/// GELU on `N` registers by the piecewise fit of `erfc` ([`ERFC_PIECES8`]: 8 pieces of degree 8
/// for `z = |x|/sqrt 2 < 4`, each coefficient picked per lane by one permute). Lanes past the fit
/// on the negative side (`x < -4 sqrt 2`, rare) take [`gelu8n`]'s value, lane by lane, so that an
/// element's GELU depends on its value alone (fused into a layer's epilogue or run as a step of
/// its own, the same floats). Positive lanes past it are `x` (`erfc(4)/2` is under half an ulp of
/// 1).
///
/// Why: [`gelu8n`] is a chain of about 40 dependent operations per register (a division, ten
/// FMAs, `exp`) that left Zen 3 waiting on it even four registers at a time: 1.42 ns per element
/// on one thread, about 4.4 ms of TinyViT-5M's 26 at 2 threads. Here a permute per coefficient
/// (off the chain: it needs only the piece) and eight FMAs.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn gelu8n_pieces<const N: usize>(x: [__m256; N]) -> [__m256; N] {
    let z = z_of(x);
    let (zero, edge) = (_mm256_setzero_ps(), _mm256_set1_ps(4.0));
    let past: [__m256; N] = std::array::from_fn(|i| {
        _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_LT_OQ>(x[i], zero),
            _mm256_cmp_ps::<_CMP_GE_OQ>(z[i], edge),
        )
    });
    // `s = 2 min(z, 4-)`, its piece `floor(s)` and `u = s - piece - 1/2` (all exact); a NaN's
    // `s` is `top` (`min` returns its second operand), and its result NaN through `x`.
    let (two, top) = (_mm256_set1_ps(2.0), _mm256_set1_ps(7.999_999_5));
    let s: [__m256; N] = std::array::from_fn(|i| _mm256_min_ps(_mm256_mul_ps(z[i], two), top));
    let piece: [__m256; N] = std::array::from_fn(|i| {
        _mm256_round_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(s[i])
    });
    let half = _mm256_set1_ps(0.5);
    let u: [__m256; N] =
        std::array::from_fn(|i| _mm256_sub_ps(_mm256_sub_ps(s[i], piece[i]), half));
    let idx: [__m256i; N] = std::array::from_fn(|i| _mm256_cvttps_epi32(piece[i]));
    // Each coefficient's register loaded where a permute uses it (a memory operand of the
    // permute), not nine registers held across the loop.
    let coef = |k: usize, i: usize| {
        // SAFETY: eight floats per coefficient.
        let t = unsafe { _mm256_loadu_ps(ERFC_PIECES8[k].as_ptr()) };
        _mm256_permutevar8x32_ps(t, idx[i])
    };
    let mut p: [__m256; N] = std::array::from_fn(|i| coef(8, i));
    for k in (0..8).rev() {
        p = std::array::from_fn(|i| _mm256_fmadd_ps(p[i], u[i], coef(k, i)));
    }
    let out = std::array::from_fn(|i| {
        let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(x[i], zero);
        let e = _mm256_blendv_ps(p[i], _mm256_sub_ps(two, p[i]), positive);
        _mm256_mul_ps(_mm256_mul_ps(half, x[i]), e)
    });
    if past.iter().all(|&m| _mm256_movemask_ps(m) == 0) {
        return out;
    }
    let exact = gelu8n(x);
    std::array::from_fn(|i| _mm256_blendv_ps(out[i], exact[i], past[i]))
}

/// Registers per step of [`gelu_avx2`]: independent chains side by side (see [`gelu8n`]).
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
            let v = gelu8n_pieces::<GROUP>(std::array::from_fn(|i| _mm256_loadu_ps(p.add(8 * i))));
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
