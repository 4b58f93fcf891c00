//! Fixed-bound histograms in the Prometheus style: a count per bucket, the exact sum and count.

/// Upper bounds (inclusive, µs) of the transaction duration buckets: the Prometheus client
/// libraries' default buckets, 5 ms .. 10 s.
pub const TRANSACTION_BOUNDS_US: &[u64] = &[
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// Upper bounds (inclusive, µs) of the store write duration buckets, 1 ms .. 10 s.
pub const STORE_WRITE_BOUNDS_US: &[u64] = &[
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// Durations counted into buckets with fixed upper bounds, exactly (no HDR rounding: each
/// duration is compared with the bounds when it is recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketCounts {
    bounds: &'static [u64],
    /// Per bucket (not cumulative): durations above the previous bound and at most this one;
    /// the last slot counts those above every bound.
    counts: Box<[u64]>,
    /// Sum of the durations, µs.
    pub sum_us: u64,
    /// Durations recorded.
    pub count: u64,
}

impl BucketCounts {
    /// Returns empty counts over `bounds` (ascending, µs).
    pub fn new(bounds: &'static [u64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "ascending bounds");
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1].into_boxed_slice(),
            sum_us: 0,
            count: 0,
        }
    }

    /// Records one duration in µs.
    pub fn record(&mut self, duration_us: u64) {
        let bucket = self.bounds.partition_point(|&bound| bound < duration_us);
        self.counts[bucket] += 1;
        self.sum_us = self.sum_us.saturating_add(duration_us);
        self.count += 1;
    }

    /// Returns each bound (µs; `None` for `+Inf`) with the cumulative count of durations at or
    /// below it, as Prometheus' `le` buckets are.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        let bounds = self.bounds.iter().copied().map(Some).chain([None]);
        bounds.zip(self.counts.iter().scan(0u64, |total, n| {
            *total += n;
            Some(*total)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_counts_cumulative() {
        let mut b = BucketCounts::new(&[10, 20]);
        for v in [0, 10, 11, 20, 21, 1_000] {
            b.record(v);
        }
        let got: Vec<_> = b.cumulative().collect();
        assert_eq!(got, vec![(Some(10), 2), (Some(20), 4), (None, 6)]);
        assert_eq!((b.count, b.sum_us), (6, 1_062));
    }
}
