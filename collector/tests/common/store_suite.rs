//! The store test suite: what every [`Store`] implementation must do, run against SQLite and a
//! real ClickHouse (`tests/store_suite.rs`). Each check takes a fresh, empty store.

use std::collections::BTreeMap;

use headlight_collector::aggregate::histogram::LatencyStats;
use headlight_collector::alert::model::{Alert, AlertState, Event, Notification};
use headlight_collector::alert::store::{AlertQuery, AlertRecord, DeliveryState, OutboxEntry};
use headlight_collector::deploys::{Deploy, DeployQuery, NewDeploy};
use headlight_collector::model::{SeriesId, SeriesKey, Span, SpanKind};
use headlight_collector::store::{
    BreakdownDelta, HistogramDelta, RetentionCutoffs, SeriesFilter, SeriesRecord, Store,
    TransactionQuery, TransactionRecord, WriteBatch,
};

const DAY: i64 = 86_400_000;
/// A day boundary (2027-01-15), so day partitions and exact horizons agree.
const NOW: i64 = 20_833 * DAY;

/// One check of the suite.
pub type Check = fn(&dyn Store);

/// Every check, by name.
pub const CHECKS: [(&str, Check); 9] = [
    ("deltas_add_up", deltas_add_up),
    (
        "series_are_listed_and_filtered",
        series_are_listed_and_filtered,
    ),
    ("breakdown_sums", breakdown_sums),
    ("transactions_are_searched", transactions_are_searched),
    (
        "traces_come_back_whole_and_once",
        traces_come_back_whole_and_once,
    ),
    (
        "retention_deletes_past_each_horizon",
        retention_deletes_past_each_horizon,
    ),
    (
        "deploys_and_comparisons_are_recorded_once",
        deploys_and_comparisons_are_recorded_once,
    ),
    ("alerts_and_the_outbox", alerts_and_the_outbox),
    (
        "claims_are_exclusive_for_their_lease",
        claims_are_exclusive_for_their_lease,
    ),
];

fn key(service: &str, transaction: &str, version: &str) -> SeriesKey {
    SeriesKey {
        service: service.into(),
        environment: "prod".into(),
        version: version.into(),
        transaction: transaction.into(),
    }
}

fn delta(series: SeriesId, resolution_s: u32, window_start_ms: i64, us: &[u64]) -> HistogramDelta {
    let mut stats = LatencyStats::default();
    for (i, &u) in us.iter().enumerate() {
        stats.record(u, i == 0);
    }
    HistogramDelta {
        series,
        resolution_s,
        window_start_ms,
        stats,
    }
}

fn merged(rows: &[HistogramDelta]) -> BTreeMap<(i64, i64), LatencyStats> {
    let mut out: BTreeMap<(i64, i64), LatencyStats> = BTreeMap::new();
    for r in rows {
        out.entry((r.series.0, r.window_start_ms))
            .or_default()
            .merge(&r.stats);
    }
    out
}

fn span(trace: u8, id: u8, parent: Option<u8>, end_ms: i64) -> Span {
    let mut attributes = serde_json::Map::new();
    attributes.insert("http.route".into(), "/a\tb\n'c'\\".into());
    attributes.insert("n".into(), 7.into());
    Span {
        trace_id: [trace; 16],
        span_id: [id; 8],
        parent_span_id: parent.map(|p| [p; 8]),
        service: "svc".into(),
        environment: "prod".into(),
        version: "1".into(),
        name: if parent.is_none() { "GET /a" } else { "SELECT" }.into(),
        kind: if parent.is_none() {
            SpanKind::Server
        } else {
            SpanKind::Client
        },
        start_ns: (end_ms - 5) * 1_000_000,
        end_ns: end_ms * 1_000_000,
        error: id == 2,
        transaction: parent.is_none().then(|| "GET /a".into()),
        attributes: headlight_collector::model::Attributes::Json(attributes),
        reported_self_ns: None,
        unsent_children: Vec::new(),
    }
}

fn deltas_add_up(store: &dyn Store) {
    let (a, b) = (SeriesId(11), SeriesId(12));
    let first = WriteBatch {
        histograms: vec![
            delta(a, 10, NOW, &[1_000, 2_000]),
            delta(b, 10, NOW, &[5_000]),
        ],
        ..WriteBatch::default()
    };
    let second = WriteBatch {
        histograms: vec![
            delta(a, 10, NOW, &[3_000]),
            delta(a, 10, NOW + 10_000, &[4_000]),
            delta(a, 60, NOW, &[9_000]),
        ],
        ..WriteBatch::default()
    };
    store.write(&first).unwrap();
    store.write(&second).unwrap();
    store.write(&WriteBatch::default()).unwrap();
    let raw = merged(&store.histograms(&[a, b], 10, NOW, NOW + 20_000).unwrap());
    assert_eq!(raw.len(), 3, "{raw:?}");
    let w = &raw[&(11, NOW)];
    assert_eq!(
        (w.count, w.errors, w.sum_us, w.max_us),
        (3, 2, 6_000, 3_000)
    );
    assert_eq!(w.histogram.len(), 3);
    assert_eq!(w.error_histogram.len(), 2);
    assert_eq!(raw[&(12, NOW)].count, 1);
    assert_eq!(raw[&(11, NOW + 10_000)].sum_us, 4_000);
    // The window range is [from, to) and the resolution is kept apart.
    let only_first = merged(&store.histograms(&[a], 10, NOW, NOW + 10_000).unwrap());
    assert_eq!(only_first.len(), 1);
    let rollup = merged(&store.histograms(&[a], 60, 0, i64::MAX).unwrap());
    assert_eq!(rollup[&(11, NOW)].count, 1);
    assert!(
        store
            .histograms(&[SeriesId(99)], 10, 0, i64::MAX)
            .unwrap()
            .is_empty()
    );
}

fn series_are_listed_and_filtered(store: &dyn Store) {
    let records: Vec<SeriesRecord> = [
        (key("shop", "GET /a", "1"), NOW + 5),
        (key("shop", "GET /b", "1"), NOW),
        (key("shop", "GET /a", "2"), NOW),
        (key("search", "GET /q's", "1"), NOW),
    ]
    .into_iter()
    .map(|(key, first_seen_ms)| SeriesRecord {
        id: key.id(),
        key,
        first_seen_ms,
    })
    .collect();
    store
        .write(&WriteBatch {
            series: records.clone(),
            ..WriteBatch::default()
        })
        .unwrap();
    // Another collector saw the first series earlier: the minimum stays.
    let mut earlier = records[0].clone();
    earlier.first_seen_ms = NOW - 5;
    store
        .write(&WriteBatch {
            series: vec![earlier],
            ..WriteBatch::default()
        })
        .unwrap();
    let all = store.series(&SeriesFilter::default()).unwrap();
    assert_eq!(all.len(), 4, "{all:?}");
    let names: Vec<_> = all
        .iter()
        .map(|s| {
            (
                s.key.service.as_str(),
                s.key.transaction.as_str(),
                s.key.version.as_str(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("search", "GET /q's", "1"),
            ("shop", "GET /a", "1"),
            ("shop", "GET /b", "1"),
            ("shop", "GET /a", "2")
        ]
    );
    assert_eq!(all[1].first_seen_ms, NOW - 5);
    let shop_a = store
        .series(&SeriesFilter {
            service: Some("shop".into()),
            transaction: Some("GET /a".into()),
            ..SeriesFilter::default()
        })
        .unwrap();
    assert_eq!(shop_a.len(), 2);
    let quoted = store
        .series(&SeriesFilter {
            transaction: Some("GET /q's".into()),
            ..SeriesFilter::default()
        })
        .unwrap();
    assert_eq!(quoted.len(), 1);
    assert_eq!(quoted[0].id, key("search", "GET /q's", "1").id());
}

fn breakdown_sums(store: &dyn Store) {
    let s = SeriesId(5);
    let op = |operation: &str, count, total_us, self_us| BreakdownDelta {
        series: s,
        resolution_s: 10,
        window_start_ms: NOW,
        operation: operation.into(),
        kind: SpanKind::Client,
        count,
        total_us,
        self_us,
    };
    for _ in 0..3 {
        store
            .write(&WriteBatch {
                breakdown: vec![op("SELECT", 2, 100, 80), op("GET", 1, 10, 10)],
                ..WriteBatch::default()
            })
            .unwrap();
    }
    let mut totals: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for row in store.breakdown(&[s], 10, NOW, NOW + 1).unwrap() {
        assert_eq!(row.kind, SpanKind::Client);
        let t = totals.entry(row.operation).or_default();
        t.0 += row.count;
        t.1 += row.total_us;
        t.2 += row.self_us;
    }
    assert_eq!(totals["SELECT"], (6, 300, 240));
    assert_eq!(totals["GET"], (3, 30, 30));
    assert!(store.breakdown(&[s], 60, NOW, NOW + 1).unwrap().is_empty());
}

fn transactions_are_searched(store: &dyn Store) {
    let (a, b) = (SeriesId(1), SeriesId(2));
    let t = |series, i: u8, duration_us, error| TransactionRecord {
        series,
        end_ns: (NOW + i64::from(i)) * 1_000_000,
        duration_us,
        error,
        trace_id: [i; 16],
        span_id: [i; 8],
    };
    let rows = vec![
        t(a, 1, 1_000, false),
        t(a, 2, 50_000, true),
        t(b, 3, 20_000, false),
        t(a, 4, 9_000, false),
        t(SeriesId(3), 5, 9_000, false),
    ];
    store
        .write(&WriteBatch {
            transactions: rows.clone(),
            ..WriteBatch::default()
        })
        .unwrap();
    let query = TransactionQuery {
        series: vec![a, b],
        from_ns: NOW * 1_000_000,
        to_ns: (NOW + 10) * 1_000_000,
        min_us: None,
        max_us: None,
        error: None,
        limit: 10,
    };
    let all = store.transactions(&query).unwrap();
    assert_eq!(
        all,
        [
            rows[3].clone(),
            rows[2].clone(),
            rows[1].clone(),
            rows[0].clone()
        ]
    );
    let slow_ok = store
        .transactions(&TransactionQuery {
            min_us: Some(9_000),
            max_us: Some(20_000),
            error: Some(false),
            ..query.clone()
        })
        .unwrap();
    assert_eq!(slow_ok, [rows[3].clone(), rows[2].clone()]);
    let errors = store
        .transactions(&TransactionQuery {
            error: Some(true),
            ..query.clone()
        })
        .unwrap();
    assert_eq!(errors, [rows[1].clone()]);
    let newest = store
        .transactions(&TransactionQuery {
            limit: 1,
            ..query.clone()
        })
        .unwrap();
    assert_eq!(newest, [rows[3].clone()]);
    let window = store
        .transactions(&TransactionQuery {
            from_ns: (NOW + 2) * 1_000_000,
            to_ns: (NOW + 4) * 1_000_000,
            ..query
        })
        .unwrap();
    assert_eq!(window, [rows[2].clone(), rows[1].clone()]);
}

fn traces_come_back_whole_and_once(store: &dyn Store) {
    let spans = vec![
        span(7, 1, None, NOW),
        span(7, 2, Some(1), NOW),
        span(8, 1, None, NOW),
    ];
    let batch = WriteBatch {
        spans: spans.clone(),
        ..WriteBatch::default()
    };
    store.write(&batch).unwrap();
    store.write(&batch).unwrap();
    let mut got = store.trace(&[7; 16]).unwrap();
    got.sort_by_key(|s| s.span_id);
    assert_eq!(got, spans[..2], "a retried export is read once");
    assert!(store.trace(&[9; 16]).unwrap().is_empty());
}

fn retention_deletes_past_each_horizon(store: &dyn Store) {
    let s = SeriesId(42);
    let txn = |end_ms: i64, i: u8| TransactionRecord {
        series: s,
        end_ns: end_ms * 1_000_000,
        duration_us: 1,
        error: false,
        trace_id: [i; 16],
        span_id: [i; 8],
    };
    store
        .write(&WriteBatch {
            histograms: vec![
                delta(s, 10, NOW - 2 * DAY, &[1]),  // raw, too old
                delta(s, 10, NOW - 1000, &[1]),     // raw, kept
                delta(s, 60, NOW - 31 * DAY, &[1]), // rollup, too old
                delta(s, 60, NOW - 2 * DAY, &[1]),  // rollup, kept
            ],
            breakdown: vec![BreakdownDelta {
                series: s,
                resolution_s: 10,
                window_start_ms: NOW - 2 * DAY,
                operation: "op".into(),
                kind: SpanKind::Server,
                count: 1,
                total_us: 1,
                self_us: 1,
            }],
            transactions: vec![txn(NOW - 2 * DAY, 1), txn(NOW - 1000, 2)],
            spans: vec![
                span(1, 1, None, NOW - 2 * DAY),
                span(2, 1, None, NOW - 1000),
            ],
            ..WriteBatch::default()
        })
        .unwrap();
    let report = store
        .enforce_retention(&RetentionCutoffs {
            raw_before_ms: NOW - DAY,
            raw_resolution_s: 10,
            rollup_before_ms: NOW - 30 * DAY,
            rollup_resolution_s: 60,
        })
        .unwrap();
    assert_eq!(
        (
            report.histograms,
            report.breakdown,
            report.transactions,
            report.spans
        ),
        (2, 1, 1, 1)
    );
    let windows = |resolution| -> Vec<i64> {
        store
            .histograms(&[s], resolution, 0, i64::MAX)
            .unwrap()
            .iter()
            .map(|r| r.window_start_ms)
            .collect()
    };
    assert_eq!(windows(10), [NOW - 1000]);
    assert_eq!(windows(60), [NOW - 2 * DAY]);
    assert!(store.breakdown(&[s], 10, 0, i64::MAX).unwrap().is_empty());
    assert!(store.trace(&[1; 16]).unwrap().is_empty());
    assert_eq!(store.trace(&[2; 16]).unwrap().len(), 1);
    let left = store
        .transactions(&TransactionQuery {
            series: vec![s],
            from_ns: 0,
            to_ns: i64::MAX,
            min_us: None,
            max_us: None,
            error: None,
            limit: 10,
        })
        .unwrap();
    assert_eq!(left.len(), 1);
}

fn deploy(service: &str, version: &str, time_ms: i64) -> Deploy {
    NewDeploy {
        service: service.into(),
        version: version.into(),
        time_ms: Some(time_ms),
        commit: Some("abc123".into()),
        ..NewDeploy::default()
    }
    .into_deploy(NOW, 0)
    .unwrap()
}

fn deploys_and_comparisons_are_recorded_once(store: &dyn Store) {
    let a = deploy("checkout", "1.0", NOW - 3000);
    let b = deploy("checkout", "1.1", NOW - 1000);
    let c = deploy("search", "7", NOW - 2000);
    for d in [&a, &b, &c] {
        assert_eq!(&store.record_deploy(d).unwrap(), d);
    }
    let mut changed = a.clone();
    changed.description = Some("retry".into());
    assert_eq!(
        store.record_deploy(&changed).unwrap(),
        a,
        "the first record stays"
    );
    let all = DeployQuery {
        limit: 10,
        ..DeployQuery::default()
    };
    assert_eq!(
        store.deploys(&all).unwrap(),
        [b.clone(), c.clone(), a.clone()]
    );
    let checkout = DeployQuery {
        service: Some("checkout".into()),
        from_ms: Some(NOW - 2000),
        ..all.clone()
    };
    assert_eq!(store.deploys(&checkout).unwrap(), std::slice::from_ref(&b));
    assert_eq!(store.deploy(&c.id).unwrap(), Some(c.clone()));
    assert_eq!(store.deploy("nope").unwrap(), None);
    assert_eq!(
        store.uncompared_deploys(0, NOW).unwrap(),
        [a.clone(), c.clone(), b.clone()]
    );
    assert_eq!(
        store.save_comparison(&c.id, "{\"v\":1}").unwrap(),
        "{\"v\":1}"
    );
    assert_eq!(
        store.save_comparison(&c.id, "{\"v\":2}").unwrap(),
        "{\"v\":1}",
        "computed once: the first report stays"
    );
    assert_eq!(
        store.uncompared_deploys(0, NOW).unwrap(),
        [a.clone(), b.clone()]
    );
    let report = store
        .enforce_retention(&RetentionCutoffs {
            raw_before_ms: NOW,
            raw_resolution_s: 10,
            rollup_before_ms: NOW - 1500,
            rollup_resolution_s: 60,
        })
        .unwrap();
    assert_eq!(report.deploys, 2);
    assert_eq!(store.deploys(&all).unwrap(), [b]);
    assert_eq!(store.comparison(&c.id).unwrap(), None);
}

fn alert(key: &str, state: AlertState, started_ms: i64) -> Alert {
    Alert {
        key: key.into(),
        rule: "r".into(),
        kind: "latency".into(),
        service: key.rsplit('/').next().unwrap_or_default().into(),
        environment: None,
        transaction: None,
        deploy_id: None,
        state,
        summary: "slow".into(),
        reasons: vec![],
        started_ms,
        resolved_ms: (state == AlertState::Resolved).then_some(started_ms + 10),
        link: None,
        labels: BTreeMap::new(),
    }
}

fn entry(alert: &Alert, n: u32, channel: &str, created_ms: i64) -> OutboxEntry {
    OutboxEntry {
        channel: channel.into(),
        notification: Notification {
            delivery_id: format!("{}#firing#{n}", alert.key),
            event: Event::Firing,
            alert: alert.clone(),
        },
        state: DeliveryState::Pending,
        attempts: 0,
        created_ms,
        next_attempt_ms: created_ms,
        delivered_ms: None,
        last_error: None,
    }
}

fn alerts_and_the_outbox(store: &dyn Store) {
    let a = alert("r/service/shop", AlertState::Firing, NOW);
    let record = AlertRecord {
        alert: a.clone(),
        last_notified_ms: NOW,
        notifications: 1,
    };
    let queued = vec![entry(&a, 1, "hook", NOW), entry(&a, 1, "slack", NOW)];
    store.save_alert(&record, &queued).unwrap();
    assert_eq!(store.alert(&a.key).unwrap(), Some(record.clone()));
    assert_eq!(store.alert("other").unwrap(), None);
    assert_eq!(store.due_deliveries(NOW - 1, 10).unwrap(), []);
    assert_eq!(store.due_deliveries(NOW, 10).unwrap().len(), 2);
    // Queued again (a retried evaluation): kept as it is.
    let mut again = queued.clone();
    again[0].created_ms = NOW + 5;
    store.save_alert(&record, &again).unwrap();
    assert_eq!(store.deliveries(&a.key).unwrap(), queued);

    let mut delivered = queued[0].clone();
    delivered.attempts = 1;
    delivered.state = DeliveryState::Delivered;
    delivered.delivered_ms = Some(NOW + 1);
    store.update_delivery(&delivered).unwrap();
    let mut retry = queued[1].clone();
    retry.attempts = 1;
    retry.next_attempt_ms = NOW + 1000;
    retry.last_error = Some("503".into());
    store.update_delivery(&retry).unwrap();
    // A queued copy written after an attempt does not undo it.
    store.save_alert(&record, &queued).unwrap();
    assert_eq!(
        store.deliveries(&a.key).unwrap(),
        [delivered, retry.clone()]
    );
    assert_eq!(store.due_deliveries(NOW + 999, 10).unwrap(), []);
    assert_eq!(store.due_deliveries(NOW + 1000, 10).unwrap(), [retry]);

    let mut resolved = record.clone();
    resolved.alert.state = AlertState::Resolved;
    resolved.alert.resolved_ms = Some(NOW + 10);
    resolved.notifications = 2;
    store.save_alert(&resolved, &[]).unwrap();
    let b = alert("r/service/search", AlertState::Firing, NOW + 5);
    let b_record = AlertRecord {
        alert: b,
        last_notified_ms: NOW + 5,
        notifications: 1,
    };
    store.save_alert(&b_record, &[]).unwrap();
    let all = AlertQuery {
        limit: 10,
        ..AlertQuery::default()
    };
    assert_eq!(
        store.alerts(&all).unwrap(),
        [b_record.clone(), resolved.clone()]
    );
    let firing = AlertQuery {
        state: Some(AlertState::Firing),
        ..all.clone()
    };
    assert_eq!(
        store.alerts(&firing).unwrap(),
        std::slice::from_ref(&b_record)
    );
    let shop = AlertQuery {
        service: Some("shop".into()),
        ..all.clone()
    };
    assert_eq!(store.alerts(&shop).unwrap(), [resolved]);
    let report = store
        .enforce_retention(&RetentionCutoffs {
            raw_before_ms: 0,
            raw_resolution_s: 10,
            rollup_before_ms: NOW + 11,
            rollup_resolution_s: 60,
        })
        .unwrap();
    assert_eq!(report.alerts, 1);
    assert_eq!(store.alerts(&all).unwrap(), [b_record]);
    assert_eq!(store.deliveries(&a.key).unwrap(), []);
}

fn claims_are_exclusive_for_their_lease(store: &dyn Store) {
    let keys = vec!["compare/x".to_owned(), "deliver/y".to_owned()];
    assert_eq!(store.claim(&keys, "a", 2_000).unwrap(), [true, true]);
    assert_eq!(store.claim(&keys[..1], "b", 2_000).unwrap(), [false]);
    assert_eq!(store.claim(&keys[..1], "a", 2_000).unwrap(), [true], "held");
    assert_eq!(store.claim(&[], "b", 2_000).unwrap(), Vec::<bool>::new());
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    // a's lease ran out: b takes over, and then holds it against a.
    assert_eq!(store.claim(&keys[1..], "b", 2_000).unwrap(), [true]);
    assert_eq!(store.claim(&keys[1..], "a", 2_000).unwrap(), [false]);
}
