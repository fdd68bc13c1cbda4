//! aarch64 NEON versions of `vmath`: four lanes at a time, the tail (1 to 3 floats) through a
//! stack copy. NEON is part of the aarch64 baseline, so the caller needs no run-time check; the
//! functions still carry `#[target_feature(enable = "neon")]`, since a global target feature does
//! not make the intrinsics safe to call (their callers are `unsafe` for that reason only).
//!
//! The same algorithms and constants (`coeffs.rs`) as the AVX2+FMA loops of `x86.rs` (GELU in
//! PyTorch's form, `exp` Cephes'), operation for operation: the fused multiply-adds are
//! `FMLA`/`FMLS`, `round` is `FRINTN` (ties to even, as `_MM_FROUND_TO_NEAREST_INT`), the
//! selects are `BSL`. `FMAX`/`FMIN` propagate NaN, so a
//! NaN argument of `exp` stays NaN as on x86-64.

use super::coeffs::*;
use std::arch::aarch64::*;

/// `e^x` on four lanes.
#[inline]
#[target_feature(enable = "neon")]
fn exp4(x: float32x4_t) -> float32x4_t {
    let x = vminq_f32(vdupq_n_f32(EXP_HI), vmaxq_f32(vdupq_n_f32(EXP_LO), x));
    let n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(LOG2E)));
    // vfmsq_f32(a, b, c) = a - b * c, fused.
    let r = vfmsq_f32(x, n, vdupq_n_f32(LN2_HI));
    let r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
    let mut p = vdupq_n_f32(P[0]);
    for &c in &P[1..] {
        // vfmaq_f32(a, b, c) = a + b * c, fused.
        p = vfmaq_f32(vdupq_n_f32(c), p, r);
    }
    // e^r = 1 + r + r^2 p(r)
    let r2 = vmulq_f32(r, r);
    let er = vaddq_f32(vfmaq_f32(r, p, r2), vdupq_n_f32(1.0));
    // `n` is an integer in [-126, 127]: 2^n from the exponent bits.
    let bits = vshlq_n_s32::<23>(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)));
    vmulq_f32(er, vreinterpretq_f32_s32(bits))
}

/// GELU on four lanes in PyTorch's form, `x/2 (1 + erf(x/sqrt 2))`, as AVX2's (`x86.rs`:
/// `erf(t) = t P(t^2) / Q(t^2)` on `t` clamped to `[-4, 4]`, 0 where `x < -4 sqrt 2`): within
/// 2e-7 max(1, |x|) of the exact GELU, as PyTorch's float GELU. The `erfcc` fit it replaces
/// took the same division plus an `exp` (12 more operations); not timed on ARM hardware (none
/// here: qemu timings mean nothing), the same change ran 2.1x (AVX2) and 2.5x (SSE2) on x86-64.
#[inline]
#[target_feature(enable = "neon")]
fn gelu4(x: float32x4_t) -> float32x4_t {
    let lo = vdupq_n_f32(-4.0);
    let t = vmulq_f32(x, vdupq_n_f32(std::f32::consts::FRAC_1_SQRT_2));
    // `FMAX`/`FMIN` propagate NaN.
    let t = vminq_f32(vdupq_n_f32(4.0), vmaxq_f32(lo, t));
    let t2 = vmulq_f32(t, t);
    let mut p = vdupq_n_f32(ERF_P[0]);
    for &c in &ERF_P[1..] {
        p = vfmaq_f32(vdupq_n_f32(c), p, t2);
    }
    let mut q = vdupq_n_f32(ERF_Q[0]);
    for &c in &ERF_Q[1..] {
        q = vfmaq_f32(vdupq_n_f32(c), q, t2);
    }
    let erf = vdivq_f32(vmulq_f32(t, p), q);
    let hx = vmulq_f32(vdupq_n_f32(0.5), x);
    // Past the clamp on the negative side the sum `1 + erf` is rounding error: 0 there.
    let gone = vcleq_f32(t, lo);
    vbslq_f32(gone, vdupq_n_f32(0.0), vfmaq_f32(hx, hx, erf))
}

/// `f` over `x` in place, four lanes at a time, the tail through a zero-padded stack copy (so
/// no load or store reaches past the slice).
#[inline]
#[target_feature(enable = "neon")]
fn map4(x: &mut [f32], mut f: impl FnMut(float32x4_t) -> float32x4_t) {
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly four floats; `vld1q_f32`/`vst1q_f32` need no alignment.
        unsafe { vst1q_f32(c.as_mut_ptr(), f(vld1q_f32(c.as_ptr()))) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut buf = [0f32; 4];
        buf[..tail.len()].copy_from_slice(tail);
        // SAFETY: `buf` holds four floats.
        unsafe { vst1q_f32(buf.as_mut_ptr(), f(vld1q_f32(buf.as_ptr()))) };
        let n = tail.len();
        tail.copy_from_slice(&buf[..n]);
    }
}

/// `x[i] = gelu(x[i])`.
#[target_feature(enable = "neon")]
pub fn gelu(x: &mut [f32]) {
    map4(x, |v| gelu4(v));
}

/// `x[i] = exp(x[i] - shift)`, returning their sum.
#[target_feature(enable = "neon")]
pub fn exp_shifted_sum(x: &mut [f32], shift: f32) -> f32 {
    let s = vdupq_n_f32(shift);
    let mut chunks = x.chunks_exact_mut(4);
    let mut acc = vdupq_n_f32(0.0);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly four floats; unaligned loads and stores.
        unsafe {
            let e = exp4(vsubq_f32(vld1q_f32(c.as_ptr()), s));
            vst1q_f32(c.as_mut_ptr(), e);
            acc = vaddq_f32(acc, e);
        }
    }
    let mut sum = vaddvq_f32(acc);
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        map4(tail, |v| exp4(vsubq_f32(v, s)));
        sum += tail.iter().sum::<f32>();
    }
    sum
}
