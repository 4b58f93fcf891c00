//! Alerts end to end: a regressing deploy notifies every channel exactly once and an A/A deploy
//! none; the outbox retries a receiver that is down and delivers once it is up, across a
//! `kill -9` and restart of the collector, without duplicates; DORA from the same history.

mod common;

use common::process::free_port;
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use headlight_collector::config::Config;
use headlight_collector::server::Server;
use headlight_collector::store::SqliteStore;
use headlight_proto::otlp::collector::trace_service_client::TraceServiceClient;
use headlight_proto::otlp::trace::Span;
use serde_json::Value;

use common::otlp::{attr, request_with_resource};

const MIN: i64 = 60_000;
const BIN: &str = env!("CARGO_BIN_EXE_headlight");

/// A request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A local HTTP server that records every request and answers 200 (Slack, Jira, webhooks).
struct Receiver {
    addr: std::net::SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start_on(listener: tokio::net::TcpListener) -> Self {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let record = Arc::clone(&got);
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let record = Arc::clone(&record);
            async move {
                record.lock().unwrap().push(Received {
                    path: uri.path().to_owned(),
                    headers,
                    body: body.to_vec(),
                });
                r#"{"id":"10001","key":"OPS-1"}"#
            }
        });
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, got }
    }

    async fn start() -> Self {
        Self::start_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await
    }

    fn paths(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.path.clone())
            .collect()
    }
}

/// Log-normal durations around 20 ms from a seeded xorshift.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn duration_us(&mut self) -> u64 {
        let z = (-2.0 * self.uniform().ln()).sqrt()
            * (2.0 * std::f64::consts::PI * self.uniform()).cos();
        (20_000.0 * (0.4 * z).exp()).round() as u64
    }
}

/// Sends `n` transactions per route ending evenly over `[from, to)`; `slow(route)` µs added.
async fn send(
    otlp: std::net::SocketAddr,
    rng: &mut Rng,
    (service, version): (&str, &str),
    routes: &[&str],
    n: u64,
    (from_ms, to_ms): (i64, i64),
    slow: impl Fn(&str) -> u64,
) {
    let mut client = TraceServiceClient::connect(format!("http://{otlp}"))
        .await
        .unwrap();
    let step = (to_ms - from_ms) as u64 / n;
    let mut spans = Vec::new();
    for i in 0..n {
        for route in routes {
            let end_ns = (from_ms as u64 + i * step + step / 2) * 1_000_000;
            let duration_us = rng.duration_us() + slow(route);
            let mut trace_id = vec![0u8; 16];
            trace_id[..8].copy_from_slice(&rng.0.to_be_bytes());
            spans.push(Span {
                trace_id,
                span_id: vec![1; 8],
                name: (*route).to_owned(),
                kind: 2,
                start_time_unix_nano: end_ns - duration_us * 1000,
                end_time_unix_nano: end_ns,
                ..Default::default()
            });
        }
    }
    for chunk in spans.chunks(500) {
        let request = request_with_resource(
            vec![
                attr("service.name", service),
                attr("service.version", version),
                attr("deployment.environment.name", "prod"),
            ],
            chunk.to_vec(),
        );
        let response = client.export(request).await.unwrap().into_inner();
        assert!(response.partial_success.is_none(), "{response:?}");
    }
}

async fn wait_for<T>(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regressing_deploy_notifies_every_channel_once_and_an_unchanged_one_none() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let log = dir.path().join("remediate.log");
    let toml = format!(
        r#"
[alerts]
evaluate_every_s = 1
public_url = "http://headlight.example"

[[alerts.rules]]
name = "deploys"
kind = "deploy_regression"
labels = {{ severity = "page" }}

[[alerts.channels]]
kind = "webhook"
name = "hook"
url = "http://{r}/hook"
secret_env = "HOOK_KEY"

[[alerts.channels]]
kind = "slack"
name = "slack"
url_env = "SLACK_URL"

[[alerts.channels]]
kind = "jira"
name = "jira"
url = "http://{r}"
project = "OPS"
token_env = "JIRA_TOKEN"

[[alerts.channels]]
kind = "alertmanager"
name = "am"
url = "http://{r}"

[[alerts.channels]]
kind = "command"
name = "remediate"
program = "/bin/sh"
args = ["-c", "tr -d '\\n' >> {log}; echo >> {log}"]
"#,
        r = receiver.addr,
        log = log.display()
    );
    let mut config = Config::from_toml(&toml).unwrap();
    let base = common::test_config(dir.path());
    config.data_dir = base.data_dir;
    config.listen = base.listen;
    config.aggregation = base.aggregation;
    let env: HashMap<&str, String> = HashMap::from([
        ("HOOK_KEY", "hook-secret".to_owned()),
        (
            "SLACK_URL",
            format!("http://{}/slack/T000/B000/XXX", receiver.addr),
        ),
        ("JIRA_TOKEN", "jira-token".to_owned()),
    ]);
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let server = Server::start_with_env(config, store, &|k| env.get(k).cloned())
        .await
        .unwrap();

    let t = (common::now_ms() - 20 * MIN) / MIN * MIN;
    let mut rng = Rng(0x5eed);
    let routes = ["GET /orders", "GET /users"];
    let before = (t - 15 * MIN, t);
    let after = (t + 2 * MIN, t + 17 * MIN);
    let otlp = server.otlp_grpc;
    send(otlp, &mut rng, ("shop", "1"), &routes, 400, before, |_| 0).await;
    send(otlp, &mut rng, ("shop", "2"), &routes, 400, after, |r| {
        if r == "GET /orders" { 15_000 } else { 0 }
    })
    .await;
    send(otlp, &mut rng, ("calm", "1"), &routes, 400, before, |_| 0).await;
    send(otlp, &mut rng, ("calm", "2"), &routes, 400, after, |_| 0).await;
    server.flush().await.unwrap();
    let client = reqwest::Client::new();
    let mut ids = HashMap::new();
    for service in ["shop", "calm"] {
        let d: Value = client
            .post(format!("http://{}/api/v1/deploys", server.http))
            .json(
                &serde_json::json!({"service": service, "version": "2", "environment": "prod",
                                       "time_ms": t, "commit_time_ms": t - 3_600_000}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.insert(service, d["id"].as_str().unwrap().to_owned());
    }

    // One alert, delivered to all four channels.
    let alert = wait_for(
        "the alert's four deliveries",
        Duration::from_secs(60),
        async || {
            let body = common::get_ok(&server, "/api/v1/alerts").await;
            let alerts = body["alerts"].as_array().unwrap().clone();
            let delivered = alerts.first().map_or(0, |a| {
                a["deliveries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|d| d["state"] == "delivered")
                    .count()
            });
            (delivered == 5).then_some(alerts)
        },
    )
    .await;
    // Evaluations keep running every second: nothing may be sent twice.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(alert.len(), 1, "{alert:#?}");
    let a = &alert[0];
    assert_eq!(
        (a["service"].as_str(), a["state"].as_str()),
        (Some("shop"), Some("firing"))
    );
    assert_eq!(a["deploy_id"], ids["shop"].as_str());
    assert!(
        a["summary"]
            .as_str()
            .unwrap()
            .contains("regressed: GET /orders"),
        "{a}"
    );
    assert_eq!(
        a["link"],
        format!(
            "http://headlight.example/api/v1/deploys/{}/comparison",
            ids["shop"]
        )
    );
    assert_eq!(a["labels"]["severity"], "page");
    let again = common::get_ok(&server, "/api/v1/alerts").await;
    assert_eq!(again["alerts"].as_array().unwrap().len(), 1);

    let mut paths = receiver.paths();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/api/v2/alerts",
            "/hook",
            "/rest/api/2/issue",
            "/slack/T000/B000/XXX"
        ],
        "exactly one request per HTTP channel"
    );
    let got = receiver.got.lock().unwrap().clone();
    let hook = got.iter().find(|r| r.path == "/hook").unwrap();
    assert!(
        hook.headers["x-headlight-signature"]
            .to_str()
            .unwrap()
            .starts_with("sha256=")
    );
    let delivery = hook.headers["x-headlight-delivery"].to_str().unwrap();
    assert_eq!(delivery, format!("deploys/deploy/{}#firing#1", ids["shop"]));
    let payload: Value = serde_json::from_slice(&hook.body).unwrap();
    assert_eq!(payload["alert"]["service"], "shop");
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "the command hook ran once");
    assert_eq!(lines[0]["delivery_id"], delivery);

    // DORA from the same history.
    let shop = common::get_ok(&server, "/api/v1/dora?service=shop").await;
    assert_eq!(
        (shop["deploys"].as_u64(), shop["failed_deploys"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(shop["change_failure_rate"], 1.0);
    assert_eq!(shop["median_lead_time_ms"], 3_600_000.0);
    let calm = common::get_ok(&server, "/api/v1/dora?service=calm").await;
    assert_eq!(
        (
            calm["deploys"].as_u64(),
            calm["change_failure_rate"].as_f64()
        ),
        (Some(1), Some(0.0))
    );
    server.shutdown().await.unwrap();
}

/// Starts `headlight serve` and waits for its API.
async fn serve(config: &std::path::Path, http: u16) -> Child {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .env("HEADLIGHT_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(stderr).lines() {});
    let url = format!("http://127.0.0.1:{http}/healthz");
    wait_for(
        "the collector to listen",
        Duration::from_secs(30),
        async || reqwest::get(&url).await.ok().filter(|r| r.status() == 200),
    )
    .await;
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_delivers_once_the_receiver_is_up_across_a_kill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, otlp_http, http, hook) = (free_port(), free_port(), free_port(), free_port());
    let config = dir.path().join("headlight.toml");
    std::fs::write(
        &config,
        format!(
            r#"
data_dir = "{data}"
[listen]
otlp_grpc = "127.0.0.1:{grpc}"
otlp_http = "127.0.0.1:{otlp_http}"
http = "127.0.0.1:{http}"
[aggregation]
flush_interval_ms = 200
[alerts]
evaluate_every_s = 1
[[alerts.rules]]
name = "slow"
kind = "latency"
service = "slow"
percentile = 95
threshold_ms = 5
for_s = 1800
[[alerts.channels]]
kind = "webhook"
name = "hook"
url = "http://127.0.0.1:{hook}/hook"
"#,
            data = dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut collector = serve(&config, http).await;
    let api = format!("http://127.0.0.1:{http}/api/v1/alerts");
    let now = common::now_ms();
    let mut rng = Rng(7);
    let otlp = format!("127.0.0.1:{grpc}").parse().unwrap();
    send(
        otlp,
        &mut rng,
        ("slow", "1"),
        &["GET /slow"],
        50,
        (now - 60_000, now - 1_000),
        |_| 0,
    )
    .await;

    // The alert fires; the receiver is down, so the delivery fails and is retried.
    let attempts = |body: &Value| -> u64 {
        body["alerts"][0]["deliveries"][0]["attempts"]
            .as_u64()
            .unwrap_or(0)
    };
    let first = wait_for(
        "a failed delivery attempt",
        Duration::from_secs(30),
        async || {
            let body: Value = reqwest::get(&api).await.ok()?.json().await.ok()?;
            (attempts(&body) >= 1).then_some(body)
        },
    )
    .await;
    let delivery = &first["alerts"][0]["deliveries"][0];
    assert_eq!(delivery["state"], "pending", "{first:#}");
    assert!(
        delivery["last_error"]
            .as_str()
            .unwrap()
            .starts_with("retryable"),
        "{first:#}"
    );

    // kill -9, the receiver comes up, the collector restarts on the same data.
    collector.kill().unwrap();
    collector.wait().unwrap();
    let receiver = Receiver::start_on(
        tokio::net::TcpListener::bind(("127.0.0.1", hook))
            .await
            .unwrap(),
    )
    .await;
    let mut collector = serve(&config, http).await;
    let body = wait_for("the delivery", Duration::from_secs(60), async || {
        let body: Value = reqwest::get(&api).await.ok()?.json().await.ok()?;
        (body["alerts"][0]["deliveries"][0]["state"] == "delivered").then_some(body)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        receiver.paths(),
        ["/hook"],
        "delivered once, not duplicated"
    );
    let got = receiver.got.lock().unwrap()[0].clone();
    assert_eq!(
        got.headers["x-headlight-delivery"],
        "slow/service/slow#firing#1"
    );
    let delivery = &body["alerts"][0]["deliveries"][0];
    assert!(delivery["attempts"].as_u64().unwrap() >= 2, "{body:#}");
    assert_eq!(
        body["alerts"].as_array().unwrap().len(),
        1,
        "the alert did not fire again"
    );
    collector.kill().unwrap();
    collector.wait().unwrap();
}
