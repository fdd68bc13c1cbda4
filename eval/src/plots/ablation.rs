//! An ablation of one hyperparameter: accuracy and average bits at each value, with 95%
//! confidence intervals over seeds, so the reader sees which differences are larger than noise.

use std::path::Path;

use plotters::prelude::*;

use super::render::{err as msg, invalid, render_png};
use super::{PlotError, FAMILY, PALETTE};

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// A mean and its error-bar half-width (a CI half-width; 0 for a single run).
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

/// One value of the ablated parameter; accuracies as fractions in [0, 1].
#[derive(Clone, Debug)]
pub struct AblationPoint {
    /// The value as it should be printed (`0.001`).
    pub value: String,
    pub avg_acc: Estimate,
    pub worst_acc: Estimate,
    pub avg_bits: Estimate,
}

const SIZE: (u32, u32) = (1100, 480);

/// A named line of a panel and how it reads its value from a point.
type Series<'a> = (&'a str, fn(&AblationPoint) -> Estimate);

/// Left: AvgAcc and WorstAcc per value; right: average bits per value. The values are spaced
/// evenly in the given order (they are usually a log grid and may include 0).
pub fn ablation_chart(
    path: &Path,
    title: &str,
    param: &str,
    points: &[AblationPoint],
) -> Result<(), PlotError> {
    if points.is_empty() {
        return Err(invalid(path, "no ablation values".into()));
    }
    render_png(path, SIZE, |rgb| {
        let root = BitMapBackend::with_buffer(rgb, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(msg)?;
        let body = root
            .titled(title, (FAMILY, 22).into_font().color(&BLACK))
            .map_err(msg)?;
        let (left, right) = body.split_horizontally(SIZE.0 * 3 / 5);
        let acc: [Series; 2] = [("AvgAcc", |p| p.avg_acc), ("WorstAcc", |p| p.worst_acc)];
        panel(&left, param, "Accuracy (%)", points, &acc, 100.0)?;
        let bits: [Series; 1] = [("AvgBits", |p| p.avg_bits)];
        panel(&right, param, "Average bits", points, &bits, 1.0)?;
        root.present().map_err(msg)
    })
}

fn panel(
    area: &Area,
    param: &str,
    y_desc: &str,
    points: &[AblationPoint],
    series: &[Series],
    scale: f64,
) -> Result<(), String> {
    let all = || {
        series
            .iter()
            .flat_map(|(_, f)| points.iter().map(f))
            .filter(|e| e.mean.is_finite())
    };
    let lo = all().map(|e| e.mean - e.err).fold(f64::MAX, f64::min) * scale;
    let hi = all().map(|e| e.mean + e.err).fold(f64::MIN, f64::max) * scale;
    // Extra room at the top keeps the legend off the lines.
    let pad = ((hi - lo) * 0.15).max(0.05 * scale);
    let n = points.len();
    let mut chart = ChartBuilder::on(area)
        .margin(14)
        .x_label_area_size(42)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, (lo - pad)..(hi + 3.0 * pad))
        .map_err(msg)?;
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            points
                .get(i as usize)
                .map(|p| p.value.clone())
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_labels(n.max(2))
        .x_desc(param)
        .y_desc(y_desc)
        .axis_desc_style((FAMILY, 15))
        .label_style((FAMILY, 13))
        .x_label_formatter(&label)
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(msg)?;
    for (s, (name, f)) in series.iter().enumerate() {
        let color = PALETTE[s % PALETTE.len()];
        let pts: Vec<(f64, Estimate)> = points
            .iter()
            .enumerate()
            .map(|(i, p)| (i as f64, f(p)))
            .filter(|(_, e)| e.mean.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|(x, e)| (*x, e.mean * scale)),
                color.stroke_width(2),
            ))
            .map_err(msg)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(3)));
        chart
            .draw_series(pts.iter().map(|(x, e)| {
                ErrorBar::new_vertical(
                    *x,
                    (e.mean - e.err) * scale,
                    e.mean * scale,
                    (e.mean + e.err) * scale,
                    color.stroke_width(2),
                    8,
                )
            }))
            .map_err(msg)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font((FAMILY, 13))
        .draw()
        .map_err(msg)?;
    Ok(())
}
