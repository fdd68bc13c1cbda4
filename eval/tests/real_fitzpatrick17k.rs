//! The Fitzpatrick17k loader on the real public CSV (16,577 rows), with a tiny image per id.

use crate::common;

use fq_eval::dataset::fitzpatrick17k::{
    self, Fitzpatrick17kOptions, LabelGranularity, SkinGrouping, UnknownSkinType,
};
use fq_eval::dataset::official_split;
use fq_eval::dataset::{
    make_split, DataError, DataSource, Dataset, SkipReason, Split, SplitFractions, SplitMethod,
};
use image::ImageFormat;
use std::path::Path;

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

    check_official_split(&d, &csv, &images, tmp.path(), &ids);
}

/// `--split official` on the real CSV with FairPrune-style lists: rows 1..10000 = `train_score.csv`,
/// rows 10001..15000 = `all_val.csv`, the rest in neither. Listed rows of unknown skin type are left out
/// (counted); an id that is not in the CSV at all, or a list without `md5hash`, is an error naming the file
/// and line.
fn check_official_split(d: &Dataset, csv: &Path, images: &Path, dir: &Path, ids: &[String]) {
    let train_list = dir.join("train_score.csv");
    let test_list = dir.join("all_val.csv");
    let write = |path: &Path, ids: &[String], extra: &str| {
        let body: String = ids.iter().map(|i| format!("{i},x\n")).collect();
        std::fs::write(path, format!("md5hash,other\n{body}{extra}")).unwrap();
    };
    write(&train_list, &ids[..10_000], "");
    write(&test_list, &ids[10_000..15_000], "");
    // Rows dropped by the loader (unknown type) by position in the CSV (line = index + 2).
    let dropped_before = |end: usize| d.skipped.iter().filter(|s| s.line - 2 < end).count();
    let o = official_split::fitzpatrick17k(d, csv, &train_list, &test_list, false).unwrap();
    assert_eq!(o.split.train.len(), 10_000 - dropped_before(10_000));
    assert_eq!(
        o.split.test.len(),
        5000 - (dropped_before(15_000) - dropped_before(10_000))
    );
    assert_eq!(o.listed_but_dropped, dropped_before(15_000));
    assert_eq!(
        o.in_neither,
        d.len() - o.split.train.len() - o.split.test.len()
    );
    assert_eq!(o.in_neither, 1577 - (565 - dropped_before(15_000)));
    assert!(o.skipped.is_empty());
    assert!(o
        .split
        .train
        .iter()
        .all(|&i| d.samples[i].origin.line <= 10_001));
    assert!(o.split.test.iter().all(|&i| {
        let l = d.samples[i].origin.line;
        (10_002..=15_001).contains(&l)
    }));

    // Through the run's entry point: val = 10% of the official train, test unchanged.
    let source = DataSource::Fitzpatrick17k {
        csv: csv.to_path_buf(),
        images: images.to_path_buf(),
        grouping: SkinGrouping::Binary,
        label_column: LabelGranularity::Fine,
        keep_unknown: false,
    };
    let method = SplitMethod::Official {
        train_list: Some(train_list.clone()),
        test_list: Some(test_list.clone()),
    };
    let (s, note) = make_split(d, &source, &method, &SplitFractions::default(), 42, false).unwrap();
    assert_eq!(s.test, o.split.test);
    assert_eq!(s.train.len() + s.val.len(), o.split.train.len());
    let frac = s.val.len() as f64 / o.split.train.len() as f64;
    assert!((0.08..0.11).contains(&frac), "val share {frac}");
    let note = note.unwrap();
    assert!(
        note.contains(&format!("{} samples in no split", o.in_neither)),
        "{note}"
    );
    // The saved split reloads to the same assignment (`--split-csv` of another run).
    let saved = dir.join("split.csv");
    s.save_csv(&saved, d).unwrap();
    let (again, _) = make_split(
        d,
        &source,
        &SplitMethod::Csv {
            path: saved.clone(),
        },
        &SplitFractions::default(),
        0,
        false,
    )
    .unwrap();
    assert_eq!(again, s);
    assert_eq!(Split::load_csv(&saved, d).unwrap(), s);

    // An id in neither the dataset nor the CSV: an error at its line; skipped with the flag.
    write(&test_list, &ids[10_000..15_000], "not-a-hash,x\n");
    let err = official_split::fitzpatrick17k(d, csv, &train_list, &test_list, false).unwrap_err();
    common::assert_names(&err.to_string(), &test_list, 5002, "md5hash");
    assert!(err.to_string().contains("not-a-hash"), "{err}");
    let o = official_split::fitzpatrick17k(d, csv, &train_list, &test_list, true).unwrap();
    assert_eq!(o.skipped.len(), 1);
    assert_eq!(o.skipped[0].reason, SkipReason::UnknownId);
    // A list without the md5hash column.
    std::fs::write(&test_list, "hash\nabc\n").unwrap();
    let err = official_split::fitzpatrick17k(d, csv, &train_list, &test_list, false).unwrap_err();
    assert!(matches!(err, DataError::MissingColumn { .. }), "{err}");
    assert!(
        err.to_string().contains("all_val.csv:1: field `md5hash`"),
        "{err}"
    );
    // An id in both lists.
    write(&test_list, &ids[..1], "");
    let err = official_split::fitzpatrick17k(d, csv, &train_list, &test_list, false).unwrap_err();
    assert!(err.to_string().contains("duplicate id"), "{err}");
    // No official split for a generic folder dataset.
    let folder = DataSource::Folder {
        csv: csv.to_path_buf(),
        images: images.to_path_buf(),
        image_column: "image".into(),
        label_column: "label".into(),
        group_column: "group".into(),
    };
    let err = make_split(d, &folder, &method, &SplitFractions::default(), 42, false).unwrap_err();
    assert!(err.to_string().contains("official split exists"), "{err}");
}
