//! Server-side charts with plotters: the hitmap, latency trends and a comparison's histogram
//! overlay, as SVG or PNG.
//!
//! Text is laid out (and, in PNG, drawn) with `ab_glyph` from a font embedded in the binary
//! (DejaVu Sans), so rendering needs no system font library.

mod comparison;
mod heatmap;
mod latency;

pub use comparison::comparison_chart;
pub use heatmap::heatmap_chart;
pub use latency::latency_chart;

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

/// DejaVu Sans (license in `collector/assets/fonts/DejaVuSans.LICENSE`).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The font family every chart uses.
pub(crate) const FAMILY: &str = "sans-serif";

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot render the chart: {0}")]
pub struct RenderError(pub String);

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `image/svg+xml`.
    Svg,
    /// `image/png`.
    Png,
}

impl Format {
    /// The content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Svg => "image/svg+xml",
            Self::Png => "image/png",
        }
    }
}

fn register_font() -> Result<(), RenderError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "the embedded font is invalid".to_owned())
        })
        .clone()
        .map_err(RenderError)
}

pub(crate) fn err(e: impl std::fmt::Display) -> RenderError {
    RenderError(e.to_string())
}

/// Something drawable on any plotters backend.
pub(crate) trait Chart {
    /// Draws on the whole area.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), RenderError>;
}

/// Draws a chart on a `width` × `height` canvas and encodes it.
pub(crate) fn render(
    chart: &impl Chart,
    format: Format,
    (width, height): (u32, u32),
) -> Result<Vec<u8>, RenderError> {
    // Both backends lay text out with the font's metrics.
    register_font()?;
    match format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
                root.fill(&WHITE).map_err(err)?;
                chart.draw(&root)?;
                root.present().map_err(err)?;
            }
            Ok(svg.into_bytes())
        }
        Format::Png => {
            let mut pixels = vec![0u8; width as usize * height as usize * 3];
            {
                let root =
                    BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
                root.fill(&WHITE).map_err(err)?;
                chart.draw(&root)?;
                root.present().map_err(err)?;
            }
            let mut out = Vec::new();
            let mut encoder = png::Encoder::new(&mut out, width, height);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(err)?;
            writer.write_image_data(&pixels).map_err(err)?;
            writer.finish().map_err(err)?;
            Ok(out)
        }
    }
}

/// Formats unix ms as `HH:MM` (UTC), or `HH:MM:SS` on an axis spanning less than 15 minutes
/// (where labels a minute apart would repeat).
pub(crate) fn clock(ms: i64, span_ms: i64) -> String {
    let seconds = ms.div_euclid(1000).rem_euclid(86_400);
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if span_ms < 15 * 60_000 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}")
    }
}

/// A deploy marker to draw: time and label.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Unix ms.
    pub time_ms: i64,
    /// E.g. the version.
    pub label: String,
}

/// The deploy marker colour.
pub(crate) const MARKER: RGBColor = RGBColor(214, 39, 40);
