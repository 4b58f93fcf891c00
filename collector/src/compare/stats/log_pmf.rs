//! Logarithms of binomial and hypergeometric probabilities that keep their precision for
//! any counts (C. Loader, "Fast and accurate computation of binomial probabilities", 2000,
//! as in R's `dbinom` and `dhyper`).
//!
//! The naive ln C(n, k) = ln n! − ln k! − ln (n − k)! subtracts numbers of size n ln n, so
//! at a trillion requests it loses every digit of a probability. Loader's form writes each
//! probability as a saddle-point term plus Stirling-series corrections, all of them small.

use std::f64::consts::PI;

/// ln √(2π).
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_7;

/// Returns ln P(X = x) for X the top-left cell of a 2×2 table with the given `row` and
/// `column` totals out of `n`, the totals fixed (hypergeometric). Returns −∞ for an `x`
/// outside the support.
pub(crate) fn ln_hypergeometric(x: u128, row: u128, column: u128, n: u128) -> f64 {
    if x > row || x > column || row > n || column > n || row - x > n - column {
        return f64::NEG_INFINITY;
    }
    // P(X = x) = b(x; column, p) · b(row − x; n − column, p) / b(row; n, p) for any p;
    // p = row / n puts the denominator at its mode, where it is largest.
    let p = row as f64 / n as f64;
    let q = (n - row) as f64 / n as f64;
    ln_binomial(x, column, p, q) + ln_binomial(row - x, n - column, p, q)
        - ln_binomial(row, n, p, q)
}

/// Returns ln P(X = x) for X binomial with `n` trials of success probability `p` (and
/// `q` = 1 − p, passed separately so that neither loses digits near 0). Returns −∞ for
/// impossible outcomes.
pub(crate) fn ln_binomial(x: u128, n: u128, p: f64, q: f64) -> f64 {
    if x > n {
        return f64::NEG_INFINITY;
    }
    let (x_f, n_f) = (x as f64, n as f64);
    if x == 0 {
        if n == 0 {
            return 0.0;
        }
        return if p < 0.1 {
            -deviance(n_f, n_f * q) - n_f * p
        } else {
            n_f * q.ln()
        };
    }
    if x == n {
        return if q < 0.1 {
            -deviance(n_f, n_f * p) - n_f * q
        } else {
            n_f * p.ln()
        };
    }
    if p <= 0.0 || q <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let rest = (n - x) as f64;
    let saddle = stirling_error(n)
        - stirling_error(x)
        - stirling_error(n - x)
        - deviance(x_f, n_f * p)
        - deviance(rest, n_f * q);
    // ½ ln(2π x (n − x) / n)
    let spread = 0.5 * ((2.0 * PI).ln() + x_f.ln() + (-x_f / n_f).ln_1p());
    saddle - spread
}

/// Returns the error of Stirling's formula, ln n! − (ln √(2π) + (n + ½) ln n − n); 0 for
/// n = 0 by convention. Up to 15, from n! itself (exact in f64 up to 18!); above, from the
/// Stirling series 1/(12n) − 1/(360n³) + 1/(1260n⁵) − 1/(1680n⁷) + 1/(1188n⁹), cut as R does.
fn stirling_error(n: u128) -> f64 {
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    if n == 0 {
        return 0.0;
    }
    let n_f = n as f64;
    if n <= 15 {
        let factorial: u64 = (1..=n as u64).product();
        return (factorial as f64).ln() - LN_SQRT_2PI - (n_f + 0.5) * n_f.ln() + n_f;
    }
    let nn = n_f * n_f;
    let series = if n > 500 {
        S0 - S1 / nn
    } else if n > 80 {
        S0 - (S1 - S2 / nn) / nn
    } else if n > 35 {
        S0 - (S1 - (S2 - S3 / nn) / nn) / nn
    } else {
        S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn
    };
    series / n_f
}

/// Returns the deviance term x ln(x / m) + m − x, computed without cancellation when x is
/// near m (a series in v = (x − m)/(x + m)). Expects x > 0 and m > 0.
fn deviance(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let v = (x - m) / (x + m);
        let v2 = v * v;
        let mut sum = (x - m) * v;
        let mut term = 2.0 * x * v;
        for j in 1..1000 {
            term *= v2;
            let next = sum + term / f64::from(2 * j + 1);
            if next == sum {
                return next;
            }
            sum = next;
        }
        return sum;
    }
    x * (x / m).ln() + m - x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(got: f64, want: f64, absolute: f64) {
        assert!((got - want).abs() <= absolute, "got {got}, want {want}");
    }

    #[test]
    fn stirling_error_at_known_points() {
        // ln Γ(n + 1) − (n + ½) ln n + n − ln √(2π) with mpmath at 30 digits.
        for (n, want) in [
            (1, 0.081_061_466_795_327_26),
            (2, 0.041_340_695_955_409_29),
            (15, 0.005_554_733_551_962_801),
            (16, 0.005_207_655_919_609_64),
            (36, 0.002_314_755_290_514_684),
            (81, 0.001_028_801_357_710_777_5),
            (501, 0.000_166_333_976_579_932_7),
            (1_000_000, 8.333_333_333_333_056e-8),
        ] {
            assert_close(stirling_error(n), want, 2e-14);
        }
        assert_eq!(stirling_error(0), 0.0);
    }

    #[test]
    fn binomial_probabilities() {
        // C(10, 3) · 0.3³ · 0.7⁷ = 0.266827932
        assert_close(
            ln_binomial(3, 10, 0.3, 0.7),
            -1.321_151_277_766_888_6,
            1e-14,
        );
        assert_close(ln_binomial(0, 10, 0.3, 0.7), 10.0 * 0.7_f64.ln(), 1e-14);
        assert_close(ln_binomial(10, 10, 0.3, 0.7), 10.0 * 0.3_f64.ln(), 1e-13);
        assert_close(ln_binomial(0, 10, 0.01, 0.99), 10.0 * 0.99_f64.ln(), 1e-15);
        assert_eq!(ln_binomial(0, 0, 0.3, 0.7), 0.0);
        assert_eq!(ln_binomial(11, 10, 0.3, 0.7), f64::NEG_INFINITY);
        // ln(C(10⁶, 5·10⁵) / 2¹⁰⁰⁰⁰⁰⁰): the naive form subtracts numbers near 1.4·10⁷.
        assert_close(
            ln_binomial(500_000, 1_000_000, 0.5, 0.5),
            -7.133_546_881_626_864,
            1e-13,
        );
    }

    #[test]
    fn hypergeometric_probabilities() {
        // Rows 10 of 24, columns 12 of 24: P(X = 9) = C(12, 9)·C(12, 1)/C(24, 10).
        assert_close(
            ln_hypergeometric(9, 10, 12, 24),
            (2_640.0_f64 / 1_961_256.0).ln(),
            1e-13,
        );
        assert_eq!(ln_hypergeometric(11, 10, 12, 24), f64::NEG_INFINITY);
        assert_eq!(ln_hypergeometric(0, 20, 12, 24), f64::NEG_INFINITY);
        // 3 errors among 2·10¹² + 3 requests, all 3 in the first 10¹² + 3:
        // (n + 3)(n + 2)(n + 1) / ((2n + 3)(2n + 2)(2n + 1)) = 0.125000000000375
        let n = 1_000_000_000_000u128;
        let p = ln_hypergeometric(3, n + 3, 3, 2 * n + 3).exp();
        assert!((p - 0.125_000_000_000_375).abs() < 1e-13, "{p}");
    }

    #[test]
    fn deviance_near_and_far() {
        assert_eq!(deviance(5.0, 5.0), 0.0);
        let (x, m) = (1_000.0_f64, 1_001.0_f64);
        let want = x * (x / m).ln() + m - x; // ≈ 5e-4, fine to 1e-12 here
        assert_close(deviance(x, m), want, 1e-12);
        assert_close(deviance(10.0, 2.0), 10.0 * 5.0_f64.ln() - 8.0, 1e-13);
    }
}
