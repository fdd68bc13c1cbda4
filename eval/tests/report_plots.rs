//! The report charts (field comparison with intervals, bit-width histogram, frontier, radar) are
//! decodable PNGs with their series actually drawn, and bad input names the file.
#![cfg(feature = "plots")]

use fq_eval::metrics::wilson;
use fq_eval::plots::{
    bit_width_histogram, frontier_chart, group_accuracy_interval_chart, radar_chart, FrontierPoint,
    IntervalSeries, RadarSeries, CHART_SIZE, RADAR_SIZE,
};

fn decode(path: &std::path::Path) -> image::RgbImage {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    image::load_from_memory(&bytes).unwrap().into_rgb8()
}

fn pixels_of(img: &image::RgbImage, color: [u8; 3]) -> usize {
    img.pixels().filter(|p| p.0 == color).count()
}

const BLUE: [u8; 3] = [31, 119, 180];
const ORANGE: [u8; 3] = [255, 127, 14];
const GREEN: [u8; 3] = [44, 160, 44];
const RED: [u8; 3] = [214, 39, 40];

#[test]
fn field_chart_draws_bars_and_whiskers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("field.png");
    let groups = vec!["I-III".to_string(), "IV-VI".to_string()];
    let counts = [(80, 100), (30, 50)];
    let series = vec![
        IntervalSeries {
            name: "compression".into(),
            values: counts.iter().map(|&(c, n)| c as f64 / n as f64).collect(),
            intervals: counts.iter().map(|&(c, n)| wilson(c, n, 0.95)).collect(),
        },
        IntervalSeries {
            name: "field".into(),
            values: vec![0.7, f64::NAN],
            intervals: vec![wilson(70, 100, 0.95), None],
        },
    ];
    group_accuracy_interval_chart(&path, "t", &groups, &series, "95% Wilson").unwrap();
    let img = decode(&path);
    assert_eq!(img.dimensions(), CHART_SIZE);
    assert!(pixels_of(&img, BLUE) > 2000);
    assert!(pixels_of(&img, ORANGE) > 1000);
    let black = pixels_of(&img, [0, 0, 0]);
    assert!(black > 300, "whiskers and text: {black} black pixels");

    let bad = vec![IntervalSeries {
        name: "x".into(),
        values: vec![0.5, 1.2],
        intervals: vec![None, None],
    }];
    let e = group_accuracy_interval_chart(&dir.path().join("bad.png"), "t", &groups, &bad, "")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.png") && e.contains("outside"), "{e}");
}

#[test]
fn bit_histogram_splits_each_layer_by_width() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bits.png");
    let layers = vec![
        ("conv1".to_string(), vec![8u8; 16]),
        (
            "layer1.0.conv1".to_string(),
            [vec![2u8; 4], vec![4u8; 12]].concat(),
        ),
        ("fc".to_string(), vec![32u8; 3]),
    ];
    bit_width_histogram(&path, "bits", &layers).unwrap();
    let img = decode(&path);
    // Widths present are 2, 4, 8, 32 -> colours 0..3; the 2-bit share is a quarter of one bar,
    // the 8-bit and 32-bit shares a whole bar each.
    let (two, four, eight, fp) = (
        pixels_of(&img, BLUE),
        pixels_of(&img, ORANGE),
        pixels_of(&img, GREEN),
        pixels_of(&img, RED),
    );
    assert!(
        two > 500 && four > 2 * two && eight > four,
        "{two} {four} {eight}"
    );
    assert!(
        (fp as f64 - eight as f64).abs() < 0.1 * eight as f64,
        "{fp} vs {eight}"
    );
    let e = bit_width_histogram(&path, "b", &[("x".into(), vec![])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`x` has no channels"), "{e}");
}

#[test]
fn frontier_and_radar_charts_render() {
    let dir = tempfile::tempdir().unwrap();
    let pts = vec![
        FrontierPoint {
            label: "FP32".into(),
            avg_bits: 32.0,
            worst_acc: 0.7,
            avg_acc: 0.75,
            worst_err: 0.0,
            avg_err: 0.0,
        },
        FrontierPoint {
            label: "U8".into(),
            avg_bits: 8.0,
            worst_acc: 0.69,
            avg_acc: 0.74,
            worst_err: 0.0,
            avg_err: 0.0,
        },
        FrontierPoint {
            label: "U4".into(),
            avg_bits: 4.0,
            worst_acc: 0.4,
            avg_acc: 0.5,
            worst_err: 0.0,
            avg_err: 0.0,
        },
    ];
    let path = dir.path().join("frontier.png");
    frontier_chart(&path, "frontier", &pts).unwrap();
    let img = decode(&path);
    assert_eq!(img.dimensions(), CHART_SIZE);
    assert!(pixels_of(&img, RED) > 200 && pixels_of(&img, BLUE) > 100);

    let axes: Vec<String> = ["AvgAcc", "WorstAcc", "1-Gap", "1-EOdd"]
        .map(String::from)
        .to_vec();
    let series = vec![
        RadarSeries {
            name: "FP32".into(),
            values: vec![0.75, 0.7, 0.95, 0.9],
        },
        RadarSeries {
            name: "U4".into(),
            values: vec![0.5, 0.4, 0.8, 0.7],
        },
    ];
    let path = dir.path().join("radar.png");
    radar_chart(&path, "radar", &axes, &series, 0.0).unwrap();
    let img = decode(&path);
    assert_eq!(img.dimensions(), RADAR_SIZE);
    assert!(pixels_of(&img, BLUE) > 200 && pixels_of(&img, ORANGE) > 200);
    let e = radar_chart(&path, "r", &axes[..2], &series, 0.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("3+ axes"), "{e}");
}
