//! Collector ingest cost per span: decode + validate + aggregate + store (SQLite), beside the
//! decode-only floor measured in the same run. The work runs on the calling thread, so wall
//! time per span here is CPU time per span.
//!
//! Run: `cargo bench -p headlight-benches --bench ingest`

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use headlight_benches::{INGEST_SHAPE as SHAPE, ingest_and_flush, span_count, synthetic_request};
use headlight_collector::config::Config;
use headlight_collector::pipeline::Pipeline;
use headlight_collector::store::{SqliteStore, Store};
use headlight_proto::otlp::collector::ExportTraceServiceRequest;
use prost::Message;

/// Requests per store write in the end-to-end measurement.
const FLUSH_EVERY: usize = 10;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn ingest(c: &mut Criterion) {
    let now = now_ns();
    // Distinct trace ids per request, so stored spans are new rows, as in production.
    let requests: Vec<Vec<u8>> = (0..64)
        .map(|seed| synthetic_request(SHAPE, now, seed).encode_to_vec())
        .collect();
    let spans = span_count(SHAPE) as u64;
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(spans));

    group.bench_function("decode_only", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % requests.len();
            let request = ExportTraceServiceRequest::decode(&requests[i][..]).expect("valid");
            std::hint::black_box(request);
        });
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).expect("store"));
    let pipeline = Pipeline::new(Arc::new(config), store).expect("pipeline");
    let mut next = 0;
    let mut take = move || {
        next = (next + 1) % requests.len();
        requests[next].clone()
    };

    // Decode + validate + aggregate, the part on the request path; the store write (flush) is
    // done in the untimed setup.
    group.bench_function("decode_aggregate", |b| {
        b.iter_batched(
            || {
                pipeline.flush().expect("store write");
                take()
            },
            |bytes| {
                let bytes = bytes::Bytes::from(bytes);
                assert!(pipeline.export(&bytes).unwrap().partial_success.is_none());
            },
            BatchSize::PerIteration,
        );
    });

    // End to end: FLUSH_EVERY requests, then one store write (the flusher runs once a second,
    // so in production many requests share a flush).
    group.throughput(Throughput::Elements(spans * FLUSH_EVERY as u64));
    group.bench_function("decode_aggregate_store", |b| {
        b.iter_batched(
            || (0..FLUSH_EVERY).map(|_| take()).collect::<Vec<_>>(),
            |batch| ingest_and_flush(&pipeline, batch),
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
