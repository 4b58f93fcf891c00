//! The agent never blocks the application: with the collector unreachable or hanging, request
//! handlers keep their speed, memory stays bounded, nothing panics, and every span is still
//! accounted for. (Tight overhead figures belong to `benches/`; these bounds are generous.)

mod common;

#[path = "../examples/axum_service.rs"]
mod users;

use std::time::{Duration, Instant};

use common::{Service, agent, assert_conserved};
use headlight_agent::{Builder, DropReason};
use tracing_subscriber::prelude::*;

/// A port nothing listens on.
fn closed_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// A collector that accepts connections and never answers (held for at most 120 s).
fn hanging_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        let until = Instant::now() + Duration::from_secs(120);
        while Instant::now() < until && held.len() < 1_000 {
            match listener.accept() {
                Ok((stream, _)) => held.push(stream),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    format!("http://{addr}")
}

/// Short timeouts so the exporter is busy failing for the whole test.
fn failing_agent(endpoint: &str) -> Builder {
    agent("users", endpoint).export(|e| {
        e.timeout = Duration::from_millis(500);
        e.max_retry_elapsed = Duration::from_secs(2);
        e.shutdown_timeout = Duration::from_secs(1);
    })
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// Sends `n` sequential requests and returns their sorted latencies.
async fn latencies(service: &Service, n: u64) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let started = Instant::now();
        let response = client
            .get(format!("{}/users/{}", service.url(), i % 10))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        out.push(started.elapsed());
    }
    out.sort();
    out
}

async fn handlers_keep_their_speed(endpoint: String) {
    let baseline = Service::start_plain(users::app);
    latencies(&baseline, 200).await; // warm-up
    let plain = latencies(&baseline, 1_500).await;
    baseline.stop();

    let service = Service::start(failing_agent(&endpoint), users::app);
    latencies(&service, 200).await;
    let instrumented = latencies(&service, 1_500).await;
    let stats = service.stop();

    let (p50_plain, p50) = (quantile(&plain, 0.5), quantile(&instrumented, 0.5));
    let (p99_plain, p99) = (quantile(&plain, 0.99), quantile(&instrumented, 0.99));
    let max = *instrumented.last().unwrap();
    // A handler that waited on the exporter would take at least one export timeout (500 ms).
    assert!(max < Duration::from_millis(400), "slowest request {max:?}");
    assert!(
        p50 <= p50_plain * 2 + Duration::from_millis(1),
        "p50 {p50:?} vs uninstrumented {p50_plain:?}"
    );
    assert!(
        p99 <= p99_plain * 3 + Duration::from_millis(5),
        "p99 {p99:?} vs uninstrumented {p99_plain:?}"
    );
    assert_conserved(&stats);
    assert_eq!(stats.transactions_recorded, 1_700);
    assert_eq!(stats.transactions_sent, 0);
    // Nothing got through, and every transaction is counted as dropped with a reason.
    assert_eq!(stats.transactions_dropped.total(), 1_700, "{stats:?}");
    assert!(stats.export_retries > 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_collector_does_not_slow_handlers() {
    handlers_keep_their_speed(closed_endpoint()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_collector_does_not_slow_handlers() {
    handlers_keep_their_speed(hanging_endpoint()).await;
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn memory_stays_flat_while_the_collector_hangs() {
    let (layer, guard) = failing_agent(&hanging_endpoint()).build().unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let emit = |from: u64, to: u64| {
        for i in from..to {
            let root = tracing::info_span!("GET /items", otel.kind = "server", item = i);
            let _entered = root.enter();
            tracing::info_span!("SELECT items", otel.kind = "client", item = i, db = "pg")
                .in_scope(|| tracing::info!(rows = 3, "fetched"));
            tracing::info_span!("render", item = i, bytes = 512).in_scope(|| {});
        }
    };
    let (before, after) = tracing::subscriber::with_default(subscriber, || {
        emit(0, 20_000); // fills the queue: from here on everything is dropped
        let before = rss_kib();
        emit(20_000, 220_000);
        (before, rss_kib())
    });
    let stats = guard.shutdown();
    assert_conserved(&stats);
    assert_eq!(stats.transactions_recorded, 220_000);
    // 600 000 spans of ~0.5 KiB would be ~300 MiB if anything kept them.
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 16,
        "RSS grew {grown_mib} MiB ({before} → {after} KiB)"
    );
    assert!(
        stats.spans_dropped.get(DropReason::QueueFull) >= 590_000,
        "{stats:?}"
    );
}
