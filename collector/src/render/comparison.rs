//! A comparison's before/after histogram overlay for one transaction: the share of requests
//! per log-spaced latency bin, before and after, with both p95s marked.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Chart, FAMILY, RenderError, err};
use crate::aggregate::histogram::{LatencyStats, quantile_us};
use crate::compare::engine::format_ms;

/// Log-spaced bins drawn.
const BINS: usize = 60;

struct Overlay<'a> {
    title: &'a str,
    before: &'a LatencyStats,
    after: &'a LatencyStats,
    labels: (&'a str, &'a str),
}

/// Shares of `stats` per bin between `edges`.
fn shares(stats: &LatencyStats, edges: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; edges.len() - 1];
    if stats.count == 0 {
        return out;
    }
    for v in stats.histogram.iter_recorded() {
        let value = stats.histogram.median_equivalent(v.value_iterated_to()) as f64;
        let i = edges.partition_point(|&e| e <= value).clamp(1, out.len()) - 1;
        out[i] += v.count_at_value() as f64 / stats.count as f64;
    }
    out
}

impl Chart for Overlay<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), RenderError> {
        let lo = self
            .before
            .histogram
            .min()
            .min(self.after.histogram.min())
            .max(1) as f64;
        let hi = (self.before.max_us.max(self.after.max_us) as f64).max(lo * 2.0);
        let edges: Vec<f64> = (0..=BINS)
            .map(|k| lo * (hi * 1.01 / lo).powf(k as f64 / BINS as f64))
            .collect();
        let (b, a) = (shares(self.before, &edges), shares(self.after, &edges));
        let top = b.iter().chain(&a).fold(0.0f64, |m, v| m.max(*v)).max(1e-3) * 1.15;
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .caption(self.title, (FAMILY, 16))
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d((lo..edges[BINS]).log_scale(), 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(8)
            .x_label_formatter(&|us| format_ms(us / 1000.0))
            .y_label_formatter(&|s| format!("{:.0} %", s * 100.0))
            .x_desc("response time")
            .y_desc("share of requests")
            .label_style((FAMILY, 11))
            .draw()
            .map_err(err)?;
        let colours = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];
        for ((values, colour), (label, stats)) in [&b, &a]
            .into_iter()
            .zip(colours)
            .zip([(self.labels.0, self.before), (self.labels.1, self.after)])
        {
            let steps = values
                .iter()
                .enumerate()
                .flat_map(|(i, v)| [(edges[i], *v), (edges[i + 1], *v)]);
            let p95 = quantile_us(&stats.histogram, 0.95) as f64;
            let legend = format!(
                "{label}: {} requests, p95 {}",
                stats.count,
                format_ms(p95 / 1000.0)
            );
            chart
                .draw_series(LineSeries::new(steps, colour.stroke_width(2)))
                .map_err(err)?
                .label(legend)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], colour.stroke_width(2))
                });
            if stats.count > 0 {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(p95.max(lo), 0.0), (p95.max(lo), top)],
                        colour.mix(0.6).stroke_width(1),
                    )))
                    .map_err(err)?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FAMILY, 11))
            .draw()
            .map_err(err)
    }
}

/// Renders the before/after overlay of one transaction.
pub fn comparison_chart(
    title: &str,
    before: &LatencyStats,
    after: &LatencyStats,
    labels: (&str, &str),
    format: super::Format,
    size: (u32, u32),
) -> Result<Vec<u8>, RenderError> {
    super::render(
        &Overlay {
            title,
            before,
            after,
            labels,
        },
        format,
        size,
    )
}
