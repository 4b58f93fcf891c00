//! Helpers shared by the collector's scenario tests: an in-process collector on free ports and
//! a small JSON client for its API.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use headlight_collector::config::Config;
use headlight_collector::model::SeriesId;
use headlight_collector::server::Server;
use headlight_collector::store::{SeriesFilter, Store};
use serde_json::Value;

/// A config on free loopback ports with the data in `dir`.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config {
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    config.listen.otlp_grpc = "127.0.0.1:0".parse().unwrap();
    config.listen.otlp_http = "127.0.0.1:0".parse().unwrap();
    config.listen.http = "127.0.0.1:0".parse().unwrap();
    config.aggregation.flush_interval_ms = 100;
    config
}

/// Starts a collector with `test_config(dir)`.
pub async fn start(dir: &Path) -> Server {
    Server::start(test_config(dir)).await.unwrap()
}

/// Unix ms now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The unix time `ms` as a SystemTime.
pub fn at_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms as u64)
}

/// GETs `path` from the collector's API and returns the status and the JSON body.
pub async fn get(server: &Server, path_and_query: &str) -> (u16, Value) {
    let url = format!("http://{}{}", server.http, path_and_query);
    let response = reqwest::get(&url).await.unwrap();
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// GETs and asserts 200.
pub async fn get_ok(server: &Server, path_and_query: &str) -> Value {
    let (status, body) = get(server, path_and_query).await;
    assert_eq!(status, 200, "GET {path_and_query}: {body}");
    body
}

/// Percent-encodes a query value.
pub fn enc(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The exact nearest-rank quantile of sorted values.
pub fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank - 1]
}

/// Asserts `got` (ms) is within 1 % of `exact_us` (µs).
pub fn within_one_percent(what: &str, got: &Value, exact_us: u64) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {got}"));
    let exact = exact_us as f64 / 1000.0;
    assert!(
        (got - exact).abs() <= exact * 0.01,
        "{what}: got {got} ms, exact {exact} ms"
    );
}
pub mod agent;
pub mod clickhouse;
pub mod otlp;
pub mod process;
pub mod sdk;
pub mod store_suite;
pub mod traffic;

/// Transactions in the store: the histograms' counts over every series and window.
pub fn stored_transactions(store: &dyn Store, window_s: u32) -> u64 {
    let ids: Vec<SeriesId> = store
        .series(&SeriesFilter::default())
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    store
        .histograms(&ids, window_s, i64::MIN / 2, i64::MAX / 2)
        .unwrap()
        .iter()
        .map(|h| h.stats.count)
        .sum()
}
