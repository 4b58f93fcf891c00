//! The verdict on each transaction of a comparison (design.md §5): the shift, tail and error
//! tests on the two samples, Benjamini–Hochberg across the transactions, the noise gates, and
//! the reasons a person reads.
//!
//! [`judge`] is a pure function of the samples and the [`Settings`]: the collector's reports
//! and the accuracy harness in `benches/` run exactly this code.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::stats::{
    ShiftEstimate, bh_adjusted, error_rate_test, histogram_bins, hodges_lehmann,
    mann_whitney_greater, tail_test,
};
use crate::aggregate::histogram::{LatencyStats, quantile_us};
use crate::model::SpanKind;

/// The thresholds of a comparison. The defaults are design.md §5's.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Fewest transactions on each side for a verdict other than `insufficient_data`;
    /// default 100.
    pub min_samples: u64,
    /// Smallest relative latency change that counts, as a fraction (0.10 = 10 %) of the
    /// before-sample's median (for the shift) or p95/p99 (for the tail); default 0.10.
    pub min_relative_change: f64,
    /// Smallest absolute latency change that counts, ms; default 1.
    pub min_absolute_change_ms: f64,
    /// Smallest error-rate change that counts, percentage points; default 0.5.
    pub min_error_rate_change_pp: f64,
    /// False discovery rate of the Benjamini–Hochberg correction over all tests of all
    /// transactions of one comparison; default 0.01.
    pub fdr: f64,
    /// Confidence level of the shift's interval; default 0.98 (Kayenta's).
    pub confidence: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            min_samples: 100,
            min_relative_change: 0.10,
            min_absolute_change_ms: 1.0,
            min_error_rate_change_pp: 0.5,
            fdr: 0.01,
            confidence: 0.98,
        }
    }
}

impl Settings {
    /// Checks the ranges; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let fraction = |v: f64| v.is_finite() && v >= 0.0;
        if self.min_samples == 0 {
            return Err("min_samples must be at least 1".into());
        }
        if !fraction(self.min_relative_change) {
            return Err("min_relative_change must be a non-negative number".into());
        }
        if !fraction(self.min_absolute_change_ms) {
            return Err("min_absolute_change_ms must be a non-negative number".into());
        }
        if !fraction(self.min_error_rate_change_pp) || self.min_error_rate_change_pp > 100.0 {
            return Err("min_error_rate_change_pp must be within 0..=100".into());
        }
        if !(self.fdr > 0.0 && self.fdr < 1.0) {
            return Err("fdr must be within (0, 1)".into());
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err("confidence must be within (0, 1)".into());
        }
        Ok(())
    }
}

/// A child operation in the breakdown: span name and kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperationKey {
    /// The span name.
    pub operation: String,
    /// The span kind.
    pub kind: SpanKind,
}

/// One side of a comparison for one transaction: its latency statistics and, per operation,
/// the summed self time of its spans in those transactions (µs), from the breakdown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Side {
    /// The transactions.
    pub stats: LatencyStats,
    /// Self time per operation, µs, summed over the side's transactions.
    pub self_us: BTreeMap<OperationKey, u64>,
}

/// One transaction's two samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// The transaction name.
    pub transaction: String,
    /// Before the deploy, the baseline version, or the earlier period.
    pub before: Side,
    /// After the deploy, the canary version, or the later period.
    pub after: Side,
}

/// The verdict on a transaction or a whole comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Significantly and materially slower, or failing more often.
    Regression,
    /// Too few transactions on a side to say.
    InsufficientData,
    /// Significantly and materially faster or failing less, and no regression.
    Improvement,
    /// Neither.
    NoChange,
}

impl Verdict {
    /// The snake_case name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Regression => "regression",
            Self::InsufficientData => "insufficient_data",
            Self::Improvement => "improvement",
            Self::NoChange => "no_change",
        }
    }
}

/// Summary of one side of a transaction.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SideSummary {
    /// Transactions.
    pub count: u64,
    /// Error transactions.
    pub errors: u64,
    /// Exact mean duration, ms; `null` when empty.
    pub mean_ms: Option<f64>,
    /// Median, ms (within 1 %); `null` when empty.
    pub p50_ms: Option<f64>,
    /// 95th percentile, ms.
    pub p95_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Errors / count; `null` when empty.
    pub error_rate: Option<f64>,
}

/// How the after side differs from the before side. `null` where a side is empty.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Change {
    /// Relative change of the median, %.
    pub p50_pct: Option<f64>,
    /// Relative change of the p95, %.
    pub p95_pct: Option<f64>,
    /// Relative change of the p99, %.
    pub p99_pct: Option<f64>,
    /// Error rate change, percentage points.
    pub error_rate_pp: Option<f64>,
    /// Hodges–Lehmann shift of the whole distribution, ms (after − before).
    pub shift_ms: Option<f64>,
    /// Lower end of the shift's confidence interval, ms.
    pub shift_low_ms: Option<f64>,
    /// Upper end of the shift's confidence interval, ms.
    pub shift_high_ms: Option<f64>,
}

/// One-sided p-values for "worse after": the shift (Mann–Whitney), the tail (share above the
/// before-sample's p95 or p99, the smaller p-value doubled), the error rate.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct PValues {
    /// Mann–Whitney U, one-sided "after is slower".
    pub shift: f64,
    /// Tail test at the before p95 and p99 (Bonferroni over the two).
    pub tail: f64,
    /// Error-rate test (Fisher exact for small samples).
    pub errors: f64,
}

/// An operation whose mean self time per transaction grew.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Suspect {
    /// Span name.
    pub operation: String,
    /// Span kind.
    pub kind: String,
    /// Mean self time per transaction before, ms.
    pub before_self_ms: f64,
    /// Mean self time per transaction after, ms.
    pub after_self_ms: f64,
    /// `after_self_ms − before_self_ms`.
    pub added_ms: f64,
    /// Share of the mean duration's increase this operation explains (may exceed 1 when
    /// other operations got faster).
    pub share_of_added: Option<f64>,
}

/// The verdict on one transaction, as reported.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TransactionVerdict {
    /// The transaction name.
    pub transaction: String,
    /// The before side.
    pub before: SideSummary,
    /// The after side.
    pub after: SideSummary,
    /// The changes.
    pub change: Change,
    /// Raw one-sided p-values for "worse after".
    pub p_values: PValues,
    /// The same after the Benjamini–Hochberg correction over the comparison.
    pub p_values_adjusted: PValues,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in sentences a person reads.
    pub reasons: Vec<String>,
    /// Operations whose mean self time per transaction grew most, largest first (at most 5).
    pub suspects: Vec<Suspect>,
}

/// At most this many suspects are reported per transaction.
const MAX_SUSPECTS: usize = 5;

/// The tests of one transaction in one direction (worse or better).
#[derive(Debug, Clone, Copy)]
struct Tests {
    shift: f64,
    tail: f64,
    errors: f64,
    /// Which threshold gave the tail p-value: the before p95 (`false`) or p99 (`true`).
    tail_at_p99: bool,
}

/// What is computed for a transaction with enough data on both sides.
#[derive(Debug)]
struct Measured {
    shift: Option<ShiftEstimate>,
    worse: Tests,
    better: Tests,
    tail_shares: [(f64, f64); 2],
    median_us: u64,
    quantiles: [(u64, u64); 3],
}

fn measure(before: &LatencyStats, after: &LatencyStats, confidence: f64) -> Measured {
    let b = histogram_bins(&before.histogram);
    let a = histogram_bins(&after.histogram);
    let q = |s: &LatencyStats, p| quantile_us(&s.histogram, p);
    let quantiles = [0.50, 0.95, 0.99].map(|p| (q(before, p), q(after, p)));
    let tail95 = tail_test(&b, &a, quantiles[1].0);
    let tail99 = tail_test(&b, &a, quantiles[2].0);
    let tail95_better = tail_test(&a, &b, quantiles[1].0);
    let tail99_better = tail_test(&a, &b, quantiles[2].0);
    let tail = |p95: f64, p99: f64| ((2.0 * p95.min(p99)).min(1.0), p99 < p95);
    let (worse_tail, worse_at_p99) = tail(tail95.p_value, tail99.p_value);
    let (better_tail, better_at_p99) = tail(tail95_better.p_value, tail99_better.p_value);
    Measured {
        shift: hodges_lehmann(&b, &a, confidence),
        worse: Tests {
            shift: mann_whitney_greater(&b, &a).p_value,
            tail: worse_tail,
            errors: error_rate_test(before.errors, before.count, after.errors, after.count),
            tail_at_p99: worse_at_p99,
        },
        better: Tests {
            shift: mann_whitney_greater(&a, &b).p_value,
            tail: better_tail,
            errors: error_rate_test(after.errors, after.count, before.errors, before.count),
            tail_at_p99: better_at_p99,
        },
        tail_shares: [
            (tail95.before_share, tail95.after_share),
            (tail99.before_share, tail99.after_share),
        ],
        median_us: quantiles[0].0,
        quantiles,
    }
}

/// Judges every transaction of one comparison and returns the verdicts, in input order, and
/// the comparison's verdict: `regression` if any transaction regressed; otherwise
/// `insufficient_data` if no transaction had enough data; otherwise `improvement` if any
/// improved; otherwise `no_change`. (A transaction too quiet to judge does not hold back the
/// verdict on the others: it is listed with its own `insufficient_data`.)
///
/// Per transaction with at least `min_samples` on each side, three one-sided tests for
/// "worse" (Mann–Whitney shift, tail at the before p95/p99, error rate) and three for
/// "better" are run. Each test's p-values in each direction are corrected over all
/// transactions (Benjamini–Hochberg at `fdr`). A significant test counts only if the change is material:
/// - shift: the far end of the shift's confidence interval reaches both
///   `min_relative_change` × the before median and `min_absolute_change_ms` (a change
///   confidently smaller than the minimum is noise we do not report);
/// - tail: the p95 or p99 (whichever threshold the test used) moved by both minimums;
/// - errors: the error rate moved by `min_error_rate_change_pp`.
///
/// # Examples
///
/// ```
/// use headlight_collector::aggregate::histogram::LatencyStats;
/// use headlight_collector::compare::engine::{judge, Input, Settings, Side, Verdict};
///
/// let mut before = Side::default();
/// let mut after = Side::default();
/// for i in 0..1_000u64 {
///     before.stats.record(10_000 + i * 10, false); // 10–20 ms
///     after.stats.record(15_000 + i * 15, false); // 50 % slower
/// }
/// let input = Input { transaction: "GET /users/{id}".into(), before, after };
/// let (verdicts, overall) = judge(&[input], &Settings::default());
/// assert_eq!(overall, Verdict::Regression);
/// assert!(verdicts[0].reasons[0].starts_with("median +50 %"), "{:?}", verdicts[0].reasons);
/// ```
pub fn judge(inputs: &[Input], settings: &Settings) -> (Vec<TransactionVerdict>, Verdict) {
    let enough = |i: &Input| {
        i.before.stats.count >= settings.min_samples && i.after.stats.count >= settings.min_samples
    };
    let measured: Vec<Option<Measured>> = inputs
        .iter()
        .map(|i| enough(i).then(|| measure(&i.before.stats, &i.after.stats, settings.confidence)))
        .collect();
    let worse = adjust(&measured, |m| m.worse);
    let better = adjust(&measured, |m| m.better);
    let verdicts: Vec<TransactionVerdict> = inputs
        .iter()
        .zip(&measured)
        .zip(worse.iter().zip(&better))
        .map(|((input, m), (worse, better))| {
            verdict_of(input, m.as_ref(), *worse, *better, settings)
        })
        .collect();
    let overall = overall_verdict(verdicts.iter().map(|v| v.verdict));
    (verdicts, overall)
}

/// Combines transaction verdicts into the comparison's (see [`judge`]).
pub fn overall_verdict(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    let mut any = [false; 4];
    for v in verdicts {
        any[v as usize] = true;
    }
    let [regression, _insufficient, improvement, no_change] = any;
    if regression {
        Verdict::Regression
    } else if !(improvement || no_change) {
        // Also the verdict of a comparison with no transactions at all.
        Verdict::InsufficientData
    } else if improvement {
        Verdict::Improvement
    } else {
        Verdict::NoChange
    }
}

/// Benjamini–Hochberg-adjusts one direction's p-values over all measured transactions, each
/// test on its own: the shift p-values of all transactions together, the tail ones together,
/// the error ones together. (One family per question asked of every transaction; pooling the
/// three questions into one family would make each pay for the other two without protecting
/// against anything more.)
fn adjust(measured: &[Option<Measured>], direction: impl Fn(&Measured) -> Tests) -> Vec<PValues> {
    let tests: Vec<Tests> = measured.iter().flatten().map(&direction).collect();
    let family = |pick: fn(&Tests) -> f64| bh_adjusted(&tests.iter().map(pick).collect::<Vec<_>>());
    let mut shift = family(|t| t.shift).into_iter();
    let mut tail = family(|t| t.tail).into_iter();
    let mut errors = family(|t| t.errors).into_iter();
    measured
        .iter()
        .map(|m| match m {
            Some(_) => PValues {
                shift: shift.next().unwrap_or(1.0),
                tail: tail.next().unwrap_or(1.0),
                errors: errors.next().unwrap_or(1.0),
            },
            None => PValues {
                shift: 1.0,
                tail: 1.0,
                errors: 1.0,
            },
        })
        .collect()
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn pct(before: u64, after: u64) -> Option<f64> {
    (before > 0).then(|| (after as f64 - before as f64) / before as f64 * 100.0)
}

fn summary(stats: &LatencyStats) -> SideSummary {
    let q = |p| (stats.count > 0).then(|| ms(quantile_us(&stats.histogram, p)));
    let per = |x: u64| (stats.count > 0).then(|| x as f64 / stats.count as f64);
    SideSummary {
        count: stats.count,
        errors: stats.errors,
        mean_ms: per(stats.sum_us).map(|us| us / 1000.0),
        p50_ms: q(0.50),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        error_rate: per(stats.errors),
    }
}

/// Formats a duration in ms for people: 3 significant digits, µs below 1 ms, s above 10 s.
pub fn format_ms(value: f64) -> String {
    let a = value.abs();
    if a >= 10_000.0 {
        format!("{:.1} s", value / 1000.0)
    } else if a >= 100.0 {
        format!("{value:.0} ms")
    } else if a >= 10.0 {
        format!("{value:.1} ms")
    } else if a >= 1.0 {
        format!("{value:.2} ms")
    } else {
        format!("{:.0} µs", value * 1000.0)
    }
}

fn format_p(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".to_owned()
    } else {
        format!("p = {p:.3}")
    }
}

fn format_pct(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

fn signed_pct(change: f64) -> String {
    format!("{change:+.0} %")
}

/// Whether a latency change from `before_us` to `after_us` (or by `delta_us`) reaches both
/// minimums.
fn material(delta_us: f64, reference_us: u64, settings: &Settings) -> bool {
    delta_us.abs() >= settings.min_relative_change * reference_us as f64
        && delta_us.abs() >= settings.min_absolute_change_ms * 1000.0
}

fn verdict_of(
    input: &Input,
    measured: Option<&Measured>,
    worse: PValues,
    better: PValues,
    settings: &Settings,
) -> TransactionVerdict {
    let (b, a) = (&input.before.stats, &input.after.stats);
    let before = summary(b);
    let after = summary(a);
    let mut change = Change {
        error_rate_pp: before
            .error_rate
            .zip(after.error_rate)
            .map(|(x, y)| (y - x) * 100.0),
        ..Change::default()
    };
    if b.count > 0 && a.count > 0 {
        let q = |s: &LatencyStats, p| quantile_us(&s.histogram, p);
        change.p50_pct = pct(q(b, 0.50), q(a, 0.50));
        change.p95_pct = pct(q(b, 0.95), q(a, 0.95));
        change.p99_pct = pct(q(b, 0.99), q(a, 0.99));
    }
    let suspects = suspects(&input.before, &input.after);
    let Some(m) = measured else {
        let reasons = vec![format!(
            "{} requests before and {} after; at least {} are needed on each side",
            b.count, a.count, settings.min_samples
        )];
        return TransactionVerdict {
            transaction: input.transaction.clone(),
            before,
            after,
            change,
            p_values: PValues {
                shift: 1.0,
                tail: 1.0,
                errors: 1.0,
            },
            p_values_adjusted: worse,
            verdict: Verdict::InsufficientData,
            reasons,
            suspects,
        };
    };
    if let Some(s) = m.shift {
        change.shift_ms = Some(s.shift_us / 1000.0);
        change.shift_low_ms = Some(s.low_us / 1000.0);
        change.shift_high_ms = Some(s.high_us / 1000.0);
    }
    let significant = |p: f64| p <= settings.fdr;
    let rate_delta = |x: f64| x * 100.0 >= settings.min_error_rate_change_pp;
    let rates = (
        before.error_rate.unwrap_or(0.0),
        after.error_rate.unwrap_or(0.0),
    );

    let mut regression = Vec::new();
    let mut improvement = Vec::new();
    let mut below_minimum = Vec::new();
    // Shift.
    if let Some(s) = m.shift {
        let median = ms(m.median_us);
        let median_pct = change.p50_pct.unwrap_or(0.0);
        let ci = format!(
            "{} % CI {} to {}",
            (settings.confidence * 100.0).round(),
            format_ms(s.low_us / 1000.0),
            format_ms(s.high_us / 1000.0)
        );
        let text = |p: f64| {
            format!(
                "median {} ({} → {}); typically {} {} ({ci}); {}",
                signed_pct(median_pct),
                format_ms(median),
                format_ms(ms(m.quantiles[0].1)),
                if s.shift_us >= 0.0 {
                    "slower by"
                } else {
                    "faster by"
                },
                format_ms(s.shift_us.abs() / 1000.0),
                format_p(p)
            )
        };
        if significant(worse.shift) && s.shift_us > 0.0 {
            if material(s.high_us, m.median_us, settings) {
                regression.push(text(m.worse.shift));
            } else {
                below_minimum.push(format!(
                    "slower (shift {}, {ci})",
                    format_ms(s.shift_us / 1000.0)
                ));
            }
        }
        if significant(better.shift) && s.shift_us < 0.0 {
            if material(s.low_us, m.median_us, settings) {
                improvement.push(text(m.better.shift));
            } else {
                below_minimum.push(format!(
                    "faster (shift {}, {ci})",
                    format_ms(s.shift_us / 1000.0)
                ));
            }
        }
    }
    // Tail: the threshold (before p95 or p99) whose test gave the p-value.
    let tail_text = |at_p99: bool, p: f64| {
        let (i, name) = if at_p99 { (2, "p99") } else { (1, "p95") };
        let (qb, qa) = m.quantiles[i];
        let (share_b, share_a) = m.tail_shares[i - 1];
        format!(
            "{name} {} ({} → {}); {} of requests above the old {name} (was {}); {}",
            signed_pct(pct(qb, qa).unwrap_or(0.0)),
            format_ms(ms(qb)),
            format_ms(ms(qa)),
            format_pct(share_a),
            format_pct(share_b),
            format_p(p)
        )
    };
    let tail_moved = |at_p99: bool, slower: bool| {
        let (qb, qa) = m.quantiles[if at_p99 { 2 } else { 1 }];
        (qa > qb) == slower && material(qa as f64 - qb as f64, qb, settings)
    };
    if significant(worse.tail) {
        if tail_moved(m.worse.tail_at_p99, true) {
            regression.push(tail_text(m.worse.tail_at_p99, m.worse.tail));
        } else {
            below_minimum.push("more requests in the tail".to_owned());
        }
    }
    if significant(better.tail) {
        if tail_moved(m.better.tail_at_p99, false) {
            improvement.push(tail_text(m.better.tail_at_p99, m.better.tail));
        } else {
            below_minimum.push("fewer requests in the tail".to_owned());
        }
    }
    // Errors.
    let error_text = |p: f64| {
        format!(
            "error rate {} → {} ({:+.1} pp, {} → {} errors); {}",
            format_pct(rates.0),
            format_pct(rates.1),
            (rates.1 - rates.0) * 100.0,
            b.errors,
            a.errors,
            format_p(p)
        )
    };
    if significant(worse.errors) {
        if rate_delta(rates.1 - rates.0) {
            regression.push(error_text(m.worse.errors));
        } else {
            below_minimum.push("more errors".to_owned());
        }
    }
    if significant(better.errors) {
        if rate_delta(rates.0 - rates.1) {
            improvement.push(error_text(m.better.errors));
        } else {
            below_minimum.push("fewer errors".to_owned());
        }
    }

    let (verdict, mut reasons) = if !regression.is_empty() {
        (Verdict::Regression, regression)
    } else if !improvement.is_empty() {
        (Verdict::Improvement, improvement)
    } else {
        let mut line = format!(
            "no significant change: median {}, p95 {}, error rate {} → {}",
            signed_pct(change.p50_pct.unwrap_or(0.0)),
            signed_pct(change.p95_pct.unwrap_or(0.0)),
            format_pct(rates.0),
            format_pct(rates.1),
        );
        if !below_minimum.is_empty() {
            line = format!(
                "{}: significantly {}, but below the minimum change ({} % and {})",
                line,
                below_minimum.join(", "),
                (settings.min_relative_change * 100.0).round(),
                format_ms(settings.min_absolute_change_ms)
            );
        }
        (Verdict::NoChange, vec![line])
    };
    if verdict == Verdict::Regression
        && let Some(top) = suspects.first()
    {
        reasons.push(format!(
            "most of the added time is in {} ({} → {} per request)",
            top.operation,
            format_ms(top.before_self_ms),
            format_ms(top.after_self_ms)
        ));
    }
    TransactionVerdict {
        transaction: input.transaction.clone(),
        before,
        after,
        change,
        p_values: PValues {
            shift: m.worse.shift,
            tail: m.worse.tail,
            errors: m.worse.errors,
        },
        p_values_adjusted: worse,
        verdict,
        reasons,
        suspects,
    }
}

/// The operations whose mean self time per transaction grew, largest growth first.
fn suspects(before: &Side, after: &Side) -> Vec<Suspect> {
    let (nb, na) = (before.stats.count, after.stats.count);
    if nb == 0 || na == 0 {
        return Vec::new();
    }
    let mean = |side: &Side, key: &OperationKey, n: u64| {
        side.self_us.get(key).copied().unwrap_or(0) as f64 / n as f64 / 1000.0
    };
    let added_total = after.stats.sum_us as f64 / na as f64 / 1000.0
        - before.stats.sum_us as f64 / nb as f64 / 1000.0;
    let keys: std::collections::BTreeSet<&OperationKey> =
        before.self_us.keys().chain(after.self_us.keys()).collect();
    let mut out: Vec<Suspect> = keys
        .into_iter()
        .filter_map(|key| {
            let before_self_ms = mean(before, key, nb);
            let after_self_ms = mean(after, key, na);
            let added_ms = after_self_ms - before_self_ms;
            (added_ms > 0.0).then(|| Suspect {
                operation: key.operation.clone(),
                kind: key.kind.as_str().to_owned(),
                before_self_ms,
                after_self_ms,
                added_ms,
                share_of_added: (added_total > 0.0).then(|| added_ms / added_total),
            })
        })
        .collect();
    out.sort_by(|x, y| y.added_ms.total_cmp(&x.added_ms));
    out.truncate(MAX_SUSPECTS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::stats::normal_quantile;

    /// `n` log-normal durations (median `median_us`, σ 0.5) at evenly spaced quantiles, each
    /// transformed by `f(index, duration)`.
    fn side(n: u64, median_us: f64, f: impl Fn(u64, f64) -> (f64, bool)) -> Side {
        let mut side = Side::default();
        for i in 0..n {
            let z = normal_quantile((i as f64 + 0.5) / n as f64);
            let (us, error) = f(i, median_us * (0.5 * z).exp());
            side.stats.record(us.round() as u64, error);
        }
        side
    }

    fn plain(_: u64, us: f64) -> (f64, bool) {
        (us, false)
    }

    fn input(name: &str, before: Side, after: Side) -> Input {
        Input {
            transaction: name.into(),
            before,
            after,
        }
    }

    fn one(before: Side, after: Side) -> TransactionVerdict {
        let (mut v, overall) = judge(&[input("GET /t", before, after)], &Settings::default());
        assert_eq!(overall, v[0].verdict);
        v.remove(0)
    }

    #[test]
    fn identical_samples_are_no_change() {
        let v = one(side(2000, 20_000.0, plain), side(2000, 20_000.0, plain));
        assert_eq!(v.verdict, Verdict::NoChange, "{:?}", v.reasons);
        assert!(
            v.reasons[0].starts_with("no significant change: median +0 %"),
            "{:?}",
            v.reasons
        );
        assert!(v.p_values.shift > 0.4, "{:?}", v.p_values);
    }

    #[test]
    fn a_slower_median_is_a_regression_with_its_reason() {
        let v = one(
            side(2000, 20_000.0, plain),
            side(2000, 20_000.0, |_, us| (us * 1.2, false)),
        );
        assert_eq!(v.verdict, Verdict::Regression);
        assert!(
            v.reasons[0].starts_with("median +20 % (20.0 ms → 24.0 ms)"),
            "{:?}",
            v.reasons
        );
        assert!(v.reasons[0].ends_with("p < 0.001"), "{:?}", v.reasons);
        let shift = v.change.shift_ms.unwrap();
        assert!((3.0..5.0).contains(&shift), "{shift}");
        assert!(
            v.change.shift_low_ms.unwrap() <= shift && shift <= v.change.shift_high_ms.unwrap()
        );
        assert!(v.p_values.shift < 1e-6 && v.p_values_adjusted.shift >= v.p_values.shift);
    }

    #[test]
    fn a_slower_tail_is_a_regression_though_the_median_holds() {
        // Every 20th request (5 %) 3× slower.
        let v = one(
            side(2000, 20_000.0, plain),
            side(2000, 20_000.0, |i, us| {
                (if i % 20 == 7 { us * 3.0 } else { us }, false)
            }),
        );
        assert_eq!(v.verdict, Verdict::Regression, "{:?}", v.reasons);
        let tail = v
            .reasons
            .iter()
            .find(|r| r.contains("of requests above the old"))
            .unwrap_or_else(|| panic!("no tail reason in {:?}", v.reasons));
        assert!(
            tail.starts_with("p95 +") || tail.starts_with("p99 +"),
            "{tail}"
        );
        assert!(
            tail.contains("(was 5.0 %)") || tail.contains("(was 1.0 %)"),
            "{tail}"
        );
        assert!(v.change.p50_pct.unwrap().abs() < 5.0, "{:?}", v.change);
    }

    #[test]
    fn more_errors_are_a_regression() {
        let v = one(
            side(2000, 20_000.0, |i, us| (us, i % 100 == 3)),
            side(2000, 20_000.0, |i, us| (us, i % 100 < 3)),
        );
        assert_eq!(v.verdict, Verdict::Regression);
        assert_eq!(
            v.reasons,
            ["error rate 1.0 % → 3.0 % (+2.0 pp, 20 → 60 errors); p < 0.001"]
        );
        assert!((v.change.error_rate_pp.unwrap() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_significant_change_below_the_minimum_is_no_change() {
        // 3 % slower at n = 20 000: certain, but under the 10 % minimum.
        let v = one(
            side(20_000, 20_000.0, plain),
            side(20_000, 20_000.0, |_, us| (us * 1.03, false)),
        );
        assert!(v.p_values.shift < 1e-6);
        assert_eq!(v.verdict, Verdict::NoChange, "{:?}", v.reasons);
        assert!(
            v.reasons[0].contains("below the minimum change (10 % and 1.00 ms)"),
            "{:?}",
            v.reasons
        );
        // The absolute minimum holds back a 50 % change of a 0.5 ms transaction.
        let v = one(
            side(2000, 500.0, plain),
            side(2000, 500.0, |_, us| (us * 1.5, false)),
        );
        assert_eq!(v.verdict, Verdict::NoChange, "{:?}", v.reasons);
        let settings = Settings {
            min_absolute_change_ms: 0.1,
            ..Settings::default()
        };
        let (v, _) = judge(
            &[input(
                "t",
                side(2000, 500.0, plain),
                side(2000, 500.0, |_, us| (us * 1.5, false)),
            )],
            &settings,
        );
        assert_eq!(v[0].verdict, Verdict::Regression);
    }

    #[test]
    fn faster_is_an_improvement() {
        let v = one(
            side(2000, 20_000.0, plain),
            side(2000, 20_000.0, |_, us| (us * 0.7, false)),
        );
        assert_eq!(v.verdict, Verdict::Improvement, "{:?}", v.reasons);
        assert!(v.reasons[0].starts_with("median -30 %"), "{:?}", v.reasons);
        assert!(
            v.p_values.shift > 0.99,
            "worse-direction p-value: {:?}",
            v.p_values
        );
    }

    #[test]
    fn too_few_requests_are_insufficient_data_and_do_not_decide_the_deploy() {
        let v = one(side(99, 20_000.0, plain), side(2000, 20_000.0, plain));
        assert_eq!(v.verdict, Verdict::InsufficientData);
        assert_eq!(
            v.reasons,
            ["99 requests before and 2000 after; at least 100 are needed on each side"]
        );
        let (verdicts, overall) = judge(
            &[
                input("quiet", side(5, 20_000.0, plain), side(5, 20_000.0, plain)),
                input(
                    "busy",
                    side(500, 20_000.0, plain),
                    side(500, 20_000.0, plain),
                ),
            ],
            &Settings::default(),
        );
        assert_eq!(
            verdicts.iter().map(|v| v.verdict).collect::<Vec<_>>(),
            [Verdict::InsufficientData, Verdict::NoChange]
        );
        assert_eq!(overall, Verdict::NoChange);
        assert_eq!(
            judge(&[], &Settings::default()).1,
            Verdict::InsufficientData
        );
    }

    #[test]
    fn the_deploy_verdict_is_the_worst_judged_one() {
        use Verdict::*;
        assert_eq!(
            overall_verdict([NoChange, Regression, Improvement]),
            Regression
        );
        assert_eq!(
            overall_verdict([NoChange, Improvement, InsufficientData]),
            Improvement
        );
        assert_eq!(overall_verdict([NoChange, InsufficientData]), NoChange);
        assert_eq!(overall_verdict([InsufficientData]), InsufficientData);
    }

    #[test]
    fn benjamini_hochberg_runs_over_all_transactions() {
        // A modest regression among many unchanged transactions: its adjusted p-value is
        // its raw one times (tests / rank), so it grows with the number of transactions.
        let slow = || side(300, 20_000.0, |_, us| (us * 1.25, false));
        let (alone, _) = judge(
            &[input("t", side(300, 20_000.0, plain), slow())],
            &Settings::default(),
        );
        let mut many = vec![input("t", side(300, 20_000.0, plain), slow())];
        for i in 0..19 {
            many.push(input(
                &format!("u{i}"),
                side(300, 20_000.0, plain),
                side(300, 20_000.0, plain),
            ));
        }
        let (crowded, _) = judge(&many, &Settings::default());
        let raw = alone[0].p_values.shift;
        assert_eq!(crowded[0].p_values.shift, raw);
        assert!(crowded[0].p_values_adjusted.shift > alone[0].p_values_adjusted.shift);
        assert!(
            (crowded[0].p_values_adjusted.shift - (raw * 20.0).min(1.0)).abs() < 1e-12,
            "the smallest of 20 shift p-values is multiplied by 20: {} vs {raw}",
            crowded[0].p_values_adjusted.shift
        );
    }

    #[test]
    fn suspects_are_the_operations_whose_self_time_grew() {
        let op = |name: &str| OperationKey {
            operation: name.into(),
            kind: SpanKind::Client,
        };
        let mut before = side(1000, 20_000.0, plain);
        let mut after = side(1000, 20_000.0, |_, us| (us + 8_000.0, false));
        before.self_us.insert(op("SELECT orders"), 1000 * 5_000);
        after.self_us.insert(op("SELECT orders"), 1000 * 12_000);
        before.self_us.insert(op("cache.get"), 1000 * 1_000);
        after.self_us.insert(op("cache.get"), 1000 * 2_000);
        before.self_us.insert(op("render"), 1000 * 3_000);
        after.self_us.insert(op("render"), 1000 * 2_000);
        let v = one(before, after);
        assert_eq!(v.verdict, Verdict::Regression);
        let names: Vec<&str> = v.suspects.iter().map(|s| s.operation.as_str()).collect();
        assert_eq!(names, ["SELECT orders", "cache.get"], "render got faster");
        let top = &v.suspects[0];
        assert_eq!(
            (top.before_self_ms, top.after_self_ms, top.added_ms),
            (5.0, 12.0, 7.0)
        );
        let share = top.share_of_added.unwrap();
        assert!((share - 7.0 / 8.0).abs() < 0.01, "{share}");
        assert_eq!(
            v.reasons.last().unwrap(),
            "most of the added time is in SELECT orders (5.00 ms → 12.0 ms per request)"
        );
    }
}
