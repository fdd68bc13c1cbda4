//! The per-group accuracy chart is a valid PNG of the expected size with the series drawn.
#![cfg(feature = "plots")]

use fq_eval::plots::{group_accuracy_chart, CHART_SIZE};

#[test]
fn writes_a_png_of_the_expected_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/group_accuracy.png");
    let groups: Vec<String> = ["unknown", "female", "male"].map(String::from).to_vec();
    let series = vec![
        ("FP32".to_string(), vec![0.712, 0.803, 0.795]),
        ("U4".to_string(), vec![0.52, 0.61, f64::NAN]),
        ("FairQuant".to_string(), vec![0.70, 0.79, 0.80]),
    ];
    group_accuracy_chart(&path, "ISIC 2019 / ResNet18", &groups, &series).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let img = image::load_from_memory(&bytes).unwrap().into_rgb8();
    assert_eq!(img.dimensions(), CHART_SIZE);
    // The first two palette colours (series 1 and 2) appear: bars and legend were drawn.
    for color in [[31, 119, 180], [255, 127, 14], [44, 160, 44]] {
        let n = img.pixels().filter(|p| p.0 == color).count();
        assert!(n > 500, "colour {color:?} covers only {n} pixels");
    }
    // Text was rendered (dark anti-aliased pixels exist beyond the axis lines).
    let dark = img.pixels().filter(|p| p.0.iter().all(|&c| c < 60)).count();
    assert!(dark > 2000, "{dark} dark pixels");
    // Keep a copy for manual inspection when asked.
    if let Ok(out) = std::env::var("FQ_KEEP_CHART") {
        std::fs::copy(&path, out).unwrap();
    }
}
