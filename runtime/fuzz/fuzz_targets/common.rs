//! Shared by the dataset targets: a private scratch directory (the loaders read files, not bytes)
//! and the checks every loaded dataset must pass whatever the input.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use fq_eval::dataset::split::{Split, SplitFractions};
use fq_eval::dataset::Dataset;

/// `<tmp>/fq-fuzz-<pid>`, created once; every input overwrites the same files in it.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fq-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    })
}

/// An image directory holding an empty `<id>.<ext>` per id (the loaders check that images exist,
/// they do not decode them), created once.
pub fn images(name: &str, ids: &[String], ext: &str) -> PathBuf {
    let dir = scratch().join(name);
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).expect("image dir");
        for id in ids {
            let _ = std::fs::write(dir.join(format!("{id}.{ext}")), b"");
        }
    }
    dir
}

/// The first field of every line but the header of a seed CSV: the ids the image dirs hold.
pub fn first_column(csv: &str) -> Vec<String> {
    csv.lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Invariants of any dataset a loader returns: indices in range, and a stratified split of it
/// works (or fails with an error) without panicking.
pub fn check(ds: &Dataset) {
    for s in &ds.samples {
        assert!(
            s.label < ds.classes.len(),
            "label {} of {}",
            s.label,
            ds.classes.len()
        );
        assert!(
            s.group < ds.groups.len(),
            "group {} of {}",
            s.group,
            ds.groups.len()
        );
    }
    assert_eq!(ds.class_counts().iter().sum::<usize>(), ds.len());
    assert_eq!(ds.group_counts().iter().sum::<usize>(), ds.len());
    let _ = ds.skip_summary();
    if let Ok(split) = Split::stratified(ds, &SplitFractions::default(), 7) {
        let _ = split.assignment(ds.len());
    }
}
