//! Fisher's exact test for 2×2 tables, one-sided.

use super::log_pmf::ln_hypergeometric;
use super::normal::normal_sf;

/// Above this variance of the top-left cell (a standard deviation of 10⁵), the exact sum
/// would add millions of terms, and [`fisher_exact_greater`] uses the normal approximation.
const EXACT_VARIANCE_LIMIT: f64 = 1e10;

/// Returns the one-sided Fisher exact p-value of the 2×2 table `[[a, b], [c, d]]` for the
/// alternative that the odds ratio is above 1 (R's `fisher.test(alternative = "greater")`):
/// the probability, with the row and column totals fixed, of a top-left cell of `a` or more.
/// Put the after-sample in the top row and the events of interest (errors, slow requests) in
/// the left column to test "after has more of them".
///
/// The first hypergeometric term comes from Loader's saddle-point form (precise at any table
/// size, where differences of log-factorials lose every digit at a trillion requests), the
/// others from the ratio of neighbouring terms. When `a` lies above the mode the terms from
/// `a` upward are summed, otherwise the p-value is 1 minus the terms from `a − 1` downward:
/// either way they fall away from the first one, and the sum stops when they no longer
/// change it. The result is within about 1e-13 relative of the exact sum. For
/// tables whose top-left cell has a standard deviation above 10⁵ (balanced totals beyond
/// 10¹¹) it returns the normal approximation with continuity correction instead, which
/// is then accurate far beyond any decision made with it.
///
/// Returns 1.0 for an empty table.
///
/// # Examples
///
/// ```
/// use headlight_collector::compare::stats::fisher_exact_greater;
///
/// // Fisher's lady tasting tea: 3 of 4 milk-first cups named right.
/// let p = fisher_exact_greater(3, 1, 1, 3);
/// assert!((p - 17.0 / 70.0).abs() < 1e-12);
/// ```
pub fn fisher_exact_greater(a: u64, b: u64, c: u64, d: u64) -> f64 {
    let (a, b, c, d) = (u128::from(a), u128::from(b), u128::from(c), u128::from(d));
    let row = a + b;
    let column = a + c;
    let n = row + c + d;
    // The top-left cell ranges over low ..= high with these totals.
    let low = (row + column).saturating_sub(n);
    let high = row.min(column);
    if a <= low {
        return 1.0; // every table with these totals has a top-left cell ≥ a
    }
    // From here the table has two possible cells at least, so n ≥ 2.
    let (row_f, column_f, n_f) = (row as f64, column as f64, n as f64);
    let mean = row_f * column_f / n_f;
    let variance = mean * (n_f - row_f) / n_f * (n_f - column_f) / (n_f - 1.0);
    if variance > EXACT_VARIANCE_LIMIT {
        return normal_sf((a as f64 - 0.5 - mean) / variance.sqrt());
    }

    // P(x) = C(column, x) · C(n − column, row − x) / C(n, row); the ratio of neighbours is
    // P(x + 1) / P(x) = (column − x)(row − x) / ((x + 1)(n − row − column + x + 1)).
    let probability = |x: u128| ln_hypergeometric(x, row, column, n).exp();
    // n − row − column + x, never negative for x ≥ low.
    let fourth_cell = |x: u128| ((n + x) - (row + column)) as f64;
    let mode = ((row_f + 1.0) * (column_f + 1.0) / (n_f + 2.0)).floor() as u128;

    let p = if a > mode {
        // Upper tail P(X ≥ a): the terms fall from a upward.
        let mut x = a;
        let mut term = probability(x);
        let mut sum = term;
        while x < high {
            term *=
                (column - x) as f64 * (row - x) as f64 / ((x + 1) as f64 * (fourth_cell(x) + 1.0));
            x += 1;
            sum += term;
            if term <= sum * 1e-17 {
                break;
            }
        }
        sum
    } else {
        // 1 − P(X ≤ a − 1), the terms falling from a − 1 downward. With a at or below the
        // mode the result is not small, so the subtraction costs no relative precision.
        let mut x = a - 1;
        let mut term = probability(x);
        let mut sum = term;
        while x > low {
            term *= x as f64 * fourth_cell(x) / ((column - x + 1) as f64 * (row - x + 1) as f64);
            x -= 1;
            sum += term;
            if term <= sum * 1e-17 {
                break;
            }
        }
        1.0 - sum
    };
    p.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the one-sided p by summing the exact hypergeometric probabilities as ratios of
    /// binomial coefficients computed in u128 (small tables only).
    fn exact(a: u64, b: u64, c: u64, d: u64) -> f64 {
        fn choose(n: u64, k: u64) -> u128 {
            (0..k).fold(1u128, |acc, i| acc * u128::from(n - i) / u128::from(i + 1))
        }
        let (row, column, n) = (a + b, a + c, a + b + c + d);
        let numerator: u128 = (a..=row.min(column))
            .map(|x| choose(column, x) * choose(n - column, row - x))
            .sum();
        numerator as f64 / choose(n, row) as f64
    }

    #[test]
    fn lady_tasting_tea() {
        // [[3, 1], [1, 3]]: rows and columns total 4 of 8. P(X = 3) = C(4,3)·C(4,1)/C(8,4)
        // = 16/70, P(X = 4) = 1/70, so p = 17/70 = 0.242857…
        let p = fisher_exact_greater(3, 1, 1, 3);
        assert!((p - 17.0 / 70.0).abs() < 1e-13, "{p}");
    }

    #[test]
    fn dieting_example_from_first_principles() {
        // The dieting table [[1, 9], [11, 3]] (men, women × dieting, not) with its columns
        // swapped so that the extreme is the upper tail: [[9, 1], [3, 11]], rows 10 and 14,
        // columns 12 and 12, n = 24, C(24, 10) = 1 961 256.
        // P(X = 9)  = C(12, 9) · C(12, 1) / C(24, 10) = 220 · 12 / 1 961 256 = 2 640 / 1 961 256
        // P(X = 10) = C(12, 10) · C(12, 0) / C(24, 10) = 66 / 1 961 256
        // p = 2 706 / 1 961 256 = 0.0013797280926100417
        let p = fisher_exact_greater(9, 1, 3, 11);
        assert!((p - 2_706.0 / 1_961_256.0).abs() < 1e-12 * p, "{p}");
        // The table as first written asks the other tail: P(X ≥ 1) = 1 − P(X = 0), and
        // P(X = 0) = C(12, 0) · C(12, 10) / C(24, 10) = 66 / 1 961 256.
        let other = fisher_exact_greater(1, 9, 11, 3);
        assert!(
            (other - (1.0 - 66.0 / 1_961_256.0)).abs() < 1e-13,
            "{other}"
        );
    }

    #[test]
    fn edge_tables() {
        assert_eq!(fisher_exact_greater(0, 0, 0, 0), 1.0);
        assert_eq!(fisher_exact_greater(0, 5, 0, 7), 1.0);
        assert_eq!(fisher_exact_greater(0, 3, 4, 2), 1.0);
        // All mass in the top-left: P(X ≥ 5) with rows 5/5 and columns 5/5 is 1/C(10, 5).
        let p = fisher_exact_greater(5, 0, 0, 5);
        assert!((p - 1.0 / 252.0).abs() < 1e-13, "{p}");
        // A single possible table.
        assert_eq!(fisher_exact_greater(3, 0, 0, 0), 1.0);
        assert_eq!(fisher_exact_greater(u64::MAX, 0, 0, 0), 1.0);
    }

    #[test]
    fn matches_exact_sums_on_every_small_table() {
        for a in 0..7 {
            for b in 0..7 {
                for c in 0..7 {
                    for d in 0..7 {
                        let (got, want) = (fisher_exact_greater(a, b, c, d), exact(a, b, c, d));
                        assert!(
                            (got - want).abs() <= 1e-12 * want.max(1e-300),
                            "[[{a}, {b}], [{c}, {d}]]: {got} vs {want}"
                        );
                    }
                }
            }
        }
        // Larger tables on both sides of the mode.
        for (a, b, c, d) in [
            (30, 10, 12, 28),
            (12, 28, 30, 10),
            (20, 20, 20, 20),
            (2, 40, 1, 45),
        ] {
            let (got, want) = (fisher_exact_greater(a, b, c, d), exact(a, b, c, d));
            assert!((got - want).abs() <= 1e-11 * want, "{got} vs {want}");
        }
    }

    #[test]
    fn huge_tables_stay_precise_and_quick() {
        let n = 1_000_000_000_000u64;
        // 3 errors, all after, in 10¹² requests on each side: exact,
        // (n + 3)(n + 2)(n + 1) / ((2n + 3)(2n + 2)(2n + 1)) = 0.125000000000375.
        let p = fisher_exact_greater(3, n, 0, n);
        assert!((p - 0.125_000_000_000_375).abs() < 1e-13, "{p}");
        // Balanced halves of 10¹² per side: σ of the cell = √(n/8) ≈ 353 553, so the
        // normal approximation. 10⁷ more after is z ≈ 28; none more is p ≈ ½.
        let k = 10_000_000;
        let p = fisher_exact_greater(n / 2 + k, n / 2 - k, n / 2 - k, n / 2 + k);
        assert!(p < 1e-100, "{p}");
        let p = fisher_exact_greater(n / 2, n / 2, n / 2, n / 2);
        assert!((p - 0.5).abs() < 1e-5, "{p}");
        // Just below the limit (σ = √(m/8 · 2m/(2m − 1)) ≈ 35 355 for halves of m = 10¹⁰),
        // the exact sum over some 10⁵ terms: symmetric totals, so it agrees with the
        // normal approximation to O(1/σ²).
        let m = 10_000_000_000u64;
        let k = 50_000;
        let exact = fisher_exact_greater(m / 2 + k, m / 2 - k, m / 2 - k, m / 2 + k);
        let m_f = m as f64;
        let sigma = (m_f / 8.0 * (2.0 * m_f) / (2.0 * m_f - 1.0)).sqrt();
        let normal = normal_sf((k as f64 - 0.5) / sigma);
        assert!(
            (exact - normal).abs() < 1e-6 * normal,
            "{exact} vs {normal}"
        );
        let exact_low = fisher_exact_greater(m / 2 - k, m / 2 + k, m / 2 + k, m / 2 - k);
        let normal_low = normal_sf((-(k as f64) - 0.5) / sigma);
        assert!(
            (exact_low - normal_low).abs() < 1e-6,
            "{exact_low} vs {normal_low}"
        );
    }
}
