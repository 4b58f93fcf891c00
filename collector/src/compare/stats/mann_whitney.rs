//! The one-sided Mann–Whitney U test over histogram bins.

use super::bins::{normalized, total};
use super::normal::normal_sf;

/// The result of a one-sided Mann–Whitney U test that the after-sample is stochastically
/// greater (slower) than the before-sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the after-sample: the number of (before, after) pairs in which the after value is
    /// greater, ties counted ½. Ranges from 0 to n_before · n_after; n_before · n_after / 2
    /// is what equal distributions give on average.
    pub u: f64,
    /// The standardized U: (U − n_before · n_after / 2 − ½) / σ, with σ tie-corrected and ½
    /// the continuity correction. Positive when the after-sample is slower.
    pub z: f64,
    /// The one-sided p-value 1 − Φ(z), from the normal approximation.
    pub p_value: f64,
}

/// Tests whether `after` is stochastically greater (slower) than `before`, both given as
/// histogram bins `(value_us, count)`.
///
/// The two sorted bin lists are merged in one pass, O(bins) (bins given in another order
/// are sorted first, O(bins · log bins)): every bin is a group of tied values, so U and the
/// tie correction come from the merged counts without expanding the samples. U counts ties
/// ½ (midranks); the variance is
/// `n₁n₂/12 · ((N + 1) − Σ(t³ − t) / (N(N − 1)))` over the tie groups t; z carries the
/// continuity correction −½ and the p-value is the upper tail of the normal distribution.
///
/// An empty side gives U = 0, z = 0 and p = 1; samples whose values are all tied (one bin
/// in all) give z = 0 and p = 1.
///
/// # Examples
///
/// ```
/// use headlight_collector::compare::stats::mann_whitney_greater;
///
/// let before = [(1_000, 60), (2_000, 40)]; // 60 requests at 1 ms, 40 at 2 ms
/// let after = [(1_000, 40), (2_000, 60)];
/// let test = mann_whitney_greater(&before, &after);
/// assert!(test.p_value < 0.01);
/// ```
pub fn mann_whitney_greater(before: &[(u64, u64)], after: &[(u64, u64)]) -> MannWhitney {
    let before = normalized(before);
    let after = normalized(after);
    let n_before = total(&before);
    let n_after = total(&after);
    if n_before == 0 || n_after == 0 {
        return MannWhitney {
            u: 0.0,
            z: 0.0,
            p_value: 1.0,
        };
    }

    // Walks the distinct values of both samples in increasing order. At a value holding
    // `tied_before` and `tied_after` values, each after value beats the `before_below`
    // smaller before values and ties the `tied_before` equal ones: 2U gains
    // tied_after · (2 · before_below + tied_before). The gains are integers, summed in f64:
    // exact while 2U < 2⁵³ (n₁n₂ up to 4.5·10¹⁵), within bins · 1.1e-16 relative beyond.
    let mut twice_u = 0.0_f64;
    let mut tie_sum = 0.0_f64; // Σ (t³ − t) over the tie groups
    let mut before_below: u128 = 0;
    let (mut i, mut j) = (0, 0);
    loop {
        let value = match (before.get(i), after.get(j)) {
            (None, None) => break,
            (Some(b), None) => b.0,
            (None, Some(a)) => a.0,
            (Some(b), Some(a)) => b.0.min(a.0),
        };
        let mut tied_before: u128 = 0;
        if let Some(&(v, count)) = before.get(i)
            && v == value
        {
            tied_before = u128::from(count);
            i += 1;
        }
        let mut tied_after: u128 = 0;
        if let Some(&(v, count)) = after.get(j)
            && v == value
        {
            tied_after = u128::from(count);
            j += 1;
        }
        // A sum of u64 counts is below 2⁶⁴ · bins, so doubling it cannot overflow u128.
        let beaten = 2 * before_below + tied_before;
        twice_u += tied_after as f64 * beaten as f64;
        let t = (tied_before + tied_after) as f64;
        tie_sum += (t - 1.0) * t * (t + 1.0);
        before_below += tied_before;
    }

    let u = twice_u / 2.0;
    let (n1, n2) = (n_before as f64, n_after as f64);
    let n = n1 + n2;
    let mean = n1 * n2 / 2.0;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - tie_sum / (n * (n - 1.0)));
    // All values tied: U equals its mean whatever the samples, so there is no evidence.
    if variance.is_nan() || variance <= 0.0 {
        return MannWhitney {
            u,
            z: 0.0,
            p_value: 1.0,
        };
    }
    let z = (u - mean - 0.5) / variance.sqrt();
    MannWhitney {
        u,
        z,
        p_value: normal_sf(z),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::aggregate::histogram::new_histogram;
    use crate::compare::stats::bins::expand;
    use crate::compare::stats::histogram_bins;

    /// Returns U of `after` by comparing every pair of raw values (ties count ½), and σ from
    /// the tie groups of the pooled raw values: the textbook definitions, O(n²).
    fn brute_force(before: &[u64], after: &[u64]) -> (f64, f64) {
        let mut u = 0.0;
        for &a in after {
            for &b in before {
                if a > b {
                    u += 1.0;
                } else if a == b {
                    u += 0.5;
                }
            }
        }
        let mut pooled: Vec<u64> = before.iter().chain(after).copied().collect();
        pooled.sort_unstable();
        let mut tie_sum = 0.0;
        for group in pooled.chunk_by(|x, y| x == y) {
            let t = group.len() as f64;
            tie_sum += t * t * t - t;
        }
        let (n1, n2) = (before.len() as f64, after.len() as f64);
        let n = n1 + n2;
        let variance = n1 * n2 / 12.0 * ((n + 1.0) - tie_sum / (n * (n - 1.0)));
        (u, variance.sqrt())
    }

    #[test]
    fn ties_by_hand() {
        // before = 1 2 2 3, after = 2 3 3 4; pooled and ranked (N = 8):
        //   value  1 | 2  2  2 | 3  3  3 | 4
        //   side   b | b  b  a | b  a  a | a
        //   rank   1 | 3  3  3 | 6  6  6 | 8     (midranks of 2..4 and 5..7)
        // R_after = 3 + 6 + 6 + 8 = 23, U = R_after − n(n + 1)/2 = 23 − 10 = 13
        //   (pairs: after 2 beats 1 and ties two 2s = 2; each after 3 beats 1 2 2 and ties 3
        //   = 3.5, twice = 7; after 4 beats all 4 = 4; 2 + 7 + 4 = 13).
        // mean = n₁n₂/2 = 8. Tie groups t = 3, 3: Σ(t³ − t) = 24 + 24 = 48.
        // σ² = (16/12) · (9 − 48/56) = (4/3) · (57/7) = 76/7 = 10.857142857…
        // σ = 3.2950178841916560
        // z = (13 − 8 − 0.5) / σ = 4.5 / 3.2950178841916560 = 1.3656982020004890
        // p = 1 − Φ(z) = 0.086016854460911489 (mpmath, 30 digits)
        let before = [(1, 1), (2, 2), (3, 1)];
        let after = [(2, 1), (3, 2), (4, 1)];
        let test = mann_whitney_greater(&before, &after);
        assert_eq!(test.u, 13.0);
        assert!((test.z - 1.365_698_202_000_489).abs() < 1e-12, "{test:?}");
        assert!(
            (test.p_value - 0.086_016_854_460_911_5).abs() < 0.086 * 1.2e-7,
            "{test:?}"
        );
        // The other direction: U of the before-sample is n₁n₂ − 13 = 3.
        let reverse = mann_whitney_greater(&after, &before);
        assert_eq!(reverse.u, 3.0);
        assert!((reverse.z - (3.0 - 8.0 - 0.5) / (76.0_f64 / 7.0).sqrt()).abs() < 1e-12);
        assert!(reverse.p_value > 0.95);
    }

    #[test]
    fn empty_or_all_tied_samples_are_no_evidence() {
        let none = MannWhitney {
            u: 0.0,
            z: 0.0,
            p_value: 1.0,
        };
        assert_eq!(mann_whitney_greater(&[], &[]), none);
        assert_eq!(mann_whitney_greater(&[(5, 3)], &[]), none);
        assert_eq!(mann_whitney_greater(&[], &[(5, 3)]), none);
        assert_eq!(mann_whitney_greater(&[(5, 0)], &[(5, 3), (6, 0)]), none);
        let tied = mann_whitney_greater(&[(5, 3)], &[(5, 4)]);
        assert_eq!(
            tied,
            MannWhitney {
                u: 6.0,
                z: 0.0,
                p_value: 1.0
            }
        );
    }

    #[test]
    fn unsorted_and_repeated_bins_count_like_sorted_ones() {
        let sorted = mann_whitney_greater(&[(1, 1), (2, 2), (3, 1)], &[(2, 1), (3, 2), (4, 1)]);
        let messy = mann_whitney_greater(
            &[(3, 1), (2, 1), (1, 1), (2, 1), (9, 0)],
            &[(4, 1), (3, 1), (2, 1), (3, 1)],
        );
        assert_eq!(sorted, messy);
    }

    #[test]
    fn histogram_bins_below_256_us_are_the_raw_values() {
        let before_raw = [10, 12, 12, 15, 20, 20, 20, 31];
        let after_raw = [12, 15, 20, 25, 31, 31, 40];
        let (mut before, mut after) = (new_histogram(), new_histogram());
        for &v in &before_raw {
            before.record(v).unwrap();
        }
        for &v in &after_raw {
            after.record(v).unwrap();
        }
        let test = mann_whitney_greater(&histogram_bins(&before), &histogram_bins(&after));
        let (u, sigma) = brute_force(&before_raw, &after_raw);
        assert_eq!(test.u, u);
        assert!((test.z - (u - 28.0 - 0.5) / sigma).abs() < 1e-12);
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let big = u64::MAX / 2;
        let test = mann_whitney_greater(&[(1, big), (2, big)], &[(2, big), (3, big)]);
        assert!(
            test.u > 0.0 && test.z > 0.0 && test.p_value < 1e-6,
            "{test:?}"
        );
    }

    fn bins() -> impl Strategy<Value = Vec<(u64, u64)>> {
        prop::collection::vec((1..12u64, 0..5u64), 0..8)
    }

    proptest! {
        #[test]
        fn binned_u_equals_u_over_the_expanded_samples(before in bins(), after in bins()) {
            let test = mann_whitney_greater(&before, &after);
            let (before_raw, after_raw) = (expand(&before), expand(&after));
            if before_raw.is_empty() || after_raw.is_empty() {
                prop_assert_eq!(test.p_value, 1.0);
                return Ok(());
            }
            let (u, sigma) = brute_force(&before_raw, &after_raw);
            prop_assert_eq!(test.u, u);
            let mean = (before_raw.len() * after_raw.len()) as f64 / 2.0;
            if sigma > 0.0 {
                let z = (u - mean - 0.5) / sigma;
                prop_assert!((test.z - z).abs() <= 1e-12 * z.abs().max(1.0), "{} vs {}", test.z, z);
                prop_assert!((test.p_value - normal_sf(z)).abs() <= 1e-12);
            } else {
                prop_assert_eq!(test.p_value, 1.0);
            }
        }
    }
}
