//! The ISIC 2019 loader on the real ground truth and metadata CSVs (25,331 rows), with a tiny image per id.

use crate::common;

use fq_eval::dataset::isic2019::{self, Isic2019Options, SexGrouping};
use fq_eval::dataset::mt19937::PyRandom;
use fq_eval::dataset::official_split::{self, isic2019_shuffle_split};
use fq_eval::dataset::{
    make_split, DataSource, Dataset, SkipReason, Split, SplitFractions, SplitMethod,
};
use image::ImageFormat;
use serde_json::Value;

/// `tools/reference/fixtures/python_shuffle.json`, written by CPython (`tools/reference/isic_split.py`).
fn python_fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tools/reference/fixtures/python_shuffle.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// `Random(seed).shuffle(list(range(n)))` and `getrandbits(k)` equal CPython's, element for element,
/// for seeds of one, two and three 32-bit words.
#[test]
fn python_shuffle_bit_for_bit() {
    let f = python_fixture();
    let cases = f["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 43);
    for c in cases {
        let seed: u128 = c["seed"].as_str().unwrap().parse().unwrap();
        let n = c["n"].as_u64().unwrap() as usize;
        let mut v: Vec<usize> = (0..n).collect();
        PyRandom::new(seed).shuffle(&mut v);
        assert_eq!(v, usizes(&c["perm"]), "seed {seed}, n {n}");
    }
    for c in f["getrandbits"].as_array().unwrap() {
        let k = c["k"].as_u64().unwrap() as u32;
        let mut r = PyRandom::new(c["seed"].as_str().unwrap().parse().unwrap());
        let want: Vec<u64> = c["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        let got: Vec<u64> = (0..want.len()).map(|_| r.getrandbits(k)).collect();
        assert_eq!(got, want, "getrandbits({k})");
    }
}

/// The paper's ISIC 2019 split of the real ground truth equals the one CPython computes; the run's
/// official split holds out 10% of it (stratified) as val and leaves test alone.
fn check_official_split(d: &Dataset, source: &DataSource) {
    let f = python_fixture();
    let want = &f["isic2019"];
    assert_eq!(want["n"].as_u64(), Some(d.len() as u64));
    let o = official_split::isic2019(d);
    assert_eq!(o.split.train, usizes(&want["train"]));
    assert_eq!(o.split.test, usizes(&want["test"]));
    assert!(o.split.val.is_empty());
    assert_eq!((o.split.train.len(), o.split.test.len()), (15_198, 5066));
    assert_eq!(o.in_neither, 25_331 - 15_198 - 5066);
    assert_eq!(
        isic2019_shuffle_split(d.len(), 42),
        Split {
            train: usizes(&want["train"]),
            val: vec![],
            test: usizes(&want["test"]),
        }
    );
    assert!(o.split.train.contains(
        &d.samples
            .iter()
            .position(|s| s.id == want["first_train_id"].as_str().unwrap())
            .unwrap()
    ));

    let method = SplitMethod::Official {
        train_list: None,
        test_list: None,
    };
    let (s, note) = make_split(d, source, &method, &SplitFractions::default(), 42, false).unwrap();
    assert!(note.unwrap().contains("train 15198 / test 5066"));
    assert_eq!(s.test, o.split.test);
    assert_eq!(s.train.len() + s.val.len(), 15_198);
    assert!((1500..=1530).contains(&s.val.len()), "{}", s.val.len());
    let mut union = [s.train.clone(), s.val.clone()].concat();
    union.sort_unstable();
    assert_eq!(union, o.split.train);
}

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
    let source = DataSource::Isic2019 {
        ground_truth: gt.clone(),
        metadata: meta.clone(),
        images: images.clone(),
        groups: 3,
    };
    check_official_split(&d, &source);
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
