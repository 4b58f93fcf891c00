//! `GET /metrics`: the per-series RED metrics and the collector's own health in the Prometheus
//! text format. Every family is described in `docs/metrics.md`.
//!
//! Nothing is read from the store: the per-series totals are counted as transactions are
//! aggregated and kept in memory (at most `metrics.max_series` series), so a scrape costs a copy
//! of those totals under the aggregator's lock and the formatting after it.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{AppState, blocking};
use crate::error::ApiError;
use crate::metrics::exposition::{CONTENT_TYPE, Exposition, Kind};
use crate::metrics::process;
use crate::metrics::reasons::{Reason, ReasonCounters};
use crate::metrics::red::SeriesRed;
use crate::model::SeriesKey;
use crate::pipeline::Pipeline;

/// Answers a scrape.
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let pipeline = state.pipeline;
    let refused = state.auth_refused;
    // The aggregator's lock and `/proc` are blocking.
    let body = blocking(move || Ok(render(&pipeline, &refused))).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
}

const TRANSACTIONS: &str = "headlight_transactions_total";
const ERRORS: &str = "headlight_transaction_errors_total";
const DURATION: &str = "headlight_transaction_duration_seconds";

/// Writes every family.
fn render(pipeline: &Pipeline, auth_refused: &crate::auth::Refused) -> String {
    let aggregator = pipeline.aggregator_metrics();
    let counters = pipeline.counters();
    let mut e = Exposition::default();

    let mut red = aggregator.red;
    red.series.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let overflow = (red.overflow.duration.count > 0).then_some(&red.overflow);
    let lines: Vec<(Vec<(&str, &str)>, &SeriesRed)> = red
        .series
        .iter()
        .map(|(key, totals)| (series_labels(key), totals))
        .chain(overflow.map(|totals| (vec![("overflow", "true")], totals)))
        .collect();
    e.family(
        TRANSACTIONS,
        Kind::Counter,
        "Transactions received per series (service, environment, version, transaction) since start.",
    );
    for (labels, totals) in &lines {
        e.sample(TRANSACTIONS, labels, totals.duration.count);
    }
    e.family(
        ERRORS,
        Kind::Counter,
        "Error transactions (status ERROR, or a server span with HTTP status >= 500) per series since start.",
    );
    for (labels, totals) in &lines {
        e.sample(ERRORS, labels, totals.errors);
    }
    e.family(
        DURATION,
        Kind::Histogram,
        "Transaction durations per series since start, counted exactly at ingest.",
    );
    for (labels, totals) in &lines {
        e.histogram(DURATION, labels, &totals.duration);
    }
    gauge(
        &mut e,
        "headlight_metrics_series",
        "Series with their own RED metrics above (at most metrics.max_series; the rest are counted under overflow=\"true\").",
        red.series.len(),
    );
    gauge(
        &mut e,
        "headlight_metrics_series_limit",
        "The cap on series with their own RED metrics (metrics.max_series).",
        red.max_series,
    );

    counter(
        &mut e,
        "headlight_export_requests_total",
        "OTLP export requests decoded (gRPC and HTTP).",
        counters.requests.load(Ordering::Relaxed),
    );
    counter(
        &mut e,
        "headlight_spans_received_total",
        "Spans in decoded export requests: accepted plus rejected.",
        counters.spans_accepted.load(Ordering::Relaxed) + counters.spans_rejected.total(),
    );
    by_reason(
        &mut e,
        "headlight_spans_rejected_total",
        "Spans rejected as invalid, by reason (the rest of their request is kept).",
        &[(&[], &counters.spans_rejected)],
    );
    by_reason(
        &mut e,
        "headlight_export_requests_refused_total",
        "Export requests refused before any span was read, by protocol and reason.",
        &[
            (&[("protocol", "grpc")], &counters.grpc_refused),
            (&[("protocol", "http")], &counters.http_refused),
        ],
    );
    let name = "headlight_auth_refused_total";
    e.family(
        name,
        Kind::Counter,
        "Requests refused for a missing or wrong token or session, by listener ([auth]).",
    );
    for (listener, n) in auth_refused.counts() {
        e.sample(name, &[("listener", listener.label())], n);
    }
    counter(
        &mut e,
        "headlight_span_attributes_dropped_total",
        "Span attributes dropped over limits.max_attributes_per_span (the span is kept).",
        counters.attributes_dropped.load(Ordering::Relaxed),
    );
    counter(
        &mut e,
        "headlight_span_attribute_values_truncated_total",
        "Span attribute values longer than limits.max_attribute_value_bytes, cut when stored.",
        counters.attribute_values_truncated.load(Ordering::Relaxed),
    );
    counter(
        &mut e,
        "headlight_transactions_overflowed_total",
        "Transactions counted under transaction=\"other\" because their service already had aggregation.max_transactions_per_service names.",
        aggregator.stats.overflowed_transactions,
    );
    counter(
        &mut e,
        "headlight_orphan_spans_dropped_total",
        "Child spans dropped because their transaction never arrived (or the wait was full).",
        aggregator.stats.orphans_dropped,
    );
    gauge(
        &mut e,
        "headlight_pending_child_spans",
        "Child spans waiting for their transaction (at most aggregation.max_pending_spans).",
        aggregator.pending_child_spans,
    );
    gauge(
        &mut e,
        "headlight_unflushed_transactions",
        "Transactions aggregated in memory and not yet written to the store (the queue to the store).",
        aggregator.unflushed_transactions as u64
            + counters.unwritten_transactions.load(Ordering::Relaxed),
    );
    gauge(
        &mut e,
        "headlight_series",
        "Series the collector knows (from the store at start, and new since).",
        aggregator.series,
    );
    e.family(
        "headlight_store_write_duration_seconds",
        Kind::Histogram,
        "Duration of the store writes (one per flush with data), failed ones included.",
    );
    e.histogram(
        "headlight_store_write_duration_seconds",
        &[],
        &pipeline.store_write_durations(),
    );
    counter(
        &mut e,
        "headlight_store_write_failures_total",
        "Store writes that failed (the batch is kept in memory and retried).",
        counters.write_errors.load(Ordering::Relaxed),
    );
    if let Some(rss) = process::resident_memory_bytes() {
        gauge(
            &mut e,
            "process_resident_memory_bytes",
            "Resident memory size in bytes (VmRSS of /proc/self/status).",
            rss,
        );
    }
    e.finish()
}

fn series_labels(key: &SeriesKey) -> Vec<(&str, &str)> {
    vec![
        ("service", key.service.as_str()),
        ("environment", key.environment.as_str()),
        ("version", key.version.as_str()),
        ("transaction", key.transaction.as_str()),
    ]
}

fn counter(e: &mut Exposition, name: &str, help: &str, value: u64) {
    e.family(name, Kind::Counter, help);
    e.sample(name, &[], value);
}

fn gauge(e: &mut Exposition, name: &str, help: &str, value: impl TryInto<u64>) {
    e.family(name, Kind::Gauge, help);
    e.sample(name, &[], value.try_into().unwrap_or(u64::MAX));
}

/// Label pairs, `(name, value)`.
type Labels<'a> = &'a [(&'a str, &'a str)];

/// Writes a counter family with one sample per set of counters (with its labels) and reason,
/// zeros included.
fn by_reason<R: Reason>(
    e: &mut Exposition,
    name: &str,
    help: &str,
    sets: &[(Labels<'_>, &ReasonCounters<R>)],
) {
    e.family(name, Kind::Counter, help);
    for (labels, counters) in sets {
        for (reason, n) in counters.counts() {
            let mut labels = labels.to_vec();
            labels.push(("reason", reason.label()));
            e.sample(name, &labels, n);
        }
    }
}
