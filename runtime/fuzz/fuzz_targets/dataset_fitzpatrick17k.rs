//! The Fitzpatrick17k metadata CSV on arbitrary bytes. Input: one flags byte (grouping, unknown
//! skin types, label column, skip bad rows, explicit class list), then the CSV.
#![no_main]

#[path = "common.rs"]
mod common;

use fq_eval::dataset::fitzpatrick17k::{
    load, Fitzpatrick17kOptions, LabelGranularity, SkinGrouping, UnknownSkinType,
};
use libfuzzer_sys::fuzz_target;

/// The seed CSV: its ids get (empty) images, so rows get past the image check.
const SEED: &str = include_str!("../seeds/csv/fitzpatrick17k.csv");

fuzz_target!(|data: &[u8]| {
    let Some((&flags, csv)) = data.split_first() else {
        return;
    };
    let path = common::scratch().join("fitzpatrick17k.csv");
    std::fs::write(&path, csv).expect("write the CSV");
    let images = common::images("fitz_images", &common::first_column(SEED), "jpg");
    let mut opts = Fitzpatrick17kOptions::new(&path, images);
    opts.grouping = if flags & 1 == 0 {
        SkinGrouping::Binary
    } else {
        SkinGrouping::SixTypes
    };
    opts.unknown = if flags & 2 == 0 {
        UnknownSkinType::Drop
    } else {
        UnknownSkinType::KeepAsGroup
    };
    opts.labels = match (flags >> 2) & 3 {
        0 | 3 => LabelGranularity::Fine,
        1 => LabelGranularity::NinePartition,
        _ => LabelGranularity::ThreePartition,
    };
    opts.skip_bad_rows = flags & 16 != 0;
    if flags & 32 != 0 {
        opts.classes = Some(vec!["inflammatory".into(), "malignant epidermal".into()]);
    }
    if let Ok(ds) = load(&opts) {
        common::check(&ds);
    }
});
