//! Each notification channel against a real receiver: a recording HTTP server on loopback
//! (webhook signature and delivery id, Slack blocks, Jira payload and auth, the classification
//! of 500/429/408/400, a closed port and a silent server), a real program for the command hook,
//! and a real Prometheus Alertmanager (Debian's `prometheus-alertmanager`, which `scripts/test`
//! installs) that lists the alert through its own API and then reports it resolved.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use headlight_collector::alert::channels::{self, Channel, ChannelConfig, DeliveryError};
use headlight_collector::alert::model::{Alert, AlertState, Event, Notification};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

mod common;

use common::process::{self, Process};

// ---------------------------------------------------------------------------------------------
// A recording HTTP receiver.

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// What the receiver answers: a status, and a body (`ECHO_AUTH` echoes the Authorization
/// header back, as a careless server might).
#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<Recorded>>>,
    status: Arc<AtomicU16>,
    body: Arc<Mutex<String>>,
}

const ECHO_AUTH: &str = "echo-authorization";

impl Receiver {
    fn respond(&self, status: u16, body: &str) {
        self.status.store(status, Ordering::SeqCst);
        *self.body.lock().unwrap() = body.to_owned();
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected one request, got {requests:#?}");
        requests.into_iter().next().unwrap()
    }

    /// Waits until a recorded request satisfies `pred`, up to `timeout`.
    async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Recorded) -> bool) -> Recorded {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.requests().into_iter().find(|r| pred(r)) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no matching request within {timeout:?}; got {:#?}",
                self.requests()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn record(
    State(receiver): State<Receiver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    receiver.requests.lock().unwrap().push(Recorded {
        method,
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let status = StatusCode::from_u16(receiver.status.load(Ordering::SeqCst)).unwrap();
    let mut body = receiver.body.lock().unwrap().clone();
    if body == ECHO_AUTH {
        body = format!("bad credentials: {auth}");
    }
    (status, [("retry-after", "7")], body).into_response()
}

/// Starts a receiver on `127.0.0.1:0` answering 200 until told otherwise.
async fn receiver() -> (SocketAddr, Receiver) {
    let receiver = Receiver::default();
    receiver.respond(200, "ok");
    let app = Router::new().fallback(record).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, receiver)
}

// ---------------------------------------------------------------------------------------------
// Alerts, configs, env.

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn alert(state: AlertState) -> Alert {
    Alert {
        key: "checkout-p95/checkout/GET /orders".into(),
        rule: "checkout-p95".into(),
        kind: "latency".into(),
        service: "checkout".into(),
        environment: Some("prod".into()),
        transaction: Some("GET /orders".into()),
        deploy_id: Some("0af0d20fff4caaa2".into()),
        state,
        summary: "checkout GET /orders p95 412 ms > 300 ms for 5 min".into(),
        reasons: vec![
            "p95 412 ms over the last 5 min (threshold 300 ms)".into(),
            "p99 <1 s & rising".into(),
        ],
        started_ms: 1_700_000_000_000,
        resolved_ms: (state == AlertState::Resolved).then_some(1_700_000_600_000),
        link: Some(
            "http://headlight.internal/services/checkout?transaction=GET%20%2Forders".into(),
        ),
        labels: BTreeMap::from([
            ("severity".into(), "page".into()),
            ("team.name".into(), "payments".into()),
        ]),
    }
}

fn notification(event: Event) -> Notification {
    let state = match event {
        Event::Resolved => AlertState::Resolved,
        Event::Firing | Event::Renotify => AlertState::Firing,
    };
    let n = match event {
        Event::Firing => 0,
        Event::Renotify => 1,
        Event::Resolved => 2,
    };
    let alert = alert(state);
    Notification {
        delivery_id: format!(
            "{}#{}#{n}",
            alert.key,
            serde_json::to_value(event).unwrap().as_str().unwrap()
        ),
        event,
        alert,
    }
}

fn config(toml: &str) -> ChannelConfig {
    toml::from_str(toml).unwrap_or_else(|e| panic!("{toml}: {e}"))
}

/// An environment made of `vars`, read through the closure `build` takes (no `set_var`).
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name: &str| vars.get(name).cloned()
}

fn build(toml: &str, vars: &[(&str, &str)]) -> Box<dyn Channel> {
    channels::build(&config(toml), &env(vars)).unwrap()
}

fn retryable(result: Result<(), DeliveryError>) -> String {
    match result {
        Err(DeliveryError::Retryable(message)) => message,
        other => panic!("expected a retryable error, got {other:?}"),
    }
}

fn permanent(result: Result<(), DeliveryError>) -> String {
    match result {
        Err(DeliveryError::Permanent(message)) => message,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook.

const WEBHOOK_KEY: &str = "whk-9f2c1e-s3cret";

#[tokio::test]
async fn webhook_posts_the_notification_signed_with_the_key() {
    let (addr, receiver) = receiver().await;
    let channel = build(
        &format!(
            "kind = \"webhook\"\nname = \"hook\"\nurl = \"http://{addr}/hooks/headlight\"\nsecret_env = \"HOOK_KEY\""
        ),
        &[("HOOK_KEY", WEBHOOK_KEY)],
    );
    assert_eq!(channel.name(), "hook");
    let sent = notification(Event::Firing);
    channel.deliver(&sent).await.unwrap();

    let got = receiver.only_request();
    assert_eq!(got.method, Method::POST);
    assert_eq!(got.path, "/hooks/headlight");
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(
        got.header("x-headlight-delivery"),
        Some("checkout-p95/checkout/GET /orders#firing#0")
    );
    // The body is the notification, exactly.
    let received: Notification = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(received, sent);
    // The signature verifies over the raw body with the key, as a receiver would check it.
    let signature = got.header("x-headlight-signature").unwrap();
    let hex = signature.strip_prefix("sha256=").unwrap();
    assert_eq!(hex.len(), 64);
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_KEY.as_bytes()).unwrap();
    mac.update(&got.body);
    mac.verify_slice(&bytes)
        .expect("the signature verifies with the key");
    // …and not with another key, nor over another body.
    let mut wrong = Hmac::<Sha256>::new_from_slice(b"another key").unwrap();
    wrong.update(&got.body);
    assert!(wrong.verify_slice(&bytes).is_err());
    let mut tampered = Hmac::<Sha256>::new_from_slice(WEBHOOK_KEY.as_bytes()).unwrap();
    tampered.update(&[&got.body[..], b" "].concat());
    assert!(tampered.verify_slice(&bytes).is_err());
}

#[tokio::test]
async fn webhook_without_a_key_is_unsigned_and_retries_reuse_the_delivery_id() {
    let (addr, receiver) = receiver().await;
    let channel = build(
        &format!("kind = \"webhook\"\nname = \"hook\"\nurl = \"http://{addr}/\""),
        &[],
    );
    let sent = notification(Event::Resolved);
    receiver.respond(503, "busy");
    retryable(channel.deliver(&sent).await);
    receiver.respond(200, "ok");
    channel.deliver(&sent).await.unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    for got in &requests {
        assert_eq!(got.header("x-headlight-signature"), None);
        assert_eq!(
            got.header("x-headlight-delivery"),
            Some("checkout-p95/checkout/GET /orders#resolved#2")
        );
    }
    assert_eq!(requests[0].body, requests[1].body);
}

// ---------------------------------------------------------------------------------------------
// Slack.

#[tokio::test]
async fn slack_posts_block_kit_with_summary_state_reasons_and_link() {
    let (addr, receiver) = receiver().await;
    let url = format!("http://{addr}/services/T000/B000/XXXXSECRETXXXX");
    let channel = build(
        "kind = \"slack\"\nname = \"ops-slack\"\nurl_env = \"SLACK_URL\"",
        &[("SLACK_URL", &url)],
    );
    channel.deliver(&notification(Event::Firing)).await.unwrap();

    let got = receiver.only_request();
    assert_eq!(got.path, "/services/T000/B000/XXXXSECRETXXXX");
    assert_eq!(got.header("content-type"), Some("application/json"));
    let expected = json!({
        "text": "Firing: checkout GET /orders p95 412 ms > 300 ms for 5 min",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": ":red_circle: Firing: checkout-p95", "emoji": true}},
            {"type": "section",
             "text": {"type": "mrkdwn", "text": "*checkout GET /orders p95 412 ms &gt; 300 ms for 5 min*"},
             "fields": [
                {"type": "mrkdwn", "text": "*Service*\ncheckout"},
                {"type": "mrkdwn", "text": "*State*\nFiring"},
                {"type": "mrkdwn", "text": "*Kind*\nlatency"},
                {"type": "mrkdwn", "text": "*Transaction*\nGET /orders"},
                {"type": "mrkdwn", "text": "*Deploy*\n0af0d20fff4caaa2"},
                {"type": "mrkdwn", "text": "*Environment*\nprod"},
             ]},
            {"type": "section", "text": {"type": "mrkdwn", "text":
                "*Reasons*\n• p95 412 ms over the last 5 min (threshold 300 ms)\n• p99 &lt;1 s &amp; rising"}},
            {"type": "actions", "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": "Open in Headlight"},
                "url": "http://headlight.internal/services/checkout?transaction=GET%20%2Forders",
            }]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text":
                "checkout-p95/checkout/GET /orders · delivery checkout-p95/checkout/GET /orders#firing#0"}]},
        ],
    });
    assert_eq!(got.json(), expected);
}

#[tokio::test]
async fn slack_resolved_message_says_so_and_has_no_button_without_a_link() {
    let (addr, receiver) = receiver().await;
    let channel = build(
        "kind = \"slack\"\nname = \"ops-slack\"\nurl_env = \"SLACK_URL\"",
        &[("SLACK_URL", &format!("http://{addr}/services/x"))],
    );
    let mut resolved = notification(Event::Resolved);
    resolved.alert.link = None;
    resolved.alert.reasons.clear();
    channel.deliver(&resolved).await.unwrap();

    let body = receiver.only_request().json();
    assert_eq!(
        body["text"],
        "Resolved: checkout GET /orders p95 412 ms > 300 ms for 5 min"
    );
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(
        blocks[0]["text"]["text"],
        ":large_green_circle: Resolved: checkout-p95"
    );
    assert_eq!(blocks[1]["fields"][1]["text"], "*State*\nResolved");
    let kinds: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["header", "section", "context"]);
}

// ---------------------------------------------------------------------------------------------
// Jira.

const JIRA_TOKEN: &str = "jira-t0ken-s3cret";

#[tokio::test]
async fn jira_creates_an_issue_with_basic_auth_and_skips_renotify_and_resolved() {
    let (addr, receiver) = receiver().await;
    receiver.respond(201, r#"{"id":"10001","key":"OPS-17"}"#);
    let channel = build(
        &format!(
            "kind = \"jira\"\nname = \"ops-jira\"\nurl = \"http://{addr}/jira\"\nproject = \"OPS\"\n\
             issue_type = \"Incident\"\nuser_env = \"JIRA_USER\"\ntoken_env = \"JIRA_TOKEN\""
        ),
        &[("JIRA_USER", "ops@example.com"), ("JIRA_TOKEN", JIRA_TOKEN)],
    );
    channel.deliver(&notification(Event::Firing)).await.unwrap();
    // Re-notification and resolution create nothing.
    channel
        .deliver(&notification(Event::Renotify))
        .await
        .unwrap();
    channel
        .deliver(&notification(Event::Resolved))
        .await
        .unwrap();

    let got = receiver.only_request();
    assert_eq!(got.method, Method::POST);
    assert_eq!(got.path, "/jira/rest/api/2/issue");
    // base64("ops@example.com:jira-t0ken-s3cret")
    assert_eq!(
        got.header("authorization"),
        Some("Basic b3BzQGV4YW1wbGUuY29tOmppcmEtdDBrZW4tczNjcmV0")
    );
    let body = got.json();
    let label = body["fields"]["labels"][1].as_str().unwrap().to_owned();
    assert_eq!(
        label,
        channels::alert_label("checkout-p95/checkout/GET /orders")
    );
    assert!(label.starts_with("headlight-checkout-p95_checkout_GET__orders-"));
    assert!(!label.contains(' '));
    let description = "*checkout GET /orders p95 412 ms > 300 ms for 5 min*\n\n\
        * Rule: checkout-p95 (latency)\n\
        * Service: checkout\n\
        * Environment: prod\n\
        * Transaction: {{GET /orders}}\n\
        * Deploy: 0af0d20fff4caaa2\n\
        \nh3. Reasons\n\
        * p95 412 ms over the last 5 min (threshold 300 ms)\n\
        * p99 <1 s & rising\n\
        \n[Open in Headlight|http://headlight.internal/services/checkout?transaction=GET%20%2Forders]\n\
        \n_Alert key checkout-p95/checkout/GET /orders, delivery checkout-p95/checkout/GET /orders#firing#0_";
    assert_eq!(
        body,
        json!({"fields": {
            "project": {"key": "OPS"},
            "issuetype": {"name": "Incident"},
            "summary": "checkout GET /orders p95 412 ms > 300 ms for 5 min",
            "description": description,
            "labels": ["headlight", label],
        }})
    );
}

#[tokio::test]
async fn jira_without_a_user_sends_a_bearer_token_and_defaults_to_bug() {
    let (addr, receiver) = receiver().await;
    let channel = build(
        &format!(
            "kind = \"jira\"\nname = \"dc-jira\"\nurl = \"http://{addr}\"\nproject = \"OPS\"\ntoken_env = \"PAT\""
        ),
        &[("PAT", JIRA_TOKEN)],
    );
    channel.deliver(&notification(Event::Firing)).await.unwrap();
    let got = receiver.only_request();
    assert_eq!(got.path, "/rest/api/2/issue");
    assert_eq!(
        got.header("authorization"),
        Some("Bearer jira-t0ken-s3cret")
    );
    assert_eq!(got.json()["fields"]["issuetype"], json!({"name": "Bug"}));
}

// ---------------------------------------------------------------------------------------------
// Classification of HTTP outcomes.

#[tokio::test]
async fn http_statuses_and_transport_errors_are_classified() {
    let (addr, receiver) = receiver().await;
    let channel = build(
        &format!("kind = \"webhook\"\nname = \"hook\"\nurl = \"http://{addr}/\""),
        &[],
    );
    let sent = notification(Event::Firing);

    receiver.respond(500, "internal\n  error");
    let message = retryable(channel.deliver(&sent).await);
    assert_eq!(
        message,
        "HTTP 500 Internal Server Error (retry-after 7): internal error"
    );

    receiver.respond(429, "slow down");
    let message = retryable(channel.deliver(&sent).await);
    assert_eq!(
        message,
        "HTTP 429 Too Many Requests (retry-after 7): slow down"
    );

    receiver.respond(408, "");
    let message = retryable(channel.deliver(&sent).await);
    assert_eq!(message, "HTTP 408 Request Timeout (retry-after 7)");

    receiver.respond(400, "invalid_payload");
    let message = permanent(channel.deliver(&sent).await);
    assert_eq!(
        message,
        "HTTP 400 Bad Request (retry-after 7): invalid_payload"
    );

    receiver.respond(404, "no_service");
    permanent(channel.deliver(&sent).await);

    // A redirect is not followed (it could forward a signed body elsewhere): permanent.
    receiver.respond(302, "");
    permanent(channel.deliver(&sent).await);

    receiver.respond(204, "");
    channel.deliver(&sent).await.unwrap();
    assert_eq!(receiver.requests().len(), 7);

    // A closed port: connection refused is retryable.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let channel = build(
        &format!("kind = \"webhook\"\nname = \"hook\"\nurl = \"http://{closed}/\""),
        &[],
    );
    let message = retryable(channel.deliver(&sent).await);
    assert!(message.contains("Connection refused"), "{message}");
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out_after_10_s_as_retryable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts connections and keeps them open without a word.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let channel = build(
        &format!("kind = \"alertmanager\"\nname = \"am\"\nurl = \"http://{addr}\""),
        &[],
    );
    let started = Instant::now();
    let message = retryable(channel.deliver(&notification(Event::Firing)).await);
    let elapsed = started.elapsed();
    assert!(message.starts_with("timed out after 10 s"), "{message}");
    assert!(
        elapsed >= Duration::from_secs(10) && elapsed < Duration::from_secs(13),
        "{elapsed:?}"
    );
    silent.abort();
}

// ---------------------------------------------------------------------------------------------
// Secrets.

/// A `MakeWriter` that keeps every log line in memory.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn build_names_the_channel_and_the_missing_variable_and_refuses_https() {
    let err =
        |toml: &str, vars: &[(&str, &str)]| channels::build(&config(toml), &env(vars)).unwrap_err();
    assert_eq!(
        err(
            "kind = \"slack\"\nname = \"ops-slack\"\nurl_env = \"SLACK_URL\"",
            &[]
        ),
        "channel \"ops-slack\": environment variable SLACK_URL (url_env) is not set"
    );
    assert_eq!(
        err(
            "kind = \"webhook\"\nname = \"hook\"\nurl = \"http://h/\"\nsecret_env = \"HOOK_KEY\"",
            &[("HOOK_KEY", "")]
        ),
        "channel \"hook\": environment variable HOOK_KEY (secret_env) is empty"
    );
    assert_eq!(
        err(
            "kind = \"jira\"\nname = \"j\"\nurl = \"http://j\"\nproject = \"OPS\"\nuser_env = \"JU\"\ntoken_env = \"JT\"",
            &[("JT", JIRA_TOKEN)]
        ),
        "channel \"j\": environment variable JU (user_env) is not set"
    );
    // The Slack URL is the secret: the error names the variable and shows no part of it.
    let slack_secret = "https://hooks.slack.com/services/T0/B0/SUPERSECRETPATH";
    let message = err(
        "kind = \"slack\"\nname = \"ops-slack\"\nurl_env = \"SLACK_URL\"",
        &[("SLACK_URL", slack_secret)],
    );
    assert_eq!(
        message,
        "channel \"ops-slack\": environment variable SLACK_URL (url_env) uses https://, which this \
         build does not speak; give an http:// URL of a proxy that terminates TLS (see docs/alerts.md)"
    );
    let message = err(
        "kind = \"slack\"\nname = \"ops-slack\"\nurl_env = \"SLACK_URL\"",
        &[("SLACK_URL", "not a url SUPERSECRETPATH")],
    );
    assert!(!message.contains("SUPERSECRETPATH"), "{message}");
    assert!(
        message.starts_with(
            "channel \"ops-slack\": environment variable SLACK_URL (url_env) is not a URL"
        ),
        "{message}"
    );
    assert_eq!(
        err(
            "kind = \"command\"\nname = \"fix\"\nprogram = \"/bin/true\"\ntimeout_s = 0",
            &[]
        ),
        "channel \"fix\": timeout_s must be at least 1"
    );
    assert_eq!(
        err(
            "kind = \"alertmanager\"\nname = \"am\"\nurl = \"http://am:9093\"\nends_after_s = 0",
            &[]
        ),
        "channel \"am\": ends_after_s must be at least 1"
    );
}

#[tokio::test]
async fn secrets_appear_in_no_debug_output_error_or_log_line() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread runtime: every task of the test logs through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let (addr, receiver) = receiver().await;
    let slack_path = "/services/T0/B0/SUPERSECRETPATH";
    // The token, the Slack URL's path, and the Basic credentials as sent (base64 of user:token).
    let secrets = [
        WEBHOOK_KEY,
        JIRA_TOKEN,
        "SUPERSECRETPATH",
        "b3BzQGV4YW1wbGUuY29tOmppcmEtdDBrZW4tczNjcmV0",
    ];
    let slack_url = format!("http://{addr}{slack_path}");
    let vars = [
        ("HOOK_KEY", WEBHOOK_KEY),
        ("JIRA_TOKEN", JIRA_TOKEN),
        ("JIRA_USER", "ops@example.com"),
        ("SLACK_URL", slack_url.as_str()),
    ];
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let closed_slack = format!("http://{closed}{slack_path}");
    let built = [
        build(
            &format!(
                "kind = \"webhook\"\nname = \"hook\"\nurl = \"http://{addr}/\"\nsecret_env = \"HOOK_KEY\""
            ),
            &vars,
        ),
        build(
            "kind = \"slack\"\nname = \"ops-slack\"\nurl_env = \"SLACK_URL\"",
            &vars,
        ),
        build(
            "kind = \"slack\"\nname = \"down-slack\"\nurl_env = \"SLACK_URL\"",
            &[("SLACK_URL", &closed_slack)],
        ),
        build(
            &format!(
                "kind = \"jira\"\nname = \"ops-jira\"\nurl = \"http://{addr}\"\nproject = \"OPS\"\nuser_env = \"JIRA_USER\"\ntoken_env = \"JIRA_TOKEN\""
            ),
            &vars,
        ),
        build(
            &format!(
                "kind = \"jira\"\nname = \"pat-jira\"\nurl = \"http://{addr}\"\nproject = \"OPS\"\ntoken_env = \"JIRA_TOKEN\""
            ),
            &vars,
        ),
    ];

    let mut seen = Vec::new();
    for channel in &built {
        seen.push(format!("{channel:?}"));
    }
    // A receiver that echoes the credentials it got into its error body: 401, permanent.
    receiver.respond(401, ECHO_AUTH);
    for channel in &built {
        let result = channel.deliver(&notification(Event::Firing)).await;
        seen.push(format!("{result:?}"));
        match result {
            Err(DeliveryError::Permanent(message)) => {
                assert!(message.starts_with("HTTP 401 Unauthorized"), "{message}");
                if channel.name().ends_with("jira") {
                    assert!(
                        message.ends_with("bad credentials: <redacted>"),
                        "{message}"
                    );
                }
            }
            Err(DeliveryError::Retryable(message)) => {
                assert_eq!(channel.name(), "down-slack");
                assert!(message.contains("Connection refused"), "{message}");
            }
            Ok(()) => panic!("{} delivered to a 401", channel.name()),
        }
    }
    // The secrets did reach the receiver, where they belong.
    let requests = receiver.requests();
    assert_eq!(requests.len(), 4);
    assert!(requests.iter().any(|r| r.path == slack_path));
    assert!(
        requests
            .iter()
            .any(|r| r.header("authorization") == Some("Bearer jira-t0ken-s3cret"))
    );

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("down-slack"), "the log capture works: {logs}");
    seen.push(logs);
    for text in &seen {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret:?} leaked into: {text}");
        }
    }
    assert!(seen[0].contains("<redacted>"), "{}", seen[0]);
}

// ---------------------------------------------------------------------------------------------
// Command hook.

fn command(program: &str, args: &[&str], timeout_s: u64) -> Box<dyn Channel> {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    build(
        &format!(
            "kind = \"command\"\nname = \"remediate\"\nprogram = {program:?}\nargs = [{}]\ntimeout_s = {timeout_s}",
            args.join(", ")
        ),
        &[],
    )
}

#[tokio::test]
async fn command_gets_the_notification_on_stdin_and_its_env() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdin.json");
    let script = r#"cat > "$1" && printf '%s|%s|%s' "$HEADLIGHT_ALERT_KEY" "$HEADLIGHT_EVENT" "$HEADLIGHT_DELIVERY_ID" > "$1.env""#;
    let channel = command("/bin/sh", &["-c", script, "sh", out.to_str().unwrap()], 30);
    let sent = notification(Event::Renotify);
    channel.deliver(&sent).await.unwrap();

    let got: Notification = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(got, sent);
    let env = std::fs::read_to_string(dir.path().join("stdin.json.env")).unwrap();
    assert_eq!(
        env,
        "checkout-p95/checkout/GET /orders|renotify|checkout-p95/checkout/GET /orders#renotify#1"
    );
}

#[tokio::test]
async fn command_failures_are_classified() {
    let sent = notification(Event::Firing);

    // Non-zero exit: retryable, with the tail of stderr.
    let channel = command(
        "/bin/sh",
        &[
            "-c",
            "cat >/dev/null; echo 'scale-out refused:' >&2; echo 'quota' >&2; exit 3",
        ],
        30,
    );
    let message = retryable(channel.deliver(&sent).await);
    assert_eq!(
        message,
        "/bin/sh exited with status 3: scale-out refused:\nquota"
    );

    // Only the last KiB of a long stderr is kept.
    let channel = command(
        "/bin/sh",
        &[
            "-c",
            "i=0; while [ $i -lt 2000 ]; do echo line$i >&2; i=$((i+1)); done; exit 1",
        ],
        30,
    );
    let message = retryable(channel.deliver(&sent).await);
    assert!(message.ends_with("line1999"), "{message}");
    assert!(message.len() < 1100, "{}", message.len());

    // A program that does not read its stdin and succeeds is delivered.
    command("/bin/true", &[], 30).deliver(&sent).await.unwrap();

    // Timeout: killed, retryable, promptly.
    let channel = command("/bin/sh", &["-c", "exec sleep 30"], 1);
    let started = Instant::now();
    let message = retryable(channel.deliver(&sent).await);
    assert_eq!(message, "/bin/sh timed out after 1 s and was killed");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A missing program, and a file that is not executable: permanent.
    let message = permanent(
        command("/nonexistent/headlight-remediate", &[], 30)
            .deliver(&sent)
            .await,
    );
    assert!(
        message.starts_with("cannot run /nonexistent/headlight-remediate:"),
        "{message}"
    );
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    permanent(
        command(script.to_str().unwrap(), &[], 30)
            .deliver(&sent)
            .await,
    );
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus Alertmanager.

/// Starts Alertmanager (Debian's `prometheus-alertmanager`, installed by `scripts/test`) on a
/// free loopback port with clustering off, its data in `dir`, and one route to a webhook
/// receiver at `receiver` that also sends resolved notifications.
async fn start_alertmanager(dir: &Path, receiver: SocketAddr) -> Process {
    let binary = process::binary("prometheus-alertmanager", "prometheus-alertmanager");
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: recorder\n  group_by: ['...']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: recorder\n    webhook_configs:\n      - url: 'http://{receiver}/am-webhook'\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let args = |port: u16| {
        vec![
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--web.external-url=http://127.0.0.1:{port}"),
            "--cluster.listen-address=".to_owned(),
            "--log.level=debug".to_owned(),
        ]
    };
    process::start_ready(&binary, args, &dir.join("alertmanager.log")).await
}

fn parse_rfc3339(text: &str) -> i64 {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_lists_the_alert_then_resolves_it() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver_addr, receiver) = receiver().await;
    let am = start_alertmanager(dir.path(), receiver_addr).await;
    let channel = build(
        &format!("kind = \"alertmanager\"\nname = \"am\"\nurl = {:?}", am.url),
        &[],
    );

    // Firing: started a minute ago, still going.
    let started_ms = (now_ms() / 1000 - 60) * 1000;
    let mut firing = notification(Event::Firing);
    firing.alert.started_ms = started_ms;
    channel
        .deliver(&firing)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", am.log()));

    let client = reqwest::Client::new();
    let list = |query: &'static str| {
        let client = client.clone();
        let url = format!("{}/api/v2/alerts{query}", am.url);
        async move {
            let response = client.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Vec<Value>>().await.unwrap()
        }
    };
    let listed = list("?filter=alertname%3D%22checkout-p95%22").await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let alert = &listed[0];
    assert_eq!(
        alert["labels"],
        json!({
            "alertname": "checkout-p95",
            "service": "checkout",
            "transaction": "GET /orders",
            "deploy_id": "0af0d20fff4caaa2",
            "environment": "prod",
            "severity": "page",
            "team_name": "payments",
        })
    );
    assert_eq!(
        alert["annotations"],
        json!({
            "summary": "checkout GET /orders p95 412 ms > 300 ms for 5 min",
            "description": "p95 412 ms over the last 5 min (threshold 300 ms)\np99 <1 s & rising",
            "link": "http://headlight.internal/services/checkout?transaction=GET%20%2Forders",
            "alert_key": "checkout-p95/checkout/GET /orders",
            "delivery_id": "checkout-p95/checkout/GET /orders#firing#0",
        })
    );
    assert_eq!(
        parse_rfc3339(alert["startsAt"].as_str().unwrap()),
        started_ms
    );
    assert_eq!(
        alert["generatorURL"],
        "http://headlight.internal/services/checkout?transaction=GET%20%2Forders"
    );
    assert_eq!(alert["status"]["state"], "active");
    // No endsAt sent: Alertmanager's resolve_timeout (5 min) applies.
    assert!(parse_rfc3339(alert["endsAt"].as_str().unwrap()) > now_ms());

    // Alertmanager notifies its own receiver that the alert fires.
    let notified = receiver
        .wait_for(Duration::from_secs(15), |r| {
            r.path == "/am-webhook" && r.json()["status"] == "firing"
        })
        .await;
    assert_eq!(
        notified.json()["alerts"][0]["labels"]["alertname"],
        "checkout-p95"
    );

    // Resolved: the same labels with endsAt in the past.
    let resolved_ms = (now_ms() / 1000 - 1) * 1000;
    let mut resolved = notification(Event::Resolved);
    resolved.alert.started_ms = started_ms;
    resolved.alert.resolved_ms = Some(resolved_ms);
    channel
        .deliver(&resolved)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", am.log()));

    // The API lists active alerts only (resolved ones are left out whatever the filters), so
    // the alert is gone from it…
    assert_eq!(
        list("?filter=alertname%3D%22checkout-p95%22").await,
        Vec::<Value>::new()
    );
    assert_eq!(
        list("?active=false&inhibited=false&silenced=false&unprocessed=true").await,
        Vec::<Value>::new()
    );
    // …and Alertmanager tells its receiver it resolved, at the time we gave.
    let notified = receiver
        .wait_for(Duration::from_secs(15), |r| {
            r.path == "/am-webhook" && r.json()["status"] == "resolved"
        })
        .await;
    let body = notified.json();
    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{body:#}");
    assert_eq!(alerts[0]["status"], "resolved");
    assert_eq!(alerts[0]["labels"]["alertname"], "checkout-p95");
    assert_eq!(alerts[0]["labels"]["transaction"], "GET /orders");
    assert_eq!(
        alerts[0]["endsAt"].as_str().map(parse_rfc3339),
        Some(resolved_ms)
    );
    assert_eq!(
        alerts[0]["startsAt"].as_str().map(parse_rfc3339),
        Some(started_ms)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_firing_with_ends_after_stays_active_that_long() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver_addr, _receiver) = receiver().await;
    let am = start_alertmanager(dir.path(), receiver_addr).await;
    let channel = build(
        &format!(
            "kind = \"alertmanager\"\nname = \"am\"\nurl = {:?}\nends_after_s = 86400",
            am.url
        ),
        &[],
    );
    let mut firing = notification(Event::Firing);
    firing.alert.started_ms = now_ms() - 60_000;
    let before = now_ms();
    channel.deliver(&firing).await.unwrap();

    let response = reqwest::get(format!("{}/api/v2/alerts", am.url))
        .await
        .unwrap();
    let listed: Vec<Value> = response.json().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let ends = parse_rfc3339(listed[0]["endsAt"].as_str().unwrap());
    assert!(
        ends >= before + 86_400_000 && ends <= now_ms() + 86_400_000,
        "{ends}"
    );
}
