//! Applications already on the OpenTelemetry SDK (`tracing-opentelemetry` + `opentelemetry-otlp`)
//! point at the collector unchanged: the stock pipeline's transactions are counted exactly and
//! its traces read back like the agent's.

mod common;

use std::time::Duration;

use common::Collector;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Compression, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_opentelemetry_with_the_otlp_exporter_works_unchanged() {
    let collector = Collector::start().await;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(collector.endpoint())
        .with_compression(Compression::Gzip)
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("legacy")
                .with_attribute(opentelemetry::KeyValue::new("service.version", "2.1.0"))
                .build(),
        )
        .build();
    let tracer = provider.tracer("legacy-app");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    let requests = 250u64;
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..requests {
            let status: u16 = if i % 25 == 0 { 503 } else { 200 };
            let span = tracing::info_span!(
                "GET /orders/{id}",
                otel.kind = "server",
                http.request.method = "GET",
                http.route = "/orders/{id}",
                http.response.status_code = status,
            );
            let _entered = span.enter();
            tracing::info_span!("SELECT orders", otel.kind = "client").in_scope(|| {
                std::thread::sleep(Duration::from_micros(50));
            });
        }
    });
    provider.force_flush().unwrap();
    provider.shutdown().unwrap();

    assert_eq!(collector.transactions_counted("legacy").await, requests);
    let latency = collector
        .get("/api/v1/latency?service=legacy&transaction=GET%20%2Forders%2F%7Bid%7D")
        .await;
    assert_eq!(latency["summary"]["count"], requests);
    assert_eq!(latency["summary"]["errors"], requests / 25);
    let services = collector.get("/api/v1/services").await;
    let legacy = &services["services"][0];
    assert_eq!(legacy["service"], "legacy");
    assert_eq!(legacy["versions"][0], "2.1.0");
    let breakdown = collector.get("/api/v1/breakdown?service=legacy").await;
    let query = breakdown["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operation"] == "SELECT orders")
        .unwrap();
    assert_eq!(query["count"], requests);
}
