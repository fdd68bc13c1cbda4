//! Elementwise math of the token models, vectorised by hand: PyTorch's exact GELU and softmax's
//! `exp`. Both are transcendental, so the compiler cannot vectorise the scalar versions (a libm
//! `expf` call per element; a branch-free scalar rewrite was tried and came out slower), and
//! together they took about half of DeiT-Tiny's and TinyViT-5M's CPU time.
//!
//! One binary per architecture, one hand-written file per instruction set, all with the same
//! polynomials and constants (`coeffs.rs`; GELU is PyTorch's form with a rational `erf` in
//! every SIMD file but `avx512.rs`, whose piecewise fit is its own, see `x86.rs`): `x86.rs` (AVX2+FMA, eight lanes), `neon.rs` (aarch64,
//! four lanes) and `wasm.rs` (WebAssembly SIMD128, four lanes, compiled in only with
//! `+simd128`), and `avx512.rs` (AVX-512F, sixteen lanes). Which one runs follows the f32
//! micro-kernel's path ([`super::kernel::path`], detected once at run time, under
//! `FQ_MAX_ISA`): AVX-512F runs `avx512.rs`, AVX2+FMA `x86.rs`, NEON
//! `neon.rs`, SIMD128 `wasm.rs`, and `portable` (a CPU without them, `FQ_MAX_ISA=portable`, or a
//! wasm build without SIMD128) the scalar loops of `portable.rs`, which are also the reference
//! every SIMD file is tested against; except on x86-64, whose baseline has SSE2: there
//! `portable` runs `sse2.rs` (four lanes, `wasm.rs`'s operations), GELU 0.094 -> 0.20 and `exp`
//! 0.22 -> 0.6 elements/ns on one thread of the Zen 3 of stop 70.

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
mod coeffs;
#[cfg(target_arch = "aarch64")]
mod neon;
mod portable;
#[cfg(target_arch = "x86_64")]
mod sse2;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::kernel::{path, KernelPath};

pub use portable::erfc;

/// The loops of this CPU, named by the f32 kernel path they belong to: the kernel's path.
fn loops() -> KernelPath {
    path()
}

/// `x[i] = gelu(x[i]) = x/2 * erfc(-x/sqrt 2)` in place (the Numerical Recipes `erfcc` fit, as
/// `shaders/gelu.wgsl`, in the scalar reference; on AVX-512F a piecewise fit of `erfc`,
/// `coeffs::ERFC_PIECES`): within about 1e-6 relative of the exact GELU wherever it is not
/// vanishingly small. On AVX2, SSE2, NEON and SIMD128, PyTorch's own form,
/// `x/2 (1 + erf(x/sqrt 2))` with a rational `erf`: within 2e-7 max(1, |x|) absolute, as
/// PyTorch's float GELU, and 2-3.6x as fast as the fits it replaced (x86-64, V8; `x86.rs`). The
/// tests state the measured bounds. Each element's value depends on it alone, whatever the
/// slice around it.
pub fn gelu(x: &mut [f32]) {
    // SAFETY: `loops` only returns a path this CPU has.
    unsafe { gelu_on(loops(), x) }
}

/// `x[i] = exp(x[i] - shift)`, returning the sum of the results: softmax's numerator and
/// denominator in one pass. Meant for `x[i] - shift <= 0` (the row maximum as `shift`);
/// arguments below about -87.3 give about 1e-38 instead of 0 on the SIMD paths.
pub fn exp_shifted_sum(x: &mut [f32], shift: f32) -> f32 {
    // SAFETY: `loops` only returns a path this CPU has.
    unsafe { exp_shifted_sum_on(loops(), x, shift) }
}

/// `x[i] = x[i] * scale + add[i]` (`x[i] * scale` without `add`; a multiply, then an add),
/// returning [`max`] of the results: attention's scores scaled and biased, and their softmax's
/// shift, in one pass (AVX-512F: one vectorised loop, where the compiler's loop was 128-bit SSE
/// and `max` a second pass; the same floats).
///
/// # Panics
/// If `add` is not as long as `x`.
pub fn scale_add_max(x: &mut [f32], scale: f32, add: Option<&[f32]>) -> f32 {
    // SAFETY: `loops` only returns a path this CPU has.
    unsafe { scale_add_max_on(loops(), x, scale, add) }
}

/// [`scale_add_max`] by the loops of `path` (the scalar loop and [`max`] for a path without
/// its own).
///
/// # Safety
/// The CPU must have `path` ([`KernelPath::available`]).
unsafe fn scale_add_max_on(
    path: KernelPath,
    x: &mut [f32],
    scale: f32,
    add: Option<&[f32]>,
) -> f32 {
    if let Some(a) = add {
        assert_eq!(a.len(), x.len(), "scale_add_max: lengths");
    }
    #[cfg(target_arch = "x86_64")]
    if path == KernelPath::Avx512F {
        // SAFETY: the caller guarantees AVX-512F; the lengths are checked above.
        return unsafe { avx512::scale_add_max_avx512(x, scale, add) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = path;
    match add {
        Some(a) => x.iter_mut().zip(a).for_each(|(v, &b)| *v = *v * scale + b),
        None => x.iter_mut().for_each(|v| *v *= scale),
    }
    max(x)
}

/// The largest of `x` (`-inf` for none), NaNs skipped as `f32::max` skips them: softmax's shift.
///
/// Why not `fold(f32::max)`: `f32::max` must return the other operand for a NaN, and that
/// compiles to a scalar compare-and-blend chain per element (perf: the hottest loop of
/// DeiT-Tiny's attention outside its GEMMs on the Intel Xeon, `cmpunordps`). Sixteen running
/// maxima of `if v > m { v } else { m }` skip a NaN the same way (the comparison is false) and
/// compile to vector `max` instructions on every target.
pub fn max(x: &[f32]) -> f32 {
    const LANES: usize = 16;
    let bigger = |m: f32, v: f32| if v > m { v } else { m };
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = bigger(*m, v);
        }
    }
    lanes
        .iter()
        .chain(tail)
        .copied()
        .fold(f32::NEG_INFINITY, bigger)
}

/// [`gelu`] by the loops of `path` (the portable ones for a path without its own).
///
/// # Safety
/// The CPU must have `path` ([`KernelPath::available`]).
unsafe fn gelu_on(path: KernelPath, x: &mut [f32]) {
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller guarantees AVX2 and FMA.
        KernelPath::Avx2Fma => unsafe { x86::gelu_avx2(x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller guarantees AVX-512F.
        KernelPath::Avx512F => unsafe { avx512::gelu_avx512(x) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is baseline on aarch64.
        KernelPath::Neon => unsafe { neon::gelu(x) },
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        KernelPath::Simd128 => wasm::gelu(x),
        // x86-64's baseline: SSE2.
        #[cfg(target_arch = "x86_64")]
        _ => sse2::gelu(x),
        #[cfg(not(target_arch = "x86_64"))]
        _ => portable::gelu(x),
    }
}

/// [`exp_shifted_sum`] by the loops of `path` (the portable ones for a path without its own).
///
/// # Safety
/// The CPU must have `path` ([`KernelPath::available`]).
unsafe fn exp_shifted_sum_on(path: KernelPath, x: &mut [f32], shift: f32) -> f32 {
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller guarantees AVX2 and FMA.
        KernelPath::Avx2Fma => unsafe { x86::exp_shifted_sum_avx2(x, shift) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller guarantees AVX-512F.
        KernelPath::Avx512F => unsafe { avx512::exp_shifted_sum_avx512(x, shift) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is baseline on aarch64.
        KernelPath::Neon => unsafe { neon::exp_shifted_sum(x, shift) },
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        KernelPath::Simd128 => wasm::exp_shifted_sum(x, shift),
        #[cfg(target_arch = "x86_64")]
        _ => sse2::exp_shifted_sum(x, shift),
        #[cfg(not(target_arch = "x86_64"))]
        _ => portable::exp_shifted_sum(x, shift),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every set of loops this CPU can run, the dispatched one among them (asserted) and the
    /// portable reference last, so each test below checks the SIMD files directly, whatever
    /// `FQ_MAX_ISA` says (a CI step with `FQ_MAX_ISA=portable` still tests NEON).
    fn every_loop() -> Vec<KernelPath> {
        let all = [
            KernelPath::Avx512F,
            KernelPath::Avx2Fma,
            KernelPath::Neon,
            KernelPath::Simd128,
            KernelPath::Portable,
        ];
        let v: Vec<KernelPath> = all.into_iter().filter(|p| p.available()).collect();
        assert!(v.contains(&loops()), "{:?} not in {v:?}", loops());
        v
    }

    /// `max` against `fold(f32::max)`: every length around whole chunks of 16, the largest at
    /// every position, NaNs anywhere (skipped), all NaN and empty (`-inf`), signed infinities.
    #[test]
    fn max_is_fold_max() {
        let reference = |x: &[f32]| x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        for n in 0..=50 {
            for top in 0..n.max(1) {
                let mut x: Vec<f32> = (0..n).map(|i| ((i * 37) % 23) as f32 - 30.0).collect();
                if n > 0 {
                    x[top] = 5.0 + top as f32;
                }
                assert_eq!(max(&x), reference(&x), "n {n} top {top}");
                if n > 1 {
                    x[(top + 1) % n] = f32::NAN;
                    assert_eq!(max(&x), reference(&x), "n {n} top {top} with a NaN");
                }
            }
        }
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        assert_eq!(max(&[f32::NAN; 20]), f32::NEG_INFINITY);
        assert_eq!(max(&[f32::NEG_INFINITY, -1.0]), -1.0);
        assert_eq!(max(&[3.0, f32::INFINITY, f32::NAN]), f32::INFINITY);
    }

    /// The scores scaled and biased in one pass: bit for bit the scalar multiply and add, and
    /// the maximum `max` finds in them, on every path, with and without the bias, at every
    /// length around the registers' sixteen lanes and with NaNs among the scores.
    #[test]
    fn scale_add_max_is_the_scalar_loop_then_max() {
        // Attention's `1/sqrt(32)`: not a power of two, so a fused multiply-add rounds otherwise.
        let scale = 32f32.powf(-0.5);
        for p in every_loop() {
            for n in 0..=70 {
                for with_nan in [false, true] {
                    let mut x: Vec<f32> = (0..n)
                        .map(|i| ((i * 37) % 23) as f32 * 0.37 - 3.0)
                        .collect();
                    if with_nan && n > 2 {
                        x[n / 2] = f32::NAN;
                    }
                    let bias: Vec<f32> =
                        (0..n).map(|i| ((i * 11) % 7) as f32 * 0.21 - 0.6).collect();
                    for add in [None, Some(bias.as_slice())] {
                        let mut want = x.clone();
                        match add {
                            Some(a) => want
                                .iter_mut()
                                .zip(a)
                                .for_each(|(v, &b)| *v = *v * scale + b),
                            None => want.iter_mut().for_each(|v| *v *= scale),
                        }
                        let mut got = x.clone();
                        // SAFETY: `every_loop` lists only paths this CPU has.
                        let m = unsafe { scale_add_max_on(p, &mut got, scale, add) };
                        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        assert_eq!(
                            bits(&got),
                            bits(&want),
                            "{}: n {n} nan {with_nan} bias {}",
                            p.name(),
                            add.is_some()
                        );
                        assert_eq!(m, max(&want), "n {n} nan {with_nan} bias {}", add.is_some());
                    }
                }
            }
        }
    }

    fn gelu_by(p: KernelPath) -> impl Fn(&mut [f32]) {
        // SAFETY: `every_loop` lists only paths this CPU has.
        move |x| unsafe { gelu_on(p, x) }
    }

    fn exp_by(p: KernelPath) -> impl Fn(&mut [f32], f32) -> f32 {
        // SAFETY: as above.
        move |x, s| unsafe { exp_shifted_sum_on(p, x, s) }
    }

    /// PyTorch's exact GELU in f64 (libm's erf), the reference every path is held to.
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
    /// z^2 = x^2/2, the f32 rounding of exp's argument, the same on every path).
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

    /// Whether path `p`'s GELU is PyTorch's form, accurate in absolute terms (AVX2's, `x86.rs`,
    /// SSE2's, what `portable` runs on x86-64, NEON's and SIMD128's), rather than an `erfc` fit
    /// accurate in relative terms (AVX-512F's pieces, the scalar reference).
    fn is_absolute(p: KernelPath) -> bool {
        matches!(
            p,
            KernelPath::Avx2Fma | KernelPath::Neon | KernelPath::Simd128
        ) || (p == KernelPath::Portable && cfg!(target_arch = "x86_64"))
    }

    #[test]
    fn gelu_matches_exact_gelu_on_every_path() {
        // The scalar reference too (on x86-64 the portable path runs SSE2's loops).
        let (core, all) = worst(portable::gelu);
        eprintln!("gelu, scalar loop: {core:.2e} for x >= -4, {all:.2e} over [-12, 12]");
        assert!(
            core < 2e-6 && all < 1e-5,
            "scalar gelu off by {core:.2e} / {all:.2e}"
        );
        for p in every_loop() {
            let (core, all) = worst(gelu_by(p));
            eprintln!(
                "gelu on path {}: max relative error {core:.2e} for x >= -4, {all:.2e} over \
                 [-12, 12]",
                p.name()
            );
            if is_absolute(p) {
                // PyTorch's form (`x86.rs`): error in proportion to max(1, |x|), as PyTorch's own
                // float GELU (1.55e-7 by this measure).
                let x = inputs();
                let mut y = x.clone();
                gelu_by(p)(&mut y);
                let scaled = x
                    .iter()
                    .zip(&y)
                    .map(|(&x, &y)| {
                        (y as f64 - exact_gelu(x as f64)).abs() / x.abs().max(1.0) as f64
                    })
                    .fold(0f64, f64::max);
                eprintln!(
                    "gelu on path {}: error / max(1, |x|) {scaled:.2e}",
                    p.name()
                );
                assert!(scaled < 2.5e-7, "gelu on {} off by {scaled:.2e}", p.name());
            } else {
                assert!(
                    core < 2e-6 && all < 1e-5,
                    "gelu on {} off by {core:.2e} / {all:.2e}",
                    p.name()
                );
            }
            // Special values behave as the scalar code: NaN stays NaN, +inf stays +inf.
            let mut s = [f32::NAN, f32::INFINITY, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
            gelu_by(p)(&mut s);
            assert!(
                s[0].is_nan() && s[1] == f32::INFINITY && s[2] == 0.0,
                "{}: {s:?}",
                p.name()
            );
        }
    }

    /// Every length from 0 to 80 (all tails of the 4- and 8-lane loops) against the scalar path,
    /// at offsets that are not 16- or 32-byte aligned.
    #[test]
    fn gelu_tails_match_the_portable_loop() {
        let base: Vec<f32> = (0..90).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        for p in every_loop() {
            for off in 0..3 {
                for n in 0..=80 {
                    let (mut a, mut b) = (base[off..off + n].to_vec(), base[off..off + n].to_vec());
                    gelu_by(p)(&mut a);
                    portable::gelu(&mut b);
                    for (i, (u, v)) in a.iter().zip(&b).enumerate() {
                        let x = base[off + i];
                        let tol = if is_absolute(p) {
                            4e-7 * x.abs().max(1.0)
                        } else {
                            2e-6 * v.abs().max(1e-6)
                        };
                        assert!(
                            (u - v).abs() <= tol,
                            "{}, len {n}, element {i}: {u} vs {v}",
                            p.name()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn exp_shifted_sum_matches_f64_exp() {
        for p in every_loop() {
            for n in 0..=67 {
                let x: Vec<f32> = (0..n)
                    .map(|i| ((i * 37) % 101) as f32 * -0.9 + 3.0)
                    .collect();
                let shift = 3.0f32;
                let mut got = x.clone();
                let sum = exp_by(p)(&mut got, shift);
                let mut want_sum = 0f64;
                for (&g, &v) in got.iter().zip(&x) {
                    let want = ((v - shift) as f64).exp();
                    want_sum += want;
                    let e = (g as f64 - want).abs() / want.max(1e-37);
                    // Below exp(-87.3) the SIMD paths clamp to about 1e-38 instead of 0.
                    assert!(
                        e < 4e-7 || want < 1.2e-38,
                        "{}, len {n}, exp({}) = {g}, want {want}",
                        p.name(),
                        v - shift
                    );
                }
                let se = (sum as f64 - want_sum).abs() / want_sum.max(1e-30);
                assert!(se < 1e-6, "{}, len {n}: sum {sum} vs {want_sum}", p.name());
            }
        }
    }

    /// Softmax-sized arguments over the whole useful range, worst relative error printed.
    #[test]
    fn exp_is_within_two_ulp_over_its_range() {
        let mut x: Vec<f32> = (0..=87 * 1000).map(|i| -(i as f32) / 1000.0).collect();
        x.extend((0..1000).map(|i| i as f32 / 100.0));
        for p in every_loop() {
            let mut got = x.clone();
            exp_by(p)(&mut got, 0.0);
            let mut worst = 0f64;
            for (&g, &v) in got.iter().zip(&x) {
                let want = (v as f64).exp();
                worst = worst.max((g as f64 - want).abs() / want);
            }
            eprintln!("exp on path {}: max relative error {worst:.2e}", p.name());
            assert!(worst < 2.5e-7, "exp on {} off by {worst:.2e}", p.name());
            let mut nan = [f32::NAN; 9];
            assert!(
                exp_by(p)(&mut nan, 0.0).is_nan() && nan.iter().all(|v| v.is_nan()),
                "{}",
                p.name()
            );
        }
    }

    /// The public functions run the loops of the f32 kernel's path: NEON on every aarch64 CPU
    /// and SIMD128 in a `+simd128` wasm build unless `FQ_MAX_ISA` lowers them, AVX2+FMA on
    /// x86-64 CPUs with it. Checked on the results, not only on `loops()`: `gelu` and
    /// `exp_shifted_sum` equal the chosen loops bit for bit and, when those are SIMD, differ from
    /// the portable loop in some low bits (other rounding), so a dispatch that fell back to the
    /// scalar loops fails here even though it would pass every accuracy test above.
    #[test]
    fn the_public_functions_run_the_kernel_paths_loops() {
        let chosen = loops();
        eprintln!(
            "vmath loops: {} (f32 kernel path {})",
            chosen.name(),
            path().name()
        );
        assert_eq!(chosen, path());
        if super::super::kernel::max_isa() == super::super::kernel::MaxIsa::Native {
            #[cfg(target_arch = "aarch64")]
            assert_eq!(chosen, KernelPath::Neon);
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            assert_eq!(chosen, KernelPath::Simd128);
        }
        let x = inputs();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
        let (mut public, mut by, mut scalar) = (x.clone(), x.clone(), x.clone());
        gelu(&mut public);
        gelu_by(chosen)(&mut by);
        portable::gelu(&mut scalar);
        assert_eq!(bits(&public), bits(&by), "gelu is not {}'s", chosen.name());
        let differs = bits(&public) != bits(&scalar);
        // On x86-64 the portable path's loops are SSE2's (`sse2.rs`), not the scalar ones.
        let simd = chosen != KernelPath::Portable || cfg!(target_arch = "x86_64");
        assert_eq!(differs, simd, "gelu, {}", chosen.name());
        let e: Vec<f32> = (0..4099).map(|i| -(i as f32) / 50.0).collect();
        let (mut public, mut by, mut scalar) = (e.clone(), e.clone(), e.clone());
        let s = exp_shifted_sum(&mut public, 0.0);
        let t = exp_by(chosen)(&mut by, 0.0);
        portable::exp_shifted_sum(&mut scalar, 0.0);
        assert_eq!((bits(&public), s.to_bits()), (bits(&by), t.to_bits()));
        let differs = bits(&public) != bits(&scalar);
        assert_eq!(differs, simd, "exp, {}", chosen.name());
    }

    /// Not a check: elements per nanosecond of every loop this CPU has, over 1M floats (4 MiB,
    /// beyond L2: the size of a DeiT-Tiny MLP activation at batch 4), best of 10 calls, 3 rounds.
    /// GELU on [-8, 8), `exp` on [-16, 0). For wasm, with V8's optimising tier from the start:
    /// `FQ_WASM_RELEASE=1 tests/web/kernel-wasm.sh vmath_speed --ignored`, then
    /// `node --no-liftoff tests/web/wasi-run.mjs target/wasm32-wasip1/release/deps/fq_runtime-*.wasm
    /// vmath_speed --ignored --nocapture`. Timings under qemu mean nothing.
    /// Measured 2026-12-02 (AMD EPYC, AVX2+FMA, 2 cores shared): natively AVX2+FMA GELU 0.55,
    /// exp 1.83-1.87 elements/ns, portable 0.07-0.10 and 0.22; SIMD128 under V8 in `wasm.rs`'s
    /// module doc. Stop 71 (the Zen 3 EPYC): AVX2+FMA GELU 1.0 (the `erfc` pieces) -> 2.04-2.42
    /// (PyTorch's form, `x86.rs`), exp 1.81-2.19; portable (SSE2) GELU 0.20-0.21.
    #[test]
    #[ignore]
    fn vmath_speed() {
        use std::hint::black_box;
        use std::time::{Duration, Instant};
        let n = 1 << 20;
        let g: Vec<f32> = (0..n).map(|i| (i % 4096) as f32 / 256.0 - 8.0).collect();
        let e: Vec<f32> = (0..n).map(|i| -((i % 4096) as f32) / 256.0).collect();
        let mut buf = vec![0f32; n];
        let per_ns = |d: Duration| n as f64 / d.as_nanos() as f64;
        for round in 0..3 {
            for p in every_loop() {
                let (mut tg, mut te) = (Duration::MAX, Duration::MAX);
                for _ in 0..10 {
                    buf.copy_from_slice(&g);
                    let t = Instant::now();
                    gelu_by(p)(black_box(&mut buf));
                    tg = tg.min(t.elapsed());
                    buf.copy_from_slice(&e);
                    let t = Instant::now();
                    black_box(exp_by(p)(black_box(&mut buf), 0.0));
                    te = te.min(t.elapsed());
                }
                eprintln!(
                    "round {round}, {}: gelu {:.3} elements/ns, exp_shifted_sum {:.3} elements/ns",
                    p.name(),
                    per_ns(tg),
                    per_ns(te)
                );
            }
        }
    }
}
