//! Elementwise math of the token models, vectorised by hand: PyTorch's exact GELU and softmax's
//! `exp`. Both are transcendental, so the compiler cannot vectorise the scalar versions (a libm
//! `expf` call per element; a branch-free scalar rewrite was tried and came out slower), and
//! together they took about half of DeiT-Tiny's and TinyViT-5M's CPU time.
//!
//! One binary per architecture: the path is the f32 micro-kernel's ([`super::kernel::path`],
//! detected once at run time), so a CPU with AVX2+FMA runs `x86.rs` and every other CPU the
//! scalar loops of `portable.rs`, which are also the reference the SIMD code is tested against.
//! Only the x86-64 path is written by hand: on aarch64 and wasm32 the portable loops run (the
//! GEMM-shaped parts of attention already go through those targets' micro-kernels).

mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(target_arch = "x86_64")]
use super::kernel::{path, KernelPath};

pub use portable::erfc;

/// Whether the AVX2+FMA loops may run: the f32 path is AVX2+FMA or above (AVX-512F CPUs have
/// both) and not lowered to `portable` by `FQ_MAX_ISA`.
#[cfg(target_arch = "x86_64")]
fn avx2_fma() -> bool {
    path() != KernelPath::Portable && KernelPath::Avx2Fma.available()
}

/// `x[i] = gelu(x[i]) = x/2 * erfc(-x/sqrt 2)` in place (the Numerical Recipes `erfcc` fit, as
/// `shaders/gelu.wgsl`): within about 1e-6 relative of the exact GELU wherever it is not
/// vanishingly small (see the tests for the measured bound).
pub fn gelu(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: `avx2_fma` saw AVX2 and FMA on this CPU.
        return unsafe { x86::gelu_avx2(x) };
    }
    portable::gelu(x)
}

/// `x[i] = exp(x[i] - shift)`, returning the sum of the results: softmax's numerator and
/// denominator in one pass. Meant for `x[i] - shift <= 0` (the row maximum as `shift`);
/// arguments below about -87.3 give about 1e-38 instead of 0 on the SIMD path.
pub fn exp_shifted_sum(x: &mut [f32], shift: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: `avx2_fma` saw AVX2 and FMA on this CPU.
        return unsafe { x86::exp_shifted_sum_avx2(x, shift) };
    }
    portable::exp_shifted_sum(x, shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's exact GELU in f64 (libm's erf), the reference both paths are held to.
    fn exact_gelu(x: f64) -> f64 {
        0.5 * x * libm::erfc(-x / std::f64::consts::SQRT_2)
    }

    /// Values from -12 to 12 in steps of 1/1024 plus odd lengths (every tail length 0..8) and
    /// the special values.
    fn inputs() -> Vec<f32> {
        let mut v: Vec<f32> = (-12 * 1024..=12 * 1024)
            .map(|i| i as f32 / 1024.0)
            .collect();
        v.extend([
            0.0, -0.0, 1e-30, -1e-30, 40.0, -40.0, 1e4, -1e4, 3.3e38, -3.3e38,
        ]);
        v
    }

    /// Error of `got` against the exact GELU: relative, with an absolute floor of 1e-12 for the
    /// far negative tail, where the exact value underflows towards 0 (below x = -7 GELU is
    /// under 1e-11 in magnitude).
    fn gelu_error(x: f32, got: f32) -> f64 {
        let want = exact_gelu(x as f64);
        (got as f64 - want).abs() / want.abs().max(1e-12)
    }

    /// Worst error of `f` on the core range (x >= -4, where |gelu| >= 1.3e-4: every value that
    /// moves a logit) and on the whole range (the negative tail's relative error grows with
    /// z^2 = x^2/2, the f32 rounding of exp's argument, the same on both paths).
    fn worst(f: impl Fn(&mut [f32])) -> (f64, f64) {
        let x = inputs();
        let mut y = x.clone();
        f(&mut y);
        let (mut core, mut all) = (0f64, 0f64);
        for (&x, &y) in x.iter().zip(&y) {
            let e = gelu_error(x, y);
            all = all.max(e);
            if x >= -4.0 {
                core = core.max(e);
            }
        }
        (core, all)
    }

    #[test]
    fn gelu_matches_exact_gelu_on_every_path() {
        let (core, all) = worst(gelu);
        let (pcore, pall) = worst(portable::gelu);
        eprintln!(
            "gelu on path {}: max relative error {core:.2e} for x >= -4, {all:.2e} over \
             [-12, 12] (portable: {pcore:.2e}, {pall:.2e})",
            crate::exec::kernel::path().name()
        );
        assert!(
            pcore < 2e-6 && pall < 1e-5,
            "portable gelu off by {pcore:.2e} / {pall:.2e}"
        );
        assert!(
            core < 2e-6 && all < 1e-5,
            "gelu off by {core:.2e} / {all:.2e}"
        );
        // Special values behave as the scalar code: NaN stays NaN, +inf stays +inf.
        let mut s = [f32::NAN, f32::INFINITY, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        gelu(&mut s);
        assert!(s[0].is_nan() && s[1] == f32::INFINITY && s[2] == 0.0);
    }

    /// Every length from 0 to 80 (all tails of the 32- and 8-lane loops) against the scalar path, at
    /// offsets that are not 32-byte aligned.
    #[test]
    fn gelu_tails_match_the_portable_loop() {
        let base: Vec<f32> = (0..90).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        for off in 0..3 {
            for n in 0..=80 {
                let (mut a, mut b) = (base[off..off + n].to_vec(), base[off..off + n].to_vec());
                gelu(&mut a);
                portable::gelu(&mut b);
                for (i, (u, v)) in a.iter().zip(&b).enumerate() {
                    let tol = 2e-6 * v.abs().max(1e-6);
                    assert!((u - v).abs() <= tol, "len {n}, element {i}: {u} vs {v}");
                }
            }
        }
    }

    #[test]
    fn exp_shifted_sum_matches_f64_exp() {
        for n in 0..=67 {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 37) % 101) as f32 * -0.9 + 3.0)
                .collect();
            let shift = 3.0f32;
            let mut got = x.clone();
            let sum = exp_shifted_sum(&mut got, shift);
            let mut want_sum = 0f64;
            for (&g, &v) in got.iter().zip(&x) {
                let want = ((v - shift) as f64).exp();
                want_sum += want;
                let e = (g as f64 - want).abs() / want.max(1e-37);
                // Below exp(-87.3) the SIMD path clamps to about 1e-38 instead of 0.
                assert!(
                    e < 4e-7 || want < 1.2e-38,
                    "len {n}, exp({}) = {g}, want {want}",
                    v - shift
                );
            }
            let se = (sum as f64 - want_sum).abs() / want_sum.max(1e-30);
            assert!(se < 1e-6, "len {n}: sum {sum} vs {want_sum}");
        }
    }

    /// Softmax-sized arguments over the whole useful range, worst relative error printed.
    #[test]
    fn exp_is_within_two_ulp_over_its_range() {
        let mut x: Vec<f32> = (0..=87 * 1000).map(|i| -(i as f32) / 1000.0).collect();
        x.extend((0..1000).map(|i| i as f32 / 100.0));
        let mut got = x.clone();
        exp_shifted_sum(&mut got, 0.0);
        let mut worst = 0f64;
        for (&g, &v) in got.iter().zip(&x) {
            let want = (v as f64).exp();
            worst = worst.max((g as f64 - want).abs() / want);
        }
        eprintln!(
            "exp on path {}: max relative error {worst:.2e}",
            crate::exec::kernel::path().name()
        );
        assert!(worst < 2.5e-7, "exp off by {worst:.2e}");
        let mut nan = [f32::NAN; 9];
        assert!(exp_shifted_sum(&mut nan, 0.0).is_nan() && nan.iter().all(|v| v.is_nan()));
    }
}
