//! `GET /metrics`: transactions with known durations and outcomes, invalid spans and refused
//! requests go in; the Prometheus text must hold the exact per-series RED counters, duration
//! buckets and health values, pass `promtool check metrics`, stay cumulative across flushes,
//! and a real Prometheus (Debian's `prometheus`, which `scripts/test` installs) scraping it
//! every second must answer a PromQL query with the exact request count.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::otlp::{attr, child_span, int_attr, now_ns, request_with_resource, server_span};
use common::process::{self, Process};
use common::{start, test_config};
use headlight_collector::server::Server;
use headlight_proto::otlp::collector::ExportTraceServiceRequest;
use headlight_proto::otlp::collector::trace_service_client::TraceServiceClient;
use headlight_proto::otlp::trace::{Span, Status, status::StatusCode};
use serde_json::Value;

const MS: u64 = 1_000_000;

/// A transaction span of trace `n` lasting `duration_ms`, ending a second ago; an error when
/// `error` (status ERROR).
fn transaction(n: u8, name: &str, duration_ms: f64, error: bool) -> Span {
    let mut span = server_span(n, name, now_ns() - 1_000 * MS, (duration_ms * 1e6) as u64);
    if error {
        span.status = Some(Status {
            code: StatusCode::Error as i32,
            ..Default::default()
        });
    }
    span
}

fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    request_with_resource(
        vec![
            attr("service.name", service),
            attr("service.version", "2.0"),
            attr("deployment.environment.name", "prod"),
        ],
        spans,
    )
}

/// Sends one request over OTLP/gRPC and returns how many spans it rejected.
async fn export(server: &Server, request: ExportTraceServiceRequest) -> i64 {
    let mut client = TraceServiceClient::connect(format!("http://{}", server.otlp_grpc))
        .await
        .unwrap();
    let response = client.export(request).await.unwrap().into_inner();
    response.partial_success.map_or(0, |p| p.rejected_spans)
}

/// GETs `/metrics`, checking the status and content type.
async fn scrape(server: &Server) -> String {
    let response = reqwest::get(format!("http://{}/metrics", server.http))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.unwrap()
}

/// The samples of an exposition: `name{labels}` as written → value.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no sample {series} in {samples:#?}"))
}

/// Runs `promtool check metrics` (Prometheus' own parser and linter) on an exposition.
fn promtool_check(body: &str) {
    let mut child = std::process::Command::new(process::binary("promtool", "prometheus"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const ORDERS: &str =
    r#"{service="shop",environment="prod",version="2.0",transaction="GET /orders"}"#;
/// The transaction `GET /q"x\y` with its label value escaped.
const ODD: &str = r#"{service="shop",environment="prod",version="2.0",transaction="GET /q\"x\\y"}"#;

fn with_le(labels: &str, le: &str) -> String {
    format!("{},le=\"{le}\"}}", labels.strip_suffix('}').unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_metrics_and_health_are_exact_and_cumulative() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    // No periodic writes: the test flushes, so the queue and write counts are exact.
    config.aggregation.flush_interval_ms = 600_000;
    let server = Server::start(config).await.unwrap();
    // Let the flusher's immediate first tick pass while there is nothing to write.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let now = now_ns();
    let mut backwards = server_span(20, "backwards", now - 1_000 * MS, 0);
    backwards.start_time_unix_nano = now;
    let mut http_500 = transaction(9, r#"GET /q"x\y"#, 0.5, false);
    http_500.attributes = vec![int_attr("http.response.status_code", 500)];
    let spans = vec![
        // GET /orders: 7 transactions across the buckets, 2 errors
        transaction(1, "GET /orders", 1.0, false),
        transaction(2, "GET /orders", 5.0, false), // on the 5 ms bound: le is inclusive
        transaction(3, "GET /orders", 5.001, false),
        transaction(4, "GET /orders", 30.0, true),
        transaction(5, "GET /orders", 200.0, false),
        transaction(6, "GET /orders", 1_500.0, false),
        transaction(7, "GET /orders", 12_000.0, true), // above every bound
        // GET /q"x\y: 40 ms, and a server span with HTTP 500 (an error)
        transaction(8, r#"GET /q"x\y"#, 40.0, false),
        http_500,
        // a child whose transaction has not arrived: waits (orphan_wait_ms is 15 s)
        child_span(30, 2, 1, "SELECT", 3, now - 2_000 * MS, now - 1_900 * MS),
        // rejected: end before start, and two ending an hour ahead
        backwards,
        server_span(21, "future", now + 3_600_000 * MS, MS),
        server_span(22, "future", now + 3_600_000 * MS, MS),
    ];
    assert_eq!(export(&server, request("shop", spans)).await, 3);

    let otlp_http = format!("http://{}/v1/traces", server.otlp_http);
    let client = reqwest::Client::new();
    let post = |content_type: &'static str, body: &'static [u8]| {
        client
            .post(&otlp_http)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_eq!(
        post("application/x-protobuf", b"\xff\xff\xff")
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(post("text/plain", b"hello").await.unwrap().status(), 415);

    let body = scrape(&server).await;
    promtool_check(&body);
    let s = samples(&body);
    assert_eq!(
        value(&s, &format!("headlight_transactions_total{ORDERS}")),
        7.0
    );
    assert_eq!(
        value(&s, &format!("headlight_transaction_errors_total{ORDERS}")),
        2.0
    );
    let buckets = [
        ("0.005", 2.0),
        ("0.01", 3.0),
        ("0.025", 3.0),
        ("0.05", 4.0),
        ("0.1", 4.0),
        ("0.25", 5.0),
        ("0.5", 5.0),
        ("1", 5.0),
        ("2.5", 6.0),
        ("5", 6.0),
        ("10", 6.0),
        ("+Inf", 7.0),
    ];
    for (le, count) in buckets {
        let series = format!(
            "headlight_transaction_duration_seconds_bucket{}",
            with_le(ORDERS, le)
        );
        assert_eq!(value(&s, &series), count, "{series}");
    }
    let sum = value(
        &s,
        &format!("headlight_transaction_duration_seconds_sum{ORDERS}"),
    );
    assert!((sum - 13.741_001).abs() < 1e-9, "sum {sum}");
    assert_eq!(
        value(
            &s,
            &format!("headlight_transaction_duration_seconds_count{ORDERS}")
        ),
        7.0
    );
    assert_eq!(
        value(&s, &format!("headlight_transactions_total{ODD}")),
        2.0
    );
    assert_eq!(
        value(&s, &format!("headlight_transaction_errors_total{ODD}")),
        1.0
    );
    let transactions_lines = s
        .keys()
        .filter(|k| k.starts_with("headlight_transactions_total"))
        .count();
    assert_eq!(transactions_lines, 2, "no overflow line under the cap");

    // health
    assert_eq!(value(&s, "headlight_export_requests_total"), 1.0);
    assert_eq!(value(&s, "headlight_spans_received_total"), 13.0);
    let rejected = |reason: &str| {
        value(
            &s,
            &format!("headlight_spans_rejected_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(rejected("end_before_start"), 1.0);
    assert_eq!(rejected("in_future"), 2.0);
    for reason in [
        "invalid_trace_id",
        "invalid_span_id",
        "duration_over_limit",
        "outside_retention",
    ] {
        assert_eq!(rejected(reason), 0.0, "{reason}");
    }
    let refused = |protocol: &str, reason: &str| {
        value(
            &s,
            &format!(
                "headlight_export_requests_refused_total{{protocol=\"{protocol}\",reason=\"{reason}\"}}"
            ),
        )
    };
    assert_eq!(refused("http", "malformed"), 1.0);
    assert_eq!(refused("http", "unsupported_media_type"), 1.0);
    assert_eq!(refused("http", "too_large"), 0.0);
    for reason in ["malformed", "too_large", "unsupported_media_type"] {
        assert_eq!(refused("grpc", reason), 0.0, "{reason}");
    }
    // Admission control's reasons are listed too, at zero: nothing was overloaded.
    for protocol in ["grpc", "http"] {
        for reason in ["busy", "store_behind", "memory_limit", "log_unwritable"] {
            assert_eq!(refused(protocol, reason), 0.0, "{protocol} {reason}");
        }
    }
    assert_eq!(value(&s, "headlight_pending_child_spans"), 1.0);
    assert_eq!(value(&s, "headlight_orphan_spans_dropped_total"), 0.0);
    assert_eq!(value(&s, "headlight_unflushed_transactions"), 9.0);
    assert_eq!(value(&s, "headlight_series"), 2.0);
    assert_eq!(value(&s, "headlight_metrics_series"), 2.0);
    assert_eq!(value(&s, "headlight_metrics_series_limit"), 10_000.0);
    assert_eq!(
        value(&s, "headlight_store_write_duration_seconds_count"),
        0.0
    );
    let rss = value(&s, "process_resident_memory_bytes");
    assert!(rss > 1e6 && rss < 4e9, "rss {rss}");

    // A flush empties the queue and is timed; the counters keep counting across it.
    server.flush().await.unwrap();
    let spans = (40..43)
        .map(|n| transaction(n, "GET /orders", 1.0, false))
        .collect();
    assert_eq!(export(&server, request("shop", spans)).await, 0);
    let s = samples(&scrape(&server).await);
    assert_eq!(value(&s, "headlight_unflushed_transactions"), 3.0);
    assert_eq!(
        value(&s, &format!("headlight_transactions_total{ORDERS}")),
        10.0
    );
    assert_eq!(
        value(
            &s,
            &format!(
                "headlight_transaction_duration_seconds_bucket{}",
                with_le(ORDERS, "0.005")
            )
        ),
        5.0
    );
    assert_eq!(
        value(&s, "headlight_store_write_duration_seconds_count"),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "headlight_store_write_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        1.0
    );
    assert_eq!(value(&s, "headlight_store_write_failures_total"), 0.0);
    assert_eq!(value(&s, "headlight_spans_received_total"), 16.0);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_beyond_the_cap_are_counted_in_one_overflow_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.metrics.max_series = 1;
    let server = Server::start(config).await.unwrap();
    let spans = vec![
        transaction(1, "GET /a", 1.0, false),
        transaction(2, "GET /b", 2.0, true),
        transaction(3, "GET /c", 3.0, false),
        transaction(4, "GET /a", 4.0, false),
    ];
    assert_eq!(export(&server, request("shop", spans)).await, 0);
    let body = scrape(&server).await;
    promtool_check(&body);
    let s = samples(&body);
    let a = r#"{service="shop",environment="prod",version="2.0",transaction="GET /a"}"#;
    assert_eq!(value(&s, &format!("headlight_transactions_total{a}")), 2.0);
    assert_eq!(
        value(&s, "headlight_transactions_total{overflow=\"true\"}"),
        2.0
    );
    assert_eq!(
        value(&s, "headlight_transaction_errors_total{overflow=\"true\"}"),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "headlight_transaction_duration_seconds_count{overflow=\"true\"}"
        ),
        2.0
    );
    assert_eq!(
        s.keys()
            .filter(|k| k.starts_with("headlight_transactions_total"))
            .count(),
        2
    );
    assert_eq!(value(&s, "headlight_series"), 3.0);
    assert_eq!(value(&s, "headlight_metrics_series"), 1.0);
    server.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus.

/// Starts Prometheus scraping the collector's `/metrics` every second, its data in `dir`.
async fn start_prometheus(dir: &std::path::Path, server: &Server) -> Process {
    let binary = process::binary("prometheus", "prometheus");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: headlight\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: ['{}']\n",
            server.http
        ),
    )
    .unwrap();
    let args = |port: u16| {
        vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ]
    };
    process::start_ready(&binary, args, &dir.join("prometheus.log")).await
}

/// GETs a Prometheus API path and returns its `data`.
async fn prometheus_api(prometheus: &Process, path: &str) -> Value {
    let url = format!("{}{path}", prometheus.url);
    let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "success", "{url}: {body}");
    body["data"].clone()
}

/// Waits up to 30 s until the instant query `promql` returns one sample, and returns its
/// value as Prometheus writes it.
async fn query_one(prometheus: &Process, promql: &str) -> String {
    let path = format!("/api/v1/query?query={}", common::enc(promql));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let data = prometheus_api(prometheus, &path).await;
        if let [sample] = data["result"].as_array().unwrap().as_slice() {
            return sample["value"][1].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{promql}: no single sample within 30 s: {data}\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_collector_and_promql_counts_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    // 137 checkout requests: 100 GET /cart (7 errors), 37 POST /pay (2 errors), 1..200 ms.
    let spans: Vec<Span> = (0..137u8)
        .map(|i| {
            let (name, error) = if i < 100 {
                ("GET /cart", i % 14 == 3)
            } else {
                ("POST /pay", i % 18 == 5)
            };
            transaction(i + 1, name, f64::from(i % 50) * 4.0 + 1.0, error)
        })
        .collect();
    assert_eq!(export(&server, request("checkout", spans)).await, 0);
    let odd = vec![transaction(200, r#"POST /pay "now""#, 3.0, false)];
    assert_eq!(export(&server, request("odd", odd)).await, 0);

    let prometheus = start_prometheus(dir.path(), &server).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let targets = prometheus_api(&prometheus, "/api/v1/targets").await;
        let target = &targets["activeTargets"][0];
        if target["health"] == "up" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the collector's target is not up within 30 s: {target}\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    assert_eq!(
        query_one(
            &prometheus,
            r#"sum(headlight_transactions_total{service="checkout"})"#
        )
        .await,
        "137"
    );
    assert_eq!(
        query_one(
            &prometheus,
            r#"headlight_transaction_errors_total{service="checkout",environment="prod",version="2.0",transaction="GET /cart"}"#
        )
        .await,
        "7"
    );
    assert_eq!(
        query_one(
            &prometheus,
            r#"sum(headlight_transaction_errors_total{service="checkout"})"#
        )
        .await,
        "9"
    );
    assert_eq!(
        query_one(
            &prometheus,
            r#"sum(headlight_transaction_duration_seconds_count{service="checkout"})"#
        )
        .await,
        "137"
    );
    // The label value with a quote came through the escaping intact.
    assert_eq!(
        query_one(
            &prometheus,
            r#"headlight_transactions_total{transaction="POST /pay \"now\""}"#
        )
        .await,
        "1"
    );
    assert_eq!(
        query_one(&prometheus, "headlight_spans_received_total").await,
        "138"
    );
    drop(prometheus);
    server.shutdown().await.unwrap();
}
