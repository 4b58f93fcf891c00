//! Conservation: with the collector healthy, slow, down-then-up, or answering UNAVAILABLE to
//! 70 % of requests, every emitted transaction and span is received by the collector or counted
//! as dropped by reason (or, for children, summarized by the tail decision) — and nothing is
//! received twice.
//!
//! The faults come from a real gRPC server in front of the real collector pipeline
//! (`common::front`): it delays, refuses with `UNAVAILABLE` + `RetryInfo`, or forwards, and
//! records every span id it forwarded.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::front::{Fault, Seen, serve_front};
use common::{Collector, agent, assert_conserved};
use headlight_agent::{AgentStats, Builder, DropReason};
use tracing_subscriber::prelude::*;

const CHILDREN: u64 = 2;

/// Emits `transactions` transactions (a consumer span with two children) from a thread of its
/// own, in bursts of `burst` with a pause between, then flushes and stops the agent.
async fn emit(builder: Builder, transactions: u64, burst: u64, pause: Duration) -> AgentStats {
    tokio::task::spawn_blocking(move || {
        let (layer, guard) = builder.build().unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..transactions {
                let job = tracing::info_span!("process order", otel.kind = "consumer", order = i);
                let _entered = job.enter();
                tracing::info_span!("load", order = i).in_scope(|| {});
                tracing::info_span!("store", order = i).in_scope(|| {});
                if (i + 1) % burst == 0 {
                    std::thread::sleep(pause);
                }
            }
        });
        guard.flush(Duration::from_secs(120));
        guard.shutdown()
    })
    .await
    .unwrap()
}

/// Checks received + dropped = emitted for transactions and spans, and no duplicates.
async fn assert_accounted(
    collector: &Collector,
    seen: &Mutex<Seen>,
    stats: &AgentStats,
    service: &str,
    emitted: u64,
) {
    assert_conserved(stats);
    assert_eq!(stats.transactions_recorded, emitted);
    assert_eq!(stats.spans_recorded, emitted * (1 + CHILDREN));
    let counted = collector.transactions_counted(service).await;
    assert_eq!(
        counted + stats.transactions_dropped.total(),
        emitted,
        "collector counted {counted}: {stats:?}"
    );
    let seen = seen.lock().unwrap();
    let distinct = seen.times_seen.len() as u64;
    let duplicates: u32 = seen.times_seen.values().map(|n| n - 1).sum();
    assert_eq!(duplicates, 0, "no span is received twice");
    assert_eq!(
        distinct + stats.spans_not_kept + stats.spans_dropped.total(),
        emitted * (1 + CHILDREN),
        "{stats:?}"
    );
    assert_eq!(stats.spans_sent, distinct);
}

async fn start_front(fault: Fault) -> (Collector, Arc<Mutex<Seen>>, SocketAddr) {
    let collector = Collector::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = serve_front(
        listener,
        fault,
        Some(Arc::clone(collector.server.pipeline())),
    );
    (collector, seen, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_collector_receives_everything() {
    let (collector, seen, addr) = start_front(Fault::None).await;
    let stats = emit(
        agent("orders", &format!("http://{addr}")),
        3_000,
        200,
        Duration::from_millis(20),
    )
    .await;
    assert_accounted(&collector, &seen, &stats, "orders", 3_000).await;
    assert_eq!(stats.transactions_dropped.total(), 0, "{stats:?}");
    assert_eq!(stats.transactions_sent, 3_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_collector_drops_are_counted_and_reported() {
    let (collector, seen, addr) = start_front(Fault::Slow(Duration::from_millis(300))).await;
    // 3000 transactions at full speed fill the 2048-span queue while the collector dawdles.
    let stats = emit(
        agent("orders", &format!("http://{addr}")),
        3_000,
        3_000,
        Duration::ZERO,
    )
    .await;
    assert_accounted(&collector, &seen, &stats, "orders", 3_000).await;
    let queue_full = stats.transactions_dropped.get(DropReason::QueueFull);
    assert!(queue_full > 0, "{stats:?}");
    // The drop counts ride on later export requests: the collector shows what it misses.
    let services = collector.get("/api/v1/services").await;
    let orders = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "orders")
        .unwrap();
    assert_eq!(
        orders["agent_dropped"]["transactions"]["queue_full"], queue_full,
        "{orders}"
    );
    assert_eq!(orders["agent_dropped"]["instances"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_down_then_up_gets_the_retried_batches() {
    let collector = Collector::start().await;
    // Reserve a port, free it: the agent starts exporting into a closed port.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let pipeline = Arc::clone(collector.server.pipeline());
    let opener = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        serve_front(listener, Fault::None, Some(pipeline))
    });
    let stats = emit(
        agent("orders", &format!("http://{addr}")),
        500,
        50,
        Duration::from_millis(100),
    )
    .await;
    let seen = opener.await.unwrap();
    assert_accounted(&collector, &seen, &stats, "orders", 500).await;
    assert!(stats.export_retries > 0, "{stats:?}");
    assert_eq!(stats.transactions_dropped.total(), 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_seventy_percent_of_the_time_still_delivers() {
    let (collector, seen, addr) = start_front(Fault::Unavailable(70)).await;
    let stats = emit(
        agent("orders", &format!("http://{addr}")).export(|e| e.max_batch_spans = 64),
        1_000,
        100,
        Duration::from_millis(20),
    )
    .await;
    assert_accounted(&collector, &seen, &stats, "orders", 1_000).await;
    let refused = seen.lock().unwrap().refused;
    assert!(refused > 0);
    assert_eq!(stats.export_retries, refused, "{stats:?}");
}
