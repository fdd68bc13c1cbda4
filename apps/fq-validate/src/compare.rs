//! Compression time vs field, per group, and the verdict.
//!
//! Statistics (named in every report): each accuracy with a Wilson score interval; the difference
//! field - compression with Newcombe's hybrid score interval; significance by the pooled
//! two-proportion z-test, two-sided, at level `alpha`. The verdict compares worst group with worst
//! group: FAIL when the field's worst-group accuracy is more than `tolerance` below the
//! compression-time worst-group accuracy the model file carries.

use fq_eval::metrics::{
    newcombe_difference, two_proportion_z_test, wilson, FairnessMetrics, Interval,
};
use serde::Serialize;

/// How the comparison is judged.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Settings {
    /// Allowed drop of the worst-group accuracy, as a fraction (0.05 = 5 points).
    pub tolerance: f64,
    pub alpha: f64,
    pub confidence: f64,
}

/// An accuracy measured on `count` images.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Rate {
    pub correct: usize,
    pub count: usize,
    pub accuracy: f64,
    /// Wilson score interval at the settings' confidence.
    pub interval: Interval,
}

impl Rate {
    /// `None` for a group without samples.
    fn new(correct: usize, count: usize, confidence: f64) -> Option<Rate> {
        Some(Rate {
            correct,
            count,
            accuracy: correct as f64 / count as f64,
            interval: wilson(correct, count, confidence)?,
        })
    }
}

/// One group, both measurements.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupComparison {
    pub group: String,
    pub compression: Option<Rate>,
    pub field: Option<Rate>,
    /// Field accuracy minus compression-time accuracy.
    pub difference: Option<f64>,
    /// Newcombe interval of `difference`.
    pub difference_interval: Option<Interval>,
    pub z: Option<f64>,
    pub p_value: Option<f64>,
    /// `p_value < alpha`.
    pub significant: Option<bool>,
    /// The field accuracy is more than `tolerance` below this group's compression-time figure.
    pub beyond_tolerance: bool,
}

/// The overall judgement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub pass: bool,
    /// Lowest field accuracy over groups with field samples, and that group.
    pub field_worst_group: String,
    pub field_worst_acc: f64,
    /// The compression-time worst-group accuracy (the promise), and its group.
    pub compression_worst_group: String,
    pub compression_worst_acc: f64,
    /// `compression_worst_acc - field_worst_acc` (positive: worse in the field).
    pub drop: f64,
    pub tolerance: f64,
    /// Whether the field worst group's own difference is statistically significant.
    pub drop_significant: Option<bool>,
    pub message: String,
}

/// Per-group comparison of `field` with `compression` (both over the model's groups, in its
/// order) and the verdict. Errors when the field set has no samples at all.
pub fn compare(
    compression: &FairnessMetrics,
    field: &FairnessMetrics,
    s: &Settings,
) -> Result<(Vec<GroupComparison>, Verdict), String> {
    if compression.group_names != field.group_names {
        return Err(format!(
            "the model's compression-time groups {:?} differ from the field groups {:?}",
            compression.group_names, field.group_names
        ));
    }
    let groups: Vec<GroupComparison> = (0..field.group_names.len())
        .map(|g| {
            let c = Rate::new(
                compression.group_correct[g],
                compression.group_count[g],
                s.confidence,
            );
            let f = Rate::new(field.group_correct[g], field.group_count[g], s.confidence);
            let (difference, interval, test) = match (c, f) {
                (Some(c), Some(f)) => (
                    Some(f.accuracy - c.accuracy),
                    newcombe_difference(f.correct, f.count, c.correct, c.count, s.confidence),
                    two_proportion_z_test(c.correct, c.count, f.correct, f.count),
                ),
                _ => (None, None, None),
            };
            GroupComparison {
                group: field.group_names[g].clone(),
                compression: c,
                field: f,
                difference,
                difference_interval: interval,
                z: test.map(|t| t.z),
                p_value: test.map(|t| t.p_value),
                significant: test.map(|t| t.p_value < s.alpha),
                beyond_tolerance: difference.is_some_and(|d| d < -s.tolerance),
            }
        })
        .collect();
    let worst = |rates: &dyn Fn(&GroupComparison) -> Option<Rate>| {
        groups
            .iter()
            .filter_map(|g| rates(g).map(|r| (g, r.accuracy)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    };
    let (fw, field_worst_acc) = worst(&|g| g.field).ok_or("the field set has no samples")?;
    let (cw, compression_worst_acc) =
        worst(&|g| g.compression).ok_or("the model's compression-time figures have no samples")?;
    let drop = compression_worst_acc - field_worst_acc;
    // A tiny epsilon so that a drop of exactly the tolerance (in decimal) passes.
    let pass = drop <= s.tolerance + 1e-12;
    let pct = |v: f64| 100.0 * v;
    let message = format!(
        "{}: worst group in the field `{}` at {:.1}% vs {:.1}% promised (`{}`), a drop of {:.1} points against a tolerance of {:.1}",
        if pass { "PASS" } else { "FAIL" },
        fw.group,
        pct(field_worst_acc),
        pct(compression_worst_acc),
        cw.group,
        pct(drop),
        pct(s.tolerance)
    );
    let verdict = Verdict {
        pass,
        field_worst_group: fw.group.clone(),
        field_worst_acc,
        compression_worst_group: cw.group.clone(),
        compression_worst_acc,
        drop,
        tolerance: s.tolerance,
        drop_significant: fw.significant,
        message,
    };
    Ok((groups, verdict))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metrics with the given (correct, count) per group; the aggregates are not used here.
    fn metrics(groups: &[(usize, usize)]) -> FairnessMetrics {
        let (mut y, mut p, mut g) = (vec![], vec![], vec![]);
        for (i, &(c, n)) in groups.iter().enumerate() {
            for k in 0..n {
                y.push(0);
                p.push(usize::from(k >= c));
                g.push(i);
            }
        }
        let names: Vec<String> = (0..groups.len()).map(|i| format!("g{i}")).collect();
        FairnessMetrics::compute(&y, &p, &g, 2, &names).unwrap()
    }

    const S: Settings = Settings {
        tolerance: 0.05,
        alpha: 0.05,
        confidence: 0.95,
    };

    #[test]
    fn per_group_figures_and_tests() {
        // Compression: g0 56/70, g1 90/100. Field: g0 48/80, g1 88/100.
        let (groups, v) = compare(
            &metrics(&[(56, 70), (90, 100)]),
            &metrics(&[(48, 80), (88, 100)]),
            &S,
        )
        .unwrap();
        let g0 = &groups[0];
        assert_eq!(g0.compression.unwrap().accuracy, 0.8);
        assert_eq!(g0.field.unwrap().accuracy, 0.6);
        assert!((g0.difference.unwrap() + 0.2).abs() < 1e-15);
        // Newcombe's example (a) mirrored: 48/80 - 56/70 -> -0.3339 .. -0.0524.
        let d = g0.difference_interval.unwrap();
        assert!(
            (d.lo + 0.3338726540369059).abs() < 1e-12 && (d.hi + 0.05243147240236498).abs() < 1e-12,
            "{d:?}"
        );
        // Python: z = -2.6501719512585336, p = 0.008045081368196568.
        assert!((g0.z.unwrap() + 2.6501719512585336).abs() < 1e-12);
        assert!((g0.p_value.unwrap() - 0.008045081368196568).abs() < 1e-12);
        assert_eq!(g0.significant, Some(true));
        assert!(g0.beyond_tolerance);
        let g1 = &groups[1];
        assert_eq!(g1.significant, Some(false)); // 0.90 vs 0.88: p = 0.65
        assert!(!g1.beyond_tolerance);
        // Worst: field g0 at 0.6 vs compression g0 at 0.8 -> drop 0.2 > 0.05.
        assert!(!v.pass);
        assert_eq!(
            (
                v.field_worst_group.as_str(),
                v.compression_worst_group.as_str()
            ),
            ("g0", "g0")
        );
        assert!((v.drop - 0.2).abs() < 1e-12);
        assert_eq!(v.drop_significant, Some(true));
        assert!(v.message.starts_with("FAIL"), "{}", v.message);
    }

    #[test]
    fn verdict_compares_worst_with_worst_within_tolerance() {
        // Promised worst 0.70 (g1); field worst 0.66 (g0): drop 0.04 <= 0.05 -> PASS, even though
        // the worst group changed.
        let (_, v) = compare(
            &metrics(&[(80, 100), (70, 100)]),
            &metrics(&[(66, 100), (75, 100)]),
            &S,
        )
        .unwrap();
        assert!(v.pass, "{}", v.message);
        assert_eq!(
            (
                v.field_worst_group.as_str(),
                v.compression_worst_group.as_str()
            ),
            ("g0", "g1")
        );
        // Exactly at the tolerance passes; just past it fails.
        let (_, v) = compare(&metrics(&[(70, 100)]), &metrics(&[(65, 100)]), &S).unwrap();
        assert!(v.pass, "{}", v.message);
        let (_, v) = compare(&metrics(&[(70, 100)]), &metrics(&[(64, 100)]), &S).unwrap();
        assert!(!v.pass);
    }

    #[test]
    fn group_missing_in_the_field_is_listed_but_not_judged() {
        let c = metrics(&[(50, 100), (80, 100)]);
        let mut f = metrics(&[(0, 0), (79, 100)]);
        f.group_names = c.group_names.clone();
        let (groups, v) = compare(&c, &f, &S).unwrap();
        assert_eq!(groups[0].field, None);
        assert_eq!(groups[0].significant, None);
        // Only g1 was measured in the field: 0.79 vs the promised worst 0.50 -> PASS.
        assert!(v.pass);
        assert_eq!(v.field_worst_group, "g1");
        let mut other = metrics(&[(1, 2)]);
        other.group_names = vec!["x".into()];
        assert!(compare(&c, &other, &S).unwrap_err().contains("differ"));
    }
}
