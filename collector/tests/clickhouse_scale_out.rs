//! Several collectors on one ClickHouse act as one (issue 8, item 2): two collectors ingesting
//! disjoint halves of the same traffic answer latency, heatmap, transaction, breakdown and
//! deploy-comparison queries exactly like one collector ingesting all of it, on one server and
//! on two shards behind a `Distributed` table; and a regressing deploy is alerted once, not
//! once per collector.
//!
//! The servers are real `clickhouse-server` processes (Debian's 18.16) in temp dirs on loopback.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use headlight_collector::config::{ClickHouseConfig, Config};
use headlight_collector::server::Server;
use serde_json::Value;

use common::clickhouse::{ClickHouse, use_clickhouse};
use common::traffic::{Rng, Sender, Txn, traffic};

const MIN: i64 = 60_000;
const ROUTES: [&str; 3] = ["GET /users/{id}", "GET /orders", "POST /checkout"];

async fn collector(store: ClickHouseConfig, alerts_toml: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::from_toml(alerts_toml).unwrap();
    let base = common::test_config(dir.path());
    config.data_dir = base.data_dir;
    config.listen = base.listen;
    config.aggregation = base.aggregation;
    config.compare.automatic_deploys = false;
    use_clickhouse(&mut config, store);
    (Server::start(config).await.unwrap(), dir)
}

/// v1 for 15 min before the deploy at `t`, v2 after the warm-up, `GET /orders` 12 ms slower.
fn scenario(t: i64) -> (Vec<Txn>, Vec<Txn>) {
    let mut rng = Rng(8);
    let v1 = traffic(&mut rng, &ROUTES, 500, (t - 15 * MIN, t), |_| 0);
    let v2 = traffic(&mut rng, &ROUTES, 500, (t + 2 * MIN, t + 17 * MIN), |r| {
        if r == "GET /orders" { 12_000 } else { 0 }
    });
    (v1, v2)
}

/// Sends the transactions in chunks of 100, alternating between the senders, each transaction
/// keeping the trace id it gets when one sender sends all (numbered from `first`).
async fn send_split(senders: &mut [Sender], version: &str, txns: &mut [Txn], first: u64) {
    for (i, chunk) in txns.chunks_mut(100).enumerate() {
        let sender = &mut senders[i % senders.len()];
        sender.set_next_trace(first + (i * 100) as u64);
        sender.send("shop", version, chunk).await;
    }
}

async fn feed(servers: &[&Server], t: i64) -> String {
    let (mut v1, mut v2) = scenario(t);
    let mut senders = Vec::new();
    for s in servers {
        senders.push(Sender::new(s).await);
    }
    send_split(&mut senders, "1.0", &mut v1, 1).await;
    let next = 1 + v1.len() as u64;
    send_split(&mut senders, "2.0", &mut v2, next).await;
    for s in servers {
        s.flush().await.unwrap();
    }
    // The deploy is recorded once everything is flushed, so its comparison sees all of it.
    let d: Value = reqwest::Client::new()
        .post(format!("http://{}/api/v1/deploys", servers[0].http))
        .json(
            &serde_json::json!({"service": "shop", "version": "2.0", "environment": "prod",
                                   "time_ms": t}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    d["id"].as_str().unwrap().to_owned()
}

/// The answers that must not depend on how the traffic was split.
async fn answers(server: &Server, t: i64, deploy: &str) -> Vec<(String, Value)> {
    let (from, to) = (t - 16 * MIN, t + 18 * MIN);
    let orders = common::enc("GET /orders");
    let mut out = Vec::new();
    for path in [
        format!("/api/v1/latency?service=shop&from={from}&to={to}&step=60s"),
        format!(
            "/api/v1/latency?service=shop&transaction={orders}&version=2.0&from={from}&to={to}"
        ),
        format!("/api/v1/histogram?service=shop&from={from}&to={to}"),
        format!(
            "/api/v1/heatmap?service=shop&transaction={orders}&from={from}&to={to}&x_step_s=60&y_buckets=40"
        ),
        format!("/api/v1/breakdown?service=shop&from={from}&to={to}"),
        "/api/v1/services".to_owned(),
    ] {
        out.push((path.clone(), common::get_ok(server, &path).await));
    }
    // Newest first with ties in any order: compared as sets.
    let path = format!("/api/v1/transactions?service=shop&from={from}&to={to}&limit=10000");
    let mut listed = common::get_ok(server, &path).await["transactions"]
        .as_array()
        .unwrap()
        .clone();
    listed.sort_by_key(|t| t["trace_id"].as_str().unwrap().to_owned());
    out.push((path, Value::Array(listed)));
    let report = common::get_ok(server, &format!("/api/v1/deploys/{deploy}/comparison")).await;
    assert_eq!(report["status"], "ready", "{report}");
    out.push(("comparison verdict".into(), report["verdict"].clone()));
    out.push(("comparison".into(), report["transactions"].clone()));
    out
}

fn assert_same(one: &[(String, Value)], two: &[(String, Value)], what: &str) {
    assert_eq!(one.len(), two.len());
    for ((path, a), (_, b)) in one.iter().zip(two) {
        assert_eq!(a, b, "{what}: {path} differs");
    }
}

async fn two_collectors_answer_like_one(single: ClickHouseConfig, shared: ClickHouseConfig) {
    let t = (common::now_ms() - 20 * MIN) / MIN * MIN;
    let (one, _d1) = collector(single, "").await;
    let deploy = feed(&[&one], t).await;
    let (a, _d2) = collector(shared.clone(), "").await;
    let (b, _d3) = collector(shared, "").await;
    assert_eq!(feed(&[&a, &b], t).await, deploy, "the same deploy id");

    let expected = answers(&one, t, &deploy).await;
    // Exact counts: every transaction sent is counted once.
    let total = &expected[0].1["summary"]["count"];
    assert_eq!(total, &Value::from(1500 * 2), "{}", expected[0].1);
    let listed = expected
        .iter()
        .find(|(p, _)| p.contains("transactions?"))
        .unwrap();
    assert_eq!(listed.1.as_array().unwrap().len(), 3000);
    assert_eq!(
        expected
            .iter()
            .find(|(p, _)| p == "comparison verdict")
            .unwrap()
            .1,
        "regression"
    );
    assert_same(&expected, &answers(&a, t, &deploy).await, "collector a");
    assert_same(&expected, &answers(&b, t, &deploy).await, "collector b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_on_one_clickhouse_answer_like_one() {
    let server = ClickHouse::start();
    two_collectors_answer_like_one(server.store_config("single"), server.store_config("shared"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_on_two_shards_answer_like_one() {
    // The shipped layout (deploy/clickhouse-2shards), two server processes on free ports; the
    // first holds the Distributed tables and the small tables.
    let (first, second) = ClickHouse::start_two_shards();
    let sharded = ClickHouseConfig {
        cluster: Some("headlight_2shards".into()),
        shard_urls: vec![first.url.clone(), second.url.clone()],
        ..first.store_config("sharded")
    };
    two_collectors_answer_like_one(first.store_config("single"), sharded).await;
    // Both shards hold part of the rows.
    for shard in [&first, &second] {
        let n: u64 = shard
            .sql("SELECT count() FROM sharded.transactions_local")
            .trim()
            .parse()
            .unwrap();
        assert!(0 < n && n < 3000, "{}: {n} of 3000 transactions", shard.url);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regressing_deploy_is_alerted_once_by_two_collectors() {
    let server = ClickHouse::start();
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let record = Arc::clone(&got);
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let record = Arc::clone(&record);
        async move {
            record
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let toml = format!(
        r#"
[alerts]
evaluate_every_s = 1

[[alerts.rules]]
name = "deploys"
kind = "deploy_regression"

[[alerts.channels]]
kind = "webhook"
name = "hook"
url = "http://{hook}/hook"
"#
    );
    let (a, _d1) = collector(server.store_config("alerting"), &toml).await;
    let (b, _d2) = collector(server.store_config("alerting"), &toml).await;
    let t = (common::now_ms() - 20 * MIN) / MIN * MIN;
    feed(&[&a, &b], t).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    while got.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no alert within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Both collectors keep evaluating and delivering for a while: nothing more arrives.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let received = got.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "delivered once: {received:?}");
    assert_eq!(received[0]["event"], "firing", "{}", received[0]);
    for server in [&a, &b] {
        let alerts = common::get_ok(server, "/api/v1/alerts").await;
        let alerts = alerts["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let deliveries = alerts[0]["deliveries"].as_array().unwrap();
        assert_eq!(deliveries.len(), 1, "{deliveries:?}");
        assert_eq!(deliveries[0]["state"], "delivered");
        assert_eq!(deliveries[0]["attempts"], 1);
    }
}
