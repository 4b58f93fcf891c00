//! Bearer-token authentication (`[auth]`) on every listener: OTLP/gRPC, OTLP/HTTP, the API and
//! the UI (login → session cookie). For each: no token and a wrong one are refused, the right
//! one works (the data arrives, exact counts); the tokens appear in no log line and no error
//! body. A token on a non-loopback plaintext listener stops the start-up; the agent and the
//! client commands send their token.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use common::otlp::{now_ns, request, server_span};
use common::test_config;
use headlight_agent::DropReason;
use headlight_collector::config::Config;
use headlight_collector::server::{Server, StartError};
use headlight_collector::store::SqliteStore;
use headlight_proto::otlp::collector::trace_service_client::TraceServiceClient;
use headlight_proto::v1::RecordDeployRequest;
use headlight_proto::v1::deploy_service_client::DeployServiceClient;
use prost::Message as _;
use serde_json::Value;
use tonic::Code;
use tracing_subscriber::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_headlight");
const INGEST_TOKEN: &str = "ingest-Tok3n-4b8f1c";
const API_TOKEN: &str = "api-Tok3n-9e2d77";
const WRONG_TOKEN: &str = "wrong-Tok3n-000000";
const SEC: u64 = 1_000_000_000;

/// Everything the process logged, at debug level and above, from the collector and its
/// dependencies: one global subscriber per test binary (nextest runs each test in its own
/// process; under `cargo test` they share it).
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buffer);
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || Buffer(Arc::clone(&writer)));
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("debug"))
            .with(layer);
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buffer
    })
}

struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Asserts no token appears in the log or in `text` (an error body), and the log has lines.
fn assert_no_token(text: &str) {
    let log = String::from_utf8_lossy(&log().lock().unwrap()).into_owned();
    assert!(
        log.contains("headlight collector listening"),
        "the log is captured"
    );
    for token in [INGEST_TOKEN, API_TOKEN, WRONG_TOKEN] {
        assert!(!log.contains(token), "a token in the log:\n{log}");
        assert!(!text.contains(token), "a token in a body: {text}");
    }
}

fn env() -> impl Fn(&str) -> Option<String> + Sync {
    |key| match key {
        "HEADLIGHT_INGEST_TOKEN" => Some(INGEST_TOKEN.to_owned()),
        "HEADLIGHT_API_TOKEN" => Some(API_TOKEN.to_owned()),
        _ => None,
    }
}

async fn start_with(config: Config) -> Result<Server, StartError> {
    log();
    let dir = config.data_dir.clone();
    let store = Arc::new(SqliteStore::open(&dir).unwrap());
    Server::start_with_env(config, store, &env()).await
}

async fn start(dir: &std::path::Path) -> Server {
    start_with(test_config(dir)).await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// GETs `path` from the API with optional `Authorization` and `Cookie` headers.
async fn get(
    server: &Server,
    path: &str,
    bearer: Option<&str>,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut request = client().get(format!("http://{}{path}", server.http));
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

/// `headlight_auth_refused_total` of `listener`, from `/metrics` (read with the API token).
async fn refused(server: &Server, listener: &str) -> u64 {
    let response = get(server, "/metrics", Some(API_TOKEN), None).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let line = format!("headlight_auth_refused_total{{listener=\"{listener}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {line} in\n{text}"))
        .parse()
        .unwrap()
}

/// The transactions of `service` the API counts (read with the API token).
async fn count(server: &Server, service: &str) -> u64 {
    server.flush().await.unwrap();
    let response = get(
        server,
        &format!("/api/v1/latency?service={service}"),
        Some(API_TOKEN),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["summary"]["count"].as_u64().unwrap()
}

fn transactions(
    service: &str,
    first: u8,
    n: u8,
) -> headlight_proto::otlp::collector::ExportTraceServiceRequest {
    let now = now_ns();
    request(
        service,
        (first..first + n)
            .map(|i| server_span(i, "GET /", now - 5 * SEC, 10_000_000))
            .collect(),
    )
}

#[tokio::test]
async fn a_token_on_a_non_loopback_plaintext_listener_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.listen.otlp_http = "0.0.0.0:0".parse().unwrap();
    let err = start_with(config.clone()).await.unwrap_err().to_string();
    assert!(err.contains("listen.otlp_http"), "{err}");
    assert!(err.contains("configure `[tls]`"), "{err}");
    assert!(err.contains("auth.allow_plaintext"), "{err}");
    assert!(
        !err.contains(INGEST_TOKEN) && !err.contains(API_TOKEN),
        "{err}"
    );

    let mut api = test_config(dir.path());
    api.listen.http = "0.0.0.0:0".parse().unwrap();
    let err = start_with(api).await.unwrap_err().to_string();
    assert!(err.contains("listen.http"), "{err}");

    // Allowed explicitly, the same listener starts.
    config.auth.allow_plaintext = true;
    let server = start_with(config).await.unwrap();
    server.shutdown().await.unwrap();

    // An empty variable is an error naming it, not "no authentication".
    let empty = |key: &str| (key == "HEADLIGHT_API_TOKEN").then(String::new);
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let err = Server::start_with_env(test_config(dir.path()), store, &empty)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("HEADLIGHT_API_TOKEN"), "{err}");
    assert_no_token(&err);
}

#[tokio::test]
async fn otlp_grpc_needs_the_ingest_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut client = TraceServiceClient::connect(format!("http://{}", server.otlp_grpc))
        .await
        .unwrap();
    let attempt = |token: Option<&str>, first: u8| {
        let mut request = tonic::Request::new(transactions("grpc", first, 3));
        if let Some(token) = token {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        request
    };
    for token in [None, Some(WRONG_TOKEN), Some(API_TOKEN)] {
        let status = client.export(attempt(token, 1)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{token:?}");
        assert!(status.message().contains("bearer token"), "{status:?}");
        assert_no_token(&format!("{status:?}"));
    }
    client
        .export(attempt(Some(INGEST_TOKEN), 10))
        .await
        .unwrap();
    assert_eq!(count(&server, "grpc").await, 3);
    assert_eq!(refused(&server, "otlp_grpc").await, 3);

    // DeployService shares the listener and its token.
    let mut deploys = DeployServiceClient::connect(format!("http://{}", server.otlp_grpc))
        .await
        .unwrap();
    let record = |token: &str| {
        let mut request = tonic::Request::new(RecordDeployRequest {
            service: "grpc".into(),
            version: "2".into(),
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    };
    let refused = deploys
        .record_deploy(record(WRONG_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let recorded = deploys.record_deploy(record(INGEST_TOKEN)).await.unwrap();
    assert_eq!(recorded.into_inner().deploy.unwrap().version, "2");
    assert_no_token("");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn otlp_http_needs_the_ingest_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let url = format!("http://{}/v1/traces", server.otlp_http);
    let send = |token: Option<&str>, json: bool, first: u8| {
        let body = transactions("http", first, 2);
        let mut request = client().post(&url);
        request = if json {
            request
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap())
        } else {
            request
                .header("content-type", "application/x-protobuf")
                .body(body.encode_to_vec())
        };
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.send()
    };
    for token in [None, Some(WRONG_TOKEN), Some(API_TOKEN)] {
        let response = send(token, false, 1).await.unwrap();
        assert_eq!(response.status(), 401, "{token:?}");
        let body = response.bytes().await.unwrap();
        let status = tonic_types::Status::decode(body).unwrap();
        assert_eq!(status.code, Code::Unauthenticated as i32);
        assert_no_token(&status.message);

        let response = send(token, true, 1).await.unwrap();
        assert_eq!(response.status(), 401, "{token:?}");
        let body = response.text().await.unwrap();
        let status: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status["code"], Code::Unauthenticated as i32);
        assert_no_token(&body);
    }
    let response = send(Some(INGEST_TOKEN), false, 10).await.unwrap();
    assert_eq!(response.status(), 200);
    let response = send(Some(INGEST_TOKEN), true, 20).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(count(&server, "http").await, 4);
    assert_eq!(refused(&server, "otlp_http").await, 6);
    assert_no_token("");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_api_needs_the_api_token_and_health_checks_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    for path in ["/api/v1/services", "/api/v1/deploys", "/metrics"] {
        for token in [None, Some(WRONG_TOKEN), Some(INGEST_TOKEN)] {
            let response = get(&server, path, token, None).await;
            assert_eq!(response.status(), 401, "{path} {token:?}");
            let body = response.text().await.unwrap();
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["error"]["code"], "unauthenticated", "{path}");
            assert_no_token(&body.to_string());
        }
        let response = get(&server, path, Some(API_TOKEN), None).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(get(&server, path, None, None).await.status(), 200, "{path}");
    }
    assert_eq!(refused(&server, "http").await, 9);
    assert_eq!(refused(&server, "otlp_grpc").await, 0);
    assert_no_token("");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_ui_logs_in_with_the_token_and_keeps_a_session_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    // A browser without a session is sent to the login page.
    let response = get(&server, "/", None, None).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login");
    let response = get(&server, "/login", None, None).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(
        page.contains(r#"<form method="post" action="/login">"#),
        "{page}"
    );

    let login = |token: &str| {
        client()
            .post(format!("http://{}/login", server.http))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", common::enc(token)))
            .send()
    };
    for token in [WRONG_TOKEN, INGEST_TOKEN, ""] {
        let response = login(token).await.unwrap();
        assert_eq!(response.status(), 401, "{token:?}");
        assert!(response.headers().get("set-cookie").is_none());
        let page = response.text().await.unwrap();
        assert!(page.contains("Wrong token."), "{page}");
        assert_no_token(&page);
    }
    let response = login(API_TOKEN).await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_owned();
    let id = session.strip_prefix("headlight_session=").unwrap();
    assert_eq!(id.len(), 32, "128 random bits in hex: {session}");
    assert!(!cookie.contains(API_TOKEN));

    // The session opens the UI and the API it calls.
    let response = get(&server, "/", None, Some(&format!("theme=dark; {session}"))).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("<html"));
    let response = get(&server, "/api/v1/services", None, Some(&session)).await;
    assert_eq!(response.status(), 200);
    // A forged session opens nothing.
    let forged = "headlight_session=00000000000000000000000000000000";
    assert_eq!(get(&server, "/", None, Some(forged)).await.status(), 303);
    let response = get(&server, "/api/v1/services", None, Some(forged)).await;
    assert_eq!(response.status(), 401);
    // The redirect, 3 wrong logins, the forged session twice.
    assert_eq!(refused(&server, "http").await, 6);
    assert_no_token("");
    server.shutdown().await.unwrap();
}

/// Sends 7 transactions of `service` with the headlight agent configured from `OTEL_*`
/// variables, `headers` as `OTEL_EXPORTER_OTLP_HEADERS`; returns its final statistics.
async fn run_agent(
    server: &Server,
    service: &'static str,
    headers: Option<String>,
) -> headlight_agent::AgentStats {
    let endpoint = format!("http://{}", server.otlp_grpc);
    let mut env = HashMap::from([("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)]);
    if let Some(headers) = headers {
        env.insert("OTEL_EXPORTER_OTLP_HEADERS", headers);
    }
    common::agent::send_seven(service, env, |b| b).await
}

#[tokio::test]
async fn the_agent_sends_the_ingest_token_from_otel_exporter_otlp_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let bearer = |token: &str| Some(format!("authorization=Bearer%20{token}"));
    for (service, headers) in [("no-token", None), ("wrong-token", bearer(WRONG_TOKEN))] {
        let stats = run_agent(&server, service, headers).await;
        // UNAUTHENTICATED is not retried: the agent counts the transactions as failed exports.
        assert_eq!(stats.transactions_sent, 0, "{service}: {stats:?}");
        let failed = stats.transactions_dropped.get(DropReason::ExportFailed);
        assert_eq!(failed, 7, "{service}: {stats:?}");
        assert_eq!(count(&server, service).await, 0, "{service}");
    }
    let stats = run_agent(&server, "agent-app", bearer(INGEST_TOKEN)).await;
    assert_eq!(stats.transactions_sent, 7, "{stats:?}");
    assert_eq!(stats.transactions_dropped.total(), 0, "{stats:?}");
    assert_eq!(count(&server, "agent-app").await, 7);
    assert_no_token("");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_client_commands_send_headlight_api_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let url = format!("http://{}", server.http);
    let deploy = move |token: Option<&'static str>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let mut command = common::process::deploy_shop(&url);
            if let Some(token) = token {
                command.env("HEADLIGHT_API_TOKEN", token);
            }
            command.output().unwrap()
        })
    };
    for token in [None, Some(WRONG_TOKEN)] {
        let out = deploy(token).await.unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(stderr.contains("401"), "{stderr}");
        assert_no_token(&stderr);
    }
    let out = deploy(Some(API_TOKEN)).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_no_token(&String::from_utf8_lossy(&out.stdout));
    let response = get(
        &server,
        "/api/v1/deploys?service=shop",
        Some(API_TOKEN),
        None,
    )
    .await;
    let body: Value = response.json().await.unwrap();
    let listed = body.as_array().or(body["deploys"].as_array()).map(Vec::len);
    assert_eq!(listed, Some(1), "{body}");
    server.shutdown().await.unwrap();
}

#[test]
fn serve_reads_the_tokens_from_the_environment_and_names_the_plaintext_listener() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("headlight.toml");
    let listen =
        "[listen]\notlp_grpc = '127.0.0.1:0'\notlp_http = '127.0.0.1:0'\nhttp = '0.0.0.0:0'\n";
    std::fs::write(&config, format!("data_dir = {:?}\n{listen}", dir.path())).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("HEADLIGHT_API_TOKEN", API_TOKEN)
        .env_remove("HEADLIGHT_INGEST_TOKEN")
        .env("HEADLIGHT_LOG", "debug")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listen.http"), "{stderr}");
    assert!(stderr.contains("configure `[tls]`"), "{stderr}");
    assert!(!stderr.contains(API_TOKEN), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(API_TOKEN));
}
