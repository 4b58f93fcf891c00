//! The Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` lines, samples
//! with escaped label values.

use std::fmt::{Display, Write as _};

use super::buckets::BucketCounts;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic since the process started.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative `_bucket{le}` counts with `_sum` and `_count`.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// Writes families and samples into one text body.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family: its `# HELP` and `# TYPE` lines. Its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// Writes one sample, e.g. `name{a="x"} 3`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// Writes a histogram's samples (durations in µs, written in seconds): `_bucket` for every
    /// bound and `+Inf`, `_sum`, `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], buckets: &BucketCounts) {
        for (bound_us, count) in buckets.cumulative() {
            let le = bound_us.map_or_else(|| "+Inf".to_owned(), |us| seconds(us).to_string());
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.out, " {count}");
        }
        self.sample(&format!("{name}_sum"), labels, seconds(buckets.sum_us));
        self.sample(&format!("{name}_count"), labels, buckets.count);
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let le = le.map(|le| ("le", le));
        for (i, (key, value)) in labels.iter().copied().chain(le).enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(key);
            self.out.push_str("=\"");
            for c in value.chars() {
                match c {
                    '\\' => self.out.push_str(r"\\"),
                    '"' => self.out.push_str(r#"\""#),
                    '\n' => self.out.push_str(r"\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    /// Returns the body.
    pub fn finish(self) -> String {
        self.out
    }
}

/// µs as seconds.
fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Exposition::default();
        e.family("x_total", Kind::Counter, "a \\ b\nc");
        e.sample("x_total", &[("t", "GET \"/a\\b\"\nz"), ("s", "ü")], 7);
        assert_eq!(
            e.finish(),
            "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\n\
             x_total{t=\"GET \\\"/a\\\\b\\\"\\nz\",s=\"ü\"} 7\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_in_seconds() {
        let mut b = BucketCounts::new(&[5_000, 1_000_000]);
        b.record(5_000);
        b.record(250_000);
        b.record(20_000_000);
        let mut e = Exposition::default();
        e.histogram("d_seconds", &[("s", "a")], &b);
        assert_eq!(
            e.finish(),
            "d_seconds_bucket{s=\"a\",le=\"0.005\"} 1\n\
             d_seconds_bucket{s=\"a\",le=\"1\"} 2\n\
             d_seconds_bucket{s=\"a\",le=\"+Inf\"} 3\n\
             d_seconds_sum{s=\"a\"} 20.255\n\
             d_seconds_count{s=\"a\"} 3\n"
        );
    }
}
