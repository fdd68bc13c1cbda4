//! The Fitzpatrick17k loader on the real public CSV (16,577 rows), with a tiny image per id.

mod common;

use fq_runtime::dataset::fitzpatrick17k::{
    self, Fitzpatrick17kOptions, LabelGranularity, SkinGrouping, UnknownSkinType,
};
use fq_runtime::dataset::SkipReason;
use image::ImageFormat;

#[test]
fn real_csv_counts_for_every_option() {
    let csv = common::data_dir().join("fitzpatrick17k.csv");
    let ids = common::first_column(&csv);
    assert_eq!(ids.len(), 16_577);
    let tmp = tempfile::tempdir().unwrap();
    // Images in a nested folder, as `images/` with subfolders in some archive copies.
    let images = tmp.path().join("images");
    let (a, b) = ids.split_at(8000);
    common::write_images(
        &images.join("part1"),
        a,
        "jpg",
        &common::tiny_image_bytes(ImageFormat::Jpeg),
    );
    common::write_images(
        &images.join("part2"),
        b,
        "png",
        &common::tiny_image_bytes(ImageFormat::Png),
    );

    // Spec defaults: binary groups, unknown types dropped, fine labels.
    let opts = Fitzpatrick17kOptions::new(&csv, &images);
    let d = fitzpatrick17k::load(&opts).unwrap();
    assert_eq!(d.name, "fitzpatrick17k");
    assert_eq!(d.len(), 16_012);
    assert_eq!(d.skipped.len(), 565);
    assert_eq!(d.skip_summary().get(SkipReason::UnknownGroup), 565);
    assert_eq!(d.num_classes(), 114);
    assert_eq!(d.classes[0], "acanthosis nigricans");
    assert_eq!(d.classes[113], "xeroderma pigmentosum");
    assert!(d.classes.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
    assert_eq!(d.groups, ["I-III", "IV-VI"]);
    assert_eq!(
        d.group_counts(),
        vec![2947 + 4808 + 3308, 2781 + 1533 + 635]
    );
    assert!(d.class_counts().iter().all(|&c| c > 0));
    // First row: type 3, "drug induced pigmentary changes", line 2.
    let first = &d.samples[0];
    assert_eq!(first.id, "5e82a45bc5d78bd24ae9202d194423f8");
    assert_eq!(first.origin.line, 2);
    assert_eq!(first.origin.file, csv);
    assert_eq!(first.group, 0);
    assert_eq!(d.classes[first.label], "drug induced pigmentary changes");
    assert!(first
        .image
        .ends_with("part1/5e82a45bc5d78bd24ae9202d194423f8.jpg"));
    let last = d.samples.last().unwrap();
    assert_eq!(last.id, "5a3a4c1f0effb626b298e89c032b1d28");
    assert_eq!(last.origin.line, 16_578);
    assert_eq!(last.image.extension().unwrap(), "png");
    // The first unknown type is on line 12.
    assert_eq!(d.skipped[0].line, 12);
    assert_eq!(d.skipped[0].field, "fitzpatrick_scale");

    // Six groups, nine- and three-partition labels.
    let six = fitzpatrick17k::load(&Fitzpatrick17kOptions {
        grouping: SkinGrouping::SixTypes,
        labels: LabelGranularity::NinePartition,
        ..opts.clone()
    })
    .unwrap();
    assert_eq!(six.groups, ["I", "II", "III", "IV", "V", "VI"]);
    assert_eq!(six.group_counts(), vec![2947, 4808, 3308, 2781, 1533, 635]);
    assert_eq!(six.num_classes(), 9);
    assert_eq!(six.classes[0], "benign dermal");
    let three = fitzpatrick17k::load(&Fitzpatrick17kOptions {
        labels: LabelGranularity::ThreePartition,
        ..opts.clone()
    })
    .unwrap();
    assert_eq!(three.classes, ["benign", "malignant", "non-neoplastic"]);
    assert_eq!(three.class_counts(), vec![2160, 2160, 11_692]);

    // Unknown types kept as a last group.
    let keep = fitzpatrick17k::load(&Fitzpatrick17kOptions {
        unknown: UnknownSkinType::KeepAsGroup,
        ..opts.clone()
    })
    .unwrap();
    assert_eq!(keep.len(), 16_577);
    assert!(keep.skipped.is_empty());
    assert_eq!(keep.groups, ["I-III", "IV-VI", "unknown"]);
    assert_eq!(keep.group_counts()[2], 565);
    // Classes come from the retained rows: still 114 here.
    assert_eq!(keep.num_classes(), 114);

    // An explicit class list in another order defines the indices.
    let mut reversed = d.classes.clone();
    reversed.reverse();
    let explicit = fitzpatrick17k::load(&Fitzpatrick17kOptions {
        classes: Some(reversed.clone()),
        ..opts.clone()
    })
    .unwrap();
    assert_eq!(explicit.classes, reversed);
    assert_eq!(explicit.samples[0].label, 113 - first.label);
}
