//! The accuracy–size frontier of a sweep: average bits against worst-group and average accuracy,
//! one marker per method with its spread over seeds, so a reader sees which method buys the most
//! worst-group accuracy per bit.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::canvas::{invalid, msg, render_png, Area};
use super::{PlotError, FAMILY, PALETTE};

/// A mean and its error bar half-width (a std or a CI half-width; 0 for a single run).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub mean: f64,
    pub err: f64,
}

impl Estimate {
    pub fn new(mean: f64, err: f64) -> Self {
        Self { mean, err }
    }
}

/// One method on the frontier; accuracies as fractions in [0, 1].
#[derive(Clone, Debug)]
pub struct MethodPoint {
    pub label: String,
    pub avg_bits: f64,
    pub worst_acc: Estimate,
    pub avg_acc: Estimate,
}

const SIZE: (u32, u32) = (1100, 520);

/// Two panels (worst-group accuracy, average accuracy) over average bits on a log2 axis.
pub fn frontier_chart(path: &Path, title: &str, points: &[MethodPoint]) -> Result<(), PlotError> {
    if points.is_empty() {
        return Err(invalid(path, "no methods"));
    }
    if let Some(p) = points
        .iter()
        .find(|p| p.avg_bits.is_nan() || p.avg_bits <= 0.0 || p.avg_bits.is_infinite())
    {
        return Err(invalid(
            path,
            format!("`{}` has average bits {}", p.label, p.avg_bits),
        ));
    }
    render_png(path, SIZE, |root| {
        let body = root
            .titled(title, (FAMILY, 22).into_font().color(&BLACK))
            .map_err(msg)?;
        let (left, right) = body.split_horizontally(SIZE.0 / 2);
        panel(&left, "Worst-group accuracy (%)", points, |p| p.worst_acc)?;
        panel(&right, "Average accuracy (%)", points, |p| p.avg_acc)
    })
}

fn panel(
    area: &Area,
    y_desc: &str,
    points: &[MethodPoint],
    value: fn(&MethodPoint) -> Estimate,
) -> Result<(), String> {
    let lo_bits = points.iter().map(|p| p.avg_bits).fold(f64::MAX, f64::min);
    let hi_bits = points.iter().map(|p| p.avg_bits).fold(0.0, f64::max);
    let (x0, x1) = (lo_bits / 1.25, hi_bits * 1.6);
    let lo = points
        .iter()
        .map(|p| 100.0 * (value(p).mean - value(p).err))
        .fold(f64::MAX, f64::min);
    let hi = points
        .iter()
        .map(|p| 100.0 * (value(p).mean + value(p).err))
        .fold(f64::MIN, f64::max);
    let pad = ((hi - lo) * 0.15).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .margin(14)
        .x_label_area_size(42)
        .y_label_area_size(55)
        .build_cartesian_2d(
            (x0..x1).log_scale(),
            (lo - pad).max(0.0)..(hi + pad).min(100.0),
        )
        .map_err(msg)?;
    chart
        .configure_mesh()
        .x_desc("Average bits per weight (log scale)")
        .y_desc(y_desc)
        .axis_desc_style((FAMILY, 15))
        .label_style((FAMILY, 13))
        .x_labels(12)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(msg)?;
    let label_style = TextStyle::from((FAMILY, 12).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Bottom));
    for (i, p) in points.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let e = value(p);
        let (x, y) = (p.avg_bits, 100.0 * e.mean);
        if e.err > 0.0 {
            chart
                .draw_series(std::iter::once(ErrorBar::new_vertical(
                    x,
                    100.0 * (e.mean - e.err),
                    y,
                    100.0 * (e.mean + e.err),
                    color.stroke_width(2),
                    8,
                )))
                .map_err(msg)?;
        }
        chart
            .draw_series(std::iter::once(Circle::new((x, y), 6, color.filled())))
            .map_err(msg)?;
        chart
            .draw_series(std::iter::once(Text::new(
                p.label.clone(),
                (x * 1.03, y),
                label_style.clone(),
            )))
            .map_err(msg)?;
    }
    Ok(())
}
