//! Benchmarks, load generator and accuracy harness for Headlight; figures in `benches/RESULTS.md`.
//!
//! This library holds what the benches share: synthetic OTLP traffic with a known shape, an
//! in-process OTLP/gRPC [`sink`] for the agent's exporters, what the drivers read from
//! [`procfs`], and the [`soak`] procedure.

pub mod procfs;
pub mod sink;
pub mod soak;

use headlight_collector::pipeline::Pipeline;

use headlight_proto::otlp::collector::ExportTraceServiceRequest;
use headlight_proto::otlp::common::{AnyValue, KeyValue, any_value};
use headlight_proto::otlp::resource::Resource;
use headlight_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

/// The shape of a synthetic export request.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Transactions in the request.
    pub transactions: usize,
    /// Child spans per transaction.
    pub children: usize,
    /// Distinct transaction names (series) the transactions cycle through.
    pub series: usize,
    /// Attributes on each span.
    pub attributes: usize,
}

/// The ingest benches' request: 500 transactions × (1 server span + 3 client children), 50
/// series, 6 attributes per span.
pub const INGEST_SHAPE: Shape = Shape {
    transactions: 500,
    children: 3,
    series: 50,
    attributes: 6,
};

fn string_attr(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

/// Builds one request of `shape`, every transaction ending shortly before `now_ns`, with
/// durations spread over 1..100 ms and every 50th an error. `seed` makes trace ids distinct
/// across requests.
pub fn synthetic_request(shape: Shape, now_ns: u64, seed: u64) -> ExportTraceServiceRequest {
    let mut spans = Vec::with_capacity(shape.transactions * (1 + shape.children));
    for t in 0..shape.transactions {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&seed.to_be_bytes());
        trace_id[8..].copy_from_slice(&(t as u64 + 1).to_be_bytes());
        let duration_ns = 1_000_000 + (t as u64 * 7_919 % 99) * 1_000_000;
        let end = now_ns - 1_000_000_000 - t as u64 * 1_000_000;
        let start = end - duration_ns;
        let route = format!("/api/route{}", t % shape.series.max(1));
        let mut attributes = vec![
            string_attr("http.request.method", "GET".to_owned()),
            string_attr("http.route", route.clone()),
        ];
        for a in 0..shape.attributes.saturating_sub(2) {
            attributes.push(string_attr(&format!("attr.{a}"), format!("value-{t}-{a}")));
        }
        let root_id = (t as u64 * 64 + 1).to_be_bytes().to_vec();
        spans.push(Span {
            trace_id: trace_id.to_vec(),
            span_id: root_id.clone(),
            name: format!("GET {route}"),
            kind: 2,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: attributes.clone(),
            status: (t % 50 == 0).then(|| headlight_proto::otlp::trace::Status {
                code: 2,
                ..Default::default()
            }),
            ..Default::default()
        });
        let slice = duration_ns / (shape.children as u64 + 1);
        for c in 0..shape.children {
            let child_start = start + slice * c as u64;
            spans.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: (t as u64 * 64 + 2 + c as u64).to_be_bytes().to_vec(),
                parent_span_id: root_id.clone(),
                name: format!("child-op-{c}"),
                kind: 3,
                start_time_unix_nano: child_start,
                end_time_unix_nano: child_start + slice / 2,
                attributes: attributes[..shape.attributes.min(attributes.len())].to_vec(),
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    string_attr("service.name", "bench-service".to_owned()),
                    string_attr("service.version", "1.0.0".to_owned()),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Spans in a request of `shape`.
pub fn span_count(shape: Shape) -> usize {
    shape.transactions * (1 + shape.children)
}

/// Reads and ingests each encoded request, then writes what was aggregated to the store in
/// one flush: the collector's end-to-end work for a batch (the flusher runs once a second, so
/// many requests share a store write).
pub fn ingest_and_flush(pipeline: &Pipeline, requests: Vec<Vec<u8>>) {
    for bytes in requests {
        let bytes = bytes::Bytes::from(bytes);
        assert!(pipeline.export(&bytes).unwrap().partial_success.is_none());
    }
    pipeline.flush().expect("store write");
}

/// The ClickHouse the ClickHouse benches write to, from the environment:
/// `HEADLIGHT_BENCH_CLICKHOUSE_URL` (default `http://127.0.0.1:8123`), and for a sharded layout
/// `HEADLIGHT_BENCH_CLICKHOUSE_CLUSTER` with `HEADLIGHT_BENCH_CLICKHOUSE_SHARDS` (comma-separated
/// shard URLs); a fresh database `bench_<unix ns>` per call.
pub fn clickhouse_config() -> headlight_collector::config::ClickHouseConfig {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    headlight_collector::config::ClickHouseConfig {
        url: env("HEADLIGHT_BENCH_CLICKHOUSE_URL")
            .unwrap_or_else(|| "http://127.0.0.1:8123".to_owned()),
        database: format!("bench_{}", now.as_nanos()),
        cluster: env("HEADLIGHT_BENCH_CLICKHOUSE_CLUSTER"),
        shard_urls: env("HEADLIGHT_BENCH_CLICKHOUSE_SHARDS")
            .map(|s| s.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
        ..headlight_collector::config::ClickHouseConfig::default()
    }
}
