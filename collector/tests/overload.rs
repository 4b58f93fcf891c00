//! Overload (issue 9): `headlight loadgen` pushes three times what the store can absorb for
//! 30 s. The collector must answer `UNAVAILABLE` with `RetryInfo`, keep what waits for the
//! store under `limits.max_buffered_spans`, stay under its memory limit, and lose nothing it
//! acknowledged: every span the load generator saw accepted is in the store at the end.
//!
//! The store is the real SQLite store behind a throttle that makes each write take 1 ms per
//! transaction (a slow disk): the sustainable rate is then 1 000 transactions, 5 000 spans, a
//! second, whatever the machine's speed, and the test offers 15 000.

mod common;

use std::sync::Arc;
use std::time::Duration;

use headlight_collector::alert::store::{AlertQuery, AlertRecord, OutboxEntry};
use headlight_collector::deploys::{Deploy, DeployQuery};
use headlight_collector::loadgen::{self, Plan, Protocol, Shape};
use headlight_collector::metrics::process::resident_memory_bytes;
use headlight_collector::metrics::reasons::Reason as _;
use headlight_collector::model::{SeriesId, Span, TraceId};
use headlight_collector::server::Server;
use headlight_collector::store::{
    BreakdownDelta, HistogramDelta, RetentionCutoffs, RetentionReport, SeriesFilter, SeriesRecord,
    SqliteStore, Store, StoreError, TransactionQuery, TransactionRecord, WriteBatch,
};

/// Time a write takes per transaction.
const PER_TRANSACTION: Duration = Duration::from_millis(1);
const SUSTAINABLE_SPANS_PER_S: f64 = 5_000.0;

/// The SQLite store, with writes slowed to [`PER_TRANSACTION`] per transaction.
#[derive(Debug)]
struct SlowStore(SqliteStore);

impl Store for SlowStore {
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        std::thread::sleep(PER_TRANSACTION * u32::try_from(batch.transactions.len()).unwrap());
        self.0.write(batch)
    }
    fn series(&self, filter: &SeriesFilter) -> Result<Vec<SeriesRecord>, StoreError> {
        self.0.series(filter)
    }
    fn histograms(
        &self,
        series: &[SeriesId],
        resolution_s: u32,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<HistogramDelta>, StoreError> {
        self.0.histograms(series, resolution_s, from_ms, to_ms)
    }
    fn breakdown(
        &self,
        series: &[SeriesId],
        resolution_s: u32,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<BreakdownDelta>, StoreError> {
        self.0.breakdown(series, resolution_s, from_ms, to_ms)
    }
    fn transactions(&self, query: &TransactionQuery) -> Result<Vec<TransactionRecord>, StoreError> {
        self.0.transactions(query)
    }
    fn trace(&self, trace_id: &TraceId) -> Result<Vec<Span>, StoreError> {
        self.0.trace(trace_id)
    }
    fn enforce_retention(&self, cutoffs: &RetentionCutoffs) -> Result<RetentionReport, StoreError> {
        self.0.enforce_retention(cutoffs)
    }
    fn record_deploy(&self, deploy: &Deploy) -> Result<Deploy, StoreError> {
        self.0.record_deploy(deploy)
    }
    fn deploys(&self, query: &DeployQuery) -> Result<Vec<Deploy>, StoreError> {
        self.0.deploys(query)
    }
    fn deploy(&self, id: &str) -> Result<Option<Deploy>, StoreError> {
        self.0.deploy(id)
    }
    fn uncompared_deploys(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Deploy>, StoreError> {
        self.0.uncompared_deploys(from_ms, to_ms)
    }
    fn save_comparison(&self, deploy_id: &str, report_json: &str) -> Result<String, StoreError> {
        self.0.save_comparison(deploy_id, report_json)
    }
    fn comparison(&self, deploy_id: &str) -> Result<Option<String>, StoreError> {
        self.0.comparison(deploy_id)
    }
    fn alert(&self, key: &str) -> Result<Option<AlertRecord>, StoreError> {
        self.0.alert(key)
    }
    fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertRecord>, StoreError> {
        self.0.alerts(query)
    }
    fn save_alert(&self, record: &AlertRecord, queue: &[OutboxEntry]) -> Result<(), StoreError> {
        self.0.save_alert(record, queue)
    }
    fn due_deliveries(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.0.due_deliveries(now_ms, limit)
    }
    fn update_delivery(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        self.0.update_delivery(entry)
    }
    fn deliveries(&self, alert_key: &str) -> Result<Vec<OutboxEntry>, StoreError> {
        self.0.deliveries(alert_key)
    }
    fn claim(&self, keys: &[String], holder: &str, lease_ms: i64) -> Result<Vec<bool>, StoreError> {
        self.0.claim(keys, holder, lease_ms)
    }
    fn ping(&self) -> Result<(), StoreError> {
        self.0.ping()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_times_the_sustainable_rate_is_refused_with_retry_info_and_nothing_acked_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path());
    config.aggregation.flush_interval_ms = 200;
    config.limits.max_buffered_spans = 10_000;
    config.limits.memory_limit_mib = 512;
    let window_s = config.aggregation.window_s;
    let max_concurrent = config.limits.max_concurrent_exports;
    let store: Arc<dyn Store> = Arc::new(SlowStore(SqliteStore::open(dir.path()).unwrap()));
    let server = Server::start_with_store(config.clone(), Arc::clone(&store))
        .await
        .unwrap();
    let pipeline = Arc::clone(server.pipeline());

    // Watch what waits for the store while the load runs.
    let watch = {
        let pipeline = Arc::clone(&pipeline);
        tokio::spawn(async move {
            let mut most = 0;
            for _ in 0..400 {
                most = most.max(pipeline.buffered_spans());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            most
        })
    };
    let batch = 500;
    let plan = Plan {
        endpoint: format!("http://{}", server.otlp_grpc),
        protocol: Protocol::Grpc,
        rate: Some(3.0 * SUSTAINABLE_SPANS_PER_S),
        duration: Duration::from_secs(30),
        batch,
        connections: 16,
        gzip: false,
        retry: true,
        request_deadline: Duration::from_secs(20),
        shape: Shape {
            services: 2,
            transactions: 5,
            spans_per_trace: 5,
            attributes: 3,
            median_ms: 20.0,
            sigma: 0.5,
            error_ratio: 0.01,
        },
    };
    let report = loadgen::run(plan, false).await.unwrap();
    let most_buffered = watch.await.unwrap();
    println!("{}", loadgen::render(&report));

    // It was refused, with RetryInfo, because the store was behind.
    let with_retry_info: u64 = report
        .retries
        .iter()
        .filter(|(why, _)| why.contains("Unavailable") && why.contains("RetryInfo"))
        .map(|(_, n)| *n)
        .sum();
    assert!(
        with_retry_info > 0,
        "no UNAVAILABLE + RetryInfo: {report:#?}"
    );
    let refused: std::collections::BTreeMap<&str, u64> = pipeline
        .counters()
        .grpc_refused
        .counts()
        .map(|(r, n)| (r.label(), n))
        .collect();
    assert!(refused["store_behind"] > 0, "{refused:?}");
    assert_eq!(refused["memory_limit"], 0, "{refused:?}");
    // Asked to send three times what the store absorbs, the exporters were held back to about
    // what it absorbs (the buffer's 10 000 spans are two seconds of it): refused requests wait
    // for their retry, as an OpenTelemetry exporter's would.
    #[allow(clippy::cast_precision_loss)]
    let accepted_per_s = report.spans_accepted as f64 / 30.0;
    assert!(
        accepted_per_s < 1.6 * SUSTAINABLE_SPANS_PER_S,
        "accepted {accepted_per_s:.0} spans/s"
    );

    // Bounded: what waits for the store stays under the limit, give or take the requests
    // admitted together; the process stays under the memory limit.
    let bound = 10_000 + (max_concurrent * (batch + 5)) as u64;
    assert!(
        most_buffered <= bound,
        "{most_buffered} spans buffered, bound {bound}"
    );
    assert!(
        most_buffered >= 5_000,
        "the buffer never filled: {most_buffered}"
    );
    let rss = resident_memory_bytes().unwrap();
    assert!(rss < 512 << 20, "resident {} MiB", rss >> 20);

    // Nothing acknowledged is lost: once the store has caught up, every accepted
    // transaction (5 spans each, whole traces per request) is counted in the store.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while pipeline.buffered_spans() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.shutdown().await.unwrap();
    assert_eq!(report.spans_rejected, 0);
    assert_eq!(
        report.spans_accepted + report.spans_failed,
        report.spans_sent,
        "{report:#?}"
    );
    assert_eq!(report.spans_accepted % 5, 0);
    let stored = common::stored_transactions(store.as_ref(), window_s);
    assert_eq!(stored, report.spans_accepted / 5, "{report:#?}");
}
