//! AVX-512F versions of `vmath`: sixteen lanes at a time, the tail through masked loads and
//! stores.
//!
//! The same `exp` as `x86.rs` (AVX2+FMA, eight lanes; `coeffs.rs`); GELU by a piecewise fit of
//! `erfc` that only AVX-512's two-register permutes make cheap ([`gelu16n_pieces`]), with the
//! `erfcc` fit of the other files for the lanes past it (the accuracy bounds the tests measure
//! hold for every file). Why a second x86 file: on an AVX-512 CPU the 256-bit loops left half of
//! each vector unit idle, and GELU alone was 9% of DeiT-Tiny's integer path (issue 16, Sapphire
//! Rapids). NaN is kept through the clamp of `exp`'s argument as there.

use super::coeffs::*;
use std::arch::x86_64::*;

/// `e^x` on `N` registers of sixteen lanes, each step on all of them before the next.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp16n<const N: usize>(x: [__m512; N]) -> [__m512; N] {
    // `max(lo, x)` returns `x` when `x` is NaN (the second operand), and so does `min(hi, x)`.
    let (lo, hi) = (_mm512_set1_ps(EXP_LO), _mm512_set1_ps(EXP_HI));
    let x: [__m512; N] = std::array::from_fn(|i| _mm512_min_ps(hi, _mm512_max_ps(lo, x[i])));
    let n: [__m512; N] = std::array::from_fn(|i| {
        _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
            x[i],
            _mm512_set1_ps(LOG2E),
        ))
    });
    let r: [__m512; N] = std::array::from_fn(|i| {
        let r = _mm512_fnmadd_ps(n[i], _mm512_set1_ps(LN2_HI), x[i]);
        _mm512_fnmadd_ps(n[i], _mm512_set1_ps(LN2_LO), r)
    });
    let mut p = [_mm512_set1_ps(P[0]); N];
    for &c in &P[1..] {
        let c = _mm512_set1_ps(c);
        p = std::array::from_fn(|i| _mm512_fmadd_ps(p[i], r[i], c));
    }
    std::array::from_fn(|i| {
        // e^r = 1 + r + r^2 p(r)
        let r2 = _mm512_mul_ps(r[i], r[i]);
        let er = _mm512_add_ps(_mm512_fmadd_ps(p[i], r2, r[i]), _mm512_set1_ps(1.0));
        let bits = _mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvtps_epi32(n[i]),
            _mm512_set1_epi32(127),
        ));
        _mm512_mul_ps(er, _mm512_castsi512_ps(bits))
    })
}

/// GELU on sixteen lanes ([`gelu16n_pieces`]).
#[inline]
#[target_feature(enable = "avx512f")]
fn gelu16_pieces(x: __m512) -> __m512 {
    gelu16n_pieces([x])[0]
}

/// GELU on `N` registers by the `erfcc` fit, `x/2 * erfc(-x/sqrt 2)`, each step on all of them
/// before the next (see [`GROUP`]): the value of lanes past [`gelu16n_pieces`]' fit.
#[inline]
#[target_feature(enable = "avx512f")]
fn gelu16n<const N: usize>(x: [__m512; N]) -> [__m512; N] {
    let half_sqrt = _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2);
    let z: [__m512; N] = std::array::from_fn(|i| _mm512_mul_ps(_mm512_abs_ps(x[i]), half_sqrt));
    let zmax = _mm512_set1_ps(GELU_Z_MAX);
    let far: [__mmask16; N] = std::array::from_fn(|i| _mm512_cmp_ps_mask::<_CMP_GT_OQ>(z[i], zmax));
    let z: [__m512; N] = std::array::from_fn(|i| _mm512_min_ps(z[i], zmax));
    let (one, half) = (_mm512_set1_ps(1.0), _mm512_set1_ps(0.5));
    let t: [__m512; N] =
        std::array::from_fn(|i| _mm512_div_ps(one, _mm512_fmadd_ps(half, z[i], one)));
    let mut poly = [_mm512_set1_ps(ERFC[0]); N];
    for &c in &ERFC[1..] {
        let c = _mm512_set1_ps(c);
        poly = std::array::from_fn(|i| _mm512_fmadd_ps(poly[i], t[i], c));
    }
    // r = erfc(|u|) for u = -x/sqrt 2; erfc(u) = r when x <= 0, 2 - r when x > 0.
    let e = exp16n::<N>(std::array::from_fn(|i| {
        _mm512_fnmadd_ps(z[i], z[i], poly[i])
    }));
    let two = _mm512_set1_ps(2.0);
    std::array::from_fn(|i| {
        let r = _mm512_maskz_mov_ps(!far[i], _mm512_mul_ps(t[i], e[i]));
        let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x[i], _mm512_setzero_ps());
        let e = _mm512_mask_blend_ps(positive, r, _mm512_sub_ps(two, r));
        _mm512_mul_ps(_mm512_mul_ps(half, x[i]), e)
    })
}

/// GELU on `N` registers by the piecewise fit of `erfc` ([`ERFC_PIECES`]: 32 pieces of degree
/// 5 for `z = |x|/sqrt 2 < 4`, each coefficient picked per lane by a two-register permute).
/// Lanes past the fit on the negative side (`x < -4 sqrt 2`, rare) take [`gelu16n`]'s value,
/// lane by lane, so that an element's GELU depends on its value alone (not on its
/// neighbours: fused into a layer's epilogue or run as a step of its own, the same floats).
/// Positive lanes past it are `x` (`erfc(4)/2` is under half an ulp of 1).
///
/// Why: [`gelu16n`] is a division, ten FMAs and an `exp` per register, 12% of TinyViT-5M's f32
/// time on the Zen 5 EPYC of stop 56; here six permutes and five FMAs.
#[inline]
#[target_feature(enable = "avx512f")]
fn gelu16n_pieces<const N: usize>(x: [__m512; N]) -> [__m512; N] {
    let z: [__m512; N] = std::array::from_fn(|i| {
        _mm512_mul_ps(
            _mm512_abs_ps(x[i]),
            _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2),
        )
    });
    let edge = _mm512_set1_ps(4.0);
    let past: [__mmask16; N] = std::array::from_fn(|i| {
        let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x[i], _mm512_setzero_ps());
        _mm512_mask_cmp_ps_mask::<_CMP_GE_OQ>(negative, z[i], edge)
    });
    // `s = 8 min(z, 4-)`, its piece `floor(s)` and `u = s - piece - 1/2` (all exact).
    let top = _mm512_set1_ps(31.999_998);
    let s: [__m512; N] =
        std::array::from_fn(|i| _mm512_min_ps(_mm512_mul_ps(z[i], _mm512_set1_ps(8.0)), top));
    let piece: [__m512; N] = std::array::from_fn(|i| {
        _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(s[i])
    });
    let u: [__m512; N] =
        std::array::from_fn(|i| _mm512_sub_ps(_mm512_sub_ps(s[i], piece[i]), _mm512_set1_ps(0.5)));
    let idx: [__m512i; N] = std::array::from_fn(|i| _mm512_cvttps_epi32(piece[i]));
    // Each coefficient's two registers loaded where a permute uses them, not once for all `N`:
    // the loads fold into the permutes as memory operands, where twelve registers held across
    // the loop spilled (TinyViT-5M's GELU steps 1.5x slower, the Zen 5 of stop 56).
    let coef = |k: usize, i: usize| {
        let t = &ERFC_PIECES[k];
        // SAFETY: 32 floats per coefficient, read as two registers.
        let (lo, hi) = unsafe {
            (
                _mm512_loadu_ps(t.as_ptr()),
                _mm512_loadu_ps(t.as_ptr().add(16)),
            )
        };
        _mm512_permutex2var_ps(lo, idx[i], hi)
    };
    let mut p: [__m512; N] = std::array::from_fn(|i| coef(5, i));
    for k in (0..5).rev() {
        p = std::array::from_fn(|i| _mm512_fmadd_ps(p[i], u[i], coef(k, i)));
    }
    let (two, half) = (_mm512_set1_ps(2.0), _mm512_set1_ps(0.5));
    let out = std::array::from_fn(|i| {
        let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x[i], _mm512_setzero_ps());
        let e = _mm512_mask_blend_ps(positive, p[i], _mm512_sub_ps(two, p[i]));
        _mm512_mul_ps(_mm512_mul_ps(half, x[i]), e)
    });
    if past.iter().all(|&m| m == 0) {
        return out;
    }
    let exact = gelu16n(x);
    std::array::from_fn(|i| _mm512_mask_blend_ps(past[i], out[i], exact[i]))
}

/// Registers per step of the loops: one register's GELU is a chain of about 40 dependent
/// operations (a division, ten FMAs, `exp`), and one at a time left Zen 4 waiting on it; four
/// side by side (as `x86.rs` does) took it from 0.81 to 0.70-0.74 ns per element on one thread
/// (L1-resident). The Xeon of stop 53 (two 512-bit FMA ports, 4-cycle latency) wants eight:
/// 0.55-0.56 ns with four, 0.56 with six, 0.50-0.53 with eight, 0.50 with twelve (one thread,
/// 8192 elements, best of 2000, alternated builds). The same operations per lane, so the same
/// results. The `erfc` pieces ([`gelu16n_pieces`], a shorter chain) keep eight: on the Zen 5 of
/// stop 56 the `erfcc` loop alone ran faster with 16 (0.386 -> 0.280 ns) but TinyViT-5M's
/// steps slower (8.00 -> 8.55 ms), and twelve made no difference.
const GROUP: usize = 8;

/// The lanes of a tail of `n < 16` elements.
fn tail_mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// The lanes of register `i` of a step over `len` floats: all sixteen, the first
/// `len - 16 i`, or none.
fn lanes(len: usize, i: usize) -> __mmask16 {
    tail_mask(len.saturating_sub(16 * i).min(16))
}

/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn gelu_avx512(x: &mut [f32]) {
    let mut groups = x.chunks_exact_mut(GROUP * 16);
    for c in &mut groups {
        let p = c.as_mut_ptr();
        // SAFETY: `c` holds exactly `GROUP * 16` floats; unaligned loads and stores.
        unsafe {
            let v =
                gelu16n_pieces::<GROUP>(std::array::from_fn(|i| _mm512_loadu_ps(p.add(16 * i))));
            for (i, v) in v.into_iter().enumerate() {
                _mm512_storeu_ps(p.add(16 * i), v);
            }
        }
    }
    let mut chunks = groups.into_remainder().chunks_exact_mut(16);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly sixteen floats; unaligned loads and stores.
        unsafe { _mm512_storeu_ps(c.as_mut_ptr(), gelu16_pieces(_mm512_loadu_ps(c.as_ptr()))) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let m = tail_mask(tail.len());
        // SAFETY: the mask covers exactly the tail's elements (masked lanes are not accessed).
        unsafe {
            let v = gelu16_pieces(_mm512_maskz_loadu_ps(m, tail.as_ptr()));
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
    let mut groups = x.chunks_exact_mut(GROUP * 16);
    for c in &mut groups {
        let p = c.as_mut_ptr();
        // SAFETY: `c` holds exactly `GROUP * 16` floats; unaligned loads and stores.
        unsafe {
            let e = exp16n::<GROUP>(std::array::from_fn(|i| {
                _mm512_sub_ps(_mm512_loadu_ps(p.add(16 * i)), s)
            }));
            for (i, e) in e.into_iter().enumerate() {
                _mm512_storeu_ps(p.add(16 * i), e);
                // In order, as one register at a time adds them.
                acc = _mm512_add_ps(acc, e);
            }
        }
    }
    // The rest in steps of four registers, the last ones masked (a 7x7 window's 49 scores are
    // one step), where one register at a time waited on each `exp` before the next.
    for c in groups.into_remainder().chunks_mut(64) {
        let (p, len) = (c.as_mut_ptr(), c.len());
        let m: [__mmask16; 4] = std::array::from_fn(|i| lanes(len, i));
        // SAFETY: masked lanes are not accessed (no fault, even past the slice); the others
        // are `c`'s floats. `wrapping_add`: a register wholly past the slice is never read.
        // Whole registers load unmasked: the caller has just stored the scores, and a masked
        // load waits for the stores to land where a plain one takes their values (Zen 5).
        let e = exp16n::<4>(std::array::from_fn(|i| unsafe {
            let at = p.wrapping_add(16 * i);
            let v = if 16 * (i + 1) <= len {
                _mm512_loadu_ps(at)
            } else {
                _mm512_maskz_loadu_ps(m[i], at)
            };
            _mm512_sub_ps(v, s)
        }));
        for i in 0..4 {
            // SAFETY: as the loads. In order, and only the floats' lanes added to the sum.
            unsafe { _mm512_mask_storeu_ps(p.wrapping_add(16 * i), m[i], e[i]) };
            acc = _mm512_mask_add_ps(acc, m[i], acc, e[i]);
        }
    }
    _mm512_reduce_add_ps(acc)
}

/// `x[i] = x[i] * scale + add[i]` (`x[i] * scale` without `add`), a multiply and an add as the
/// scalar loop rounds them, returning the largest result as `super::max` finds it (NaNs
/// skipped: `max(v, m)` gives `m` for a NaN `v`).
///
/// # Safety
/// AVX-512F must be available; `add`, when given, is as long as `x`.
#[target_feature(enable = "avx512f")]
pub unsafe fn scale_add_max_avx512(x: &mut [f32], scale: f32, add: Option<&[f32]>) -> f32 {
    debug_assert!(add.is_none_or(|a| a.len() == x.len()));
    let vs = _mm512_set1_ps(scale);
    let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
    // Whole registers load unmasked: the scores were just stored, and a masked load waits for
    // the stores to land where a plain one takes their values (Zen 5).
    let whole = x.len() / 16 * 16;
    let p = x.as_mut_ptr();
    for i in (0..whole).step_by(16) {
        // SAFETY: `x` and `add` hold sixteen floats from `i`.
        unsafe {
            let mut v = _mm512_mul_ps(_mm512_loadu_ps(p.add(i)), vs);
            if let Some(a) = add {
                v = _mm512_add_ps(v, _mm512_loadu_ps(a.as_ptr().add(i)));
            }
            _mm512_storeu_ps(p.add(i), v);
            m = _mm512_max_ps(v, m);
        }
    }
    if whole < x.len() {
        let mask = tail_mask(x.len() - whole);
        // SAFETY: the mask covers exactly the floats from `whole` on, in `x` and in `add`.
        unsafe {
            let mut v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, p.add(whole)), vs);
            if let Some(a) = add {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, a.as_ptr().add(whole)));
            }
            _mm512_mask_storeu_ps(p.add(whole), mask, v);
            m = _mm512_mask_max_ps(m, mask, v, m);
        }
    }
    _mm512_reduce_max_ps(m)
}
