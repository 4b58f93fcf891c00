//! The Benjamini–Hochberg procedure: controls the false discovery rate over the
//! transactions of one comparison.

/// Returns the Benjamini–Hochberg adjusted p-values (q-values), in the order given:
/// for the i-th smallest of m p-values, min over j ≥ i of min(1, p₍ⱼ₎ · m / j). They are
/// monotone in the p-values and capped at 1. NaN p-values count as 1, and p-values outside
/// 0..=1 are clamped into it.
///
/// # Examples
///
/// ```
/// use headlight_collector::compare::stats::bh_adjusted;
///
/// let q = bh_adjusted(&[0.01, 0.04, 0.03, 0.005, 0.5]);
/// assert_eq!(q[4], 0.5);
/// ```
pub fn bh_adjusted(p_values: &[f64]) -> Vec<f64> {
    let clean = |p: f64| if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) };
    let m = p_values.len() as f64;
    let mut order: Vec<usize> = (0..p_values.len()).collect();
    order.sort_by(|&i, &j| clean(p_values[i]).total_cmp(&clean(p_values[j])));
    let mut adjusted = vec![1.0; p_values.len()];
    let mut smallest_above = 1.0_f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        let scaled = clean(p_values[i]) * m / (rank + 1) as f64;
        smallest_above = smallest_above.min(scaled);
        adjusted[i] = smallest_above;
    }
    adjusted
}

/// Returns which hypotheses the Benjamini–Hochberg step-up procedure rejects at false
/// discovery rate `fdr` (design.md's default is 0.01), in the order given: those whose
/// adjusted p-value ([`bh_adjusted`]) is at most `fdr` — the same set as rejecting the k
/// smallest p-values for the largest k with p₍ₖ₎ ≤ k · fdr / m. A NaN `fdr` rejects none.
///
/// # Examples
///
/// ```
/// use headlight_collector::compare::stats::benjamini_hochberg;
///
/// let rejected = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005, 0.5], 0.05);
/// assert_eq!(rejected, [true, true, true, true, false]);
/// ```
pub fn benjamini_hochberg(p_values: &[f64], fdr: f64) -> Vec<bool> {
    bh_adjusted(p_values)
        .into_iter()
        .map(|q| q <= fdr)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_all_close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn a_known_list_by_hand() {
        // p = [0.01, 0.04, 0.03, 0.005, 0.5], m = 5. Sorted with ranks and p · m / rank:
        //   0.005 (#4) · 5/1 = 0.025
        //   0.01  (#1) · 5/2 = 0.025
        //   0.03  (#3) · 5/3 = 0.05
        //   0.04  (#2) · 5/4 = 0.05
        //   0.5   (#5) · 5/5 = 0.5
        // Running minimum from the largest: 0.5, 0.05, 0.05, 0.025, 0.025.
        // Step-up at 0.05: thresholds k · 0.05/5 = 0.01 0.02 0.03 0.04 0.05; the largest k
        // with p₍ₖ₎ ≤ threshold is k = 4 (0.04 ≤ 0.04), so the four smallest are rejected.
        let p = [0.01, 0.04, 0.03, 0.005, 0.5];
        assert_all_close(&bh_adjusted(&p), &[0.025, 0.05, 0.05, 0.025, 0.5]);
        assert_eq!(
            benjamini_hochberg(&p, 0.05),
            [true, true, true, true, false]
        );
        // At 0.01 (design.md's default), none: p₍₁₎ = 0.005 > 1 · 0.01/5 = 0.002.
        assert_eq!(benjamini_hochberg(&p, 0.01), [false; 5]);
        // At 0.03, the two with q = 0.025.
        assert_eq!(
            benjamini_hochberg(&p, 0.03),
            [true, false, false, true, false]
        );
    }

    #[test]
    fn a_large_p_value_lifts_nothing_and_the_cap_is_one() {
        // 0.9 · 3/2 = 1.35 is capped at 1; the step-up lets 0.02 · 3/1 = 0.06 stand.
        assert_all_close(&bh_adjusted(&[0.9, 0.02, 0.95]), &[0.95, 0.06, 0.95]);
        assert_all_close(&bh_adjusted(&[1.0, 1.0]), &[1.0, 1.0]);
    }

    #[test]
    fn ties_share_their_adjusted_value() {
        // 0.01 · 3/1 = 0.03 and 0.01 · 3/2 = 0.015: both take 0.015.
        assert_all_close(&bh_adjusted(&[0.01, 0.2, 0.01]), &[0.015, 0.2, 0.015]);
    }

    #[test]
    fn odd_inputs() {
        assert!(bh_adjusted(&[]).is_empty());
        assert!(benjamini_hochberg(&[], 0.05).is_empty());
        assert_all_close(&bh_adjusted(&[0.004]), &[0.004]);
        // NaN counts as 1, values outside 0..=1 are clamped.
        assert_all_close(
            &bh_adjusted(&[f64::NAN, -0.5, 0.01, 7.0]),
            &[1.0, 0.0, 0.02, 1.0],
        );
        assert_eq!(benjamini_hochberg(&[0.001], f64::NAN), [false]);
    }

    #[test]
    fn adjusted_values_are_monotone_in_the_p_values() {
        let p: Vec<f64> = (0..200u32)
            .map(|i| f64::from(i.wrapping_mul(2_654_435_761) % 10_007) / 10_007.0)
            .collect();
        let q = bh_adjusted(&p);
        for i in 0..p.len() {
            assert!(q[i] >= p[i] && q[i] <= 1.0);
            for j in 0..p.len() {
                if p[i] < p[j] {
                    assert!(
                        q[i] <= q[j],
                        "p {} < {} but q {} > {}",
                        p[i],
                        p[j],
                        q[i],
                        q[j]
                    );
                }
            }
        }
    }
}
