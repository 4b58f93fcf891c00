//! Real OpenTelemetry SDK clients (`opentelemetry-otlp` over gRPC, HTTP/protobuf and HTTP/JSON)
//! send transactions with known durations; the query API must answer exactly.

mod common;

use std::collections::BTreeSet;

use common::sdk::{self, Exporter, Txn};
use common::{enc, get_ok, nearest_rank, now_ms, start, within_one_percent};
use headlight_collector::server::Server;
use serde_json::Value;

const TRANSACTION: &str = "GET /users/{id}";

async fn send(server: &Server, exporter: Exporter, service: &str, mut txns: Vec<Txn>) -> Vec<Txn> {
    let endpoint = match exporter {
        Exporter::Grpc => server.otlp_grpc.to_string(),
        Exporter::HttpProtobuf | Exporter::HttpJson => server.otlp_http.to_string(),
    };
    let service = service.to_owned();
    let txns = tokio::task::spawn_blocking(move || {
        sdk::send(exporter, &endpoint, &service, "1.4.2", &mut txns);
        txns
    })
    .await
    .unwrap();
    server.flush().await.unwrap();
    txns
}

/// Checks the latency summary against the exact statistics of what was sent.
async fn check_latency(server: &Server, service: &str, txns: &[Txn], now: i64) {
    let range = format!("from={}&to={}", now - 3_600_000, now + 60_000);
    let body = get_ok(
        server,
        &format!(
            "/api/v1/latency?service={service}&transaction={}&{range}",
            enc(TRANSACTION)
        ),
    )
    .await;
    let summary = &body["summary"];
    let mut durations: Vec<u64> = txns.iter().map(|t| t.duration_us).collect();
    durations.sort_unstable();
    assert_eq!(summary["count"], txns.len() as u64, "{summary}");
    assert_eq!(
        summary["errors"],
        txns.iter().filter(|t| t.error).count() as u64
    );
    for (field, q) in [
        ("p50_ms", 0.5),
        ("p90_ms", 0.9),
        ("p95_ms", 0.95),
        ("p99_ms", 0.99),
    ] {
        within_one_percent(field, &summary[field], nearest_rank(&durations, q));
    }
    let max_ms = *durations.last().unwrap() as f64 / 1000.0;
    assert_eq!(summary["max_ms"].as_f64(), Some(max_ms));
    let mean_ms = durations.iter().sum::<u64>() as f64 / durations.len() as f64 / 1000.0;
    assert!((summary["mean_ms"].as_f64().unwrap() - mean_ms).abs() < 1e-6);
    let point_total: u64 = body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        point_total,
        txns.len() as u64,
        "points add up to the summary"
    );

    let histogram = get_ok(
        server,
        &format!("/api/v1/histogram?service={service}&{range}"),
    )
    .await;
    assert_eq!(histogram["count"], txns.len() as u64);
    let bucket_total: u64 = histogram["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(bucket_total, txns.len() as u64);
}

/// Checks the trace of an error transaction (always stored) and its self times.
async fn check_trace(server: &Server, txn: &Txn) {
    assert!(txn.error, "error transactions are always stored");
    let trace = get_ok(server, &format!("/api/v1/traces/{}", txn.trace_id)).await;
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3, "{trace}");
    let by_name = |name: &str| spans.iter().find(|s| s["name"] == name).unwrap().clone();
    let root = by_name(TRANSACTION);
    assert_eq!(root["kind"], "server");
    assert_eq!(root["error"], true);
    assert_eq!(root["transaction"], TRANSACTION);
    assert_eq!(root["parent_span_id"], Value::Null);
    assert!((root["duration_ms"].as_f64().unwrap() - txn.duration_us as f64 / 1000.0).abs() < 1e-6);
    assert!((root["self_ms"].as_f64().unwrap() - txn.self_us() as f64 / 1000.0).abs() < 1e-6);
    for (name, kind, from_us, to_us) in txn.children() {
        let child = by_name(name);
        assert_eq!(child["kind"], kind);
        assert_eq!(child["parent_span_id"], root["span_id"]);
        let length_ms = (to_us - from_us) as f64 / 1000.0;
        assert!((child["duration_ms"].as_f64().unwrap() - length_ms).abs() < 1e-6);
        assert!(
            (child["self_ms"].as_f64().unwrap() - length_ms).abs() < 1e-6,
            "leaf: self = duration"
        );
    }
    assert_eq!(root["attributes"]["http.route"], "/users/{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_sdk_answers_latency_region_trace_and_breakdown_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let now = now_ms();
    let txns = send(&server, Exporter::Grpc, "users", sdk::generate(400, 7, now)).await;

    check_latency(&server, "users", &txns, now).await;
    check_trace(&server, &txns[0]).await;

    let services = get_ok(&server, "/api/v1/services").await;
    let users = &services["services"][0];
    assert_eq!(users["service"], "users");
    assert_eq!(users["environments"], serde_json::json!(["test"]));
    assert_eq!(users["versions"], serde_json::json!(["1.4.2"]));
    assert_eq!(users["transactions"], serde_json::json!([TRANSACTION]));
    assert_eq!(users["overflowed"], false);

    // A time × duration region: exactly the transactions inside it, newest first.
    let (from, to) = (txns[300].end_ms, txns[100].end_ms);
    let (min_ms, max_ms) = (20.0, 400.0);
    let expected: BTreeSet<&str> = txns
        .iter()
        .filter(|t| t.end_ms >= from && t.end_ms < to)
        .filter(|t| t.duration_us >= 20_000 && t.duration_us <= 400_000)
        .map(|t| t.trace_id.as_str())
        .collect();
    assert!(expected.len() > 20, "the region holds a fair sample");
    let region = get_ok(
        &server,
        &format!("/api/v1/transactions?service=users&from={from}&to={to}&min_ms={min_ms}&max_ms={max_ms}&limit=1000"),
    )
    .await;
    let rows = region["transactions"].as_array().unwrap();
    let got: BTreeSet<&str> = rows
        .iter()
        .map(|r| r["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, expected);
    assert_eq!(rows.len(), expected.len(), "no duplicates");
    let ends: Vec<f64> = rows.iter().map(|r| r["end_ms"].as_f64().unwrap()).collect();
    assert!(ends.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert!(
        rows.iter()
            .all(|r| r["transaction"] == TRANSACTION && r["version"] == "1.4.2")
    );
    let errors_only = get_ok(
        &server,
        &format!("/api/v1/transactions?service=users&from={from}&to={to}&errors=true&limit=1000"),
    )
    .await;
    let expected_errors = txns
        .iter()
        .filter(|t| t.error && t.end_ms >= from && t.end_ms < to)
        .count();
    assert_eq!(
        errors_only["transactions"].as_array().unwrap().len(),
        expected_errors
    );

    // Breakdown: per-operation sums match what was sent, and self times add up to the
    // transactions' total duration.
    let breakdown = get_ok(
        &server,
        &format!(
            "/api/v1/breakdown?service=users&from={}&to={}",
            now - 3_600_000,
            now + 60_000
        ),
    )
    .await;
    assert_eq!(breakdown["transactions"], 400);
    let ops = breakdown["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 3, "{breakdown}");
    let op = |name: &str| ops.iter().find(|o| o["operation"] == name).unwrap().clone();
    let sum = |f: &dyn Fn(&Txn) -> u64| txns.iter().map(f).sum::<u64>() as f64 / 1000.0;
    let close = |a: &Value, b: f64| (a.as_f64().unwrap() - b).abs() < 1e-6 * b.max(1.0);
    let root = op(TRANSACTION);
    assert_eq!(root["kind"], "server");
    assert_eq!(root["count"], 400);
    assert!(close(&root["self_ms"], sum(&|t| t.self_us())), "{root}");
    assert!(close(&root["total_ms"], sum(&|t| t.duration_us)));
    for (i, name) in ["SELECT users", "render"].into_iter().enumerate() {
        let o = op(name);
        assert_eq!(o["count"], 400);
        let length = sum(&|t| t.children()[i].3 - t.children()[i].2);
        assert!(close(&o["self_ms"], length), "{o}");
        assert!(close(&o["total_ms"], length));
    }
    let all_self: f64 = ops.iter().map(|o| o["self_ms"].as_f64().unwrap()).sum();
    assert!(
        (all_self - sum(&|t| t.duration_us)).abs() < 1e-3,
        "self times add up to the total"
    );
    let shares: f64 = ops.iter().map(|o| o["share"].as_f64().unwrap()).sum();
    assert!((shares - 1.0).abs() < 1e-9);

    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_sdk_answers_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let now = now_ms();
    let txns = send(
        &server,
        Exporter::HttpProtobuf,
        "orders",
        sdk::generate(300, 11, now),
    )
    .await;
    check_latency(&server, "orders", &txns, now).await;
    check_trace(&server, &txns[10]).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_sdk_answers_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let now = now_ms();
    let txns = send(
        &server,
        Exporter::HttpJson,
        "carts",
        sdk::generate(120, 13, now),
    )
    .await;
    check_latency(&server, "carts", &txns, now).await;
    check_trace(&server, &txns[20]).await;
    server.shutdown().await.unwrap();
}
