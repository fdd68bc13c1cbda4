//! How sure an accuracy measured on `n` images is: Wilson score intervals for one proportion,
//! Newcombe's hybrid score interval for the difference of two, and the pooled two-proportion
//! z-test. The field-validation tool and the model card use them so that a group of 30 images is
//! never read as precisely as one of 3,000.
//!
//! The normal distribution is computed here (no statistics crate): `erfc` by a series below 3 and
//! a continued fraction above, both accurate to about 1e-15, and the quantile by Acklam's
//! approximation polished with Newton steps.

use serde::{Deserialize, Serialize};

/// A closed interval `[lo, hi]` of proportions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

/// Result of the pooled two-proportion z-test of `p2 - p1`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TwoProportionTest {
    /// `p2 - p1`.
    pub difference: f64,
    /// `(p2 - p1) / sqrt(p (1 - p) (1/n1 + 1/n2))` with the pooled `p`; 0 when both samples are
    /// all successes or all failures (no variance, no evidence of a difference).
    pub z: f64,
    /// Two-sided p-value, `P(|Z| >= |z|)`.
    pub p_value: f64,
}

/// Complementary error function, `erfc(x) = 1 - erf(x)`, to about 1e-15 relative accuracy.
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 3.0 {
        // erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)): all terms positive.
        let mut term = x;
        let mut sum = x;
        let mut n = 0.0;
        while term > sum * 1e-17 {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            sum += term;
        }
        1.0 - 2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * sum
    } else {
        // Continued fraction erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))),
        // evaluated with the modified Lentz method.
        let tiny = 1e-300;
        let mut f = x;
        let mut c = x;
        let mut d = 0.0;
        for k in 1..200 {
            let a = k as f64 / 2.0;
            d = x + a * d;
            d = if d.abs() < tiny { tiny } else { d };
            c = x + a / c;
            c = if c.abs() < tiny { tiny } else { c };
            d = 1.0 / d;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (-x * x).exp() / std::f64::consts::PI.sqrt() / f
    }
}

/// Standard normal cumulative distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// Standard normal quantile (inverse CDF) for `p` in (0, 1); ±infinity at 0 and 1, NaN outside.
pub fn normal_quantile(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) || p.is_nan() {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    // Acklam's rational approximation (relative error 1.15e-9) ...
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let mut x = if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    // ... then Halley steps on the accurate CDF bring it to double precision.
    for _ in 0..2 {
        let e = normal_cdf(x) - p;
        let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
        x -= u / (1.0 + x * u / 2.0);
    }
    x
}

/// The two-sided critical value for a confidence level, e.g. 1.95996 for 0.95.
pub fn critical_z(confidence: f64) -> f64 {
    normal_quantile(1.0 - (1.0 - confidence) / 2.0)
}

/// Wilson score interval of `successes / n` at `confidence` (e.g. 0.95); `None` when `n == 0`.
/// Unlike the Wald interval it stays inside [0, 1] and keeps its coverage near 0 and 1, where
/// per-group accuracies of small groups often are.
pub fn wilson(successes: usize, n: usize, confidence: f64) -> Option<Interval> {
    if n == 0 {
        return None;
    }
    let z = critical_z(confidence);
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(Interval {
        lo: (centre - half).max(0.0),
        hi: (centre + half).min(1.0),
    })
}

/// Newcombe's hybrid score interval (his method 10) for `p1 - p2`, from the Wilson intervals of
/// both proportions; `None` when either sample is empty.
pub fn newcombe_difference(
    c1: usize,
    n1: usize,
    c2: usize,
    n2: usize,
    confidence: f64,
) -> Option<Interval> {
    let w1 = wilson(c1, n1, confidence)?;
    let w2 = wilson(c2, n2, confidence)?;
    let p1 = c1 as f64 / n1 as f64;
    let p2 = c2 as f64 / n2 as f64;
    let d = p1 - p2;
    Some(Interval {
        lo: d - ((p1 - w1.lo).powi(2) + (w2.hi - p2).powi(2)).sqrt(),
        hi: d + ((w1.hi - p1).powi(2) + (p2 - w2.lo).powi(2)).sqrt(),
    })
}

/// Pooled two-proportion z-test of `c2/n2 - c1/n1` (two-sided); `None` when either sample is
/// empty. The normal approximation wants roughly 5+ successes and failures per sample.
pub fn two_proportion_z_test(
    c1: usize,
    n1: usize,
    c2: usize,
    n2: usize,
) -> Option<TwoProportionTest> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let p1 = c1 as f64 / n1f;
    let p2 = c2 as f64 / n2f;
    let pooled = (c1 + c2) as f64 / (n1f + n2f);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    let z = if se > 0.0 { (p2 - p1) / se } else { 0.0 };
    Some(TwoProportionTest {
        difference: p2 - p1,
        z,
        p_value: erfc(z.abs() / std::f64::consts::SQRT_2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    // Reference values: Python 3.11's `statistics.NormalDist` and `math.erfc` (independent of this
    // code), and the worked examples of Newcombe (1998), Statistics in Medicine 17:857 and 17:873.

    #[test]
    fn normal_distribution_matches_python() {
        assert!(close(normal_cdf(1.0), 0.8413447460685429, 1e-14));
        assert!(close(normal_cdf(-3.0), 0.0013498980316301035, 1e-13));
        assert!(close(erfc(5.0 / 2f64.sqrt()), 5.733031437583892e-07, 1e-13));
        assert!(close(
            erfc(8.0 / 2f64.sqrt()),
            1.2441921148543639e-15,
            1e-12
        ));
        assert!(close(erfc(-1.0) + erfc(1.0), 2.0, 1e-15));
        // NormalDist().inv_cdf(0.975), (0.995), (0.95).
        assert!(close(critical_z(0.95), 1.9599639845400536, 1e-14));
        assert!(close(critical_z(0.99), 2.5758293035489, 1e-13));
        assert!(close(normal_quantile(0.95), 1.6448536269514715, 1e-14));
        assert!(close(normal_quantile(1e-10), -6.361340902404056, 1e-12));
        assert_eq!(normal_quantile(0.5), 0.0);
        assert!(normal_quantile(1.5).is_nan());
    }

    #[test]
    fn wilson_interval_matches_newcombe_and_python() {
        // Newcombe (1998a), Table I: 81/263 -> 0.2553 to 0.3662.
        let w = wilson(81, 263, 0.95).unwrap();
        assert!(close(w.lo, 0.2552885198782743, 1e-12), "{w:?}");
        assert!(close(w.hi, 0.3662095769828001, 1e-12), "{w:?}");
        let w = wilson(81, 263, 0.99).unwrap();
        assert!(close(w.lo, 0.24013690268760773, 1e-12), "{w:?}");
        assert!(close(w.hi, 0.38528250231822986, 1e-12), "{w:?}");
        let w = wilson(15, 148, 0.95).unwrap();
        assert!(close(w.lo, 0.06238639953073629, 1e-12), "{w:?}");
        assert!(close(w.hi, 0.160487241723308, 1e-12), "{w:?}");
        // At the edges the interval stays in [0, 1] and is not degenerate.
        let w = wilson(0, 10, 0.95).unwrap();
        assert!(w.lo.abs() < 1e-15 && close(w.hi, 0.27753279986288915, 1e-12));
        let w = wilson(10, 10, 0.95).unwrap();
        assert!(close(w.lo, 0.7224672001371109, 1e-12) && w.hi == 1.0);
        assert_eq!(wilson(0, 0, 0.95), None);
    }

    #[test]
    fn difference_interval_matches_newcombe() {
        // Newcombe (1998b), example (a): 56/70 - 48/80 = 0.2, method 10 -> 0.0524 to 0.3339.
        let d = newcombe_difference(56, 70, 48, 80, 0.95).unwrap();
        assert!(close(d.lo, 0.05243147240236498, 1e-12), "{d:?}");
        assert!(close(d.hi, 0.3338726540369059, 1e-12), "{d:?}");
        assert_eq!(newcombe_difference(1, 0, 1, 1, 0.95), None);
    }

    #[test]
    fn two_proportion_test_matches_python() {
        // z = (p2 - p1) / sqrt(p (1 - p) (1/n1 + 1/n2)), p = erfc(|z| / sqrt 2), in Python.
        for (c1, n1, c2, n2, z, p) in [
            (56, 70, 48, 80, -2.6501719512585336, 0.008045081368196568),
            (81, 263, 100, 263, 1.7438038736382442, 0.08119329480322957),
            (45, 50, 40, 50, -1.4002800840280094, 0.16142946236708333),
            (90, 100, 88, 100, -0.45198461470556917, 0.6512800661041749),
        ] {
            let t = two_proportion_z_test(c1, n1, c2, n2).unwrap();
            assert!(close(t.z, z, 1e-12), "{t:?}");
            assert!(close(t.p_value, p, 1e-10), "{t:?} vs {p}");
            assert!(close(
                t.difference,
                c2 as f64 / n2 as f64 - c1 as f64 / n1 as f64,
                1e-15
            ));
        }
        let same = two_proportion_z_test(10, 10, 20, 20).unwrap();
        assert_eq!((same.z, same.p_value), (0.0, 1.0));
        assert_eq!(two_proportion_z_test(0, 0, 1, 2), None);
    }
}
