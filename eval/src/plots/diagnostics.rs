//! Charts of `fq-compress diagnose` (Bellam & Kim's diagnostics): per-group bars of several
//! metrics before and after quantization in one figure, and the distribution of per-sample logit
//! variances, so a reader sees which groups quantization moves and how.

use std::path::Path;

use plotters::prelude::*;

use super::render::{err as msg, invalid, render_png};
use super::{PlotError, FAMILY, PALETTE};

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// One metric's panel: per model (series name) one value per group (NaN: no bar).
#[derive(Clone, Debug)]
pub struct MetricPanel {
    pub title: String,
    pub series: Vec<(String, Vec<f64>)>,
}

const PANEL: (u32, u32) = (560, 360);
const LEGEND_H: u32 = 40;

/// Panels of grouped bars (one cluster per group, one colour per model, shared legend on top),
/// two per row.
pub fn group_metric_panels(
    path: &Path,
    title: &str,
    groups: &[String],
    panels: &[MetricPanel],
) -> Result<(), PlotError> {
    if groups.is_empty() || panels.is_empty() {
        return Err(invalid(path, "no groups or no panels".into()));
    }
    let names: Vec<String> = panels[0].series.iter().map(|s| s.0.clone()).collect();
    for p in panels {
        if p.series.iter().map(|s| &s.0).ne(names.iter()) {
            return Err(invalid(
                path,
                format!("panel `{}` has other models than the first", p.title),
            ));
        }
        if let Some((n, v)) = p.series.iter().find(|(_, v)| v.len() != groups.len()) {
            return Err(invalid(
                path,
                format!(
                    "panel `{}`: `{n}` has {} values for {} groups",
                    p.title,
                    v.len(),
                    groups.len()
                ),
            ));
        }
    }
    let cols = 2u32.min(panels.len() as u32);
    let rows = (panels.len() as u32).div_ceil(cols);
    let size = (PANEL.0 * cols, PANEL.1 * rows + LEGEND_H + 40);
    render_png(path, size, |rgb| {
        let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(msg)?;
        let body = root
            .titled(title, (FAMILY, 22).into_font().color(&BLACK))
            .map_err(msg)?;
        let (legend, grid) = body.split_vertically(LEGEND_H);
        let text = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK);
        let mut x = 12;
        for (s, name) in names.iter().enumerate() {
            let c = PALETTE[s % PALETTE.len()];
            legend
                .draw(&Rectangle::new([(x, 12), (x + 14, 26)], c.filled()))
                .map_err(msg)?;
            legend
                .draw(&Text::new(name.clone(), (x + 20, 12), text.clone()))
                .map_err(msg)?;
            x += 30 + 8 * name.chars().count() as i32;
        }
        let areas = grid.split_evenly((rows as usize, cols as usize));
        for (area, p) in areas.iter().zip(panels) {
            bars(area, groups, p)?;
        }
        root.present().map_err(msg)
    })
}

fn bars(area: &Area, groups: &[String], p: &MetricPanel) -> Result<(), String> {
    let vals = || {
        p.series
            .iter()
            .flat_map(|s| s.1.iter())
            .filter(|v| v.is_finite())
    };
    let hi = vals().fold(0.0f64, |m, &v| m.max(v));
    let lo = vals().fold(0.0f64, |m, &v| m.min(v));
    let pad = ((hi - lo) * 0.08).max(1e-12);
    let ng = groups.len();
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, (FAMILY, 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..ng as f64 - 0.5, (lo - pad.min(lo.abs()))..(hi + pad))
        .map_err(msg)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(ng)
        .x_label_formatter(&|x: &f64| {
            let g = x.round();
            if (x - g).abs() < 1e-6 && g >= 0.0 {
                groups.get(g as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v: &f64| {
            if v.abs() >= 1e4 {
                format!("{v:.2e}")
            } else {
                format!("{v:.3}")
            }
        })
        .label_style((FAMILY, 12))
        .draw()
        .map_err(msg)?;
    let ns = p.series.len().max(1);
    let slot = 0.8 / ns as f64;
    for (s, (_, v)) in p.series.iter().enumerate() {
        let c = PALETTE[s % PALETTE.len()];
        chart
            .draw_series(
                v.iter()
                    .enumerate()
                    .filter(|(_, y)| y.is_finite())
                    .map(|(g, &y)| {
                        let l = g as f64 - 0.4 + s as f64 * slot + slot * 0.05;
                        Rectangle::new([(l, 0.0), (l + slot * 0.9, y)], c.filled())
                    }),
            )
            .map_err(msg)?;
    }
    Ok(())
}

const DIST: (u32, u32) = (900, 500);

/// Step histograms (as densities over shared bins) of several samples, one line each, e.g. the
/// per-sample logit variance of each (model, group).
pub fn distribution_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    series: &[(String, Vec<f64>)],
) -> Result<(), PlotError> {
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    if all.is_empty() {
        return Err(invalid(path, "no finite values".into()));
    }
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let bins = 30usize;
    let width = ((hi - lo) / bins as f64).max(1e-12);
    let density = |v: &[f64]| -> Vec<f64> {
        let mut h = vec![0f64; bins];
        let n = v.iter().filter(|x| x.is_finite()).count().max(1) as f64;
        for &x in v.iter().filter(|x| x.is_finite()) {
            let b = (((x - lo) / width) as usize).min(bins - 1);
            h[b] += 1.0 / (n * width);
        }
        h
    };
    let hists: Vec<Vec<f64>> = series.iter().map(|s| density(&s.1)).collect();
    let ymax = hists.iter().flatten().copied().fold(0.0, f64::max) * 1.08;
    render_png(path, DIST, |rgb| {
        let root = BitMapBackend::with_buffer(rgb, DIST).into_drawing_area();
        root.fill(&WHITE).map_err(msg)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 20))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..lo + width * bins as f64, 0.0..ymax.max(1e-12))
            .map_err(msg)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc("Density")
            .label_style((FAMILY, 12))
            .axis_desc_style((FAMILY, 14))
            .draw()
            .map_err(msg)?;
        for (s, ((name, _), h)) in series.iter().zip(&hists).enumerate() {
            let c = PALETTE[s % PALETTE.len()];
            let mut pts = Vec::with_capacity(2 * bins);
            for (b, &y) in h.iter().enumerate() {
                pts.push((lo + b as f64 * width, y));
                pts.push((lo + (b + 1) as f64 * width, y));
            }
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(msg)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FAMILY, 13))
            .draw()
            .map_err(msg)?;
        root.present().map_err(msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_both_charts_and_rejects_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let groups = vec!["I-III".to_string(), "IV-VI".to_string()];
        let panel = MetricPanel {
            title: "Gradient norm".into(),
            series: vec![
                ("FP32".into(), vec![0.5, 0.9]),
                ("U4".into(), vec![0.7, f64::NAN]),
            ],
        };
        let p = dir.path().join("bars.png");
        group_metric_panels(&p, "t", &groups, &[panel.clone(), panel.clone()]).unwrap();
        let img = image::open(&p).unwrap();
        assert_eq!(img.width(), 2 * PANEL.0);
        let mut bad = panel.clone();
        bad.series[1].1.pop();
        assert!(group_metric_panels(&p, "t", &groups, &[panel, bad]).is_err());
        let d = dir.path().join("dist.png");
        distribution_chart(&d, "t", "x", &[("a".into(), vec![1.0, 2.0, 2.5])]).unwrap();
        assert_eq!(image::open(&d).unwrap().width(), DIST.0);
        assert!(distribution_chart(&d, "t", "x", &[("a".into(), vec![f64::NAN])]).is_err());
    }
}
