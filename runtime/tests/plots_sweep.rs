//! The sweep's charts (frontier, ablation, radar) are valid PNGs with every series drawn, and
//! reject inputs they cannot draw with an error naming the file.
#![cfg(feature = "plots")]

use fq_runtime::plots::{
    ablation_chart, frontier_chart, radar_chart, AblationPoint, Estimate, MethodPoint,
};
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
fn frontier_draws_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frontier.png");
    let m = |label: &str, bits: f64, worst: f64, err: f64| MethodPoint {
        label: label.into(),
        avg_bits: bits,
        worst_acc: Estimate::new(worst, err),
        avg_acc: Estimate::new(worst + 0.08, err),
    };
    let points = [
        m("FP32", 32.0, 0.49, 0.0),
        m("U4", 4.0, 0.44, 0.0),
        m("FQ-BAQ", 3.98, 0.55, 0.02),
    ];
    frontier_chart(&path, "frontier", &points).unwrap();
    let (img, counts) = palette_pixels(&path, 3);
    assert_eq!(img.dimensions(), (1100, 520));
    assert!(counts.iter().all(|&c| c > 100), "{counts:?}");

    let bad = [m("broken", 0.0, 0.5, 0.0)];
    let err = frontier_chart(&dir.path().join("bad.png"), "t", &bad).unwrap_err();
    assert!(err.to_string().contains("bad.png") && err.to_string().contains("`broken`"));
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

#[test]
fn radar_draws_each_method_and_checks_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radar.png");
    let axes: Vec<String> = ["AvgAcc", "WorstAcc", "1 − Gap", "1 − AvgBits/32"]
        .map(String::from)
        .to_vec();
    let series = vec![
        ("FP32".to_string(), vec![0.6, 0.49, 0.8, 0.0]),
        ("FQ-BAQ".to_string(), vec![0.65, 0.58, 0.85, 0.875]),
    ];
    radar_chart(&path, "radar", &axes, &series).unwrap();
    let (img, counts) = palette_pixels(&path, 2);
    assert_eq!(img.dimensions(), (900, 640));
    assert!(counts.iter().all(|&c| c > 100), "{counts:?}");
    let out_of_range = vec![("x".to_string(), vec![0.5, 1.5, 0.5, 0.5])];
    let err = radar_chart(&path, "t", &axes, &out_of_range).unwrap_err();
    assert!(err.to_string().contains("outside [0, 1]"), "{err}");
    assert!(radar_chart(&path, "t", &axes[..2], &[]).is_err());
}
