//! A radar (spider) chart of several scores per method, each axis a fraction in [0, 1] where
//! larger is better, so one shape shows accuracy, fairness and compression together.

use std::f64::consts::PI;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::canvas::{invalid, msg, render_png};
use super::{PlotError, FAMILY, PALETTE};

const SIZE: (u32, u32) = (900, 640);
const LEGEND_WIDTH: i32 = 250;

/// `axes`: the score names; `series`: a method name and one value in [0, 1] per axis.
pub fn radar_chart(
    path: &Path,
    title: &str,
    axes: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<(), PlotError> {
    if axes.len() < 3 {
        return Err(invalid(path, "a radar chart needs at least 3 axes"));
    }
    for (name, v) in series {
        if v.len() != axes.len() {
            return Err(invalid(
                path,
                format!("`{name}` has {} values for {} axes", v.len(), axes.len()),
            ));
        }
        if let Some(x) = v.iter().find(|x| !(0.0..=1.0).contains(*x)) {
            return Err(invalid(path, format!("`{name}`: {x} is outside [0, 1]")));
        }
    }
    render_png(path, SIZE, |root| {
        let body = root
            .titled(title, (FAMILY, 22).into_font().color(&BLACK))
            .map_err(msg)?;
        let (w, h) = body.dim_in_pixel();
        let (cx, cy) = ((w as i32 - LEGEND_WIDTH) / 2 + 40, h as i32 / 2 + 5);
        // Room outside the outer ring for the axis names.
        let r = f64::from((w as i32 - LEGEND_WIDTH).min(h as i32) / 2 - 70);
        let n = axes.len();
        // Axis k points up and goes clockwise.
        let at = |k: usize, v: f64| {
            let a = -PI / 2.0 + 2.0 * PI * k as f64 / n as f64;
            (cx + (r * v * a.cos()) as i32, cy + (r * v * a.sin()) as i32)
        };
        let grid = RGBColor(210, 210, 210);
        for ring in [0.25, 0.5, 0.75, 1.0] {
            let pts: Vec<(i32, i32)> = (0..=n).map(|k| at(k % n, ring)).collect();
            body.draw(&PathElement::new(pts, grid)).map_err(msg)?;
            body.draw(&Text::new(
                format!("{:.0}", ring * 100.0),
                (cx + 3, at(0, ring).1),
                (FAMILY, 11).into_font().color(&RGBColor(120, 120, 120)),
            ))
            .map_err(msg)?;
        }
        for (k, name) in axes.iter().enumerate() {
            body.draw(&PathElement::new([at(k, 0.0), at(k, 1.0)], grid))
                .map_err(msg)?;
            let (x, y) = at(k, 1.12);
            let h = if x < cx - 5 {
                HPos::Right
            } else if x > cx + 5 {
                HPos::Left
            } else {
                HPos::Center
            };
            let style = TextStyle::from((FAMILY, 14).into_font())
                .color(&BLACK)
                .pos(Pos::new(h, VPos::Center));
            body.draw(&Text::new(name.clone(), (x, y), style))
                .map_err(msg)?;
        }
        for (s, (name, values)) in series.iter().enumerate() {
            let color = PALETTE[s % PALETTE.len()];
            let pts: Vec<(i32, i32)> = values.iter().enumerate().map(|(k, &v)| at(k, v)).collect();
            body.draw(&Polygon::new(pts.clone(), color.mix(0.12)))
                .map_err(msg)?;
            let mut closed = pts.clone();
            closed.push(pts[0]);
            body.draw(&PathElement::new(closed, color.stroke_width(2)))
                .map_err(msg)?;
            let y = 60 + 24 * s as i32;
            let x = w as i32 - LEGEND_WIDTH + 10;
            body.draw(&Rectangle::new([(x, y), (x + 16, y + 16)], color.filled()))
                .map_err(msg)?;
            body.draw(&Text::new(
                name.clone(),
                (x + 24, y + 1),
                (FAMILY, 14).into_font().color(&BLACK),
            ))
            .map_err(msg)?;
        }
        Ok(())
    })
}
