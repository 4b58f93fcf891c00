//! Latency histograms: HDR, 1 µs .. 1 h, 2 significant digits (relative error < 1 %).

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

/// Lowest trackable value, µs.
pub const LOWEST_US: u64 = 1;
/// Highest trackable value, µs (1 h).
pub const HIGHEST_US: u64 = 3_600_000_000;
/// Significant digits: bucket width ≤ 1/128 of the value, so any value is within 0.8 %.
pub const SIGFIG: u8 = 2;

/// A latency histogram in µs.
pub type LatencyHistogram = Histogram<u64>;

/// Why a stored histogram could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("corrupt histogram blob: {0}")]
pub struct CorruptHistogram(String);

/// Returns an empty latency histogram. It starts covering 1–2 µs and grows its counts array
/// to the largest value recorded (up to [`HIGHEST_US`], where [`record`] clamps): a histogram
/// of 1 h covers 26 KiB of counts, one of transactions under 100 ms about 11 KiB, and an
/// error histogram of a series without errors 2 KiB. With one open window per series (and the
/// errors' beside it), that is what keeps 10 000 active series small.
pub fn new_histogram() -> LatencyHistogram {
    let mut histogram = Histogram::new_with_bounds(LOWEST_US, 2 * LOWEST_US, SIGFIG)
        .expect("constant bounds are valid for hdrhistogram");
    histogram.auto(true);
    histogram
}

/// Records a duration in µs, clamped to the trackable range.
pub fn record(histogram: &mut LatencyHistogram, duration_us: u64) {
    record_n(histogram, duration_us, 1);
}

/// Records `count` durations of `duration_us` µs, clamped to the trackable range. Always use
/// this (or [`record`]) rather than hdrhistogram's `saturating_record*`, which would clamp to
/// the counts array's current top instead of growing it.
pub fn record_n(histogram: &mut LatencyHistogram, duration_us: u64, count: u64) {
    let value = duration_us.clamp(LOWEST_US, HIGHEST_US);
    if histogram.record_n(value, count).is_err() {
        histogram.saturating_record_n(value, count);
    }
}

/// Adds `source` into `target` (same bounds, so this cannot overflow the range).
pub fn merge(target: &mut LatencyHistogram, source: &LatencyHistogram) {
    if target.add(source).is_err() {
        // Differing bounds (a blob written by another layout): re-record bucket by bucket.
        for v in source.iter_recorded() {
            record_n(target, v.value_iterated_to(), v.count_at_value());
        }
    }
}

/// Serializes with the HDR V2 format: counts as zig-zag LEB128 with runs of zeros folded, so a
/// window's histogram takes a few hundred bytes. Not deflated: the store rewrites each open
/// window's row at every flush, and deflate (a fresh 256 KiB compressor per call) was a tenth of
/// the collector's CPU at 10 k spans/s, for blobs 28 % smaller (674 against 936 bytes for a
/// window of 10 000 latencies over 1–300 ms; benches/RESULTS.md).
pub fn encode(histogram: &LatencyHistogram) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing into a Vec cannot fail for io reasons; an error would mean an invalid
    // histogram, which `new_histogram` never builds.
    if V2Serializer::new().serialize(histogram, &mut out).is_err() {
        out.clear();
    }
    out
}

/// Reads a blob written by [`encode`], or by earlier versions (V2 + deflate).
pub fn decode(blob: &[u8]) -> Result<LatencyHistogram, CorruptHistogram> {
    let mut reader = blob;
    let decoded: LatencyHistogram = Deserializer::new()
        .deserialize(&mut reader)
        .map_err(|e| CorruptHistogram(format!("{e:?}")))?;
    let mut histogram = new_histogram();
    merge(&mut histogram, &decoded);
    Ok(histogram)
}

/// Returns the value at quantile `q` in µs: the midpoint of the HDR bucket that holds the
/// nearest-rank quantile, so the error is at most half a bucket (< 0.4 %).
pub fn quantile_us(histogram: &LatencyHistogram, q: f64) -> u64 {
    if histogram.is_empty() {
        return 0;
    }
    histogram.median_equivalent(histogram.value_at_quantile(q))
}

/// The latency statistics of a set of transactions: the HDR histograms of all and of error
/// durations, with the exact count, error count, sum and maximum beside them. Adding two of
/// them is exact, which makes windows, flushes and collectors merge without loss.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyStats {
    /// Transactions.
    pub count: u64,
    /// Error transactions.
    pub errors: u64,
    /// Sum of durations, µs (for the exact mean).
    pub sum_us: u64,
    /// Largest duration, µs (exact).
    pub max_us: u64,
    /// All durations.
    pub histogram: LatencyHistogram,
    /// Durations of error transactions only (for Apdex and error heatmaps).
    pub error_histogram: LatencyHistogram,
}

impl Default for LatencyStats {
    fn default() -> Self {
        Self {
            count: 0,
            errors: 0,
            sum_us: 0,
            max_us: 0,
            histogram: new_histogram(),
            error_histogram: new_histogram(),
        }
    }
}

impl LatencyStats {
    /// Records one transaction.
    pub fn record(&mut self, duration_us: u64, error: bool) {
        self.count += 1;
        self.sum_us += duration_us;
        self.max_us = self.max_us.max(duration_us);
        record(&mut self.histogram, duration_us);
        if error {
            self.errors += 1;
            record(&mut self.error_histogram, duration_us);
        }
    }

    /// Adds another set.
    pub fn merge(&mut self, other: &LatencyStats) {
        self.count += other.count;
        self.errors += other.errors;
        self.sum_us += other.sum_us;
        self.max_us = self.max_us.max(other.max_us);
        merge(&mut self.histogram, &other.histogram);
        merge(&mut self.error_histogram, &other.error_histogram);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_of_earlier_versions_still_read_and_the_new_ones_are_small() {
        let mut h = new_histogram();
        let mut state = 7_u64;
        for _ in 0..10_000 {
            // Latencies spread over 1–300 ms, as a window of a busy series.
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            record(&mut h, 1_000 + (state >> 33) % 300_000);
        }
        let mut deflated = Vec::new();
        hdrhistogram::serialization::V2DeflateSerializer::new()
            .serialize(&h, &mut deflated)
            .unwrap();
        let old = decode(&deflated).unwrap();
        let new = decode(&encode(&h)).unwrap();
        assert_eq!(old, h);
        assert_eq!(new, h);
        let plain = encode(&h).len();
        assert!(
            plain < 4 * 1024 && plain < 4 * deflated.len(),
            "{plain} vs {}",
            deflated.len()
        );
    }

    #[test]
    fn round_trip_keeps_every_count() {
        let mut h = new_histogram();
        for v in [1, 5, 999, 1_000, 123_456, 3_600_000_000] {
            record(&mut h, v);
        }
        record(&mut h, 0); // clamped to 1 µs
        record(&mut h, u64::MAX); // clamped to 1 h
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back.len(), 8);
        assert_eq!(back, h);
    }

    #[test]
    fn corrupt_blobs_are_errors_not_panics() {
        assert!(decode(b"not a histogram").is_err());
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn quantiles_are_within_one_percent() {
        let mut h = new_histogram();
        for v in 1..=100_000u64 {
            record(&mut h, v * 7);
        }
        for (q, exact) in [(0.5, 350_000.0), (0.99, 693_000.0)] {
            let got = quantile_us(&h, q) as f64;
            assert!((got - exact).abs() / exact < 0.01, "q{q}: {got} vs {exact}");
        }
    }
}
