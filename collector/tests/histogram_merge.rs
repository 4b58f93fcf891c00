//! Property: merging histograms across windows and across collectors (several writers of
//! deltas into one store) equals recording everything into one histogram.

use std::time::Instant;

use headlight_collector::aggregate::Aggregator;
use headlight_collector::aggregate::histogram::{self, new_histogram};
use headlight_collector::config::{AggregationConfig, SpanRetentionConfig};
use headlight_collector::model::{Span, SpanKind};
use headlight_collector::store::{SeriesFilter, SqliteStore, Store};
use proptest::prelude::*;

const BASE_MS: i64 = 1_800_000_000_000;

fn transaction(i: usize, end_ms: i64, duration_us: u64) -> Span {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    Span {
        trace_id,
        span_id: [1; 8],
        parent_span_id: None,
        service: "svc".into(),
        environment: "default".into(),
        version: "1".into(),
        name: "op".into(),
        kind: SpanKind::Server,
        start_ns: end_ms * 1_000_000 - duration_us as i64 * 1000,
        end_ns: end_ms * 1_000_000,
        error: i.is_multiple_of(7),
        transaction: Some("op".into()),
        attributes: Default::default(),
        reported_self_ns: None,
        unsent_children: Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn merged_windows_and_collectors_equal_one_histogram(
        items in prop::collection::vec((0i64..600_000, 1u64..5_000_000_000, 0usize..3, 0usize..3), 1..300)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let config = AggregationConfig::default();
        // Three collectors, each flushing at several points, all into one store.
        let mut collectors: Vec<Aggregator> = (0..3)
            .map(|_| Aggregator::new(config.clone(), SpanRetentionConfig::default(), &[]))
            .collect();
        let mut everything = new_histogram();
        let (mut count, mut errors, mut sum_us, mut max_us) = (0u64, 0u64, 0u64, 0u64);
        for (i, (offset_ms, duration_us, collector, flush)) in items.iter().copied().enumerate() {
            let span = transaction(i, BASE_MS + offset_ms, duration_us);
            let d = span.duration_us();
            histogram::record(&mut everything, d);
            count += 1;
            errors += u64::from(span.error);
            sum_us += d;
            max_us = max_us.max(d);
            collectors[collector].apply(vec![span], Instant::now());
            if flush == 0 {
                store.write(&collectors[collector].drain()).unwrap();
            }
        }
        for c in &mut collectors {
            store.write(&c.drain()).unwrap();
        }
        let series: Vec<_> = store.series(&SeriesFilter::default()).unwrap().into_iter().map(|s| s.id).collect();
        prop_assert_eq!(series.len(), 1);
        for resolution_s in [config.window_s, config.rollup_window_s] {
            let rows = store.histograms(&series, resolution_s, BASE_MS - 3_600_000, BASE_MS + 3_600_000).unwrap();
            let mut merged = new_histogram();
            let (mut c, mut e, mut s, mut m) = (0u64, 0u64, 0u64, 0u64);
            for row in &rows {
                prop_assert_eq!(row.window_start_ms.rem_euclid(i64::from(resolution_s) * 1000), 0);
                histogram::merge(&mut merged, &row.stats.histogram);
                c += row.stats.count;
                e += row.stats.errors;
                s += row.stats.sum_us;
                m = m.max(row.stats.max_us);
            }
            prop_assert_eq!(&merged, &everything);
            prop_assert_eq!((c, e, s, m), (count, errors, sum_us, max_us));
            prop_assert_eq!(merged.len(), count);
        }
    }
}
