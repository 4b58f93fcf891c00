//! The hitmap as an image: one rectangle per non-empty cell, darker for more transactions,
//! red where errors are; deploys as vertical lines.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Chart, FAMILY, MARKER, Marker, RenderError, clock, err};
use crate::query::heatmap::HeatmapResponse;

struct Hitmap<'a> {
    title: &'a str,
    data: &'a HeatmapResponse,
    markers: &'a [Marker],
}

fn shade(t: f64, from: (u8, u8, u8), to: (u8, u8, u8)) -> RGBColor {
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    RGBColor(mix(from.0, to.0), mix(from.1, to.1), mix(from.2, to.2))
}

impl Chart for Hitmap<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), RenderError> {
        let d = self.data;
        let x0 = d.x.first().copied().unwrap_or(0);
        let x1 = d.x.last().map_or(x0 + 1, |x| x + d.x_step_ms);
        let rows = d.y_edges_ms.len().saturating_sub(1).max(1);
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .caption(self.title, (FAMILY, 16))
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, 0f64..rows as f64)
            .map_err(err)?;
        let edges = &d.y_edges_ms;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(8)
            .x_label_formatter(&|x| clock(*x, x1 - x0))
            .y_labels(8)
            .y_label_formatter(&|j| {
                let i = (j.round() as usize).min(edges.len().saturating_sub(1));
                edges
                    .get(i)
                    .map_or_else(String::new, |e| crate::compare::engine::format_ms(*e))
            })
            .y_desc("response time")
            .label_style((FAMILY, 12))
            .draw()
            .map_err(err)?;
        let max = (d.max_count.max(1) as f64).ln_1p();
        let cells = d.counts.iter().enumerate().flat_map(|(i, column)| {
            column
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(move |(j, &c)| (i, j, c))
        });
        chart
            .draw_series(cells.map(|(i, j, count)| {
                let x = d.x[i];
                let errors = d.errors[i][j];
                let t = 0.25 + 0.75 * (count as f64).ln_1p() / max;
                let colour = if errors > 0 {
                    shade(t, (252, 187, 161), (165, 15, 21))
                } else {
                    shade(t, (198, 219, 239), (8, 48, 107))
                };
                Rectangle::new(
                    [(x, j as f64), (x + d.x_step_ms, j as f64 + 1.0)],
                    colour.filled(),
                )
            }))
            .map_err(err)?;
        for m in self
            .markers
            .iter()
            .filter(|m| (x0..x1).contains(&m.time_ms))
        {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(m.time_ms, 0.0), (m.time_ms, rows as f64)],
                    MARKER.stroke_width(2),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    m.label.clone(),
                    (m.time_ms, rows as f64 * 0.97),
                    (FAMILY, 12).into_font().color(&MARKER),
                )))
                .map_err(err)?;
        }
        Ok(())
    }
}

/// Renders a hitmap with its deploy markers.
pub fn heatmap_chart(
    title: &str,
    data: &HeatmapResponse,
    markers: &[Marker],
    format: super::Format,
    size: (u32, u32),
) -> Result<Vec<u8>, RenderError> {
    super::render(
        &Hitmap {
            title,
            data,
            markers,
        },
        format,
        size,
    )
}
