//! One-sided tests that a proportion went up: the share of slow requests (the tail) and the
//! error rate.

use super::bins::{count_above, total};
use super::fisher::fisher_exact_greater;
use super::normal::normal_sf;

/// Below this smallest expected cell count of the 2×2 table, the z test's normal
/// approximation is poor and Fisher's exact test is used instead.
const MIN_EXPECTED: f64 = 5.0;

/// Error rates of samples this small on both sides are tested exactly (Fisher) whatever the
/// expected counts: it is cheap there, and the z test is least trustworthy.
const EXACT_ERROR_SAMPLES: u64 = 1_000;

/// The result of a one-sided test that a share went up from the before- to the after-sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proportion {
    /// The share of the before-sample counted, 0..=1 (0 for an empty sample).
    pub before_share: f64,
    /// The share of the after-sample counted, 0..=1 (0 for an empty sample).
    pub after_share: f64,
    /// The one-sided p-value for "the after share is larger".
    pub p_value: f64,
}

/// Tests whether a larger share of `after` than of `before` lies strictly above
/// `threshold_us` — typically the before-sample's p95 or p99 from
/// [`quantile_us`](crate::aggregate::histogram::quantile_us), which is the value of one of its
/// bins, so that bin is not counted as above. Catches "5 % of requests got 3× slower", which
/// leaves the median where it was.
///
/// The p-value is Fisher's exact test when the 2×2 table (sample × above/not) has an
/// expected cell count below 5, and the pooled two-proportion z test otherwise. An empty
/// side gives p = 1.
///
/// # Examples
///
/// ```
/// use headlight_collector::compare::stats::tail_test;
///
/// let before = [(20_000, 1_900), (90_000, 100)]; // 5 % above 20 ms
/// let after = [(20_000, 1_700), (90_000, 300)]; // 15 % above 20 ms
/// let tail = tail_test(&before, &after, 20_000);
/// assert_eq!((tail.before_share, tail.after_share), (0.05, 0.15));
/// assert!(tail.p_value < 1e-20);
/// ```
pub fn tail_test(before: &[(u64, u64)], after: &[(u64, u64)], threshold_us: u64) -> Proportion {
    let (before_n, after_n) = (total(before), total(after));
    let (before_above, after_above) = (
        count_above(before, threshold_us),
        count_above(after, threshold_us),
    );
    let p_value = if min_expected(before_above, before_n, after_above, after_n) < MIN_EXPECTED {
        fisher_greater(before_above, before_n, after_above, after_n)
    } else {
        z_greater(before_above, before_n, after_above, after_n)
    };
    Proportion {
        before_share: share(before_above, before_n),
        after_share: share(after_above, after_n),
        p_value,
    }
}

/// Returns the one-sided p-value for "the after error rate is higher": Fisher's exact test
/// when both samples have at most 1 000 transactions or the 2×2 table has an expected cell
/// count below 5, and the pooled two-proportion z test otherwise. Error counts above their
/// sample size are taken as the size; an empty side gives 1.0.
///
/// # Examples
///
/// ```
/// use headlight_collector::compare::stats::error_rate_test;
///
/// // 0 of 500 failed before the deploy, 5 of 500 after: Fisher, p ≈ 0.031.
/// let p = error_rate_test(0, 500, 5, 500);
/// assert!((p - 0.030_937_657_818).abs() < 1e-10);
/// ```
pub fn error_rate_test(before_errors: u64, before_n: u64, after_errors: u64, after_n: u64) -> f64 {
    let (before_errors, after_errors) = (before_errors.min(before_n), after_errors.min(after_n));
    let (b_x, b_n) = (u128::from(before_errors), u128::from(before_n));
    let (a_x, a_n) = (u128::from(after_errors), u128::from(after_n));
    let small = before_n <= EXACT_ERROR_SAMPLES && after_n <= EXACT_ERROR_SAMPLES;
    if small || min_expected(b_x, b_n, a_x, a_n) < MIN_EXPECTED {
        fisher_greater(b_x, b_n, a_x, a_n)
    } else {
        z_greater(b_x, b_n, a_x, a_n)
    }
}

/// Returns the one-sided p-value of the pooled two-proportion z test that the share
/// `after_hits / after_n` is larger than `before_hits / before_n`:
/// z = (p̂_after − p̂_before) / √(p̂(1 − p̂)(1/n_before + 1/n_after)) with p̂ the pooled share,
/// p = 1 − Φ(z), no continuity correction. Hits above their sample size are taken as the
/// size; an empty side, or a pooled share of 0 or 1, gives 1.0.
pub fn two_proportion_z_greater(
    before_hits: u64,
    before_n: u64,
    after_hits: u64,
    after_n: u64,
) -> f64 {
    z_greater(
        u128::from(before_hits.min(before_n)),
        u128::from(before_n),
        u128::from(after_hits.min(after_n)),
        u128::from(after_n),
    )
}

fn z_greater(before_hits: u128, before_n: u128, after_hits: u128, after_n: u128) -> f64 {
    if before_n == 0 || after_n == 0 {
        return 1.0;
    }
    let (x1, n1, x2, n2) = (
        before_hits as f64,
        before_n as f64,
        after_hits as f64,
        after_n as f64,
    );
    let pooled = (x1 + x2) / (n1 + n2);
    let standard_error = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    // A pooled share of 0 or 1: both samples are all misses or all hits.
    if standard_error.is_nan() || standard_error <= 0.0 {
        return 1.0;
    }
    normal_sf((x2 / n2 - x1 / n1) / standard_error)
}

/// Runs [`fisher_exact_greater`] on the table [[after hits, after misses], [before hits,
/// before misses]], so that the upper tail is "more hits after".
fn fisher_greater(before_hits: u128, before_n: u128, after_hits: u128, after_n: u128) -> f64 {
    if before_n == 0 || after_n == 0 {
        return 1.0;
    }
    // Sums of u64 counts beyond u64::MAX saturate; such tables never reach Fisher in practice
    // (their expected counts are huge).
    let cell = |x: u128| u64::try_from(x).unwrap_or(u64::MAX);
    fisher_exact_greater(
        cell(after_hits),
        cell(after_n - after_hits),
        cell(before_hits),
        cell(before_n - before_hits),
    )
}

/// Returns the smallest expected cell count of the 2×2 table (sample × hit/miss) under equal
/// shares: the smaller sample times the rarer outcome over the total.
fn min_expected(before_hits: u128, before_n: u128, after_hits: u128, after_n: u128) -> f64 {
    let n = before_n + after_n;
    if n == 0 {
        return 0.0;
    }
    let hits = before_hits + after_hits;
    let rarer = hits.min(n - hits);
    before_n.min(after_n) as f64 * rarer as f64 / n as f64
}

fn share(hits: u128, n: u128) -> f64 {
    if n == 0 { 0.0 } else { hits as f64 / n as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_relative(got: f64, want: f64, relative: f64) {
        assert!(
            (got - want).abs() <= relative * want.abs(),
            "got {got:e}, want {want:e}"
        );
    }

    #[test]
    fn tail_shares_are_exact_and_the_threshold_bin_is_not_above() {
        let before = [(100, 90), (200, 5), (300, 5)];
        let after = [(300, 15), (100, 80), (200, 5), (400, 0)];
        let tail = tail_test(&before, &after, 200);
        assert_eq!(tail.before_share, 0.05);
        assert_eq!(tail.after_share, 0.15);
        // 20 hits of 200: expected cells 10, so the z test.
        assert_eq!(tail.p_value, two_proportion_z_greater(5, 100, 15, 100));
    }

    #[test]
    fn five_to_fifteen_percent_at_two_thousand_is_significant() {
        // p̂ = 0.05 → 0.15, n = 2 000 each: pooled 0.1, se = √(0.1 · 0.9 · 2/2 000)
        // = 0.0094868, z = 0.1/0.0094868 = 10.540926, p = 2.7972786180957626e-26 (mpmath).
        let before = [(1_000, 1_900), (5_000, 100)];
        let after = [(1_000, 1_700), (5_000, 300)];
        let tail = tail_test(&before, &after, 1_000);
        assert_eq!((tail.before_share, tail.after_share), (0.05, 0.15));
        assert_relative(tail.p_value, 2.797_278_618_095_762_6e-26, 1.2e-7);
    }

    #[test]
    fn equal_shares_are_not_significant() {
        let sample = [(1_000, 1_900), (5_000, 100)];
        let tail = tail_test(&sample, &sample, 1_000);
        assert!((tail.p_value - 0.5).abs() < 1e-7, "z = 0: {tail:?}");
        // A smaller after share: p near 1.
        let better = tail_test(&sample, &[(1_000, 1_950), (5_000, 50)], 1_000);
        assert!(better.p_value > 0.99, "{better:?}");
    }

    #[test]
    fn small_tails_use_fisher() {
        // 2 of 20 above before, 6 of 20 after: 8 hits of 40, expected 20 · 8/40 = 4 < 5.
        // P(X ≥ 6) for [[6, 14], [2, 18]] = 0.11755811755811756 (mpmath, exact sum).
        let tail = tail_test(&[(10, 18), (50, 2)], &[(10, 14), (50, 6)], 10);
        assert_eq!((tail.before_share, tail.after_share), (0.1, 0.3));
        assert_eq!(tail.p_value, fisher_exact_greater(6, 14, 2, 18));
        assert_relative(tail.p_value, 0.117_558_117_558_117_56, 1e-12);
    }

    #[test]
    fn empty_tails_are_no_evidence() {
        let none = tail_test(&[], &[(1, 5)], 0);
        assert_eq!((none.before_share, none.after_share), (0.0, 1.0));
        assert_eq!(none.p_value, 1.0);
        assert_eq!(tail_test(&[(1, 5)], &[], 0).p_value, 1.0);
        assert_eq!(tail_test(&[(1, 0)], &[(1, 0)], 0).p_value, 1.0);
        // Nothing above the threshold on either side.
        assert_eq!(tail_test(&[(1, 5)], &[(1, 5)], 1).p_value, 1.0);
    }

    #[test]
    fn error_rates_small_samples_use_fisher() {
        // [[5, 495], [0, 500]]: P(X = 5) = (500 · 499 · 498 · 497 · 496)
        // / (1 000 · 999 · 998 · 997 · 996) = 0.030937657818299744.
        assert_relative(
            error_rate_test(0, 500, 5, 500),
            0.030_937_657_818_299_744,
            1e-12,
        );
        // 3/200 vs 1/200: [[3, 197], [1, 199]], P(X ≥ 3) = 0.31155659930683131.
        assert_relative(
            error_rate_test(1, 200, 3, 200),
            0.311_556_599_306_831_3,
            1e-12,
        );
    }

    #[test]
    fn error_rates_rare_errors_in_large_samples_use_fisher() {
        // 0 of 100 000 before, 4 of 100 000 after: expected 2 per side, so Fisher:
        // P(X = 4) = n(n − 1)(n − 2)(n − 3) / (2n(2n − 1)(2n − 2)(2n − 3)) = 0.062498124995312547
        let p = error_rate_test(0, 100_000, 4, 100_000);
        assert_relative(p, 0.062_498_124_995_312_55, 1e-12);
    }

    #[test]
    fn error_rates_large_samples_use_the_z_test() {
        // 10/5 000 → 30/5 000: pooled 0.004, se = √(0.004 · 0.996 · 2/5 000) = 0.00126238,
        // z = 0.004/0.00126238 = 3.1686213, p = 7.6581923004264497e-4 (mpmath).
        let p = error_rate_test(10, 5_000, 30, 5_000);
        assert_eq!(p, two_proportion_z_greater(10, 5_000, 30, 5_000));
        assert_relative(p, 7.658_192_300_426_45e-4, 2e-7);
    }

    #[test]
    fn error_rates_degenerate_inputs() {
        assert_eq!(error_rate_test(0, 0, 0, 0), 1.0);
        assert_eq!(error_rate_test(0, 0, 5, 10), 1.0);
        assert_eq!(error_rate_test(0, 5_000, 0, 5_000), 1.0);
        assert_eq!(two_proportion_z_greater(0, 5_000, 0, 5_000), 1.0);
        assert_eq!(two_proportion_z_greater(5_000, 5_000, 5_000, 5_000), 1.0);
        assert_eq!(two_proportion_z_greater(1, 0, 1, 10), 1.0);
        // More errors than transactions count as all of them.
        assert_eq!(error_rate_test(9, 5, 5, 5), error_rate_test(5, 5, 5, 5));
        assert_eq!(error_rate_test(u64::MAX, u64::MAX, u64::MAX, u64::MAX), 1.0);
    }
}
