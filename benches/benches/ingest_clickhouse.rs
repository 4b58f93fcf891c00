//! Ingest throughput into ClickHouse: decode + validate + aggregate + store, ten requests per
//! store write (as the 1 s flusher batches them), with the same pipeline over SQLite and the
//! decode-only floor measured in the same run. Wall time: the ClickHouse server's own work (on
//! another core) is inside the figure, so this is throughput, not collector CPU per span.
//!
//! Needs a running ClickHouse (`deploy/clickhouse-2shards/run.sh` starts the two-shard layout;
//! any `clickhouse-server` works): `HEADLIGHT_BENCH_CLICKHOUSE_URL` (default
//! `http://127.0.0.1:8123`), and for the sharded layout `HEADLIGHT_BENCH_CLICKHOUSE_CLUSTER` with
//! `HEADLIGHT_BENCH_CLICKHOUSE_SHARDS` (comma-separated shard URLs). Each run writes into a fresh
//! database `bench_<unix s>`.
//!
//! Run: `cargo bench -p headlight-benches --bench ingest_clickhouse`

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use headlight_benches::{
    INGEST_SHAPE as SHAPE, clickhouse_config, ingest_and_flush, span_count, synthetic_request,
};
use headlight_collector::config::Config;
use headlight_collector::pipeline::Pipeline;
use headlight_collector::store::{ClickHouseStore, Credentials, SqliteStore, Store};
use headlight_proto::otlp::collector::ExportTraceServiceRequest;
use prost::Message;

/// Requests per store write.
const FLUSH_EVERY: usize = 10;

fn now() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn ingest(c: &mut Criterion) {
    let now_ns = now().as_nanos() as u64;
    let requests: Vec<Vec<u8>> = (0..64)
        .map(|seed| synthetic_request(SHAPE, now_ns, seed).encode_to_vec())
        .collect();
    let spans = span_count(SHAPE) as u64;
    let mut group = c.benchmark_group("ingest_clickhouse");
    group.throughput(Throughput::Elements(spans * FLUSH_EVERY as u64));

    group.bench_function("decode_only", |b| {
        let mut i = 0;
        b.iter(|| {
            for _ in 0..FLUSH_EVERY {
                i = (i + 1) % requests.len();
                let request = ExportTraceServiceRequest::decode(&requests[i][..]).expect("valid");
                std::hint::black_box(request);
            }
        });
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let config = Arc::new(Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    });
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).expect("sqlite"));
    let clickhouse: Arc<dyn Store> = Arc::new(
        ClickHouseStore::open(&clickhouse_config(), Credentials::default())
            .expect("a running clickhouse-server (see the header of this file)"),
    );
    for (name, store) in [("sqlite", sqlite), ("clickhouse", clickhouse)] {
        let pipeline = Pipeline::new(Arc::clone(&config), store).expect("pipeline");
        let mut next = 0;
        group.bench_function(format!("decode_aggregate_store_{name}"), |b| {
            b.iter_batched(
                || {
                    (0..FLUSH_EVERY)
                        .map(|_| {
                            next = (next + 1) % requests.len();
                            requests[next].clone()
                        })
                        .collect::<Vec<_>>()
                },
                |batch| ingest_and_flush(&pipeline, batch),
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
