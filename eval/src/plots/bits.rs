//! Bit-width histogram per layer: one horizontal bar per layer, split by the share of its output
//! channels at each bit-width, so a mixed-precision allocation can be read at a glance.

use std::collections::BTreeSet;
use std::path::Path;

use plotters::prelude::*;

use super::render::{err, invalid, render_png};
use super::{PlotError, TickedAxis, FAMILY, PALETTE};

const WIDTH: u32 = 1000;
const ROW_PX: u32 = 22;
const LEGEND_WIDTH: u32 = 110;

/// Writes the histogram. `layers`: layer name and the bit-width of each output channel (32 for
/// an unquantized layer). Layers are drawn top-down in the given order.
pub fn bit_width_histogram(
    path: &Path,
    title: &str,
    layers: &[(String, Vec<u8>)],
) -> Result<(), PlotError> {
    if layers.is_empty() {
        return Err(invalid(path, "no layers".into()));
    }
    if let Some((name, _)) = layers.iter().find(|(_, b)| b.is_empty()) {
        return Err(invalid(path, format!("layer `{name}` has no channels")));
    }
    let widths: Vec<u8> = layers
        .iter()
        .flat_map(|(_, b)| b.iter().copied())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let height = (90 + ROW_PX * layers.len() as u32).max(300);
    render_png(path, (WIDTH, height), |rgb| {
        draw(rgb, (WIDTH, height), title, layers, &widths)
    })
}

/// The colour of a bit-width: by its rank among the widths present.
fn colour(widths: &[u8], b: u8) -> RGBColor {
    let i = widths.iter().position(|&w| w == b).unwrap_or(0);
    PALETTE[i % PALETTE.len()]
}

fn draw(
    rgb: &mut [u8],
    size: (u32, u32),
    title: &str,
    layers: &[(String, Vec<u8>)],
    widths: &[u8],
) -> Result<(), String> {
    let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let body = root
        .titled(title, (FAMILY, 18).into_font().color(&BLACK))
        .map_err(err)?;
    let (plot_area, legend_area) = body.split_horizontally(size.0 - LEGEND_WIDTH);
    let n = layers.len();
    let mut chart = ChartBuilder::on(&plot_area)
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(170)
        .build_cartesian_2d(
            TickedAxis {
                range: 0.0..100.0,
                ticks: vec![0.0, 25.0, 50.0, 75.0, 100.0],
            },
            TickedAxis {
                range: 0.0..n as f64,
                ticks: (0..n).map(|i| i as f64 + 0.5).collect(),
            },
        )
        .map_err(err)?;
    // Row i (from the top) is layer i.
    let label = |y: &f64| {
        let row = n as f64 - y - 0.5;
        if row >= 0.0 && (row - row.round()).abs() < 1e-6 {
            layers
                .get(row.round() as usize)
                .map(|(name, _)| name.clone())
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(220, 220, 220))
        .x_desc("Output channels (%)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&label)
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 14))
        .draw()
        .map_err(err)?;
    for (r, (_, bits)) in layers.iter().enumerate() {
        let y = (n - 1 - r) as f64;
        let mut x = 0.0;
        for &b in widths {
            let count = bits.iter().filter(|&&v| v == b).count();
            if count == 0 {
                continue;
            }
            let w = 100.0 * count as f64 / bits.len() as f64;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x, y + 0.12), (x + w, y + 0.88)],
                    colour(widths, b).filled(),
                )))
                .map_err(err)?;
            x += w;
        }
    }
    let text = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK);
    for (i, &b) in widths.iter().enumerate() {
        let y = 40 + 24 * i as i32;
        legend_area
            .draw(&Rectangle::new(
                [(8, y), (24, y + 16)],
                colour(widths, b).filled(),
            ))
            .map_err(err)?;
        legend_area
            .draw(&Text::new(format!("{b} bits"), (32, y + 1), text.clone()))
            .map_err(err)?;
    }
    root.present().map_err(err)
}
