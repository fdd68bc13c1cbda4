//! The ISIC 2019 ground truth + metadata CSVs on arbitrary bytes. Input: one flags byte (grouping,
//! skip bad rows), then the ground truth, a 0x00 byte, then the metadata (no 0x00: empty metadata).
#![no_main]

#[path = "common.rs"]
mod common;

use fq_eval::dataset::isic2019::{load, Isic2019Options, SexGrouping};
use libfuzzer_sys::fuzz_target;

const SEED: &str = include_str!("../seeds/csv/ISIC_2019_Training_GroundTruth.csv");

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (gt, meta) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let dir = common::scratch();
    let (gt_path, meta_path) = (dir.join("gt.csv"), dir.join("meta.csv"));
    std::fs::write(&gt_path, gt).expect("write the ground truth");
    std::fs::write(&meta_path, meta).expect("write the metadata");
    let images = common::images("isic_images", &common::first_column(SEED), "jpg");
    let mut opts = Isic2019Options::new(&gt_path, &meta_path, images);
    opts.grouping = if flags & 1 == 0 {
        SexGrouping::ThreeWithUnknown
    } else {
        SexGrouping::TwoDropUnknown
    };
    opts.skip_bad_rows = flags & 2 != 0;
    if let Ok(ds) = load(&opts) {
        common::check(&ds);
    }
});
