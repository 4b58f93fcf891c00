//! Collector ingest cost per span: decode + validate + aggregate + store (SQLite), beside the
//! decode-only floor measured in the same run. The work runs on the calling thread, so wall
//! time per span here is CPU time per span.
//!
//! Run: `cargo bench -p headlight-benches --bench ingest`

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use headlight_benches::{Shape, span_count, synthetic_request};
use headlight_collector::config::Config;
use headlight_collector::pipeline::Pipeline;
use headlight_collector::store::{SqliteStore, Store};
use headlight_proto::otlp::collector::ExportTraceServiceRequest;
use prost::Message;

const SHAPE: Shape = Shape {
    transactions: 500,
    children: 3,
    series: 50,
    attributes: 6,
};

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
    group.bench_function("decode_aggregate_store", |b| {
        let mut i = 0;
        b.iter_batched(
            || {
                i = (i + 1) % requests.len();
                i
            },
            |i| {
                let request = ExportTraceServiceRequest::decode(&requests[i][..]).expect("valid");
                let response = pipeline.export(&request);
                assert!(response.partial_success.is_none());
                pipeline.flush().expect("store write");
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
