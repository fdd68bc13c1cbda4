//! Image bytes (PNG, JPEG, WebP, with or without EXIF) through decode, EXIF orientation, resize and
//! normalisation, as a downloaded photo goes to the classifier. The first byte picks the target
//! size (1..=64 px square) so resizing up and down are both exercised.
#![no_main]

use fq_runtime::preprocess::{decode_bytes, exif_orientation, to_chw, PreprocessConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&size, bytes)) = data.split_first() else {
        return;
    };
    let _ = exif_orientation(bytes);
    let Ok(img) = decode_bytes(bytes, "fuzz-input") else {
        return;
    };
    let side = u32::from(size % 64) + 1;
    let cfg = PreprocessConfig {
        width: side,
        height: side,
        ..PreprocessConfig::default()
    };
    let t = to_chw(&img, &cfg);
    assert_eq!(t.len(), cfg.tensor_len());
    assert!(t.iter().all(|v| v.is_finite()));
});
