//! Latency trends: p50/p95/p99, throughput and error rate over time, deploys as vertical lines.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Chart, FAMILY, MARKER, Marker, RenderError, clock, err};
use crate::query::LatencyResponse;

struct Trends<'a> {
    title: &'a str,
    data: &'a LatencyResponse,
    markers: &'a [Marker],
}

type Series<'a> = (&'a str, RGBColor, Vec<(i64, f64)>);

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: Option<&str>,
    unit: &str,
    (x0, x1): (i64, i64),
    series: &[Series<'_>],
    markers: &[Marker],
) -> Result<(), RenderError> {
    let top = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.1;
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(6)
        .x_label_area_size(22)
        .y_label_area_size(64);
    if let Some(c) = caption {
        builder.caption(c, (FAMILY, 16));
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, 0f64..top).map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(8)
        .x_label_formatter(&|x| clock(*x, x1 - x0))
        .y_labels(4)
        .y_desc(unit)
        .label_style((FAMILY, 11))
        .draw()
        .map_err(err)?;
    for (name, colour, points) in series {
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 14, y)], colour.stroke_width(2))
            });
    }
    for m in markers.iter().filter(|m| (x0..x1).contains(&m.time_ms)) {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(m.time_ms, 0.0), (m.time_ms, top)],
                MARKER.stroke_width(2),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                m.label.clone(),
                (m.time_ms, top * 0.95),
                (FAMILY, 11).into_font().color(&MARKER),
            )))
            .map_err(err)?;
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FAMILY, 11))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

impl Chart for Trends<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), RenderError> {
        let d = self.data;
        let range = (d.from, d.to.max(d.from + 1));
        let pick = |f: &dyn Fn(&crate::query::Summary) -> Option<f64>| -> Vec<(i64, f64)> {
            d.points
                .iter()
                .filter_map(|p| f(&p.summary).map(|v| (p.t + d.step_ms / 2, v)))
                .collect()
        };
        let step_s = d.step_ms as f64 / 1000.0;
        let (top, rest) = root.split_vertically(root.dim_in_pixel().1 * 3 / 5);
        let (middle, bottom) = rest.split_vertically(rest.dim_in_pixel().1 / 2);
        panel(
            &top,
            Some(self.title),
            "ms",
            range,
            &[
                ("p50", RGBColor(31, 119, 180), pick(&|s| s.p50_ms)),
                ("p95", RGBColor(255, 127, 14), pick(&|s| s.p95_ms)),
                ("p99", RGBColor(148, 103, 189), pick(&|s| s.p99_ms)),
            ],
            self.markers,
        )?;
        panel(
            &middle,
            None,
            "req/s",
            range,
            &[(
                "throughput",
                RGBColor(44, 160, 44),
                pick(&|s| Some(s.count as f64 / step_s)),
            )],
            self.markers,
        )?;
        panel(
            &bottom,
            None,
            "errors %",
            range,
            &[(
                "error rate",
                RGBColor(214, 39, 40),
                pick(&|s| s.error_rate.map(|r| r * 100.0)),
            )],
            self.markers,
        )
    }
}

/// Renders latency trends with their deploy markers.
pub fn latency_chart(
    title: &str,
    data: &LatencyResponse,
    markers: &[Marker],
    format: super::Format,
    size: (u32, u32),
) -> Result<Vec<u8>, RenderError> {
    super::render(
        &Trends {
            title,
            data,
            markers,
        },
        format,
        size,
    )
}
