//! The hitmap query over one hour of one transaction at 1 000 transactions/s (3.6 million
//! transactions in 360 raw windows), from the embedded store, beside the latency query over the
//! same windows (the same store read, without the binning) measured in the same run.
//! Budget (design.md §7): ≤ 50 ms.
//!
//! With `HEADLIGHT_BENCH_CLICKHOUSE_URL` set (see `clickhouse_config`), the same queries run
//! from ClickHouse too, the same transactions written as 10 deltas per window, as a collector
//! flushing every second (default `flush_interval_ms`) writes them (`HEADLIGHT_BENCH_DELTAS`
//! sets another number).
//!
//! Run: `cargo bench -p headlight-benches --bench heatmap`

use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use headlight_benches::clickhouse_config;
use headlight_collector::aggregate::histogram::LatencyStats;
use headlight_collector::model::SeriesKey;
use headlight_collector::query::heatmap::{Scale, YAxis, heatmap};
use headlight_collector::query::latency;
use headlight_collector::query::range::Windows;
use headlight_collector::store::{
    ClickHouseStore, Credentials, HistogramDelta, SeriesFilter, SeriesRecord, SqliteStore, Store,
    WriteBatch,
};

const WINDOW_MS: i64 = 10_000;
const WINDOWS: i64 = 360;
const PER_WINDOW: u64 = 10_000;
/// Deltas written per window: one per flush of a 10 s window at 1 s flushes; another number
/// from `HEADLIGHT_BENCH_DELTAS` (1 = a collector flushing every 10 s).
fn deltas() -> u64 {
    std::env::var("HEADLIGHT_BENCH_DELTAS")
        .ok()
        .and_then(|d| d.parse().ok())
        .filter(|&d| d > 0 && PER_WINDOW.is_multiple_of(d))
        .unwrap_or(10)
}

fn hitmap(c: &mut Criterion) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let to_ms = now_ms / WINDOW_MS * WINDOW_MS;
    let from_ms = to_ms - WINDOWS * WINDOW_MS;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("store");
    let key = SeriesKey {
        service: "bench".into(),
        environment: "default".into(),
        version: "1".into(),
        transaction: "GET /hitmap".into(),
    };
    let series = key.id();
    // Log-normal-ish durations around 20 ms with a slow tail, 1 % errors, recorded exactly as
    // the aggregator records them.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let deltas = deltas();
    let histograms: Vec<HistogramDelta> = (0..WINDOWS * deltas as i64)
        .map(|d| {
            let w = d / deltas as i64;
            let mut stats = LatencyStats::default();
            for _ in 0..PER_WINDOW / deltas {
                let z =
                    (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos();
                let us = (20_000.0 * (0.6 * z).exp()).round() as u64;
                stats.record(us.clamp(1, 3_600_000_000), uniform() < 0.01);
            }
            HistogramDelta {
                series,
                resolution_s: 10,
                window_start_ms: from_ms + w * WINDOW_MS,
                stats,
            }
        })
        .collect();
    let batch = WriteBatch {
        series: vec![SeriesRecord {
            id: series,
            key: key.clone(),
            first_seen_ms: from_ms,
        }],
        histograms,
        ..WriteBatch::default()
    };
    store.write(&batch).expect("write");
    let clickhouse = std::env::var("HEADLIGHT_BENCH_CLICKHOUSE_URL")
        .is_ok()
        .then(|| {
            let store = ClickHouseStore::open(&clickhouse_config(), Credentials::default())
                .expect("clickhouse");
            store.write(&batch).expect("write");
            store
        });
    let filter = SeriesFilter {
        service: Some(key.service.clone()),
        transaction: Some(key.transaction.clone()),
        ..SeriesFilter::default()
    };
    let windows = Windows {
        resolution_s: 10,
        from_ms,
        to_ms,
    };
    let axis = YAxis {
        scale: Scale::Log,
        buckets: 40,
        min_ms: None,
        max_ms: None,
    };
    let check = heatmap(&store, &filter, &windows, 30_000, &axis).expect("heatmap");
    assert_eq!(check.total, (WINDOWS as u64) * PER_WINDOW);

    let mut group = c.benchmark_group("hitmap_1h_1000_per_s");
    group.sample_size(20);
    group.bench_function("latency_query_baseline", |b| {
        b.iter(|| latency(&store, &filter, &windows, 30_000, 500.0).expect("latency"));
    });
    group.bench_function("heatmap_120x40", |b| {
        b.iter(|| heatmap(&store, &filter, &windows, 30_000, &axis).expect("heatmap"));
    });
    if let Some(ch) = &clickhouse {
        let check = heatmap(ch, &filter, &windows, 30_000, &axis).expect("heatmap");
        assert_eq!(check.total, (WINDOWS as u64) * PER_WINDOW);
        group.bench_function("clickhouse_latency_query", |b| {
            b.iter(|| latency(ch, &filter, &windows, 30_000, 500.0).expect("latency"));
        });
        group.bench_function("clickhouse_heatmap_120x40", |b| {
            b.iter(|| heatmap(ch, &filter, &windows, 30_000, &axis).expect("heatmap"));
        });
    }
    group.finish();
}

criterion_group!(benches, hitmap);
criterion_main!(benches);
