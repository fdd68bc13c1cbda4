//! Shared rendering of a chart into an in-memory RGB buffer, encoded as PNG and written
//! atomically, so a chart is either complete on disk or absent.

use std::path::Path;

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use plotters::prelude::*;

use super::{register_font, PlotError};
use crate::atomic::write_atomic;

/// The drawing area the closures receive.
pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Draw with `draw` on a white `size` canvas and write it to `path` as PNG.
pub(crate) fn render_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area) -> Result<(), String>,
) -> Result<(), PlotError> {
    let fail = |message: String| PlotError::Draw {
        path: path.to_path_buf(),
        message,
    };
    register_font().map_err(fail)?;
    let (w, h) = size;
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        draw(&root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&rgb, w, h, ExtendedColorType::Rgb8)
        .map_err(|e| fail(format!("PNG encoding: {e}")))?;
    write_atomic(path, &png)?;
    Ok(())
}

/// Maps any displayable drawing error to the message `render_png` reports.
pub(crate) fn msg(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Rejects a chart input with a message that names the output file.
pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> PlotError {
    PlotError::InvalidInput {
        path: path.to_path_buf(),
        message: message.into(),
    }
}
