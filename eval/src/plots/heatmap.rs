//! Heat maps of per-scope values (e.g. importance per layer and output channel), one panel per
//! group, on a log colour scale shared by all panels so the groups can be compared.

use super::{register_font, PlotError, FAMILY};
use fq_runtime::atomic::write_atomic;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use plotters::prelude::*;
use std::path::Path;

/// One panel: a title and one row of values per layer (rows may differ in length).
pub struct HeatmapPanel {
    pub title: String,
    pub rows: Vec<Vec<f32>>,
}

const PANEL_H: u32 = 360;
const WIDTH: u32 = 1000;

/// Viridis-like ramp from dark blue (low) to yellow (high), `t` in [0, 1].
fn ramp(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Write a PNG heat map: x = output channel, y = layer (`row_labels`), colour = log10 of the
/// value (non-positive values draw as the lowest colour).
pub fn heatmap(
    path: &Path,
    title: &str,
    row_labels: &[String],
    panels: &[HeatmapPanel],
) -> Result<(), PlotError> {
    let invalid = |message: String| PlotError::InvalidInput {
        path: path.to_path_buf(),
        message,
    };
    if panels.is_empty() {
        return Err(invalid("no panels".into()));
    }
    for p in panels {
        if p.rows.len() != row_labels.len() {
            return Err(invalid(format!(
                "panel `{}` has {} rows for {} labels",
                p.title,
                p.rows.len(),
                row_labels.len()
            )));
        }
    }
    let logs: Vec<f64> = panels
        .iter()
        .flat_map(|p| p.rows.iter().flatten())
        .filter(|v| v.is_finite() && **v > 0.0)
        .map(|&v| (v as f64).log10())
        .collect();
    let (lo, hi) = logs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let (lo, hi) = if lo.is_finite() {
        (lo, hi.max(lo + 1e-9))
    } else {
        (0.0, 1.0)
    };
    let cols = panels
        .iter()
        .flat_map(|p| p.rows.iter().map(|r| r.len()))
        .max()
        .unwrap_or(1)
        .max(1);
    register_font().map_err(|message| PlotError::Draw {
        path: path.to_path_buf(),
        message,
    })?;
    let size = (WIDTH, 40 + PANEL_H * panels.len() as u32);
    let mut rgb = vec![255u8; (size.0 * size.1 * 3) as usize];
    let draw = |rgb: &mut [u8]| -> Result<(), String> {
        let e = |x: &dyn std::fmt::Display| x.to_string();
        let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let root = root
            .titled(
                &format!("{title}  (colour: log10, {lo:.1} .. {hi:.1})"),
                (FAMILY, 18).into_font().color(&BLACK),
            )
            .map_err(|x| e(&x))?;
        let areas = root.split_evenly((panels.len(), 1));
        for (area, p) in areas.iter().zip(panels) {
            let n = row_labels.len();
            let mut chart = ChartBuilder::on(area)
                .caption(&p.title, (FAMILY, 16))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(150)
                .build_cartesian_2d(0f64..cols as f64, 0f64..n as f64)
                .map_err(|x| e(&x))?;
            let label = |y: &f64| {
                let i = y.floor() as usize;
                // Rows are drawn top-down in layer order.
                if (y - y.floor()).abs() < 1e-9 || i >= n {
                    String::new()
                } else {
                    row_labels.get(n - 1 - i).cloned().unwrap_or_default()
                }
            };
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("output channel")
                .y_labels(n.min(30) * 2)
                .y_label_formatter(&label)
                .label_style((FAMILY, 11))
                .axis_desc_style((FAMILY, 12))
                .draw()
                .map_err(|x| e(&x))?;
            let cells = p.rows.iter().enumerate().flat_map(|(r, row)| {
                let y = (n - 1 - r) as f64;
                row.iter().enumerate().map(move |(c, &v)| {
                    let t = if v.is_finite() && v > 0.0 {
                        ((v as f64).log10() - lo) / (hi - lo)
                    } else {
                        0.0
                    };
                    Rectangle::new([(c as f64, y), (c as f64 + 1.0, y + 1.0)], ramp(t).filled())
                })
            });
            chart.draw_series(cells).map_err(|x| e(&x))?;
        }
        root.present().map_err(|x| e(&x))
    };
    draw(&mut rgb).map_err(|message| PlotError::Draw {
        path: path.to_path_buf(),
        message,
    })?;
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&rgb, size.0, size.1, ExtendedColorType::Rgb8)
        .map_err(|x| PlotError::Draw {
            path: path.to_path_buf(),
            message: format!("PNG encoding: {x}"),
        })?;
    write_atomic(path, &png)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_decodable_png_and_rejects_ragged_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.png");
        let labels = vec!["conv1".to_string(), "fc".to_string()];
        let panels = vec![
            HeatmapPanel {
                title: "I-III".into(),
                rows: vec![vec![1e-6, 1e-3, 0.0], vec![1e-2, 1.0]],
            },
            HeatmapPanel {
                title: "IV-VI".into(),
                rows: vec![vec![1e-5, 1e-4, 1e-3], vec![1e-1, 1.0]],
            },
        ];
        heatmap(&path, "importance", &labels, &panels).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.width(), WIDTH);
        // Not blank: the ramp's end colours are present.
        assert!(img.pixels().any(|p| p.0 == [253, 231, 37]));
        let bad = vec![HeatmapPanel {
            title: "x".into(),
            rows: vec![vec![1.0]],
        }];
        let err = heatmap(&path, "t", &labels, &bad).unwrap_err().to_string();
        assert!(
            err.contains("h.png") && err.contains("1 rows for 2 labels"),
            "{err}"
        );
    }
}
