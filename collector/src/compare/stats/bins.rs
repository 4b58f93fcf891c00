//! Samples as histogram bins: `(value_us, count)` pairs.

use std::borrow::Cow;

use crate::aggregate::histogram::LatencyHistogram;

/// Returns the recorded bins of a latency histogram as `(value_us, count)` pairs in
/// increasing order of value. A bin's value is the midpoint of its HDR bucket (the
/// "median equivalent", as [`quantile_us`](crate::aggregate::histogram::quantile_us)
/// reports), so it is within 0.4 % of every duration counted in it, and a threshold taken
/// from `quantile_us` is exactly the value of one bin. Below 256 µs buckets are 1 µs wide and
/// the values are exact.
pub fn histogram_bins(histogram: &LatencyHistogram) -> Vec<(u64, u64)> {
    histogram
        .iter_recorded()
        .map(|v| {
            (
                histogram.median_equivalent(v.value_iterated_to()),
                v.count_at_value(),
            )
        })
        .collect()
}

/// Returns the bins sorted by value with each value once and no zero counts: borrowed when
/// they already are, so histogram bins cost nothing. Counts of repeated values are added
/// (saturating at `u64::MAX`).
pub(crate) fn normalized(bins: &[(u64, u64)]) -> Cow<'_, [(u64, u64)]> {
    let clean = bins.windows(2).all(|w| w[0].0 < w[1].0) && bins.iter().all(|b| b.1 > 0);
    if clean {
        return Cow::Borrowed(bins);
    }
    let mut sorted: Vec<(u64, u64)> = bins.iter().copied().filter(|b| b.1 > 0).collect();
    sorted.sort_unstable_by_key(|b| b.0);
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(sorted.len());
    for (value, count) in sorted {
        match merged.last_mut() {
            Some(last) if last.0 == value => last.1 = last.1.saturating_add(count),
            _ => merged.push((value, count)),
        }
    }
    Cow::Owned(merged)
}

/// Returns the number of values in `bins` (u128: a sum of u64 counts cannot overflow it).
pub(crate) fn total(bins: &[(u64, u64)]) -> u128 {
    bins.iter().map(|b| u128::from(b.1)).sum()
}

/// Returns the number of values in `bins` strictly greater than `threshold_us`.
pub(crate) fn count_above(bins: &[(u64, u64)], threshold_us: u64) -> u128 {
    bins.iter()
        .filter(|b| b.0 > threshold_us)
        .map(|b| u128::from(b.1))
        .sum()
}

/// Returns every value of `bins` repeated `count` times, in the order given: the raw sample
/// that brute-force checks in tests compare the binned computations with.
#[cfg(test)]
pub(crate) fn expand(bins: &[(u64, u64)]) -> Vec<u64> {
    bins.iter()
        .flat_map(|&(value, count)| std::iter::repeat_n(value, count as usize))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::histogram::{new_histogram, quantile_us, record};

    #[test]
    fn histogram_bins_are_bucket_midpoints_with_their_counts() {
        let mut h = new_histogram();
        for v in [7, 7, 200, 1_000, 1_003, 250_000] {
            record(&mut h, v);
        }
        // 1 000 and 1 003 share the 4 µs wide bucket 1 000..=1 003 (midpoint 1 002); from
        // 131 072 µs on buckets are 1 024 µs wide: 249 856..=250 879, midpoint 250 368.
        assert_eq!(
            histogram_bins(&h),
            vec![(7, 2), (200, 1), (1_002, 2), (250_368, 1)]
        );
        assert_eq!(quantile_us(&h, 0.5), 200);
        assert_eq!(quantile_us(&h, 0.75), 1_002, "a quantile is a bin value");
        assert!(histogram_bins(&new_histogram()).is_empty());
    }

    #[test]
    fn normalized_sorts_merges_and_drops_empty_bins() {
        let clean = [(1, 2), (5, 1)];
        assert!(matches!(normalized(&clean), Cow::Borrowed(_)));
        assert_eq!(
            normalized(&[(5, 1), (1, 2), (5, 3), (9, 0), (3, 0)]).into_owned(),
            vec![(1, 2), (5, 4)]
        );
        assert_eq!(
            normalized(&[(4, u64::MAX), (4, 1)]).into_owned(),
            vec![(4, u64::MAX)]
        );
        assert!(normalized(&[]).is_empty());
        assert!(normalized(&[(3, 0)]).is_empty());
    }

    #[test]
    fn totals_and_counts_above_a_threshold() {
        let bins = [(10, 3), (20, 5), (30, u64::MAX)];
        assert_eq!(total(&bins), 8 + u128::from(u64::MAX));
        assert_eq!(count_above(&bins, 20), u128::from(u64::MAX));
        assert_eq!(count_above(&bins, 19), 5 + u128::from(u64::MAX));
        assert_eq!(count_above(&bins, 30), 0);
        assert_eq!(expand(&[(2, 2), (1, 1)]), vec![2, 2, 1]);
    }
}
