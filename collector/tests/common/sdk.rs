//! Sends known transactions through the real OpenTelemetry SDK (`opentelemetry_sdk` +
//! `opentelemetry-otlp` exporters), the way an instrumented service would.

use std::time::Duration;

use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{
    Compression, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::at_ms;

/// One transaction to send: a SERVER span with two children.
#[derive(Debug, Clone)]
pub struct Txn {
    /// End, unix ms.
    pub end_ms: i64,
    /// Duration, µs.
    pub duration_us: u64,
    /// HTTP 500 (an error transaction).
    pub error: bool,
    /// Filled in when sent.
    pub trace_id: String,
}

impl Txn {
    /// `SELECT users` (client) covers 10 %..50 % of the transaction, `render` (internal)
    /// 60 %..80 %; returns (name, kind, start offset µs, end offset µs).
    pub fn children(&self) -> [(&'static str, &'static str, u64, u64); 2] {
        let d = self.duration_us;
        [
            ("SELECT users", "client", d / 10, d / 2),
            ("render", "internal", d * 6 / 10, d * 8 / 10),
        ]
    }

    /// The transaction span's own (self) time, µs.
    pub fn self_us(&self) -> u64 {
        self.duration_us - self.children().iter().map(|c| c.3 - c.2).sum::<u64>()
    }
}

/// `n` transactions ending between 10 s and about `n * 0.6` s ago, durations log-uniform over
/// 1 ms .. 2 s (whole µs), every 10th an error. Deterministic for a seed.
pub fn generate(n: usize, seed: u64, now_ms: i64) -> Vec<Txn> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|i| {
            let duration_us = (1000.0 * 2000f64.powf(next())).round() as u64;
            Txn {
                end_ms: now_ms - 10_000 - i as i64 * 600,
                duration_us,
                error: i % 10 == 0,
                trace_id: String::new(),
            }
        })
        .collect()
}

/// Which exporter.
#[derive(Debug, Clone, Copy)]
pub enum Exporter {
    /// OTLP/gRPC (tonic) with gzip.
    Grpc,
    /// OTLP/HTTP protobuf with gzip.
    HttpProtobuf,
    /// OTLP/HTTP JSON.
    HttpJson,
}

/// Sends the transactions for `service`/`version` to a collector and fills in their trace ids.
/// Blocking: call from a blocking thread (`spawn_blocking`) inside a tokio runtime.
pub fn send(exporter: Exporter, endpoint: &str, service: &str, version: &str, txns: &mut [Txn]) {
    let exporter = match exporter {
        Exporter::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://{endpoint}"))
            .with_compression(Compression::Gzip)
            .with_timeout(Duration::from_secs(10))
            .build(),
        Exporter::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("http://{endpoint}/v1/traces"))
            .with_compression(Compression::Gzip)
            .build(),
        Exporter::HttpJson => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(format!("http://{endpoint}/v1/traces"))
            .build(),
    }
    .expect("exporter builds");
    send_with(exporter, service, version, txns);
}

/// Sends the transactions through a given exporter (one with TLS settings…), like [`send`].
pub fn send_with(
    exporter: opentelemetry_otlp::SpanExporter,
    service: &str,
    version: &str,
    txns: &mut [Txn],
) {
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .with_attributes([
                    KeyValue::new("service.version", version.to_owned()),
                    KeyValue::new("deployment.environment.name", "test"),
                ])
                .build(),
        )
        .build();
    let tracer = provider.tracer("headlight-tests");
    for (i, txn) in txns.iter_mut().enumerate() {
        let end_ns = txn.end_ms as u128 * 1_000_000;
        let start_ns = end_ns - u128::from(txn.duration_us) * 1000;
        let time = |ns: u128| at_ms(0) + Duration::from_nanos(ns as u64);
        let status = if txn.error { 500 } else { 200 };
        let parent = tracer
            .span_builder("GET /users/{id}")
            .with_kind(SpanKind::Server)
            .with_start_time(time(start_ns))
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/users/{id}"),
                KeyValue::new("http.response.status_code", status),
                KeyValue::new("url.path", format!("/users/{i}")),
            ])
            .start(&tracer);
        txn.trace_id = parent.span_context().trace_id().to_string();
        let cx = Context::new().with_span(parent);
        for (name, kind, from_us, to_us) in txn.children() {
            let kind = if kind == "client" {
                SpanKind::Client
            } else {
                SpanKind::Internal
            };
            let mut child = tracer
                .span_builder(name)
                .with_kind(kind)
                .with_start_time(time(start_ns + u128::from(from_us) * 1000))
                .start_with_context(&tracer, &cx);
            child.end_with_timestamp(time(start_ns + u128::from(to_us) * 1000));
        }
        if txn.error {
            cx.span().set_status(Status::error("upstream failed"));
        }
        cx.span().end_with_timestamp(time(end_ns));
        if i % 200 == 199 {
            provider.force_flush().expect("flush");
        }
    }
    provider.force_flush().expect("flush");
    provider.shutdown().expect("shutdown");
}
