//! The scalar reference of `vmath` and the fallback on CPUs without a hand-written path.

/// GELU's `z = |x| / sqrt 2` is clamped here and `erfc(z)` taken as 0 beyond it (`erfc(9)` is
/// 4e-37, so GELU is `x` or -0 there to f32 precision). Why: without the clamp, `exp(-z^2)`,
/// `t * exp(..)` and `x/2 * erfc` fall below `f32::MIN_POSITIVE` for `|x|` past about 13, and
/// subnormal operands cost microcode assists: GELU ran 2.4 times slower on such inputs (the
/// pre-activations of a randomly initialised TinyViT's convolutions reach them).
pub const GELU_Z_MAX: f32 = 9.0;

/// `x[i] = x[i]/2 * erfc(-x[i]/sqrt 2)`, with `erfc` 0 or 2 past [`GELU_Z_MAX`]. (On x86-64
/// the reference of the tests only: the portable path runs `sse2.rs` there.)
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub fn gelu(x: &mut [f32]) {
    x.iter_mut().for_each(|v| {
        let u = -*v * std::f32::consts::FRAC_1_SQRT_2;
        let e = if u.abs() > GELU_Z_MAX {
            if u < 0.0 {
                2.0
            } else {
                0.0
            }
        } else {
            erfc(u)
        };
        *v = 0.5 * *v * e;
    });
}

/// `x[i] = exp(x[i] - shift)`, returning their sum (on x86-64 the tests' reference only).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub fn exp_shifted_sum(x: &mut [f32], shift: f32) -> f32 {
    let mut sum = 0f32;
    x.iter_mut().for_each(|v| {
        *v = (*v - shift).exp();
        sum += *v;
    });
    sum
}

/// `erfc(x)` by the Chebyshev fit of Numerical Recipes (`erfcc`, §6.2): fractional error below
/// 1.2e-7 over the whole real line, so GELU's small negative tail stays accurate too.
pub fn erfc(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * (-z * z + poly).exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_fit_is_within_its_relative_bound() {
        for i in -6000..=6000 {
            let x = i as f64 / 1000.0;
            let want = libm::erfc(x);
            let e = (erfc(x as f32) as f64 - want).abs() / want;
            // 1.2e-7 for the fit, plus f32 rounding of exp(-z^2) in the far tail.
            assert!(e < 1e-5, "erfc({x}) off by {e:.2e} relative");
        }
    }
}
