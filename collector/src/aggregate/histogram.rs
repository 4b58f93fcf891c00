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

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        /// Latencies across the whole range and past both clamps: 0, sub-ms, seconds, > 1 h.
        fn latency() -> impl Strategy<Value = u64> {
            prop_oneof![
                0u64..2_000,
                0u64..10_000_000,
                0u64..5_000_000_000,
                Just(HIGHEST_US),
                Just(u64::MAX),
            ]
        }

        fn histogram_of(values: impl IntoIterator<Item = u64>) -> LatencyHistogram {
            let mut h = new_histogram();
            for v in values {
                record(&mut h, v);
            }
            h
        }

        /// Asserts two histograms agree on everything a query reads.
        fn same(a: &LatencyHistogram, b: &LatencyHistogram) -> Result<(), TestCaseError> {
            prop_assert_eq!(a.len(), b.len());
            prop_assert_eq!(a.min(), b.min());
            prop_assert_eq!(a.max(), b.max());
            for q in [0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0] {
                prop_assert_eq!(quantile_us(a, q), quantile_us(b, q), "q{}", q);
            }
            let buckets = |h: &LatencyHistogram| -> Vec<(u64, u64)> {
                h.iter_recorded()
                    .map(|v| (v.value_iterated_to(), v.count_at_value()))
                    .collect()
            };
            prop_assert_eq!(buckets(a), buckets(b));
            prop_assert_eq!(a, b);
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Merging the histograms of any split of a multiset equals the histogram of the
            /// whole, and the order of the merges does not matter.
            #[test]
            fn merging_any_split_equals_the_whole_in_any_order(
                items in prop::collection::vec((latency(), 0usize..5), 0..400),
                order in Just((0..5).collect::<Vec<usize>>()).prop_shuffle(),
            ) {
                let whole = histogram_of(items.iter().map(|(v, _)| *v));
                let parts: Vec<LatencyHistogram> = (0..5)
                    .map(|part| histogram_of(items.iter().filter(|(_, p)| *p == part).map(|(v, _)| *v)))
                    .collect();
                let mut forward = new_histogram();
                for part in &parts {
                    merge(&mut forward, part);
                }
                same(&forward, &whole)?;
                let mut shuffled = new_histogram();
                for &i in &order {
                    merge(&mut shuffled, &parts[i]);
                }
                same(&shuffled, &whole)?;
                // Merging into a part that already holds values (not only into an empty one).
                let mut into_last = parts[4].clone();
                for part in parts.iter().take(4).rev() {
                    merge(&mut into_last, part);
                }
                same(&into_last, &whole)?;
            }

            /// The same for the exact statistics beside the histograms.
            #[test]
            fn merged_latency_stats_equal_the_whole(
                items in prop::collection::vec((0u64..5_000_000_000, any::<bool>(), 0usize..4), 0..300),
            ) {
                let mut whole = LatencyStats::default();
                let mut parts = vec![LatencyStats::default(); 4];
                for &(duration, error, part) in &items {
                    whole.record(duration, error);
                    parts[part].record(duration, error);
                }
                let mut merged = LatencyStats::default();
                for part in parts.iter().rev() {
                    merged.merge(part);
                }
                prop_assert_eq!(merged.count, items.len() as u64);
                prop_assert_eq!(merged.errors, whole.error_histogram.len());
                prop_assert_eq!(&merged, &whole);
            }

            /// A histogram that grows its counts array as values come (in any order, with any
            /// repeat counts) holds exactly what one allocated for the whole range up front does.
            #[test]
            fn auto_resizing_never_loses_a_value(
                items in prop::collection::vec((latency(), 1u64..1_000), 0..300),
            ) {
                let mut growing = new_histogram();
                let mut full = LatencyHistogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG)
                    .expect("valid bounds");
                let mut total = 0u64;
                for &(value, count) in &items {
                    record_n(&mut growing, value, count);
                    full.record_n(value.clamp(LOWEST_US, HIGHEST_US), count)
                        .expect("in range");
                    total += count;
                }
                prop_assert_eq!(growing.len(), total);
                for &(value, _) in &items {
                    let clamped = value.clamp(LOWEST_US, HIGHEST_US);
                    prop_assert_eq!(growing.count_at(clamped), full.count_at(clamped));
                    prop_assert!(growing.count_at(clamped) > 0);
                }
                same(&growing, &full)?;
                // And a round trip through the stored form keeps all of it.
                let back = decode(&encode(&growing)).expect("own blob decodes");
                same(&back, &full)?;
            }
        }
    }
}
