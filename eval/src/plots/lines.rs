//! Panels of line charts over a shared categorical x axis, e.g. Bellam & Kim's precision sweep:
//! x = the bit-width (int2 … int16, FP32), one panel per disparity measure, one line per group.
//! The x axis is categorical (evenly spaced labels) rather than numeric because the widths of
//! interest are 2–8 then 16 and 32: on a numeric axis int2…int8 would crowd into one corner.

use std::path::Path;

use plotters::prelude::*;

use super::render::{err as msg, invalid, render_png};
use super::{PlotError, FAMILY, PALETTE};

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// One panel: named series with one value per x label (NaN: a gap in that line).
#[derive(Clone, Debug)]
pub struct LinePanel {
    pub title: String,
    pub y_desc: String,
    pub series: Vec<(String, Vec<f64>)>,
    /// A series drawn dashed in black over the others, for one that coincides piecewise with
    /// them (e.g. the worst group's accuracy, which is always one group's line).
    pub overlay: Option<(String, Vec<f64>)>,
}

impl LinePanel {
    fn all(&self) -> impl Iterator<Item = &(String, Vec<f64>)> {
        self.series.iter().chain(self.overlay.iter())
    }
}

const PANEL: (u32, u32) = (600, 380);

/// Panels of lines with markers (each panel its own legend, as the panels' series differ), two
/// per row, under a common title.
pub fn line_panels(
    path: &Path,
    title: &str,
    x_labels: &[String],
    panels: &[LinePanel],
) -> Result<(), PlotError> {
    if x_labels.is_empty() || panels.is_empty() {
        return Err(invalid(path, "no x labels or no panels".into()));
    }
    for p in panels {
        if p.series.is_empty() {
            return Err(invalid(path, format!("panel `{}` has no series", p.title)));
        }
        if let Some((n, v)) = p.all().find(|(_, v)| v.len() != x_labels.len()) {
            return Err(invalid(
                path,
                format!(
                    "panel `{}`: `{n}` has {} values for {} x labels",
                    p.title,
                    v.len(),
                    x_labels.len()
                ),
            ));
        }
    }
    let cols = 2u32.min(panels.len() as u32);
    let rows = (panels.len() as u32).div_ceil(cols);
    let size = (PANEL.0 * cols, PANEL.1 * rows + 40);
    render_png(path, size, |rgb| {
        let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(msg)?;
        let body = root
            .titled(title, (FAMILY, 22).into_font().color(&BLACK))
            .map_err(msg)?;
        let areas = body.split_evenly((rows as usize, cols as usize));
        for (area, p) in areas.iter().zip(panels) {
            lines(area, x_labels, p)?;
        }
        root.present().map_err(msg)
    })
}

fn lines(area: &Area, x_labels: &[String], p: &LinePanel) -> Result<(), String> {
    let finite = || {
        p.all()
            .flat_map(|s| s.1.iter())
            .copied()
            .filter(|v| v.is_finite())
    };
    let (mut lo, mut hi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-9 * hi.abs().max(1.0));
    let n = x_labels.len();
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, (FAMILY, 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.3..n as f64 - 0.7, (lo - pad)..(hi + pad))
        .map_err(msg)?;
    chart
        .configure_mesh()
        // Only the major grid: the minor one adds clutter (and triples the PNG's size).
        .light_line_style(TRANSPARENT)
        .x_labels(n)
        .x_label_formatter(&|x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                x_labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(p.y_desc.as_str())
        .y_label_formatter(&|v: &f64| {
            if hi.abs().max(lo.abs()) >= 1e4 {
                format!("{v:.2e}")
            } else {
                format!("{v:.*}", decimals(hi - lo))
            }
        })
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .draw()
        .map_err(msg)?;
    for (s, (name, v)) in p.series.iter().enumerate() {
        let c = PALETTE[s % PALETTE.len()];
        let runs = segments(v);
        for r in &runs {
            chart
                .draw_series(LineSeries::new(r.clone(), c.stroke_width(2)))
                .map_err(msg)?;
        }
        chart
            .draw_series(
                runs.iter()
                    .flatten()
                    .map(|&p| Circle::new(p, 4, c.filled())),
            )
            .map_err(msg)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    if let Some((name, v)) = &p.overlay {
        let runs = segments(v);
        for r in &runs {
            chart
                .draw_series(DashedLineSeries::new(
                    r.clone(),
                    6,
                    4,
                    BLACK.stroke_width(2),
                ))
                .map_err(msg)?;
        }
        chart
            .draw_series(
                runs.iter()
                    .flatten()
                    .map(|&p| Circle::new(p, 3, BLACK.filled())),
            )
            .map_err(msg)?
            .label(name.clone())
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(legend_corner(p, n, lo - pad, hi + pad))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 12))
        .draw()
        .map_err(msg)?;
    Ok(())
}

/// Runs of consecutive finite points (x = the index); a NaN breaks the line.
fn segments(v: &[f64]) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![Vec::new()];
    for (i, &y) in v.iter().enumerate() {
        if y.is_finite() {
            runs.last_mut().expect("never empty").push((i as f64, y));
        } else if runs.last().is_some_and(|r| !r.is_empty()) {
            runs.push(Vec::new());
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}

/// Decimals of the y labels for a span of values: enough to tell the ticks apart, no more.
fn decimals(span: f64) -> usize {
    match span {
        s if s >= 10.0 => 0,
        s if s >= 1.0 => 1,
        s if s >= 0.1 => 2,
        _ => 3,
    }
}

/// The corner with the fewest points of the panel near it (a box of 40% of the width and 35%
/// of the height), so the legend hides as little as possible.
fn legend_corner(p: &LinePanel, n: usize, lo: f64, hi: f64) -> SeriesLabelPosition {
    let w = (n as f64 - 0.4).max(1.0);
    let h = (hi - lo).max(1e-300);
    let pts: Vec<(f64, f64)> = p
        .all()
        .flat_map(|s| s.1.iter().enumerate())
        .filter(|(_, y)| y.is_finite())
        .map(|(i, &y)| ((i as f64 + 0.3) / w, (y - lo) / h))
        .collect();
    let count = |right: bool, top: bool| {
        pts.iter()
            .filter(|(x, y)| {
                (if right { *x > 0.6 } else { *x < 0.4 })
                    && (if top { *y > 0.65 } else { *y < 0.35 })
            })
            .count()
    };
    [
        (SeriesLabelPosition::UpperRight, count(true, true)),
        (SeriesLabelPosition::LowerRight, count(true, false)),
        (SeriesLabelPosition::UpperLeft, count(false, true)),
        (SeriesLabelPosition::LowerLeft, count(false, false)),
    ]
    .into_iter()
    .min_by_key(|c| c.1)
    .map_or(SeriesLabelPosition::UpperRight, |c| c.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_panels_and_rejects_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let x: Vec<String> = ["int2", "int4", "FP32"].map(String::from).to_vec();
        let panel = LinePanel {
            title: "Gradient norm".into(),
            y_desc: "norm".into(),
            series: vec![
                ("I-III".into(), vec![3.0, 1.0, 0.9]),
                ("IV-VI".into(), vec![5.0, f64::NAN, 1.1]),
            ],
            overlay: Some(("worst".into(), vec![3.0, 1.0, 0.9])),
        };
        let p = dir.path().join("lines.png");
        line_panels(&p, "t", &x, &[panel.clone(), panel.clone(), panel.clone()]).unwrap();
        let img = image::open(&p).unwrap();
        assert_eq!((img.width(), img.height()), (2 * PANEL.0, 2 * PANEL.1 + 40));
        let mut bad = panel.clone();
        bad.series[1].1.pop();
        let e = line_panels(&p, "t", &x, &[panel.clone(), bad]).unwrap_err();
        assert!(e.to_string().contains("IV-VI"), "{e}");
        let mut bad = panel.clone();
        bad.overlay.as_mut().unwrap().1.push(0.0);
        let e = line_panels(&p, "t", &x, &[bad]).unwrap_err();
        assert!(e.to_string().contains("worst"), "{e}");
        assert_eq!(segments(&[1.0, f64::NAN, f64::NAN, 2.0, 3.0]).len(), 2);
        assert!(line_panels(&p, "t", &[], &[]).is_err());
    }
}
