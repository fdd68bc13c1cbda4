//! The generic folder CSV (`image,label,group`) on arbitrary bytes. Input: one flags byte (skip bad
//! rows, explicit class / group lists), then the CSV.
#![no_main]

#[path = "common.rs"]
mod common;

use fq_eval::dataset::folder::{load, FolderCsvOptions};
use libfuzzer_sys::fuzz_target;

const SEED: &str = include_str!("../seeds/csv/folder.csv");

fuzz_target!(|data: &[u8]| {
    let Some((&flags, csv)) = data.split_first() else {
        return;
    };
    let path = common::scratch().join("folder.csv");
    std::fs::write(&path, csv).expect("write the CSV");
    // The seed's image paths are `<stem>.png`; the image dir holds those files.
    let stems: Vec<String> = common::first_column(SEED)
        .iter()
        .filter_map(|p| p.strip_suffix(".png").map(str::to_string))
        .collect();
    let images = common::images("folder_images", &stems, "png");
    let mut opts = FolderCsvOptions::new(&path, images);
    opts.skip_bad_rows = flags & 1 != 0;
    if flags & 2 != 0 {
        opts.classes = Some(vec!["benign".into(), "malignant".into()]);
    }
    if flags & 4 != 0 {
        opts.groups = Some(vec!["I-III".into(), "IV-VI".into()]);
    }
    if let Ok(ds) = load(&opts) {
        common::check(&ds);
    }
});
