//! The common tail of every chart: draw into an RGB buffer, encode PNG, write atomically, with
//! errors naming the output file.

use std::path::Path;

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};

use super::{register_font, PlotError};
use fq_runtime::atomic::write_atomic;

/// Renders a `size` chart with `draw` (which gets a white-initialised RGB8 buffer) to `path`.
pub(crate) fn render_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&mut [u8]) -> Result<(), String>,
) -> Result<(), PlotError> {
    let failed = |message: String| PlotError::Draw {
        path: path.to_path_buf(),
        message,
    };
    register_font().map_err(failed)?;
    let mut rgb = vec![255u8; (size.0 * size.1 * 3) as usize];
    draw(&mut rgb).map_err(failed)?;
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&rgb, size.0, size.1, ExtendedColorType::Rgb8)
        .map_err(|e| failed(format!("PNG encoding: {e}")))?;
    write_atomic(path, &png)?;
    Ok(())
}

/// `PlotError::InvalidInput` for `path`.
pub(crate) fn invalid(path: &Path, message: String) -> PlotError {
    PlotError::InvalidInput {
        path: path.to_path_buf(),
        message,
    }
}

/// Display-to-String, for plotters' error types.
pub(crate) fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}
