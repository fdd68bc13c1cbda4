//! Summary statistics over seeds: mean ± sample standard deviation for the main table (as the
//! paper reports it), mean with a Student-t 95% confidence interval for the ablations (few seeds,
//! so the normal 1.96 would be far too narrow).

use serde::{Deserialize, Serialize};

/// Mean, sample standard deviation (n − 1) and the 95% confidence half-width of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// 0 for a single value.
    pub std: f64,
    /// `t(0.975, n − 1) · std / √n`; `None` for a single value (no interval exists).
    pub ci95: Option<f64>,
}

impl Summary {
    /// `None` for an empty sample; non-finite values are ignored (a group without samples).
    pub fn of(values: &[f64]) -> Option<Self> {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let n = v.len();
        if n == 0 {
            return None;
        }
        let mean = v.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let ci95 = (n > 1).then(|| t975(n - 1) * std / (n as f64).sqrt());
        Some(Self { n, mean, std, ci95 })
    }

    /// `mean±std` with `digits` decimals, the mean alone for one value (as in the paper's table).
    pub fn mean_std(&self, scale: f64, digits: usize) -> String {
        if self.n > 1 {
            format!(
                "{:.digits$}±{:.digits$}",
                self.mean * scale,
                self.std * scale
            )
        } else {
            format!("{:.digits$}", self.mean * scale)
        }
    }

    /// `mean [lo, hi]` (95% CI), the mean alone for one value.
    pub fn mean_ci(&self, scale: f64, digits: usize) -> String {
        match self.ci95 {
            Some(h) => format!(
                "{:.digits$} [{:.digits$}, {:.digits$}]",
                self.mean * scale,
                (self.mean - h) * scale,
                (self.mean + h) * scale
            ),
            None => format!("{:.digits$}", self.mean * scale),
        }
    }
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (exact to 3 decimals up to 30,
/// then the normal 1.960, which is within 2% from there on).
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        d if d <= 30 => T[d - 1],
        _ => 1.960,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_seeds_match_scipy() {
        // scipy.stats: x = [40.2, 41.5, 42.9]; np.std(x, ddof=1) = 1.35031;
        // t.ppf(0.975, 2) * 1.35031 / sqrt(3) = 3.35434.
        let s = Summary::of(&[40.2, 41.5, 42.9]).unwrap();
        assert_eq!(s.n, 3);
        assert!((s.mean - 41.533_333).abs() < 1e-5);
        assert!((s.std - 1.350_309).abs() < 1e-5, "{}", s.std);
        assert!((s.ci95.unwrap() - 3.354_34).abs() < 2e-3, "{:?}", s.ci95);
        assert_eq!(s.mean_std(1.0, 2), "41.53±1.35");
        assert_eq!(s.mean_ci(1.0, 1), "41.5 [38.2, 44.9]");
    }

    #[test]
    fn single_values_and_gaps() {
        let s = Summary::of(&[0.5, f64::NAN]).unwrap();
        assert_eq!((s.n, s.std, s.ci95), (1, 0.0, None));
        assert_eq!(s.mean_std(100.0, 1), "50.0");
        assert!(Summary::of(&[]).is_none());
        assert_eq!(t975(2), 4.303);
        assert_eq!(t975(1000), 1.960);
    }
}
