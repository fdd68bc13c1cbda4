//! Per-group accuracy with confidence intervals: one cluster per group, one bar per series (e.g.
//! "compression time" and "field"), a whisker per bar. Used by the field-validation report, where
//! a difference only means something next to how uncertain each accuracy is.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::render::{err, invalid, render_png};
use super::{group_chart, PlotError, CHART_SIZE, FAMILY, PALETTE};
use crate::metrics::Interval;

const LEGEND_WIDTH: u32 = 210;

/// One bar series: accuracy per group as a fraction (NaN: no bar) and its interval (`None`: no
/// whisker).
pub struct IntervalSeries {
    pub name: String,
    pub values: Vec<f64>,
    pub intervals: Vec<Option<Interval>>,
}

/// Writes the chart. `note` is printed under the legend (say what the whiskers are, e.g. "95%
/// Wilson interval").
pub fn group_accuracy_interval_chart(
    path: &Path,
    title: &str,
    group_names: &[String],
    series: &[IntervalSeries],
    note: &str,
) -> Result<(), PlotError> {
    if group_names.is_empty() || series.is_empty() {
        return Err(invalid(path, "no groups or no series".into()));
    }
    for s in series {
        if s.values.len() != group_names.len() || s.intervals.len() != group_names.len() {
            return Err(invalid(
                path,
                format!(
                    "series `{}` has {} values and {} intervals for {} groups",
                    s.name,
                    s.values.len(),
                    s.intervals.len(),
                    group_names.len()
                ),
            ));
        }
        let out_of_range = |v: f64| v.is_finite() && !(0.0..=1.0).contains(&v);
        let bounds = s.intervals.iter().flatten().flat_map(|i| [i.lo, i.hi]);
        if let Some(v) = s
            .values
            .iter()
            .copied()
            .chain(bounds)
            .find(|&v| out_of_range(v))
        {
            return Err(invalid(
                path,
                format!("series `{}`: {v} is outside [0, 1]", s.name),
            ));
        }
    }
    render_png(path, CHART_SIZE, |rgb| {
        draw(rgb, title, group_names, series, note)
    })
}

fn draw(
    rgb: &mut [u8],
    title: &str,
    groups: &[String],
    series: &[IntervalSeries],
    note: &str,
) -> Result<(), String> {
    let root = BitMapBackend::with_buffer(rgb, CHART_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let body = root
        .titled(title, (FAMILY, 20).into_font().color(&BLACK))
        .map_err(err)?;
    let (plot_area, legend_area) = body.split_horizontally(CHART_SIZE.0 - LEGEND_WIDTH);
    let mut chart = group_chart(&plot_area, groups)?;

    let slot = 0.8 / series.len() as f64;
    let value_style = TextStyle::from((FAMILY, 11).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (s, ser) in series.iter().enumerate() {
        let color = PALETTE[s % PALETTE.len()];
        let left = |g: usize| g as f64 - 0.4 + s as f64 * slot + slot * 0.05;
        let bars = ser.values.iter().enumerate().filter(|(_, v)| v.is_finite());
        chart
            .draw_series(bars.clone().map(|(g, &v)| {
                Rectangle::new(
                    [(left(g), 0.0), (left(g) + slot * 0.9, v * 100.0)],
                    color.filled(),
                )
            }))
            .map_err(err)?;
        let whisker = BLACK.stroke_width(2);
        for (g, i) in ser.intervals.iter().enumerate() {
            let Some(i) = i else { continue };
            let x = left(g) + slot * 0.45;
            let cap = slot * 0.15;
            let (lo, hi) = (i.lo * 100.0, i.hi * 100.0);
            for line in [
                vec![(x, lo), (x, hi)],
                vec![(x - cap, lo), (x + cap, lo)],
                vec![(x - cap, hi), (x + cap, hi)],
            ] {
                chart
                    .draw_series(std::iter::once(PathElement::new(line, whisker)))
                    .map_err(err)?;
            }
        }
        // The value beside the whisker, so that it never sits on top of it.
        chart
            .draw_series(bars.map(|(g, &v)| {
                Text::new(
                    format!("{:.1}", v * 100.0),
                    (left(g) + slot * 0.5, v * 100.0 / 2.0),
                    value_style.clone(),
                )
            }))
            .map_err(err)?;
    }

    let text = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK);
    let top = 50;
    for (s, ser) in series.iter().enumerate() {
        let y = top + 24 * s as i32;
        legend_area
            .draw(&Rectangle::new(
                [(8, y), (24, y + 16)],
                PALETTE[s % PALETTE.len()].filled(),
            ))
            .map_err(err)?;
        legend_area
            .draw(&Text::new(ser.name.clone(), (32, y + 1), text.clone()))
            .map_err(err)?;
    }
    let y = top + 24 * series.len() as i32 + 8;
    legend_area
        .draw(&PathElement::new(
            vec![(16, y), (16, y + 16)],
            BLACK.stroke_width(2),
        ))
        .map_err(err)?;
    legend_area
        .draw(&Text::new(
            note.to_string(),
            (32, y + 1),
            TextStyle::from((FAMILY, 12).into_font()).color(&BLACK),
        ))
        .map_err(err)?;
    root.present().map_err(err)
}
