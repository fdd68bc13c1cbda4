//! Image preprocessing shared by training and inference (spec §6.2): decode, EXIF orientation, resize to
//! exactly `width x height` (aspect ratio not kept, bilinear), then a normalized CHW float tensor.

mod decode;

use std::path::Path;

use image::imageops::{self, FilterType};
use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use decode::{
    decode_bytes, decode_path, exif_orientation, DecodeError, MAX_IMAGE_ALLOC, MAX_IMAGE_SIDE,
};

/// ImageNet channel means (RGB), as torchvision's `Normalize` in the reference code.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A preprocessing configuration that cannot describe an image tensor (zero size, a non-finite
/// mean, a standard deviation that is not positive); the model file or the config names it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Input size and normalization of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    pub width: u32,
    pub height: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for PreprocessConfig {
    /// 224 x 224 with ImageNet normalization (every model of the paper).
    fn default() -> Self {
        PreprocessConfig {
            width: 224,
            height: 224,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }
}

impl PreprocessConfig {
    /// Non-zero size, finite means, finite positive standard deviations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.width == 0 || self.height == 0 {
            return Err(ConfigError(format!(
                "preprocess size must be positive, got {}x{}",
                self.width, self.height
            )));
        }
        if self.mean.iter().any(|m| !m.is_finite())
            || self.std.iter().any(|s| !s.is_finite() || *s <= 0.0)
        {
            return Err(ConfigError(format!(
                "preprocess mean must be finite and std positive, got mean {:?} std {:?}",
                self.mean, self.std
            )));
        }
        Ok(())
    }

    /// Number of floats of one image tensor (3 x height x width).
    pub fn tensor_len(&self) -> usize {
        3 * self.width as usize * self.height as usize
    }
}

/// Resizes to exactly `width x height` with bilinear (triangle) filtering; the aspect ratio is not kept.
/// Returns the image unchanged when it already has that size.
pub fn resize_exact(img: RgbImage, width: u32, height: u32) -> RgbImage {
    if img.dimensions() == (width, height) {
        img
    } else {
        imageops::resize(&img, width, height, FilterType::Triangle)
    }
}

/// Decodes (with EXIF orientation) and resizes the image at `path`.
pub fn load_resized(path: &Path, width: u32, height: u32) -> Result<RgbImage, DecodeError> {
    Ok(resize_exact(decode_path(path)?, width, height))
}

/// The normalized CHW tensor of `img`: `(v / 255 - mean[c]) / std[c]`, computed in f32 like torchvision's
/// `ToTensor` + `Normalize`. An image of another size is resized to the configured size first.
pub fn to_chw(img: &RgbImage, cfg: &PreprocessConfig) -> Vec<f32> {
    let mut out = vec![0.0; cfg.tensor_len()];
    fill_chw(img, cfg, &mut out);
    out
}

/// The NCHW tensor of a batch of images (each as in [`to_chw`]), built in parallel.
pub fn to_nchw(images: &[RgbImage], cfg: &PreprocessConfig) -> Vec<f32> {
    let per = cfg.tensor_len();
    let mut out = vec![0.0; per * images.len()];
    if per > 0 {
        out.par_chunks_mut(per)
            .zip(images.par_iter())
            .for_each(|(dst, img)| fill_chw(img, cfg, dst));
    }
    out
}

/// Writes the CHW tensor of `img` into `out` (length `cfg.tensor_len()`).
fn fill_chw(img: &RgbImage, cfg: &PreprocessConfig, out: &mut [f32]) {
    let resized;
    let img = if img.dimensions() == (cfg.width, cfg.height) {
        img
    } else {
        resized = imageops::resize(img, cfg.width, cfg.height, FilterType::Triangle);
        &resized
    };
    let plane = cfg.width as usize * cfg.height as usize;
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(px.0[c]) / 255.0 - cfg.mean[c]) / cfg.std[c];
        }
    }
}
