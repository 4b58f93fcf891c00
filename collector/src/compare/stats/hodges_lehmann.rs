//! The Hodges–Lehmann shift estimate and its confidence interval over histogram bins.

use super::bins::{normalized, total};
use super::normal::normal_quantile;

/// How much slower the after-sample is: the Hodges–Lehmann estimate of the shift between two
/// samples and its confidence interval, all in µs (negative when the after-sample is faster).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftEstimate {
    /// The median of the differences after − before over all n_before · n_after pairs, µs
    /// (the mean of the two middle differences when their number is even).
    pub shift_us: f64,
    /// The lower end of the confidence interval, µs: the k-th smallest pairwise difference.
    pub low_us: f64,
    /// The upper end of the confidence interval, µs: the k-th largest pairwise difference.
    pub high_us: f64,
}

/// Estimates by how many µs `after` is shifted from `before`, both given as histogram bins
/// `(value_us, count)`, with a two-sided confidence interval at `confidence` (0.98 in
/// Kayenta's judge).
///
/// The estimate is the median of all pairwise differences after − before. The interval is
/// Moses's order-statistics interval (Hollander & Wolfe, ch. 4) [D₍ₖ₎, D₍ₘ₊₁₋ₖ₎] over the
/// m = n₁n₂ sorted differences, with k = ⌊n₁n₂/2 − z·σ + ½⌋, z = Φ⁻¹((1 + confidence)/2)
/// and σ = √(n₁n₂(N + 1)/12): the largest k with P(U ≤ k − 1) ≤ (1 − confidence)/2 under
/// the continuity-corrected normal approximation of the Mann–Whitney U. σ has no tie
/// correction: ties in bins come from bucketing continuous latencies, not from the latencies.
///
/// No difference is materialized: the k-th smallest is found by bisection over the integer
/// differences, each step counting the pairs at or below a candidate in one merge of the two
/// bin lists — O(bins · log(range)), about 33 merges for latencies up to an hour.
///
/// Returns `None` when either side is empty. For samples too small to reach the level
/// (k < 1), the interval is the whole range of differences. A `confidence` ≤ 0 gives the
/// narrowest interval around the median, and ≥ 1 or NaN the whole range.
///
/// # Examples
///
/// ```
/// use headlight_collector::compare::stats::hodges_lehmann;
///
/// let before = [(1_000, 50), (1_200, 30), (1_500, 20)];
/// let after = [(1_100, 50), (1_300, 30), (1_600, 20)]; // every request 100 µs slower
/// let shift = hodges_lehmann(&before, &after, 0.98).unwrap();
/// assert_eq!(shift.shift_us, 100.0);
/// assert!(shift.low_us <= 100.0 && 100.0 <= shift.high_us);
/// ```
pub fn hodges_lehmann(
    before: &[(u64, u64)],
    after: &[(u64, u64)],
    confidence: f64,
) -> Option<ShiftEstimate> {
    let before = normalized(before);
    let after = normalized(after);
    let differences = Differences::new(&before, &after)?;
    let pairs = differences.pairs;

    let shift_us = if pairs % 2 == 1 {
        differences.kth_smallest(pairs / 2 + 1) as f64
    } else {
        let sum = differences.kth_smallest(pairs / 2) + differences.kth_smallest(pairs / 2 + 1);
        sum as f64 / 2.0
    };
    let k = interval_rank(total(&before), total(&after), confidence);
    Some(ShiftEstimate {
        shift_us,
        low_us: differences.kth_smallest(k) as f64,
        high_us: differences.kth_smallest(pairs + 1 - k) as f64,
    })
}

/// Returns k of the interval [D₍ₖ₎, D₍ₘ₊₁₋ₖ₎] at `confidence` for samples of sizes `n1`
/// and `n2` (both ≥ 1), clamped to 1 ..= ⌈m/2⌉ so that the interval is never empty.
fn interval_rank(n1: u128, n2: u128, confidence: f64) -> u128 {
    let pairs = n1.saturating_mul(n2);
    let (n1, n2) = (n1 as f64, n2 as f64);
    let sigma = (n1 * n2 * (n1 + n2 + 1.0) / 12.0).sqrt();
    let z = normal_quantile((1.0 + confidence) / 2.0);
    // Float-to-integer casts saturate and send NaN to 0, so every input lands in range.
    let k = (n1 * n2 / 2.0 - z * sigma + 0.5).floor() as u128;
    k.clamp(1, pairs.div_ceil(2))
}

/// The multiset of pairwise differences after − before of two normalized, non-empty samples.
struct Differences<'a> {
    before: &'a [(u64, u64)],
    after: &'a [(u64, u64)],
    n_before: u128,
    /// How many differences there are: n_before · n_after.
    pairs: u128,
    smallest: i128,
    largest: i128,
}

impl<'a> Differences<'a> {
    /// Returns `None` when either sample is empty.
    fn new(before: &'a [(u64, u64)], after: &'a [(u64, u64)]) -> Option<Self> {
        let (first_before, last_before) = (before.first()?.0, before.last()?.0);
        let (first_after, last_after) = (after.first()?.0, after.last()?.0);
        let n_before = total(before);
        Some(Self {
            before,
            after,
            n_before,
            pairs: n_before.saturating_mul(total(after)),
            smallest: i128::from(first_after) - i128::from(last_before),
            largest: i128::from(last_after) - i128::from(first_before),
        })
    }

    /// Returns how many differences are at most `d`: for each after value a, the before
    /// values b ≥ a − d. As a grows so does a − d, so one pointer walks the before bins once.
    fn at_most(&self, d: i128) -> u128 {
        let mut pairs: u128 = 0;
        let mut before_below: u128 = 0; // before values < a − d
        let mut j = 0;
        for &(a, count) in self.after {
            let lowest = i128::from(a) - d;
            while let Some(&(b, before_count)) = self.before.get(j)
                && i128::from(b) < lowest
            {
                before_below += u128::from(before_count);
                j += 1;
            }
            let reached = u128::from(count).saturating_mul(self.n_before - before_below);
            pairs = pairs.saturating_add(reached);
        }
        pairs
    }

    /// Returns the k-th smallest difference (1-based; k is clamped to 1 ..= pairs): the
    /// smallest integer d with at least k differences at or below it, which is a difference.
    fn kth_smallest(&self, k: u128) -> i128 {
        let k = k.clamp(1, self.pairs);
        let (mut low, mut high) = (self.smallest, self.largest);
        debug_assert!(self.at_most(high) >= k);
        while low < high {
            let middle = low + (high - low).div_euclid(2);
            if self.at_most(middle) >= k {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        low
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::compare::stats::bins::expand;

    /// Returns every difference after − before of the raw samples, sorted.
    fn sorted_differences(before: &[(u64, u64)], after: &[(u64, u64)]) -> Vec<i128> {
        let (before, after) = (expand(before), expand(after));
        let mut differences: Vec<i128> = after
            .iter()
            .flat_map(|&a| before.iter().map(move |&b| i128::from(a) - i128::from(b)))
            .collect();
        differences.sort_unstable();
        differences
    }

    fn shifted(bins: &[(u64, u64)], c: u64) -> Vec<(u64, u64)> {
        bins.iter().map(|&(v, n)| (v + c, n)).collect()
    }

    #[test]
    fn a_constant_shift_is_recovered_exactly() {
        let before = [(900, 7), (1_000, 40), (1_100, 25), (1_800, 9), (5_000, 2)];
        for c in [0, 1, 37, 250, 10_000] {
            let after = shifted(&before, c);
            let estimate = hodges_lehmann(&before, &after, 0.98).unwrap();
            assert_eq!(estimate.shift_us, c as f64);
            assert!(estimate.low_us <= c as f64 && c as f64 <= estimate.high_us);
            // The differences of a sample with itself are symmetric around 0, so the
            // interval is symmetric around c.
            assert_eq!(
                estimate.high_us - c as f64,
                c as f64 - estimate.low_us,
                "{estimate:?}"
            );
            // And the other way round, the shift is −c.
            let back = hodges_lehmann(&after, &before, 0.98).unwrap();
            assert_eq!(back.shift_us, -(c as f64));
        }
    }

    #[test]
    fn interval_rank_by_hand() {
        // n₁ = n₂ = 10 at 95 %: m = 100, σ = √(100 · 21 / 12) = √175 = 13.228757,
        // z = 1.959964, 50 − 25.927906 + 0.5 = 24.57 → k = 24, the exact critical value
        // (reject when U ≤ 23 at α/2 = 2.5 %, so the interval is [D₍₂₄₎, D₍₇₇₎]).
        assert_eq!(interval_rank(10, 10, 0.95), 24);
        // n₁ = 11, n₂ = 12 at 95 %: 66 − 1.959964 · √264 + 0.5 = 34.65 → 34.
        assert_eq!(interval_rank(11, 12, 0.95), 34);
        // n₁ = n₂ = 100 at 98 %: 5 000 − 2.326348 · √(10 000 · 201 / 12) + 0.5
        //   = 5 000 − 2.326348 · 409.268 + 0.5 = 4 048.4 → 4 048.
        assert_eq!(interval_rank(100, 100, 0.98), 4_048);
        // Too small to reach 98 %: the whole range.
        assert_eq!(interval_rank(2, 3, 0.98), 1);
        // Out-of-range levels: the median alone, or the whole range.
        assert_eq!(interval_rank(10, 10, 0.0), 50);
        assert_eq!(interval_rank(10, 10, -3.0), 50);
        assert_eq!(interval_rank(3, 3, 0.0), 5);
        assert_eq!(interval_rank(10, 10, 1.0), 1);
        assert_eq!(interval_rank(10, 10, f64::NAN), 1);
    }

    #[test]
    fn empty_samples_have_no_estimate() {
        assert_eq!(hodges_lehmann(&[], &[(1, 1)], 0.98), None);
        assert_eq!(hodges_lehmann(&[(1, 1)], &[], 0.98), None);
        assert_eq!(hodges_lehmann(&[(1, 0)], &[(1, 3)], 0.98), None);
    }

    #[test]
    fn single_values_and_extremes() {
        let one = hodges_lehmann(&[(10, 1)], &[(3, 1)], 0.98).unwrap();
        assert_eq!(
            one,
            ShiftEstimate {
                shift_us: -7.0,
                low_us: -7.0,
                high_us: -7.0
            }
        );
        // 0 and an hour apart, with counts whose product needs u128.
        let far = hodges_lehmann(&[(0, u64::MAX)], &[(3_600_000_000, u64::MAX)], 0.98).unwrap();
        assert_eq!(far.shift_us, 3_600_000_000.0);
        let wide = hodges_lehmann(&[(0, 1), (u64::MAX, 1)], &[(u64::MAX, 1), (0, 1)], 0.5);
        assert_eq!(wide.unwrap().shift_us, 0.0);
    }

    #[test]
    fn a_bimodal_example_by_hand() {
        // before = 10 10 20, after = 15 40: differences 5 5 −5 30 30 20, sorted
        // −5 5 5 20 30 30; six of them, median (5 + 20)/2 = 12.5. With n₁n₂ = 6 the
        // interval at 50 % has k = ⌊3 − 0.674490 · √(2 · 3 · 6/12) + ½⌋ = ⌊2.33⌋ = 2: [5, 30].
        let estimate = hodges_lehmann(&[(10, 2), (20, 1)], &[(15, 1), (40, 1)], 0.5).unwrap();
        assert_eq!(
            estimate,
            ShiftEstimate {
                shift_us: 12.5,
                low_us: 5.0,
                high_us: 30.0
            }
        );
    }

    fn bins() -> impl Strategy<Value = Vec<(u64, u64)>> {
        prop::collection::vec((0..60u64, 0..5u64), 0..8)
    }

    proptest! {
        #[test]
        fn binned_estimate_equals_the_expanded_pairwise_differences(
            before in bins(),
            after in bins(),
            confidence in prop_oneof![Just(0.98), Just(0.9), Just(0.5), 0.0..1.0f64],
        ) {
            let differences = sorted_differences(&before, &after);
            let estimate = hodges_lehmann(&before, &after, confidence);
            if differences.is_empty() {
                prop_assert_eq!(estimate, None);
                return Ok(());
            }
            let estimate = estimate.unwrap();
            let m = differences.len();
            let median = if m % 2 == 1 {
                differences[m / 2] as f64
            } else {
                (differences[m / 2 - 1] + differences[m / 2]) as f64 / 2.0
            };
            prop_assert_eq!(estimate.shift_us, median);
            let k = interval_rank(
                expand(&before).len() as u128,
                expand(&after).len() as u128,
                confidence,
            ) as usize;
            prop_assert_eq!(estimate.low_us, differences[k - 1] as f64);
            prop_assert_eq!(estimate.high_us, differences[m - k] as f64);
            prop_assert!(estimate.low_us <= estimate.shift_us);
            prop_assert!(estimate.shift_us <= estimate.high_us);
        }

        #[test]
        fn every_order_statistic_matches(before in bins(), after in bins()) {
            let differences = sorted_differences(&before, &after);
            let (before, after) = (normalized(&before), normalized(&after));
            let Some(binned) = Differences::new(&before, &after) else {
                prop_assert!(differences.is_empty());
                return Ok(());
            };
            prop_assert_eq!(binned.pairs, differences.len() as u128);
            for (i, &d) in differences.iter().enumerate() {
                prop_assert_eq!(binned.kth_smallest(i as u128 + 1), d);
            }
        }
    }
}
