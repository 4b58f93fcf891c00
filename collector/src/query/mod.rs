//! The read side: answers the query API from the store. Handlers in [`crate::http`] only parse
//! parameters and call these functions, which run on blocking threads.

pub mod heatmap;
pub mod range;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::aggregate::agent_drops::ServiceDrops;
use crate::aggregate::histogram::{self, LatencyHistogram, LatencyStats};
use crate::aggregate::self_time::self_time_ns;
use crate::config::Config;
use crate::error::ApiError;
use crate::model::{self, OVERFLOW_TRANSACTION, SeriesId, SeriesKey, TraceId};
use crate::store::{HistogramDelta, SeriesFilter, Store, TransactionQuery};
use range::{TimeRange, Windows};

/// `GET /api/v1/services`.
#[derive(Debug, Serialize, PartialEq)]
pub struct ServicesResponse {
    /// Every service with data.
    pub services: Vec<ServiceEntry>,
}

/// One service.
#[derive(Debug, Serialize, PartialEq)]
pub struct ServiceEntry {
    /// `service.name`.
    pub service: String,
    /// Environments seen.
    pub environments: Vec<String>,
    /// Versions seen.
    pub versions: Vec<String>,
    /// Transaction names seen (including `other` when the cap overflowed).
    pub transactions: Vec<String>,
    /// The per-service cap on distinct transaction names.
    pub transaction_cap: u32,
    /// Whether transactions beyond the cap were counted under `other`.
    pub overflowed: bool,
    /// What the service's headlight agents reported they dropped (never received, so missing
    /// from the histograms), summed over its instances; empty when nothing was reported.
    pub agent_dropped: ServiceDrops,
}

/// Lists services from the known series, with the drops their agents reported (`agent_drops`,
/// by service). A service known only from its agents' reports is listed too, with no series.
pub fn services(
    store: &dyn Store,
    config: &Config,
    mut agent_drops: BTreeMap<String, ServiceDrops>,
) -> Result<ServicesResponse, ApiError> {
    let mut by_service: BTreeMap<String, [BTreeSet<String>; 3]> = BTreeMap::new();
    for service in agent_drops.keys() {
        by_service.entry(service.clone()).or_default();
    }
    for record in store.series(&SeriesFilter::default())? {
        let SeriesKey {
            service,
            environment,
            version,
            transaction,
        } = record.key;
        let entry = by_service.entry(service).or_default();
        entry[0].insert(environment);
        entry[1].insert(version);
        entry[2].insert(transaction);
    }
    let services = by_service
        .into_iter()
        .map(
            |(service, [environments, versions, transactions])| ServiceEntry {
                environments: environments.into_iter().collect(),
                versions: versions.into_iter().collect(),
                overflowed: transactions.contains(OVERFLOW_TRANSACTION),
                transactions: transactions.into_iter().collect(),
                transaction_cap: config.aggregation.max_transactions_per_service,
                agent_dropped: agent_drops.remove(&service).unwrap_or_default(),
                service,
            },
        )
        .collect();
    Ok(ServicesResponse { services })
}

/// Latency statistics of a set of transactions.
#[derive(Debug, Serialize, PartialEq, Clone)]
pub struct Summary {
    /// Transactions.
    pub count: u64,
    /// Error transactions.
    pub errors: u64,
    /// `errors / count`; null when empty.
    pub error_rate: Option<f64>,
    /// Exact mean, ms.
    pub mean_ms: Option<f64>,
    /// Median, ms (HDR, error < 0.5 %).
    pub p50_ms: Option<f64>,
    /// 90th percentile, ms.
    pub p90_ms: Option<f64>,
    /// 95th percentile, ms.
    pub p95_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Exact maximum, ms.
    pub max_ms: Option<f64>,
    /// Apdex at the query's T (errors count as frustrated); null when empty.
    pub apdex: Option<f64>,
}

/// Summarises latency statistics, with Apdex threshold `apdex_t_ms`.
pub fn summarize(stats: &LatencyStats, apdex_t_ms: f64) -> Summary {
    if stats.count == 0 {
        return Summary {
            count: 0,
            errors: 0,
            error_rate: None,
            mean_ms: None,
            p50_ms: None,
            p90_ms: None,
            p95_ms: None,
            p99_ms: None,
            max_ms: None,
            apdex: None,
        };
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let q = |q: f64| Some(ms(histogram::quantile_us(&stats.histogram, q)));
    let t_us = (apdex_t_ms * 1000.0).round() as u64;
    let within = |h: &LatencyHistogram, high: u64| {
        if high == 0 {
            0
        } else {
            h.count_between(1, high)
        }
    };
    let satisfied = within(&stats.histogram, t_us) - within(&stats.error_histogram, t_us);
    let tolerating = (within(&stats.histogram, t_us * 4)
        - within(&stats.error_histogram, t_us * 4))
    .saturating_sub(satisfied);
    Summary {
        count: stats.count,
        errors: stats.errors,
        error_rate: Some(stats.errors as f64 / stats.count as f64),
        mean_ms: Some(stats.sum_us as f64 / stats.count as f64 / 1000.0),
        p50_ms: q(0.50),
        p90_ms: q(0.90),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        max_ms: Some(ms(stats.max_us)),
        apdex: Some((satisfied as f64 + tolerating as f64 / 2.0) / stats.count as f64),
    }
}

/// The series matching a filter, by id.
pub fn matching_series(
    store: &dyn Store,
    filter: &SeriesFilter,
) -> Result<HashMap<SeriesId, SeriesKey>, ApiError> {
    Ok(store
        .series(filter)?
        .into_iter()
        .map(|r| (r.id, r.key))
        .collect())
}

/// `GET /api/v1/latency`.
#[derive(Debug, Serialize)]
pub struct LatencyResponse {
    /// The whole range.
    pub summary: Summary,
    /// One point per step.
    pub points: Vec<Point>,
    /// The range actually covered (aligned to windows), unix ms.
    pub from: i64,
    /// End of the covered range, unix ms.
    pub to: i64,
    /// Step between points, ms.
    pub step_ms: i64,
}

/// A point of a latency trend.
#[derive(Debug, Serialize)]
pub struct Point {
    /// Start of the step, unix ms.
    pub t: i64,
    /// Statistics of the transactions that ended in the step.
    #[serde(flatten)]
    pub summary: Summary,
}

fn rows_for(
    store: &dyn Store,
    filter: &SeriesFilter,
    windows: &Windows,
) -> Result<Vec<HistogramDelta>, ApiError> {
    let series: Vec<SeriesId> = matching_series(store, filter)?.into_keys().collect();
    if series.is_empty() {
        return Ok(Vec::new());
    }
    Ok(store.histograms(
        &series,
        windows.resolution_s,
        windows.from_ms,
        windows.to_ms,
    )?)
}

/// Latency summary and points by step.
pub fn latency(
    store: &dyn Store,
    filter: &SeriesFilter,
    windows: &Windows,
    step_ms: i64,
    apdex_t_ms: f64,
) -> Result<LatencyResponse, ApiError> {
    let rows = rows_for(store, filter, windows)?;
    let mut total = LatencyStats::default();
    let buckets =
        usize::try_from((windows.to_ms - windows.from_ms + step_ms - 1) / step_ms).unwrap_or(0);
    let mut points: Vec<LatencyStats> = (0..buckets).map(|_| LatencyStats::default()).collect();
    for row in &rows {
        total.merge(&row.stats);
        let i = usize::try_from((row.window_start_ms - windows.from_ms) / step_ms).unwrap_or(0);
        if let Some(point) = points.get_mut(i) {
            point.merge(&row.stats);
        }
    }
    Ok(LatencyResponse {
        summary: summarize(&total, apdex_t_ms),
        points: points
            .iter()
            .enumerate()
            .map(|(i, m)| Point {
                t: windows.from_ms + i as i64 * step_ms,
                summary: summarize(m, apdex_t_ms),
            })
            .collect(),
        from: windows.from_ms,
        to: windows.to_ms,
        step_ms,
    })
}

/// `GET /api/v1/histogram`.
#[derive(Debug, Serialize)]
pub struct HistogramResponse {
    /// Non-empty HDR buckets, ascending: transactions with duration ≤ `le_ms` and above the
    /// previous bucket's bound.
    pub buckets: Vec<Bucket>,
    /// Transactions.
    pub count: u64,
}

/// One histogram bucket.
#[derive(Debug, Serialize, PartialEq)]
pub struct Bucket {
    /// Upper bound, ms (inclusive).
    pub le_ms: f64,
    /// Transactions in the bucket.
    pub count: u64,
}

/// The merged latency histogram of a filter and range.
pub fn histogram(
    store: &dyn Store,
    filter: &SeriesFilter,
    windows: &Windows,
) -> Result<HistogramResponse, ApiError> {
    let mut merged = LatencyStats::default();
    for row in rows_for(store, filter, windows)? {
        merged.merge(&row.stats);
    }
    let buckets = merged
        .histogram
        .iter_recorded()
        .map(|v| Bucket {
            le_ms: merged.histogram.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0,
            count: v.count_at_value(),
        })
        .collect();
    Ok(HistogramResponse {
        buckets,
        count: merged.count,
    })
}

/// `GET /api/v1/transactions`.
#[derive(Debug, Serialize)]
pub struct TransactionsResponse {
    /// Matching transactions, newest first.
    pub transactions: Vec<TransactionEntry>,
}

/// One transaction of the index.
#[derive(Debug, Serialize, PartialEq)]
pub struct TransactionEntry {
    /// Trace id, hex.
    pub trace_id: String,
    /// Span id of the transaction span, hex.
    pub span_id: String,
    /// Service.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// Transaction name.
    pub transaction: String,
    /// Version.
    pub version: String,
    /// End, unix ms.
    pub end_ms: f64,
    /// Duration, ms (µs precision).
    pub duration_ms: f64,
    /// Error.
    pub error: bool,
}

/// A transaction search: the series filter, end time range, and duration range.
#[derive(Debug, Clone)]
pub struct TransactionSearch {
    /// Which series.
    pub filter: SeriesFilter,
    /// End time range.
    pub range: TimeRange,
    /// Minimum duration, ms, inclusive.
    pub min_ms: Option<f64>,
    /// Maximum duration, ms, inclusive.
    pub max_ms: Option<f64>,
    /// Errors only (`true`) or successes only (`false`).
    pub error: Option<bool>,
    /// Most rows.
    pub limit: usize,
}

/// Searches the transaction index.
pub fn transactions(
    store: &dyn Store,
    search: &TransactionSearch,
) -> Result<TransactionsResponse, ApiError> {
    let series = matching_series(store, &search.filter)?;
    let us = |ms: f64| (ms * 1000.0).round().max(0.0) as u64;
    let query = TransactionQuery {
        series: series.keys().copied().collect(),
        from_ns: search.range.from_ms.saturating_mul(1_000_000),
        to_ns: search.range.to_ms.saturating_mul(1_000_000),
        min_us: search.min_ms.map(us),
        max_us: search.max_ms.map(us),
        error: search.error,
        limit: search.limit,
    };
    let rows = store.transactions(&query)?;
    let transactions = rows
        .into_iter()
        .filter_map(|t| {
            let key = series.get(&t.series)?;
            Some(TransactionEntry {
                trace_id: model::hex(&t.trace_id),
                span_id: model::hex(&t.span_id),
                service: key.service.clone(),
                environment: key.environment.clone(),
                transaction: key.transaction.clone(),
                version: key.version.clone(),
                end_ms: t.end_ns as f64 / 1e6,
                duration_ms: t.duration_us as f64 / 1000.0,
                error: t.error,
            })
        })
        .collect();
    Ok(TransactionsResponse { transactions })
}

/// `GET /api/v1/traces/{trace_id}`.
#[derive(Debug, Serialize)]
pub struct TraceResponse {
    /// Trace id, hex.
    pub trace_id: String,
    /// Stored spans, by start time.
    pub spans: Vec<TraceSpan>,
}

/// One span of a trace.
#[derive(Debug, Serialize)]
pub struct TraceSpan {
    /// Span id, hex.
    pub span_id: String,
    /// Parent span id, hex; null for a root.
    pub parent_span_id: Option<String>,
    /// Service.
    pub service: String,
    /// Span name.
    pub name: String,
    /// Transaction name if this span is a transaction.
    pub transaction: Option<String>,
    /// Kind.
    pub kind: String,
    /// Start, unix ms.
    pub start_ms: f64,
    /// Duration, ms.
    pub duration_ms: f64,
    /// Duration less the time covered by its stored children, ms.
    pub self_ms: f64,
    /// Error.
    pub error: bool,
    /// Attributes.
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// Returns a stored trace as a span list with self times; `NotFound` if none is stored.
pub fn trace(store: &dyn Store, trace_id: &TraceId) -> Result<TraceResponse, ApiError> {
    let mut spans = store.trace(trace_id)?;
    if spans.is_empty() {
        return Err(ApiError::not_found(format!(
            "no stored spans for trace {} (spans are kept for errors, slow and sampled transactions, for the raw retention)",
            model::hex(trace_id)
        )));
    }
    spans.sort_by_key(|s| (s.start_ns, s.end_ns));
    let mut children: HashMap<[u8; 8], Vec<(i64, i64)>> = HashMap::new();
    for s in &spans {
        if let Some(parent) = s.parent_span_id {
            children
                .entry(parent)
                .or_default()
                .push((s.start_ns, s.end_ns));
        }
    }
    let spans = spans
        .into_iter()
        .map(|s| {
            let kids = children.get(&s.span_id).map(Vec::as_slice).unwrap_or(&[]);
            let self_ns = self_time_ns(s.start_ns, s.end_ns, kids.iter().copied());
            TraceSpan {
                span_id: model::hex(&s.span_id),
                parent_span_id: s.parent_span_id.map(|p| model::hex(&p)),
                service: s.service.to_string(),
                name: s.name.to_string(),
                transaction: s.transaction.map(|t| t.to_string()),
                kind: s.kind.as_str().to_owned(),
                start_ms: s.start_ns as f64 / 1e6,
                duration_ms: (s.end_ns - s.start_ns) as f64 / 1e6,
                self_ms: self_ns as f64 / 1e6,
                error: s.error,
                attributes: s.attributes.into_json(),
            }
        })
        .collect();
    Ok(TraceResponse {
        trace_id: model::hex(trace_id),
        spans,
    })
}

/// `GET /api/v1/breakdown`.
#[derive(Debug, Serialize)]
pub struct BreakdownResponse {
    /// Transactions in the range (the denominator of per-transaction means).
    pub transactions: u64,
    /// Operations by self time, largest first.
    pub operations: Vec<Operation>,
}

/// One operation of the breakdown.
#[derive(Debug, Serialize, PartialEq)]
pub struct Operation {
    /// Span name.
    pub operation: String,
    /// Span kind.
    pub kind: String,
    /// Spans.
    pub count: u64,
    /// Sum of durations, ms.
    pub total_ms: f64,
    /// Sum of self times, ms.
    pub self_ms: f64,
    /// Mean self time per transaction, ms.
    pub self_ms_per_transaction: f64,
    /// Share of all self time in the range (sums to 1).
    pub share: f64,
}

/// Where the time goes: per operation, count, total and self time.
pub fn breakdown(
    store: &dyn Store,
    filter: &SeriesFilter,
    windows: &Windows,
) -> Result<BreakdownResponse, ApiError> {
    let series: Vec<SeriesId> = matching_series(store, filter)?.into_keys().collect();
    if series.is_empty() {
        return Ok(BreakdownResponse {
            transactions: 0,
            operations: Vec::new(),
        });
    }
    let transactions: u64 = store
        .histograms(
            &series,
            windows.resolution_s,
            windows.from_ms,
            windows.to_ms,
        )?
        .iter()
        .map(|r| r.stats.count)
        .sum();
    let mut totals: BTreeMap<(String, &'static str), (u64, u64, u64)> = BTreeMap::new();
    for row in store.breakdown(
        &series,
        windows.resolution_s,
        windows.from_ms,
        windows.to_ms,
    )? {
        let t = totals
            .entry((row.operation, row.kind.as_str()))
            .or_default();
        t.0 += row.count;
        t.1 += row.total_us;
        t.2 += row.self_us;
    }
    let all_self: u64 = totals.values().map(|t| t.2).sum();
    let mut operations: Vec<Operation> = totals
        .into_iter()
        .map(
            |((operation, kind), (count, total_us, self_us))| Operation {
                operation,
                kind: kind.to_owned(),
                count,
                total_ms: total_us as f64 / 1000.0,
                self_ms: self_us as f64 / 1000.0,
                self_ms_per_transaction: if transactions == 0 {
                    0.0
                } else {
                    self_us as f64 / 1000.0 / transactions as f64
                },
                share: if all_self == 0 {
                    0.0
                } else {
                    self_us as f64 / all_self as f64
                },
            },
        )
        .collect();
    operations.sort_by(|a, b| b.self_ms.total_cmp(&a.self_ms));
    Ok(BreakdownResponse {
        transactions,
        operations,
    })
}
