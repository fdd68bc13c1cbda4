//! Decoding and resizing all images of a dataset up front, in parallel. The trainer keeps these u8 images in
//! memory and augments them each epoch instead of decoding JPEGs again.

use std::sync::atomic::{AtomicUsize, Ordering};

use image::RgbImage;
use rayon::prelude::*;

use fq_runtime::preprocess::{load_resized, PreprocessConfig};

use crate::dataset::{DataError, Dataset};

/// Every sample's image, decoded, EXIF-oriented and resized to `cfg.width x cfg.height`, in sample order.
/// The first failing sample (in sample order, whatever the thread count) gives the error, which names the
/// image and the CSV file and line of the sample. With `progress`, a line per 10% goes to stderr (decoding
/// 25k JPEGs takes minutes); a program with a progress bar uses [`load_dataset_images_with`].
pub fn load_dataset_images(
    dataset: &Dataset,
    cfg: &PreprocessConfig,
    progress: bool,
) -> Result<Vec<RgbImage>, DataError> {
    let total = dataset.len();
    let step = total.div_ceil(10).max(1);
    load_dataset_images_with(dataset, cfg, &|n| {
        if progress && (n.is_multiple_of(step) || n == total) {
            eprintln!("{}: decoded {n}/{total} images", dataset.name);
        }
    })
}

/// As [`load_dataset_images`], calling `on_decoded(n)` after each image with the number decoded so
/// far (from the decoding threads), so the caller can drive its own progress display.
pub fn load_dataset_images_with(
    dataset: &Dataset,
    cfg: &PreprocessConfig,
    on_decoded: &(dyn Fn(usize) + Sync),
) -> Result<Vec<RgbImage>, DataError> {
    cfg.validate()?;
    let done = AtomicUsize::new(0);
    let results: Vec<Result<RgbImage, DataError>> = dataset
        .samples
        .par_iter()
        .map(|s| {
            let r = load_resized(&s.image, cfg.width, cfg.height).map_err(|source| {
                DataError::CorruptImage {
                    file: s.origin.file.clone(),
                    line: s.origin.line,
                    image: s.image.clone(),
                    source: Box::new(source),
                }
            });
            on_decoded(done.fetch_add(1, Ordering::Relaxed) + 1);
            r
        })
        .collect();
    results.into_iter().collect()
}
