//! Radar (spider) chart of several methods over a few "higher is better" scores in [0, 1] (e.g.
//! mean and worst group accuracy, 1 - gap, 1 - EOdd), one closed polygon per method.

use std::f64::consts::PI;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::render::{err, invalid, render_png};
use super::{PlotError, FAMILY, PALETTE};

pub const RADAR_SIZE: (u32, u32) = (820, 600);

/// One method's scores, one per axis, in [0, 1].
pub struct RadarSeries {
    pub name: String,
    pub values: Vec<f64>,
}

/// Writes the chart; the radius runs from `r_min` (centre) to 1 (rim) so that differences among
/// scores that are all high stay visible (say so in the title when `r_min > 0`).
pub fn radar_chart(
    path: &Path,
    title: &str,
    axes: &[String],
    series: &[RadarSeries],
    r_min: f64,
) -> Result<(), PlotError> {
    if axes.len() < 3 || series.is_empty() {
        return Err(invalid(
            path,
            "a radar chart needs 3+ axes and a series".into(),
        ));
    }
    if !(0.0..1.0).contains(&r_min) {
        return Err(invalid(path, format!("r_min {r_min} is not in [0, 1)")));
    }
    for s in series {
        if s.values.len() != axes.len() {
            return Err(invalid(
                path,
                format!(
                    "series `{}` has {} values for {} axes",
                    s.name,
                    s.values.len(),
                    axes.len()
                ),
            ));
        }
        if let Some(v) = s.values.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            return Err(invalid(
                path,
                format!("series `{}`: {v} is outside [0, 1]", s.name),
            ));
        }
    }
    render_png(path, RADAR_SIZE, |rgb| {
        draw(rgb, title, axes, series, r_min)
    })
}

fn draw(
    rgb: &mut [u8],
    title: &str,
    axes: &[String],
    series: &[RadarSeries],
    r_min: f64,
) -> Result<(), String> {
    let root = BitMapBackend::with_buffer(rgb, RADAR_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let body = root
        .titled(title, (FAMILY, 18).into_font().color(&BLACK))
        .map_err(err)?;
    let (plot, legend) = body.split_horizontally(RADAR_SIZE.0 - 170);
    let (w, h) = plot.dim_in_pixel();
    let centre = (w as f64 / 2.0, h as f64 / 2.0 + 5.0);
    let radius = (w.min(h) as f64 / 2.0 - 70.0).max(20.0);
    let n = axes.len();
    // Axis k points up for k = 0 and goes clockwise.
    let at = |k: usize, v: f64| {
        let r = radius * ((v - r_min) / (1.0 - r_min)).clamp(0.0, 1.0);
        let a = -PI / 2.0 + 2.0 * PI * k as f64 / n as f64;
        (
            (centre.0 + r * a.cos()).round() as i32,
            (centre.1 + r * a.sin()).round() as i32,
        )
    };
    let grid = RGBColor(210, 210, 210);
    for step in 1..=4 {
        let v = r_min + (1.0 - r_min) * f64::from(step) / 4.0;
        let mut ring: Vec<(i32, i32)> = (0..n).map(|k| at(k, v)).collect();
        ring.push(ring[0]);
        plot.draw(&PathElement::new(ring, grid)).map_err(err)?;
        let (x, y) = at(0, v);
        plot.draw(&Text::new(
            format!("{:.0}", v * 100.0),
            (x + 4, y),
            TextStyle::from((FAMILY, 11).into_font()).color(&RGBColor(120, 120, 120)),
        ))
        .map_err(err)?;
    }
    for (k, name) in axes.iter().enumerate() {
        plot.draw(&PathElement::new(vec![at(k, r_min), at(k, 1.0)], grid))
            .map_err(err)?;
        let a = -PI / 2.0 + 2.0 * PI * k as f64 / n as f64;
        let h_pos = if a.cos() > 0.3 {
            HPos::Left
        } else if a.cos() < -0.3 {
            HPos::Right
        } else {
            HPos::Center
        };
        let pos = (
            (centre.0 + (radius + 14.0) * a.cos()) as i32,
            (centre.1 + (radius + 14.0) * a.sin()) as i32,
        );
        plot.draw(&Text::new(
            name.clone(),
            pos,
            TextStyle::from((FAMILY, 14).into_font())
                .color(&BLACK)
                .pos(Pos::new(h_pos, VPos::Center)),
        ))
        .map_err(err)?;
    }
    for (s, ser) in series.iter().enumerate() {
        let color = PALETTE[s % PALETTE.len()];
        let mut poly: Vec<(i32, i32)> = ser
            .values
            .iter()
            .enumerate()
            .map(|(k, &v)| at(k, v))
            .collect();
        plot.draw(&Polygon::new(poly.clone(), color.mix(0.12).filled()))
            .map_err(err)?;
        for &p in &poly {
            plot.draw(&Circle::new(p, 3, color.filled())).map_err(err)?;
        }
        poly.push(poly[0]);
        plot.draw(&PathElement::new(poly, color.stroke_width(2)))
            .map_err(err)?;
        let y = 50 + 24 * s as i32;
        legend
            .draw(&Rectangle::new([(8, y), (24, y + 16)], color.filled()))
            .map_err(err)?;
        legend
            .draw(&Text::new(
                ser.name.clone(),
                (32, y + 1),
                TextStyle::from((FAMILY, 14).into_font()).color(&BLACK),
            ))
            .map_err(err)?;
    }
    root.present().map_err(err)
}
