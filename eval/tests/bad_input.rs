//! Every kind of bad input gives an error that names the file, the line (header = 1) and the field; with
//! `skip_bad_rows` the same rows are counted by reason instead.

use crate::common;

use std::path::{Path, PathBuf};

use common::assert_names;
use fq_eval::dataset::fitzpatrick17k::{self, Fitzpatrick17kOptions};
use fq_eval::dataset::folder::{self, FolderCsvOptions};
use fq_eval::dataset::isic2019::{self, Isic2019Options};
use fq_eval::dataset::{DataError, SkipReason};
use fq_eval::images::load_dataset_images;
use fq_runtime::preprocess::PreprocessConfig;
use image::ImageFormat;

const FITZ_HEADER: &str =
    "md5hash,fitzpatrick_scale,fitzpatrick_centaur,label,nine_partition_label,\
three_partition_label,qc,url,url_alphanum";

fn fitz_row(id: &str, skin_type: &str, label: &str) -> String {
    format!("{id},{skin_type},{skin_type},{label},inflammatory,non-neoplastic,,https://e.org/{id}.jpg,x")
}

/// A Fitzpatrick CSV from `rows` plus images for `with_images`; returns (csv, images dir).
fn fitz_fixture(
    dir: &Path,
    header: &str,
    rows: &[String],
    with_images: &[&str],
) -> (PathBuf, PathBuf) {
    let csv = dir.join("fitzpatrick17k.csv");
    std::fs::write(&csv, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    let images = dir.join("images");
    let ids: Vec<String> = with_images.iter().map(|s| s.to_string()).collect();
    common::write_images(
        &images,
        &ids,
        "jpg",
        &common::tiny_image_bytes(ImageFormat::Jpeg),
    );
    (csv, images)
}

fn isic_fixture(dir: &Path, gt_rows: &[&str], with_images: &[&str]) -> Isic2019Options {
    let gt = dir.join("ISIC_2019_Training_GroundTruth.csv");
    let meta = dir.join("ISIC_2019_Training_Metadata.csv");
    let mut text = String::from("image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\r\n");
    for r in gt_rows {
        text.push_str(r);
        text.push_str("\r\n");
    }
    std::fs::write(&gt, text).unwrap();
    std::fs::write(
        &meta,
        "image,age_approx,anatom_site_general,lesion_id,sex\r\n",
    )
    .unwrap();
    let images = dir.join("ISIC_2019_Training_Input");
    let ids: Vec<String> = with_images.iter().map(|s| s.to_string()).collect();
    common::write_images(
        &images,
        &ids,
        "jpg",
        &common::tiny_image_bytes(ImageFormat::Jpeg),
    );
    Isic2019Options::new(gt, meta, images)
}

#[test]
fn missing_column() {
    let tmp = tempfile::tempdir().unwrap();
    let header = FITZ_HEADER.replace(",label,", ",diagnosis,");
    let (csv, images) = fitz_fixture(tmp.path(), &header, &[fitz_row("a", "1", "acne")], &["a"]);
    let err = fitzpatrick17k::load(&Fitzpatrick17kOptions::new(&csv, &images)).unwrap_err();
    assert!(matches!(err, DataError::MissingColumn { .. }));
    assert_names(&err.to_string(), &csv, 1, "label");
}

#[test]
fn unparsable_skin_type() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [fitz_row("a", "1", "acne"), fitz_row("b", "7", "acne")];
    let (csv, images) = fitz_fixture(tmp.path(), FITZ_HEADER, &rows, &["a", "b"]);
    let err = fitzpatrick17k::load(&Fitzpatrick17kOptions::new(&csv, &images)).unwrap_err();
    assert!(matches!(err, DataError::Unparsable { .. }));
    let msg = err.to_string();
    assert_names(&msg, &csv, 3, "fitzpatrick_scale");
    assert!(msg.contains("`7`"), "{msg}");
}

#[test]
fn missing_image() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [fitz_row("a", "1", "acne"), fitz_row("b", "2", "acne")];
    let (csv, images) = fitz_fixture(tmp.path(), FITZ_HEADER, &rows, &["a"]);
    let err = fitzpatrick17k::load(&Fitzpatrick17kOptions::new(&csv, &images)).unwrap_err();
    assert!(matches!(err, DataError::MissingImage { .. }));
    let msg = err.to_string();
    assert_names(&msg, &csv, 3, "md5hash");
    assert!(
        msg.contains("`b`") && msg.contains(&images.display().to_string()),
        "{msg}"
    );
}

#[test]
fn corrupt_image_is_reported_at_decode_with_its_csv_row() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [fitz_row("a", "1", "acne"), fitz_row("b", "5", "acne")];
    let (csv, images) = fitz_fixture(tmp.path(), FITZ_HEADER, &rows, &["a", "b"]);
    let bad = images.join("b.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 this is not a JPEG").unwrap();
    // Loading only checks existence.
    let d = fitzpatrick17k::load(&Fitzpatrick17kOptions::new(&csv, &images)).unwrap();
    let err = load_dataset_images(&d, &PreprocessConfig::default(), false).unwrap_err();
    assert!(matches!(err, DataError::CorruptImage { .. }));
    let msg = err.to_string();
    assert!(msg.contains(&format!("{}:3:", csv.display())), "{msg}");
    assert!(msg.contains(&bad.display().to_string()), "{msg}");
}

#[test]
fn label_outside_the_given_class_list() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [fitz_row("a", "1", "acne"), fitz_row("b", "4", "psoriasis")];
    let (csv, images) = fitz_fixture(tmp.path(), FITZ_HEADER, &rows, &["a", "b"]);
    let opts = Fitzpatrick17kOptions {
        classes: Some(vec!["acne".into(), "eczema".into()]),
        ..Fitzpatrick17kOptions::new(&csv, &images)
    };
    let err = fitzpatrick17k::load(&opts).unwrap_err();
    assert!(matches!(err, DataError::OutsideLabelSet { .. }));
    let msg = err.to_string();
    assert_names(&msg, &csv, 3, "label");
    assert!(msg.contains("`psoriasis`"), "{msg}");
}

#[test]
fn duplicate_id() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [
        fitz_row("a", "1", "acne"),
        fitz_row("b", "2", "acne"),
        fitz_row("a", "3", "acne"),
    ];
    let (csv, images) = fitz_fixture(tmp.path(), FITZ_HEADER, &rows, &["a", "b"]);
    let msg = fitzpatrick17k::load(&Fitzpatrick17kOptions::new(&csv, &images))
        .unwrap_err()
        .to_string();
    assert_names(&msg, &csv, 4, "md5hash");
    assert!(msg.contains(&format!("{}:2", csv.display())), "{msg}");
}

/// A wrong-width row is an error naming the file, the line and both field counts.
fn assert_field_count(err: &DataError, file: &Path, line: usize, expected: usize, found: usize) {
    assert!(
        matches!(err, DataError::FieldCount { expected: e, found: f, .. } if *e == expected && *f == found),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{}:{line}:", file.display())),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "row has {found} fields, the header has {expected}"
        )),
        "{msg}"
    );
}

#[test]
fn short_row() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [fitz_row("a", "1", "acne"), "b,2".to_string()];
    let (csv, images) = fitz_fixture(tmp.path(), FITZ_HEADER, &rows, &["a", "b"]);
    let err = fitzpatrick17k::load(&Fitzpatrick17kOptions::new(&csv, &images)).unwrap_err();
    assert_field_count(&err, &csv, 3, 9, 2);
}

#[test]
fn long_row_even_when_every_needed_field_parses() {
    // The extra field shifts nothing the loader reads, yet the row is refused: one stray comma in
    // a hand-edited CSV usually means the values are no longer in their columns.
    let tmp = tempfile::tempdir().unwrap();
    let rows = [
        fitz_row("a", "1", "acne"),
        format!("{},extra", fitz_row("b", "2", "acne")),
    ];
    let (csv, images) = fitz_fixture(tmp.path(), FITZ_HEADER, &rows, &["a", "b"]);
    let err = fitzpatrick17k::load(&Fitzpatrick17kOptions::new(&csv, &images)).unwrap_err();
    assert_field_count(&err, &csv, 3, 9, 10);
}

#[test]
fn wrong_width_rows_in_every_loader() {
    let tmp = tempfile::tempdir().unwrap();
    // ISIC ground truth: a row one class short (line 3 of a CRLF file).
    let opts = isic_fixture(
        tmp.path(),
        &[
            "ISIC_1,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
            "ISIC_2,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0",
        ],
        &["ISIC_1", "ISIC_2"],
    );
    let err = isic2019::load(&opts).unwrap_err();
    assert_field_count(&err, &opts.ground_truth, 3, 10, 9);

    // ISIC metadata: a row with a sixth field.
    let opts = isic_fixture(
        tmp.path(),
        &["ISIC_1,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0"],
        &["ISIC_1"],
    );
    std::fs::write(
        &opts.metadata,
        "image,age_approx,anatom_site_general,lesion_id,sex\r\nISIC_1,55,torso,L1,male,oops\r\n",
    )
    .unwrap();
    let err = isic2019::load(&opts).unwrap_err();
    assert_field_count(&err, &opts.metadata, 2, 5, 6);

    // Folder CSV: a short row (the group missing).
    let images = tmp.path().join("img");
    std::fs::create_dir_all(&images).unwrap();
    let bytes = common::tiny_image_bytes(ImageFormat::Png);
    for name in ["a.png", "b.png"] {
        std::fs::write(images.join(name), &bytes).unwrap();
    }
    let csv = tmp.path().join("mine.csv");
    std::fs::write(&csv, "image,label,group\na.png,nevus,light\nb.png,nevus\n").unwrap();
    let err = folder::load(&FolderCsvOptions::new(&csv, &images)).unwrap_err();
    assert_field_count(&err, &csv, 3, 3, 2);

    // A split/id list file.
    let list = tmp.path().join("ids.csv");
    std::fs::write(&list, "md5hash,split\na,train\nb,test,extra\n").unwrap();
    let err = fq_eval::dataset::read_id_list(&list, "md5hash").unwrap_err();
    assert_field_count(&err, &list, 3, 2, 3);
}

#[test]
fn wrong_width_rows_are_skipped_and_counted_under_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [
        fitz_row("a", "1", "acne"),                  // 2
        "b,2".to_string(),                           // 3: short
        format!("{},x", fitz_row("c", "2", "acne")), // 4: long
        fitz_row("d", "5", "eczema"),                // 5
    ];
    let (csv, images) = fitz_fixture(tmp.path(), FITZ_HEADER, &rows, &["a", "b", "c", "d"]);
    let d = fitzpatrick17k::load(&Fitzpatrick17kOptions {
        skip_bad_rows: true,
        ..Fitzpatrick17kOptions::new(&csv, &images)
    })
    .unwrap();
    let ids: Vec<&str> = d.samples.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["a", "d"]);
    assert_eq!(d.skip_summary().get(SkipReason::FieldCount), 2);
    let lines: Vec<(usize, &str)> = d
        .skipped
        .iter()
        .map(|s| (s.line, s.field.as_str()))
        .collect();
    assert_eq!(lines, [(3, "row"), (4, "row")]);
    assert!(d.skipped[1]
        .message
        .contains("row has 10 fields, the header has 9"));
}

#[test]
fn empty_ids_and_labels_in_every_loader() {
    let tmp = tempfile::tempdir().unwrap();
    // Fitzpatrick17k: empty md5hash, then empty label.
    for (row, field) in [
        (fitz_row("", "1", "acne"), "md5hash"),
        (fitz_row("b", "1", ""), "label"),
    ] {
        let rows = [fitz_row("a", "1", "acne"), row];
        let (csv, images) = fitz_fixture(tmp.path(), FITZ_HEADER, &rows, &["a", "b"]);
        let err = fitzpatrick17k::load(&Fitzpatrick17kOptions::new(&csv, &images)).unwrap_err();
        assert!(matches!(err, DataError::Unparsable { .. }), "{err:?}");
        assert_names(&err.to_string(), &csv, 3, field);
    }
    // ISIC: an empty image id, then an empty (not 0/1) class cell.
    for (row, field) in [
        (",0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0", "image"),
        ("ISIC_2,,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0", "MEL"),
    ] {
        let opts = isic_fixture(
            tmp.path(),
            &["ISIC_1,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0", row],
            &["ISIC_1", "ISIC_2"],
        );
        let err = isic2019::load(&opts).unwrap_err();
        assert!(matches!(err, DataError::Unparsable { .. }), "{err:?}");
        assert_names(&err.to_string(), &opts.ground_truth, 3, field);
    }
    // Folder CSV: an empty image path, then an empty label, then an empty group.
    let images = tmp.path().join("img");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(
        images.join("a.png"),
        common::tiny_image_bytes(ImageFormat::Png),
    )
    .unwrap();
    let csv = tmp.path().join("mine.csv");
    for (row, field) in [
        (",nevus,light", "image"),
        ("a.png,,light", "label"),
        ("a.png,nevus,", "group"),
    ] {
        std::fs::write(
            &csv,
            format!("image,label,group\na.png,nevus,light\n{row}\n"),
        )
        .unwrap();
        let err = folder::load(&FolderCsvOptions::new(&csv, &images)).unwrap_err();
        assert!(matches!(err, DataError::Unparsable { .. }), "{err:?}");
        assert_names(&err.to_string(), &csv, 3, field);
    }
    // An id list: an empty id.
    let list = tmp.path().join("ids.csv");
    std::fs::write(&list, "md5hash\na\n\"\"\n").unwrap();
    let err = fq_eval::dataset::read_id_list(&list, "md5hash").unwrap_err();
    assert_names(&err.to_string(), &list, 3, "md5hash");
}

#[test]
fn quoted_commas_and_the_official_column_name() {
    let tmp = tempfile::tempdir().unwrap();
    let header = FITZ_HEADER.replace("fitzpatrick_scale", "fitzpatrick");
    let rows = [
        r#"a,2,2,"lupus, subacute",inflammatory,non-neoplastic,,"https://e.org/a,b.jpg",x"#
            .to_string(),
        fitz_row("b", "UNK", "acne"),
        fitz_row("c", "", "acne"),
        fitz_row("d", "6", "acne"),
    ];
    let (csv, images) = fitz_fixture(tmp.path(), &header, &rows, &["a", "d"]);
    let d = fitzpatrick17k::load(&Fitzpatrick17kOptions::new(&csv, &images)).unwrap();
    assert_eq!(d.classes, ["acne", "lupus, subacute"]);
    assert_eq!(d.len(), 2);
    assert_eq!((d.samples[0].group, d.samples[1].group), (0, 1));
    assert_eq!(d.skip_summary().get(SkipReason::UnknownGroup), 2);
    assert_eq!(d.skipped[0].field, "fitzpatrick");
}

#[test]
fn isic_row_with_two_positives() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = isic_fixture(
        tmp.path(),
        &[
            "ISIC_1,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
            "ISIC_2,1.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
        ],
        &["ISIC_1", "ISIC_2"],
    );
    let err = isic2019::load(&opts).unwrap_err();
    assert!(matches!(err, DataError::InvalidOneHot { .. }));
    let msg = err.to_string();
    assert_names(&msg, &opts.ground_truth, 3, "MEL,NV");
    assert!(msg.contains("2 classes"), "{msg}");
}

#[test]
fn isic_row_without_positive() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = isic_fixture(
        tmp.path(),
        &["ISIC_1,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0"],
        &["ISIC_1"],
    );
    let msg = isic2019::load(&opts).unwrap_err().to_string();
    assert_names(
        &msg,
        &opts.ground_truth,
        2,
        "MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK",
    );
}

#[test]
fn isic_value_that_is_not_zero_or_one() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = isic_fixture(
        tmp.path(),
        &["ISIC_1,0.0,0.5,0.5,0.0,0.0,0.0,0.0,0.0,0.0"],
        &["ISIC_1"],
    );
    let err = isic2019::load(&opts).unwrap_err();
    assert!(matches!(err, DataError::Unparsable { .. }));
    let msg = err.to_string();
    assert_names(&msg, &opts.ground_truth, 2, "NV");
    assert!(msg.contains("`0.5`"), "{msg}");
}

#[test]
fn isic_metadata_without_sex_column() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = isic_fixture(
        tmp.path(),
        &["ISIC_1,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0"],
        &["ISIC_1"],
    );
    std::fs::write(&opts.metadata, "image,age_approx\r\nISIC_1,40\r\n").unwrap();
    let msg = isic2019::load(&opts).unwrap_err().to_string();
    assert_names(&msg, &opts.metadata, 1, "sex` or `gender");
}

#[test]
fn skip_flag_counts_bad_rows_by_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [
        fitz_row("ok1", "1", "acne"),   // line 2
        fitz_row("bad", "x", "acne"),   // 3: unparsable type
        fitz_row("noimg", "2", "acne"), // 4: missing image
        fitz_row("ok1", "3", "acne"),   // 5: duplicate id
        fitz_row("nolab", "4", ""),     // 6: unparsable (empty) label
        fitz_row("unk", "-1", "acne"),  // 7: unknown type (policy)
        fitz_row("ok2", "5", "eczema"), // 8
    ];
    let (csv, images) = fitz_fixture(
        tmp.path(),
        FITZ_HEADER,
        &rows,
        &["ok1", "bad", "nolab", "unk", "ok2"],
    );
    let strict = Fitzpatrick17kOptions::new(&csv, &images);
    // Without the flag, the first bad row (line 3) is the error.
    assert_names(
        &fitzpatrick17k::load(&strict).unwrap_err().to_string(),
        &csv,
        3,
        "fitzpatrick_scale",
    );
    let d = fitzpatrick17k::load(&Fitzpatrick17kOptions {
        skip_bad_rows: true,
        ..strict
    })
    .unwrap();
    let ids: Vec<&str> = d.samples.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["ok1", "ok2"]);
    let summary = d.skip_summary();
    assert_eq!(summary.get(SkipReason::Unparsable), 2);
    assert_eq!(summary.get(SkipReason::MissingImage), 1);
    assert_eq!(summary.get(SkipReason::DuplicateId), 1);
    assert_eq!(summary.get(SkipReason::UnknownGroup), 1);
    assert_eq!(summary.total(), 5);
    let lines: Vec<(usize, &str)> = d
        .skipped
        .iter()
        .map(|s| (s.line, s.field.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (3, "fitzpatrick_scale"),
            (4, "md5hash"),
            (5, "md5hash"),
            (6, "label"),
            (7, "fitzpatrick_scale")
        ]
    );

    // ISIC: two positives, a 0.5, a missing image are skipped; the good row stays.
    let opts = isic_fixture(
        tmp.path(),
        &[
            "ISIC_1,1.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
            "ISIC_2,0.0,0.5,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
            "ISIC_3,0.0,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0",
            "ISIC_4,0.0,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0",
        ],
        &["ISIC_1", "ISIC_2", "ISIC_4"],
    );
    let d = isic2019::load(&Isic2019Options {
        skip_bad_rows: true,
        ..opts
    })
    .unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d.samples[0].id, "ISIC_4");
    let summary = d.skip_summary();
    assert_eq!(summary.get(SkipReason::InvalidOneHot), 1);
    assert_eq!(summary.get(SkipReason::Unparsable), 1);
    assert_eq!(summary.get(SkipReason::MissingImage), 1);
}

#[test]
fn nothing_left_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [fitz_row("a", "-1", "acne")];
    let (csv, images) = fitz_fixture(tmp.path(), FITZ_HEADER, &rows, &["a"]);
    let err = fitzpatrick17k::load(&Fitzpatrick17kOptions::new(&csv, &images)).unwrap_err();
    assert!(matches!(err, DataError::EmptyDataset { skipped: 1, .. }));
    assert!(err.to_string().contains(&csv.display().to_string()));
}

#[test]
fn missing_csv_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("nope.csv");
    let err = fitzpatrick17k::load(&Fitzpatrick17kOptions::new(&csv, tmp.path())).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("nope.csv"), "{err}");
}

#[test]
fn folder_csv_loader() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("img");
    let bytes = common::tiny_image_bytes(ImageFormat::Png);
    std::fs::create_dir_all(images.join("sub")).unwrap();
    for name in ["a.png", "b.png", "sub/c.png"] {
        std::fs::write(images.join(name), &bytes).unwrap();
    }
    let csv = tmp.path().join("synthetic.csv");
    std::fs::write(
        &csv,
        "image,label,group\na.png,nevus,light\nb.png,melanoma,dark\nsub/c.png,nevus,dark\n",
    )
    .unwrap();
    let opts = FolderCsvOptions::new(&csv, &images);
    let d = folder::load(&opts).unwrap();
    assert_eq!(d.name, "synthetic");
    assert_eq!(d.classes, ["melanoma", "nevus"]);
    assert_eq!(d.groups, ["dark", "light"]);
    assert_eq!(d.labels(), vec![1, 0, 1]);
    assert_eq!(d.group_ids(), vec![1, 0, 0]);
    assert_eq!(d.samples[2].id, "sub/c.png");
    assert_eq!(d.samples[2].image, images.join("sub/c.png"));

    // Given lists fix the order; a group outside its list is an error naming the group field.
    let given = FolderCsvOptions {
        classes: Some(vec!["nevus".into(), "melanoma".into()]),
        groups: Some(vec!["light".into()]),
        ..opts.clone()
    };
    let err = folder::load(&given).unwrap_err();
    assert!(matches!(err, DataError::OutsideLabelSet { .. }));
    assert_names(&err.to_string(), &csv, 3, "group");

    // Custom column names; a missing image names the image field.
    std::fs::write(&csv, "file,dx,skin\na.png,nevus,light\nzz.png,nevus,dark\n").unwrap();
    let custom = FolderCsvOptions {
        image_column: "file".into(),
        label_column: "dx".into(),
        group_column: "skin".into(),
        ..opts
    };
    assert_names(
        &folder::load(&custom).unwrap_err().to_string(),
        &csv,
        3,
        "file",
    );
}

/// UTKFace: attributes from real tiny image files' names (plain and `.jpg.chip.jpg` forms); a malformed
/// name is an error naming the file and the field, or a skip counted as `unparsable` under the flag; the
/// images decode with the name as their origin.
#[test]
fn utkface_file_names() {
    use fq_eval::dataset::utkface::{self, UtkAttribute, UtkfaceOptions};
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("UTKFace");
    std::fs::create_dir_all(images.join("part2")).unwrap();
    let jpg = common::tiny_image_bytes(ImageFormat::Jpeg);
    let names = [
        "26_1_2_20170116174525125.jpg",
        "1_0_0_20161219140623097.jpg.chip.jpg",
        "45_0_3_20170119171046380.jpg",
        "part2/70_1_1_20170110122446237.jpg.chip.jpg",
        "readme.txt",
    ];
    for n in names {
        std::fs::write(images.join(n), &jpg).unwrap();
    }
    let opts = UtkfaceOptions::new(&images);
    let d = utkface::load(&opts).unwrap();
    assert_eq!(d.name, "utkface");
    assert_eq!(d.classes, ["male", "female"]);
    assert_eq!(d.groups, ["White", "Black", "Asian", "Indian", "Others"]);
    // Sorted by path: 1_0_0, 26_1_2, 45_0_3, part2/70_1_1.
    let ids: Vec<&str> = d.samples.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "1_0_0_20161219140623097.jpg.chip",
            "26_1_2_20170116174525125",
            "45_0_3_20170119171046380",
            "70_1_1_20170110122446237.jpg.chip",
        ]
    );
    assert_eq!(d.labels(), vec![0, 1, 0, 1]);
    assert_eq!(d.group_ids(), vec![0, 2, 3, 1]);
    assert_eq!(d.samples[0].origin.file, images.join(names[1]));
    let px = load_dataset_images(&d, &PreprocessConfig::default(), false).unwrap();
    assert_eq!(px.len(), 4);

    // Age bins as the label, gender as the group; the same attribute twice is refused.
    let age = utkface::load(&UtkfaceOptions {
        label: UtkAttribute::Age,
        group: UtkAttribute::Gender,
        ..opts.clone()
    })
    .unwrap();
    assert_eq!(age.classes, ["0-19", "20-39", "40-59", "60+"]);
    assert_eq!(age.labels(), vec![0, 1, 2, 3]);
    assert_eq!(age.group_ids(), vec![0, 1, 0, 1]);
    let same = UtkfaceOptions {
        label: UtkAttribute::Race,
        ..opts.clone()
    };
    assert!(matches!(utkface::load(&same), Err(DataError::Config(_))));

    // A name without a race field, and one with race 7.
    let bad1 = images.join("39_1_20170116174525125.jpg.chip.jpg");
    let bad2 = images.join("part2/30_0_7_20170116174525125.jpg");
    std::fs::write(&bad1, &jpg).unwrap();
    std::fs::write(&bad2, &jpg).unwrap();
    let err = utkface::load(&opts).unwrap_err().to_string();
    assert!(
        err.contains(&format!("{}: file name field `name`", bad1.display())),
        "{err}"
    );
    let skipped = utkface::load(&UtkfaceOptions {
        skip_bad_rows: true,
        ..opts.clone()
    })
    .unwrap();
    assert_eq!(skipped.len(), 4);
    assert_eq!(skipped.skip_summary().get(SkipReason::Unparsable), 2);
    let race = skipped.skipped.iter().find(|s| s.file == bad2).unwrap();
    assert_eq!(race.field, "race");
    assert!(race.message.contains("`7`"), "{}", race.message);
}
