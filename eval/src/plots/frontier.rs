//! The size/fairness frontier of a run's methods: average weight bits (log2 axis) against
//! worst-group and mean group accuracy, with the Pareto frontier of worst-group accuracy drawn as a
//! line (no other method has fewer bits and a better worst group).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::render::{err, invalid, render_png};
use super::{PlotError, TickedAxis, CHART_SIZE, FAMILY, PALETTE};

/// One method of the run.
pub struct FrontierPoint {
    pub label: String,
    pub avg_bits: f64,
    /// Fractions in [0, 1].
    pub worst_acc: f64,
    pub avg_acc: f64,
    /// Error-bar half-widths of the two accuracies (a std over seeds; 0 draws none).
    pub worst_err: f64,
    pub avg_err: f64,
}

/// Indices of the points on the worst-group-accuracy Pareto frontier, by increasing bits.
pub fn pareto_front(points: &[FrontierPoint]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| {
        points[a]
            .avg_bits
            .total_cmp(&points[b].avg_bits)
            .then(points[b].worst_acc.total_cmp(&points[a].worst_acc))
    });
    let mut best = f64::NEG_INFINITY;
    order
        .into_iter()
        .filter(|&i| {
            let keep = points[i].worst_acc > best;
            best = best.max(points[i].worst_acc);
            keep
        })
        .collect()
}

/// Writes the chart.
pub fn frontier_chart(path: &Path, title: &str, points: &[FrontierPoint]) -> Result<(), PlotError> {
    if points.is_empty() {
        return Err(invalid(path, "no methods".into()));
    }
    let valid = |p: &FrontierPoint| {
        p.avg_bits.is_finite()
            && p.avg_bits > 0.0
            && (0.0..=1.0).contains(&p.worst_acc)
            && (0.0..=1.0).contains(&p.avg_acc)
    };
    if let Some(p) = points.iter().find(|p| !valid(p)) {
        return Err(invalid(
            path,
            format!(
                "method `{}`: bits {} / accuracies {}, {} out of range",
                p.label, p.avg_bits, p.worst_acc, p.avg_acc
            ),
        ));
    }
    render_png(path, CHART_SIZE, |rgb| draw(rgb, title, points))
}

fn draw(rgb: &mut [u8], title: &str, points: &[FrontierPoint]) -> Result<(), String> {
    let root = BitMapBackend::with_buffer(rgb, CHART_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let body = root
        .titled(title, (FAMILY, 20).into_font().color(&BLACK))
        .map_err(err)?;
    let (plot_area, legend_area) = body.split_horizontally(CHART_SIZE.0 - 200);
    let log = |b: f64| b.log2();
    let lo = points.iter().map(|p| log(p.avg_bits)).fold(1.0, f64::min);
    let hi = points.iter().map(|p| log(p.avg_bits)).fold(5.0, f64::max);
    let acc_lo = points
        .iter()
        .map(|p| p.worst_acc.min(p.avg_acc) * 100.0)
        .fold(100.0, f64::min);
    let y_lo = ((acc_lo - 5.0) / 10.0).floor().max(0.0) * 10.0;
    let mut chart = ChartBuilder::on(&plot_area)
        .margin(14)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(
            TickedAxis {
                range: lo - 0.3..hi + 0.3,
                ticks: (lo.floor() as i32..=hi.ceil() as i32)
                    .map(f64::from)
                    .collect(),
            },
            TickedAxis {
                range: y_lo..102.0,
                ticks: (0..=10)
                    .map(|i| f64::from(i) * 10.0)
                    .filter(|&v| v >= y_lo)
                    .collect(),
            },
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .x_desc("Average weight bits (log scale)")
        .y_desc("Accuracy (%)")
        .x_label_formatter(&|v| format!("{}", 2f64.powf(*v).round()))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .axis_desc_style((FAMILY, 15))
        .label_style((FAMILY, 13))
        .draw()
        .map_err(err)?;
    let (worst, mean) = (PALETTE[3], PALETTE[0]);
    for (color, acc) in [
        (
            worst,
            (|p| (p.worst_acc, p.worst_err)) as fn(&FrontierPoint) -> (f64, f64),
        ),
        (mean, |p| (p.avg_acc, p.avg_err)),
    ] {
        chart
            .draw_series(
                points
                    .iter()
                    .map(acc)
                    .zip(points)
                    .filter(|((_, e), _)| *e > 0.0)
                    .map(|((a, e), p)| {
                        let x = log(p.avg_bits);
                        ErrorBar::new_vertical(
                            x,
                            (a - e) * 100.0,
                            a * 100.0,
                            (a + e) * 100.0,
                            color.stroke_width(2),
                            8,
                        )
                    }),
            )
            .map_err(err)?;
    }
    let front: Vec<(f64, f64)> = pareto_front(points)
        .into_iter()
        .map(|i| (log(points[i].avg_bits), points[i].worst_acc * 100.0))
        .collect();
    chart
        .draw_series(LineSeries::new(front, worst.stroke_width(2)))
        .map_err(err)?;
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((log(p.avg_bits), p.worst_acc * 100.0), 6, worst.filled())),
        )
        .map_err(err)?;
    chart
        .draw_series(
            points.iter().map(|p| {
                TriangleMarker::new((log(p.avg_bits), p.avg_acc * 100.0), 7, mean.filled())
            }),
        )
        .map_err(err)?;
    let style = TextStyle::from((FAMILY, 13).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Bottom));
    chart
        .draw_series(points.iter().map(|p| {
            Text::new(
                p.label.clone(),
                (log(p.avg_bits) + 0.05, p.worst_acc * 100.0 + 0.5),
                style.clone(),
            )
        }))
        .map_err(err)?;
    let text = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK);
    legend_area
        .draw(&Circle::new((16, 58), 6, worst.filled()))
        .map_err(err)?;
    legend_area
        .draw(&Text::new("worst group", (30, 50), text.clone()))
        .map_err(err)?;
    legend_area
        .draw(&TriangleMarker::new((16, 84), 7, mean.filled()))
        .map_err(err)?;
    legend_area
        .draw(&Text::new("mean of groups", (30, 76), text.clone()))
        .map_err(err)?;
    legend_area
        .draw(&PathElement::new(
            vec![(6, 110), (26, 110)],
            worst.stroke_width(2),
        ))
        .map_err(err)?;
    legend_area
        .draw(&Text::new("Pareto frontier", (30, 102), text))
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(label: &str, avg_bits: f64, worst_acc: f64) -> FrontierPoint {
        FrontierPoint {
            label: label.into(),
            avg_bits,
            worst_acc,
            avg_acc: worst_acc,
            worst_err: 0.0,
            avg_err: 0.0,
        }
    }

    #[test]
    fn pareto_front_keeps_only_undominated_methods() {
        // U4 (4 bits, 0.6); FQ (4.5, 0.7); U8 (8, 0.68: dominated by FQ); FP32 (32, 0.72).
        let pts = [
            p("FP32", 32.0, 0.72),
            p("U8", 8.0, 0.68),
            p("U4", 4.0, 0.6),
            p("FQ", 4.5, 0.7),
        ];
        assert_eq!(pareto_front(&pts), vec![2, 3, 0]);
        // Equal bits: only the better one.
        assert_eq!(pareto_front(&[p("a", 4.0, 0.5), p("b", 4.0, 0.6)]), vec![1]);
    }
}
