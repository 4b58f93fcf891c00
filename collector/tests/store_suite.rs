//! The store suite (`common/store_suite.rs`) against both backends: SQLite in a temp dir, and a
//! real `clickhouse-server` (Debian's 18.16 here) started by the test on loopback, one fresh
//! database per check. ClickHouse-only behaviour (a server that is down, a newer schema) is
//! checked here too.

mod common;

use headlight_collector::config::ClickHouseConfig;
use headlight_collector::store::{ClickHouseStore, Credentials, SqliteStore, Store, StoreError};

use common::clickhouse::ClickHouse;
use common::store_suite::CHECKS;

#[test]
fn sqlite_passes_the_store_suite() {
    for (name, check) in CHECKS {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        eprintln!("sqlite: {name}");
        check(&store);
    }
}

#[test]
fn clickhouse_passes_the_store_suite() {
    let server = ClickHouse::start();
    for (i, (name, check)) in CHECKS.iter().enumerate() {
        let store = ClickHouseStore::open(
            &server.store_config(&format!("suite_{i}")),
            Credentials::default(),
        )
        .unwrap();
        assert_eq!(store.server_version().0, 18, "the Debian package is 18.16");
        eprintln!("clickhouse: {name}");
        check(&store);
    }
}

#[test]
fn a_clickhouse_that_is_down_gives_a_clear_error_not_a_panic() {
    let server = ClickHouse::start();
    let store =
        ClickHouseStore::open(&server.store_config("down"), Credentials::default()).unwrap();
    store.ping().unwrap();
    let url = server.url.clone();
    drop(server);
    let err = store.ping().unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(err.to_string().contains("clickhouse unreachable"), "{err}");
    let err = store
        .write(&headlight_collector::store::WriteBatch {
            series: vec![headlight_collector::store::SeriesRecord {
                id: headlight_collector::model::SeriesId(1),
                key: headlight_collector::model::SeriesKey {
                    service: "s".into(),
                    environment: "e".into(),
                    version: "v".into(),
                    transaction: "t".into(),
                },
                first_seen_ms: 0,
            }],
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    let config = ClickHouseConfig {
        url,
        timeout_ms: 1000,
        ..ClickHouseConfig::default()
    };
    let err = ClickHouseStore::open(&config, Credentials::default()).unwrap_err();
    assert!(err.to_string().contains("clickhouse unreachable"), "{err}");
}

#[test]
fn clickhouse_errors_are_reported_and_a_newer_schema_is_refused() {
    let server = ClickHouse::start();
    let config = server.store_config("schema");
    drop(ClickHouseStore::open(&config, Credentials::default()).unwrap());
    // Credentials the server does not know: its message, no secret in it.
    let err = ClickHouseStore::open(
        &config,
        Credentials {
            user: Some("nobody".into()),
            password: Some(headlight_collector::alert::channels::Secret::new("hunter2")),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("nobody"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    server.sql("INSERT INTO schema.meta VALUES ('schema_version', '99', 0)");
    let err = ClickHouseStore::open(&config, Credentials::default()).unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[test]
fn concurrent_claims_on_clickhouse_have_one_winner_per_key() {
    let server = ClickHouse::start();
    let config = server.store_config("claims");
    // Four collectors (stores with their own clients) claim the same keys at the same moment.
    let stores: Vec<ClickHouseStore> = (0..4)
        .map(|_| ClickHouseStore::open(&config, Credentials::default()).unwrap())
        .collect();
    let keys: Vec<String> = (0..50).map(|i| format!("deliver/d{i}/hook/0")).collect();
    let barrier = std::sync::Barrier::new(stores.len());
    let won: Vec<Vec<bool>> = std::thread::scope(|s| {
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, store)| {
                let (keys, barrier) = (&keys, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    store
                        .claim(keys, &format!("collector-{i}"), 60_000)
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (k, key) in keys.iter().enumerate() {
        let winners = won.iter().filter(|w| w[k]).count();
        assert_eq!(winners, 1, "{key}: {winners} winners");
    }
}
