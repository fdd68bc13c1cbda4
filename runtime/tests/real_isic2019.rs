//! The ISIC 2019 loader on the real ground truth and metadata CSVs (25,331 rows), with a tiny image per id.

mod common;

use fq_runtime::dataset::isic2019::{self, Isic2019Options, SexGrouping};
use fq_runtime::dataset::SkipReason;
use image::ImageFormat;

#[test]
fn real_csvs_three_and_two_groups() {
    let data = common::data_dir();
    let gt = data.join("ISIC_2019_Training_GroundTruth.csv");
    let meta = data.join("ISIC_2019_Training_Metadata.csv");
    let ids = common::first_column(&gt);
    assert_eq!(ids.len(), 25_331);
    let downsampled = ids.iter().filter(|i| i.ends_with("_downsampled")).count();
    assert_eq!(downsampled, 2074);
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("ISIC_2019_Training_Input");
    common::write_images(
        &images,
        &ids,
        "jpg",
        &common::tiny_image_bytes(ImageFormat::Jpeg),
    );

    let opts = Isic2019Options::new(&gt, &meta, &images);
    let d = isic2019::load(&opts).unwrap();
    assert_eq!(d.name, "isic2019");
    assert_eq!(d.len(), 25_331);
    assert!(d.skipped.is_empty());
    assert_eq!(
        d.classes,
        ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
    );
    assert_eq!(
        d.class_counts(),
        vec![4522, 12_875, 3323, 867, 2624, 239, 253, 628, 0]
    );
    assert_eq!(d.groups, ["unknown", "female", "male"]);
    assert_eq!(d.group_counts(), vec![384, 11_661, 13_286]);
    let s0 = &d.samples[0];
    assert_eq!(
        (s0.id.as_str(), s0.label, s0.group, s0.origin.line),
        ("ISIC_0000000", 1, 1, 2)
    );
    // `_downsampled` ids keep their id and find their image; an empty metadata row gives "unknown".
    let ds = d
        .samples
        .iter()
        .find(|s| s.id == "ISIC_0000086_downsampled")
        .unwrap();
    assert!(ds.image.ends_with("ISIC_0000086_downsampled.jpg"));
    assert_eq!((ds.group, ds.origin.line), (0, 82));

    // HEAD behaviour: two groups, unknown sex dropped (and recorded).
    let two = isic2019::load(&Isic2019Options {
        grouping: SexGrouping::TwoDropUnknown,
        ..opts.clone()
    })
    .unwrap();
    assert_eq!(two.groups, ["female", "male"]);
    assert_eq!(two.len(), 25_331 - 384);
    assert_eq!(two.group_counts(), vec![11_661, 13_286]);
    assert_eq!(two.skip_summary().get(SkipReason::UnknownGroup), 384);
    assert_eq!(two.num_classes(), 9);
}

#[test]
fn downsampled_suffix_may_be_missing_from_file_names() {
    let tmp = tempfile::tempdir().unwrap();
    let gt = tmp.path().join("gt.csv");
    let meta = tmp.path().join("meta.csv");
    std::fs::write(
        &gt,
        "image,MEL,NV,UNK\r\nISIC_1_downsampled,1.0,0.0,0.0\r\nISIC_2,0,1,0\r\n",
    )
    .unwrap();
    // `gender` instead of `sex`, mixed case; no metadata row for ISIC_2.
    std::fs::write(&meta, "image,gender\r\nISIC_1_downsampled,Female\r\n").unwrap();
    let images = tmp.path().join("in");
    let bytes = common::tiny_image_bytes(ImageFormat::Jpeg);
    common::write_images(
        &images,
        &["ISIC_1".into(), "ISIC_2_downsampled".into()],
        "jpg",
        &bytes,
    );
    let d = isic2019::load(&Isic2019Options::new(&gt, &meta, &images)).unwrap();
    assert_eq!(d.len(), 2);
    assert!(d.samples[0].image.ends_with("ISIC_1.jpg"));
    assert!(d.samples[1].image.ends_with("ISIC_2_downsampled.jpg"));
    assert_eq!(d.groups[d.samples[0].group], "female");
    assert_eq!(d.groups[d.samples[1].group], "unknown");
    assert_eq!((d.samples[0].label, d.samples[1].label), (0, 1));
}
