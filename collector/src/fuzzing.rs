//! Entry points for the fuzz targets under `fuzz/` and their regression test
//! (`tests/fuzz_regressions.rs`): each one takes untrusted bytes through the same code the
//! listeners and handlers run, and returns what came out so the caller can check invariants.
//!
//! * [`ingest_protobuf`] / [`ingest_json`]: an OTLP/HTTP body (already decompressed), decoded
//!   as the listener decodes it, converted and validated, aggregated, expired and drained.
//! * [`query`]: a query string through the API's parameter parsing for one endpoint.
//!
//! Not a stable API: it exists for testing and may change with the ingest path.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use headlight_proto::otlp::collector::ExportTraceServiceRequest;
use prost::Message;

use crate::aggregate::Aggregator;
use crate::aggregate::histogram::LatencyStats;
use crate::config::Config;
use crate::error::ApiError;
use crate::ingest::convert::{self, TimeBounds};
use crate::model::{SeriesId, SpanKind};
use crate::query::range::Windows;
use crate::store::WriteBatch;

/// The fixed "now" of the ingest entry points, unix ns (2027-01-15T08:00:00Z), so a corpus
/// file gives the same answer on every run and never ages out of the retention bound.
pub const CLOCK_NS: i64 = 1_800_000_000_000_000_000;

/// Why a body was refused before conversion (the listener's `400 malformed` or `413`).
#[derive(Debug, thiserror::Error)]
pub enum Malformed {
    /// Not a protobuf `ExportTraceServiceRequest` (or over a per-request limit).
    #[error(transparent)]
    Protobuf(#[from] convert::Refused),
    /// Not an OTLP/JSON `ExportTraceServiceRequest`.
    #[error("malformed json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes a JSON body as the OTLP/HTTP listener does.
pub fn decode_json(body: &[u8]) -> Result<ExportTraceServiceRequest, Malformed> {
    Ok(serde_json::from_slice::<ExportTraceServiceRequest>(body)?)
}

/// What one accepted body turned into.
#[derive(Debug)]
pub struct Ingested {
    /// Spans in the request as `prost` reads it (as the reader counts them when `prost` refuses it).
    pub spans_in: u64,
    /// Spans that passed validation.
    pub accepted: u64,
    /// Spans rejected by validation.
    pub rejected: u64,
    /// The OTLP partial-success message (empty when nothing was rejected).
    pub message: String,
    /// Transactions the aggregator counted.
    pub transactions: u64,
    /// Child spans dropped as orphans (their transaction never came).
    pub orphans_dropped: u64,
    /// Child spans still waiting for their transaction after expiry (must be 0).
    pub pending_after_expiry: usize,
    /// Raw window width, s.
    pub window_s: u32,
    /// Rollup window width, s.
    pub rollup_window_s: u32,
    /// What the aggregator handed to the store.
    pub batch: WriteBatch,
}

/// Reads a protobuf body in place, as the OTLP listeners do, and runs it through conversion
/// and aggregation.
///
/// # Panics
///
/// When the body is one `prost` decodes but the in-place reader refuses: the reader must never
/// be stricter than `prost`.
pub fn ingest_protobuf(body: &[u8]) -> Result<Ingested, Malformed> {
    let reference = ExportTraceServiceRequest::decode(body).ok();
    let mut ingested = ingest(body);
    match (&mut ingested, reference) {
        (Err(e), Some(_)) => panic!("the in-place reader refused a request prost decodes: {e}"),
        // [`Ingested::check`] compares the spans the reader accepted and rejected with the
        // spans `prost` found.
        (Ok(ingested), Some(request)) => ingested.spans_in = span_count(&request),
        _ => {}
    }
    ingested
}

/// Decodes a JSON body and runs it through conversion and aggregation, as the OTLP/HTTP
/// listener does (JSON becomes protobuf first).
pub fn ingest_json(body: &[u8]) -> Result<Ingested, Malformed> {
    ingest_protobuf(&decode_json(body)?.encode_to_vec())
}

fn span_count(request: &ExportTraceServiceRequest) -> u64 {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}

/// Converts an encoded request with the default limits at [`CLOCK_NS`], applies the valid
/// spans to a fresh aggregator, expires every waiting child and drains the result.
pub fn ingest(request: &[u8]) -> Result<Ingested, Malformed> {
    let config = Config::default();
    let bounds = TimeBounds::new(
        CLOCK_NS,
        &config.limits,
        config.aggregation.raw_retention_ms(),
    );
    let converted = convert::convert(
        &bytes::Bytes::copy_from_slice(request),
        bounds,
        &config.limits,
    )?;
    let accepted = converted.spans.len() as u64;
    let rejected = converted.rejected_count();
    let spans_in = accepted + rejected;
    let message = converted.message();
    let mut aggregator = Aggregator::new(config.aggregation.clone(), config.spans.clone(), &[]);
    let now = Instant::now();
    aggregator.apply(converted.spans, now);
    aggregator.expire(now + Duration::from_millis(config.aggregation.orphan_wait_ms + 1));
    let stats = aggregator.stats();
    Ok(Ingested {
        spans_in,
        accepted,
        rejected,
        message,
        transactions: stats.transactions,
        orphans_dropped: stats.orphans_dropped,
        pending_after_expiry: aggregator.pending_spans(),
        window_s: config.aggregation.window_s,
        rollup_window_s: config.aggregation.rollup_window_s,
        batch: aggregator.drain(),
    })
}

impl Ingested {
    /// Checks what must hold for any input: every span accepted or rejected, nothing left
    /// waiting, one index row per transaction, raw windows that add up to the transactions and
    /// rollups (histograms and breakdown) equal to the sum of their raw windows. Returns the
    /// first violation.
    pub fn check(&self) -> Result<(), String> {
        let batch = &self.batch;
        if self.accepted + self.rejected != self.spans_in {
            return Err(format!(
                "{} accepted + {} rejected != {} spans in the request",
                self.accepted, self.rejected, self.spans_in
            ));
        }
        if (self.rejected > 0) == self.message.is_empty() {
            return Err(format!(
                "{} rejected but message {:?}",
                self.rejected, self.message
            ));
        }
        if self.pending_after_expiry != 0 {
            return Err(format!(
                "{} child spans still pending after expiry",
                self.pending_after_expiry
            ));
        }
        if batch.transactions.len() as u64 != self.transactions {
            return Err(format!(
                "{} index rows for {} transactions",
                batch.transactions.len(),
                self.transactions
            ));
        }
        if self.transactions + self.orphans_dropped > self.accepted {
            return Err(format!(
                "{} transactions + {} orphans > {} accepted spans",
                self.transactions, self.orphans_dropped, self.accepted
            ));
        }
        if batch.spans.len() as u64 > self.accepted {
            return Err(format!(
                "{} spans kept of {} accepted",
                batch.spans.len(),
                self.accepted
            ));
        }
        self.check_histograms()?;
        self.check_breakdown()
    }

    fn check_histograms(&self) -> Result<(), String> {
        let raw_ms = i64::from(self.window_s) * 1000;
        let rollup_ms = i64::from(self.rollup_window_s) * 1000;
        let mut raw_total = 0;
        let mut summed: HashMap<(SeriesId, i64), LatencyStats> = HashMap::new();
        let mut rollups: HashMap<(SeriesId, i64), &LatencyStats> = HashMap::new();
        for h in &self.batch.histograms {
            let s = &h.stats;
            if s.count == 0
                || s.errors > s.count
                || s.histogram.len() != s.count
                || s.error_histogram.len() != s.errors
            {
                return Err(format!(
                    "window {} of series {:?}: count {}, errors {}, histogram {}, error histogram {}",
                    h.window_start_ms,
                    h.series,
                    s.count,
                    s.errors,
                    s.histogram.len(),
                    s.error_histogram.len()
                ));
            }
            if h.resolution_s == self.window_s && h.window_start_ms.rem_euclid(raw_ms) == 0 {
                raw_total += s.count;
                let start = h.window_start_ms.div_euclid(rollup_ms) * rollup_ms;
                summed.entry((h.series, start)).or_default().merge(s);
            } else if h.resolution_s == self.rollup_window_s
                && h.window_start_ms.rem_euclid(rollup_ms) == 0
            {
                if rollups.insert((h.series, h.window_start_ms), s).is_some() {
                    return Err(format!("two rollups for window {}", h.window_start_ms));
                }
            } else {
                return Err(format!(
                    "window {} at {} s is not aligned to a stored resolution",
                    h.window_start_ms, h.resolution_s
                ));
            }
        }
        if raw_total != self.transactions {
            return Err(format!(
                "raw windows count {raw_total} of {} transactions",
                self.transactions
            ));
        }
        if summed.len() != rollups.len() {
            return Err(format!(
                "{} rollup windows for raw windows in {} rollup windows",
                rollups.len(),
                summed.len()
            ));
        }
        for (key, sum) in &summed {
            if rollups.get(key) != Some(&sum) {
                return Err(format!(
                    "rollup of window {} differs from the sum of its raw windows",
                    key.1
                ));
            }
        }
        Ok(())
    }

    fn check_breakdown(&self) -> Result<(), String> {
        type Key = (SeriesId, i64, String, SpanKind);
        let rollup_ms = i64::from(self.rollup_window_s) * 1000;
        let mut summed: HashMap<Key, (u64, u64, u64)> = HashMap::new();
        let mut rollups: HashMap<Key, (u64, u64, u64)> = HashMap::new();
        for b in &self.batch.breakdown {
            let totals = (b.count, b.total_us, b.self_us);
            if b.resolution_s == self.window_s {
                let start = b.window_start_ms.div_euclid(rollup_ms) * rollup_ms;
                let sum = summed
                    .entry((b.series, start, b.operation.clone(), b.kind))
                    .or_default();
                sum.0 = sum.0.saturating_add(totals.0);
                sum.1 = sum.1.saturating_add(totals.1);
                sum.2 = sum.2.saturating_add(totals.2);
            } else {
                let key = (b.series, b.window_start_ms, b.operation.clone(), b.kind);
                if rollups.insert(key, totals).is_some() {
                    return Err(format!(
                        "two rollup breakdown rows for {:?} at {}",
                        b.operation, b.window_start_ms
                    ));
                }
            }
        }
        if summed != rollups {
            return Err("rollup breakdown differs from the sum of its raw windows".into());
        }
        Ok(())
    }
}

/// The API endpoints whose query parameters [`query`] parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /api/v1/latency`.
    Latency,
    /// `GET /api/v1/histogram` and `GET /api/v1/breakdown`.
    Histogram,
    /// `GET /api/v1/transactions`.
    Transactions,
    /// `GET /api/v1/heatmap` (and its images, less the size).
    Heatmap,
    /// `GET /api/v1/compare`.
    Compare,
}

impl Endpoint {
    /// Every endpoint, in a fixed order (a fuzz input's first byte picks one).
    pub const ALL: [Endpoint; 5] = [
        Endpoint::Latency,
        Endpoint::Histogram,
        Endpoint::Transactions,
        Endpoint::Heatmap,
        Endpoint::Compare,
    ];
}

/// What an endpoint's parameters parsed into.
#[derive(Debug)]
pub enum Parsed {
    /// Windows and step of a trend (`latency`), or windows alone (`histogram`, step 0).
    Trend {
        /// The windows.
        windows: Windows,
        /// The step between points, ms (0 where the endpoint has none).
        step_ms: i64,
        /// Most points the endpoint allows (0 where it has no step).
        max_points: i64,
    },
    /// `transactions`.
    Transactions(crate::query::TransactionSearch),
    /// `heatmap`.
    Heatmap {
        /// The windows.
        windows: Windows,
        /// The column step, ms.
        step_ms: i64,
        /// The y axis.
        axis: crate::query::heatmap::YAxis,
    },
    /// `compare`.
    Compare(crate::compare::report::Spec),
}

pub use crate::http::params::MAX_TIME_MS;

/// Earliest time a parsed range may start at, unix ms: times are ≥ 0, but a default `from`
/// (an hour before `to`) or a comparison `offset` (at most 366 days) reaches before that.
pub const EARLIEST_MS: i64 = -366 * 86_400_000 - 3_600_000;

/// Parses a raw query string (what follows `?`) for `endpoint` as its handler does: axum's
/// `Query` extractor, then the endpoint's parameter parsing, with the default configuration.
pub fn query(endpoint: Endpoint, query: &str) -> Result<Parsed, ApiError> {
    use axum::extract::Query;

    use crate::http::{self, deploys, params::Params};

    let config = Config::default();
    let uri: axum::http::Uri = format!("/?{query}")
        .parse()
        .map_err(|e| ApiError::invalid(format!("not a URI: {e}")))?;
    let Query(raw) = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map_err(|e| ApiError::invalid(format!("cannot read the query: {e}")))?;
    match endpoint {
        Endpoint::Latency => {
            let (_, windows, step_ms, _) = http::latency_request(&config, raw)?;
            Ok(Parsed::Trend {
                windows,
                step_ms,
                max_points: 10_000,
            })
        }
        Endpoint::Histogram => {
            let (_, windows) = http::filter_and_windows(&config, raw)?;
            Ok(Parsed::Trend {
                windows,
                step_ms: 0,
                max_points: 0,
            })
        }
        Endpoint::Transactions => Ok(Parsed::Transactions(http::transaction_search(
            &config, raw,
        )?)),
        Endpoint::Heatmap => {
            let p = Params::new(raw, &http::HEATMAP_PARAMS)?;
            let (_, windows, step_ms, axis) = http::heatmap_request(&config, &p)?;
            Ok(Parsed::Heatmap {
                windows,
                step_ms,
                axis,
            })
        }
        Endpoint::Compare => {
            let p = Params::new(raw, &deploys::COMPARE_PARAMS)?;
            Ok(Parsed::Compare(deploys::spec(&p, &config, http::now_ms())?))
        }
    }
}

impl Parsed {
    /// Checks what an accepted query must satisfy: ranges non-empty and within bounds, windows
    /// aligned to a stored resolution, steps whole windows, counts within the endpoint's caps.
    pub fn check(&self) -> Result<(), String> {
        let aggregation = Config::default().aggregation;
        let windows_ok = |w: &Windows| -> Result<(), String> {
            let width = w.width_ms();
            let resolution_ok = w.resolution_s == aggregation.window_s
                || w.resolution_s == aggregation.rollup_window_s;
            if !resolution_ok
                || w.from_ms >= w.to_ms
                || w.from_ms.rem_euclid(width) != 0
                || w.to_ms.rem_euclid(width) != 0
                || w.from_ms < EARLIEST_MS - width
                || w.to_ms > MAX_TIME_MS + width
            {
                return Err(format!("bad windows {w:?}"));
            }
            Ok(())
        };
        let step_ok = |w: &Windows, step_ms: i64, max: i64| -> Result<(), String> {
            if step_ms <= 0 || step_ms % w.width_ms() != 0 || (w.to_ms - w.from_ms) / step_ms > max
            {
                return Err(format!(
                    "bad step {step_ms} over {w:?} (at most {max} points)"
                ));
            }
            Ok(())
        };
        match self {
            Parsed::Trend {
                windows,
                step_ms,
                max_points,
            } => {
                windows_ok(windows)?;
                if *max_points > 0 {
                    step_ok(windows, *step_ms, *max_points)?;
                }
            }
            Parsed::Transactions(search) => {
                let r = search.range;
                if r.from_ms >= r.to_ms || r.from_ms < EARLIEST_MS || r.to_ms > MAX_TIME_MS {
                    return Err(format!("bad range {r:?}"));
                }
                let max = Config::default().query.max_transactions;
                let finite = |v: Option<f64>| v.is_none_or(|v| v.is_finite() && v >= 0.0);
                if search.limit == 0
                    || search.limit > max
                    || !finite(search.min_ms)
                    || !finite(search.max_ms)
                    || search.min_ms.zip(search.max_ms).is_some_and(|(a, b)| a > b)
                {
                    return Err(format!("bad search {search:?}"));
                }
            }
            Parsed::Heatmap {
                windows,
                step_ms,
                axis,
            } => {
                windows_ok(windows)?;
                step_ok(windows, *step_ms, 2_000)?;
                let finite = |v: Option<f64>| v.is_none_or(|v| v.is_finite() && v >= 0.0);
                if axis.buckets == 0
                    || axis.buckets > 500
                    || !finite(axis.min_ms)
                    || !finite(axis.max_ms)
                {
                    return Err(format!("bad axis {axis:?}"));
                }
            }
            Parsed::Compare(spec) => {
                let width = i64::from(spec.resolution_s) * 1000;
                let earliest = EARLIEST_MS - width;
                for side in [&spec.before, &spec.after] {
                    if side.from_ms >= side.to_ms
                        || side.from_ms.rem_euclid(width) != 0
                        || side.to_ms.rem_euclid(width) != 0
                        || side.from_ms < earliest
                        || side.to_ms > MAX_TIME_MS + width
                    {
                        return Err(format!("bad comparison side {side:?} at {width} ms"));
                    }
                }
            }
        }
        Ok(())
    }
}
