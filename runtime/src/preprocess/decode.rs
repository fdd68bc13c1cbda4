//! Image decoding (PNG, JPEG, WebP) to 8-bit RGB with the EXIF orientation applied, so that a photo taken
//! in portrait is seen upright, as a viewer would show it.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};

use image::metadata::Orientation;
use image::{DynamicImage, ImageReader, RgbImage};

/// An image that cannot be read or decoded; names the file (or the name given for in-memory bytes).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: cannot decode image: {source}", path.display())]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
}

impl DecodeError {
    /// The file (or name) of the image.
    pub fn path(&self) -> &Path {
        match self {
            DecodeError::Io { path, .. } | DecodeError::Image { path, .. } => path,
        }
    }
}

/// Largest image side (pixels) decoded: a header declaring more is refused before any pixel
/// buffer is allocated (dermoscopy photos are at most about 6000 pixels wide).
pub const MAX_IMAGE_SIDE: u32 = 16384;
/// Largest buffer (bytes) a decoder may allocate for one image: a 6000x4000 RGBA photo needs
/// 96 MB. A tiny compressed file can declare a huge canvas; this caps what it costs.
pub const MAX_IMAGE_ALLOC: u64 = 256 << 20;

fn decode_limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    limits
}

/// Reads and decodes the image at `path`.
pub fn decode_path(path: &Path) -> Result<RgbImage, DecodeError> {
    let bytes = std::fs::read(path).map_err(|source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_named(&bytes, path)
}

/// Decodes in-memory image bytes; `name` appears in errors in place of a file name.
pub fn decode_bytes(bytes: &[u8], name: &str) -> Result<RgbImage, DecodeError> {
    decode_named(bytes, Path::new(name))
}

fn decode_named(bytes: &[u8], path: &Path) -> Result<RgbImage, DecodeError> {
    let image_err = |source| DecodeError::Image {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| DecodeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    reader.limits(decode_limits());
    let mut img: DynamicImage = reader.decode().map_err(image_err)?;
    if let Some(o) = exif_orientation(bytes) {
        img.apply_orientation(o);
    }
    Ok(img.into_rgb8())
}

/// The EXIF orientation of the primary image, if the container has EXIF data with a valid tag (1..=8).
/// Missing or broken EXIF means "as stored", like every image viewer does.
pub fn exif_orientation(bytes: &[u8]) -> Option<Orientation> {
    let exif = exif::Reader::new()
        .read_from_container(&mut Cursor::new(bytes))
        .ok()?;
    let field = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)?;
    let v = field.value.get_uint(0)?;
    Orientation::from_exif(u8::try_from(v).ok()?)
}
