//! Per-group accuracy charts (grouped bars, one colour per method) as PNG files.
//!
//! The chart is rendered into memory with plotters and written atomically. The DejaVu Sans font is embedded
//! in the binary, so no system font (fontconfig) is needed on a headless machine.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use fq_runtime::atomic::write_atomic;

mod ablation;
mod bits;
mod diagnostics;
mod field;
mod frontier;
mod heatmap;
mod lines;
mod radar;
mod render;
pub use ablation::{ablation_chart, AblationPoint, Estimate};
pub use bits::bit_width_histogram;
pub use diagnostics::{distribution_chart, group_metric_panels, MetricPanel};
pub use field::{group_accuracy_interval_chart, IntervalSeries};
pub use frontier::{frontier_chart, pareto_front, FrontierPoint};
pub use heatmap::{heatmap, HeatmapPanel};
pub use lines::{line_panels, LinePanel};
pub use radar::{radar_chart, RadarSeries, RADAR_SIZE};

/// Size of the chart in pixels.
pub const CHART_SIZE: (u32, u32) = (900, 500);

const FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
pub(crate) const FAMILY: &str = "sans-serif";
const LEGEND_WIDTH: u32 = 180;

/// Tableau 10: distinguishable, colour-blind-friendlier than the plotters defaults.
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// A chart that could not be made; names the output file.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{}: invalid chart input: {message}", path.display())]
    InvalidInput { path: PathBuf, message: String },
    #[error("{}: drawing failed: {message}", path.display())]
    Draw { path: PathBuf, message: String },
    /// The message already names the file.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Writes a grouped bar chart of per-group accuracy: one cluster per group, one bar per method (`series`:
/// method name and accuracy per group as a fraction in [0, 1]; a non-finite value, e.g. NaN for a group
/// without samples, draws no bar). Bars are labelled with their value in percent when they are wide
/// enough.
pub fn group_accuracy_chart(
    path: &Path,
    title: &str,
    group_names: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<(), PlotError> {
    let invalid = |message: String| PlotError::InvalidInput {
        path: path.to_path_buf(),
        message,
    };
    if group_names.is_empty() {
        return Err(invalid("no groups".into()));
    }
    if series.is_empty() {
        return Err(invalid("no series".into()));
    }
    for (name, values) in series {
        if values.len() != group_names.len() {
            return Err(invalid(format!(
                "series `{name}` has {} values for {} groups",
                values.len(),
                group_names.len()
            )));
        }
        if let Some(v) = values
            .iter()
            .find(|v| v.is_finite() && !(0.0..=1.0).contains(*v))
        {
            return Err(invalid(format!(
                "series `{name}`: accuracy {v} is outside [0, 1]"
            )));
        }
    }
    register_font().map_err(|message| PlotError::Draw {
        path: path.to_path_buf(),
        message,
    })?;

    let (w, h) = CHART_SIZE;
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    draw(&mut rgb, title, group_names, series).map_err(|message| PlotError::Draw {
        path: path.to_path_buf(),
        message,
    })?;
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&rgb, w, h, ExtendedColorType::Rgb8)
        .map_err(|e| PlotError::Draw {
            path: path.to_path_buf(),
            message: format!("PNG encoding: {e}"),
        })?;
    write_atomic(path, &png)?;
    Ok(())
}

/// Registers the embedded font once per process.
pub(crate) fn register_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            for style in [FontStyle::Normal, FontStyle::Bold] {
                plotters::style::register_font(FAMILY, style, FONT)
                    .map_err(|_| "the embedded DejaVu Sans font is invalid".to_string())?;
            }
            Ok(())
        })
        .clone()
}

fn draw(
    rgb: &mut [u8],
    title: &str,
    groups: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = BitMapBackend::with_buffer(rgb, CHART_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let body = root
        .titled(title, (FAMILY, 22).into_font().color(&BLACK))
        .map_err(|e| err(&e))?;
    let (plot_area, legend_area) = body.split_horizontally(CHART_SIZE.0 - LEGEND_WIDTH);

    let n_groups = groups.len();
    let mut chart = group_chart(&plot_area, groups)?;

    let n_series = series.len();
    let slot = 0.8 / n_series as f64;
    let plot_px = f64::from(CHART_SIZE.0 - LEGEND_WIDTH - 24 - 60);
    let bar_px = plot_px / n_groups as f64 * slot * 0.9;
    let value_font = if bar_px >= 26.0 {
        Some(11)
    } else if bar_px >= 19.0 {
        Some(9)
    } else {
        None
    };
    for (s, (_, values)) in series.iter().enumerate() {
        let color = PALETTE[s % PALETTE.len()];
        let bars = values.iter().enumerate().filter(|(_, v)| v.is_finite());
        let rect = |g: usize, v: f64| {
            let left = g as f64 - 0.4 + s as f64 * slot + slot * 0.05;
            (left, left + slot * 0.9, v * 100.0)
        };
        chart
            .draw_series(bars.clone().map(|(g, &v)| {
                let (l, r, top) = rect(g, v);
                Rectangle::new([(l, 0.0), (r, top)], color.filled())
            }))
            .map_err(|e| err(&e))?;
        if let Some(size) = value_font {
            let style = TextStyle::from((FAMILY, size).into_font())
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            chart
                .draw_series(bars.map(|(g, &v)| {
                    let (l, r, top) = rect(g, v);
                    Text::new(
                        format!("{:.1}", v * 100.0),
                        ((l + r) / 2.0, top + 0.8),
                        style.clone(),
                    )
                }))
                .map_err(|e| err(&e))?;
        }
    }

    // Legend beside the plot, so that it never hides a bar.
    let text = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK);
    let top = 50;
    for (s, (name, _)) in series.iter().enumerate() {
        let y = top + 24 * s as i32;
        let color = PALETTE[s % PALETTE.len()];
        legend_area
            .draw(&Rectangle::new([(8, y), (24, y + 16)], color.filled()))
            .map_err(|e| err(&e))?;
        legend_area
            .draw(&Text::new(name.clone(), (32, y + 1), text.clone()))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// The axes of a per-group chart on `area`: one cluster per group (its name below), accuracy in
/// percent from 0 to 108 (room for value labels above a full bar).
pub(crate) fn group_chart<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    groups: &[String],
) -> Result<ChartContext<'a, BitMapBackend<'b>, Cartesian2d<TickedAxis, TickedAxis>>, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let n_groups = groups.len();
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(
            TickedAxis {
                range: -0.5..n_groups as f64 - 0.5,
                ticks: (0..n_groups).map(|g| g as f64).collect(),
            },
            TickedAxis {
                range: 0.0..108.0,
                ticks: vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0],
            },
        )
        .map_err(|e| err(&e))?;
    let group_label = |x: &f64| {
        let g = x.round();
        if (x - g).abs() < 1e-6 && g >= 0.0 {
            groups.get(g as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(220, 220, 220))
        .x_desc("Group")
        .y_desc("Accuracy (%)")
        .axis_desc_style((FAMILY, 16))
        .label_style((FAMILY, 14))
        .x_label_formatter(&group_label)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    Ok(chart)
}

/// A linear f64 axis with fixed tick positions (group centres on x, round percentages on y).
pub(crate) struct TickedAxis {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        let frac = if span > 0.0 {
            (value - self.range.start) / span
        } else {
            0.0
        };
        limit.0 + (f64::from(limit.1 - limit.0) * frac + 1e-3).floor() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_mismatched_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        let groups = vec!["a".to_string(), "b".to_string()];
        let err = group_accuracy_chart(&path, "t", &groups, &[("m".into(), vec![0.5])])
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.png") && err.contains("`m`"), "{err}");
        let err = group_accuracy_chart(&path, "t", &groups, &[("m".into(), vec![0.5, 1.5])])
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside"), "{err}");
        assert!(!path.exists());
    }
}
