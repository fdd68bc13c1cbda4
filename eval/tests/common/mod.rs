//! Helpers shared by the integration tests: the real CSVs in `tests/data/real/` and tiny generated images.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{ImageFormat, Rgb, RgbImage};
use rayon::prelude::*;

/// The real metadata CSVs of both datasets, committed in `tests/data/real/` (see its SOURCES.md
/// for origin and licences).
pub fn data_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/real"));
    assert!(
        dir.join("fitzpatrick17k.csv").is_file(),
        "the real CSVs are expected in {}",
        dir.display()
    );
    dir
}

/// A 4x4 image encoded in `format`.
pub fn tiny_image_bytes(format: ImageFormat) -> Vec<u8> {
    let img = RgbImage::from_fn(4, 4, |x, y| Rgb([(x * 60) as u8, (y * 60) as u8, 128]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// Writes `<dir>/<id>.<ext>` with the same bytes for every id, in parallel.
pub fn write_images(dir: &Path, ids: &[String], ext: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    ids.par_iter().for_each(|id| {
        std::fs::write(dir.join(format!("{id}.{ext}")), bytes).unwrap();
    });
}

/// The values of the first column of a CSV (the ids), header excluded.
pub fn first_column(csv_path: &Path) -> Vec<String> {
    let mut r = csv::Reader::from_path(csv_path).unwrap();
    r.records().map(|rec| rec.unwrap()[0].to_string()).collect()
}

/// Asserts that an error message names the file, the line and the field.
pub fn assert_names(msg: &str, file: &Path, line: usize, field: &str) {
    let loc = format!("{}:{line}:", file.display());
    assert!(msg.contains(&loc), "`{msg}` does not name {loc}");
    let f = format!("field `{field}`");
    assert!(msg.contains(&f), "`{msg}` does not name {f}");
}
