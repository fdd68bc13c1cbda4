//! The sweep's charts: the ablation chart draws both panels, the frontier draws the seeds' error
//! bars (the frontier and radar without them are tested in `report_plots.rs`).
#![cfg(feature = "plots")]

use fq_eval::plots::{ablation_chart, frontier_chart, AblationPoint, Estimate, FrontierPoint};
use std::path::Path;

/// Decodes the PNG and counts the pixels of each of the first `n` palette colours.
fn palette_pixels(path: &Path, n: usize) -> (image::RgbImage, Vec<usize>) {
    const PALETTE: [[u8; 3]; 4] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40]];
    let img = image::open(path).unwrap().into_rgb8();
    let counts = PALETTE[..n]
        .iter()
        .map(|c| img.pixels().filter(|p| &p.0 == c).count())
        .collect();
    if let Ok(dir) = std::env::var("FQ_KEEP_CHART_DIR") {
        std::fs::copy(path, Path::new(&dir).join(path.file_name().unwrap())).unwrap();
    }
    (img, counts)
}

#[test]
fn frontier_draws_error_bars_of_seeded_methods() {
    let dir = tempfile::tempdir().unwrap();
    let m = |label: &str, bits: f64, worst: f64, err: f64| FrontierPoint {
        label: label.into(),
        avg_bits: bits,
        worst_acc: worst,
        avg_acc: worst + 0.08,
        worst_err: err,
        avg_err: err,
    };
    let plain = [m("FP32", 32.0, 0.49, 0.0), m("FQ-BAQ", 3.98, 0.55, 0.0)];
    let seeded = [m("FP32", 32.0, 0.49, 0.0), m("FQ-BAQ", 3.98, 0.55, 0.04)];
    let (a, b) = (dir.path().join("plain.png"), dir.path().join("seeded.png"));
    frontier_chart(&a, "frontier", &plain).unwrap();
    frontier_chart(&b, "frontier", &seeded).unwrap();
    // The whiskers add pixels in both marker colours (worst group and mean).
    let (_, pa) = palette_pixels(&a, 4);
    let (_, pb) = palette_pixels(&b, 4);
    assert!(pb[0] > pa[0] + 20 && pb[3] > pa[3] + 20, "{pa:?} {pb:?}");
}

#[test]
fn ablation_draws_both_panels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ablation_lambda_bit.png");
    let points: Vec<AblationPoint> = [("0", 0.50), ("0.01", 0.52), ("0.1", 0.47)]
        .iter()
        .enumerate()
        .map(|(i, &(v, acc))| AblationPoint {
            value: v.into(),
            avg_acc: Estimate::new(acc + 0.05, 0.01),
            worst_acc: Estimate::new(acc, 0.02),
            avg_bits: Estimate::new(5.0 - i as f64, 0.1),
        })
        .collect();
    ablation_chart(&path, "ablation", "λ_bit", &points).unwrap();
    let (img, counts) = palette_pixels(&path, 2);
    assert_eq!(img.dimensions(), (1100, 480));
    // AvgAcc and AvgBits share the first colour; WorstAcc is the second.
    assert!(counts.iter().all(|&c| c > 100), "{counts:?}");
    assert!(ablation_chart(&path, "t", "p", &[]).is_err());
}
