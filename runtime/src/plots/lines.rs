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
        if let Some((n, v)) = p.series.iter().find(|(_, v)| v.len() != x_labels.len()) {
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
        p.series
            .iter()
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
            if v.abs() >= 1e4 || (v.abs() < 1e-2 && *v != 0.0) {
                format!("{v:.2e}")
            } else {
                format!("{v:.3}")
            }
        })
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .draw()
        .map_err(msg)?;
    for (s, (name, v)) in p.series.iter().enumerate() {
        let c = PALETTE[s % PALETTE.len()];
        // Consecutive finite points form one line; a NaN breaks it.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let mut runs = Vec::new();
        for (i, &y) in v.iter().enumerate() {
            if y.is_finite() {
                run.push((i as f64, y));
            } else if !run.is_empty() {
                runs.push(std::mem::take(&mut run));
            }
        }
        runs.push(run);
        for r in runs.iter().filter(|r| !r.is_empty()) {
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
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 12))
        .draw()
        .map_err(msg)?;
    Ok(())
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
        };
        let p = dir.path().join("lines.png");
        line_panels(&p, "t", &x, &[panel.clone(), panel.clone(), panel.clone()]).unwrap();
        let img = image::open(&p).unwrap();
        assert_eq!((img.width(), img.height()), (2 * PANEL.0, 2 * PANEL.1 + 40));
        let mut bad = panel.clone();
        bad.series[1].1.pop();
        let e = line_panels(&p, "t", &x, &[panel, bad]).unwrap_err();
        assert!(e.to_string().contains("IV-VI"), "{e}");
        assert!(line_panels(&p, "t", &[], &[]).is_err());
    }
}
