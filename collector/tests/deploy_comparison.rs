//! Deploys and before/after comparisons end to end: OTLP with explicit timestamps in, deploys
//! recorded over REST, gRPC and the `headlight` binary, verdicts out of `headlight gate` and
//! `headlight compare` and the API.
//!
//! Service `shop` runs v1 then v2; v2 is slower on `GET /orders` only, and the added time sits
//! in its `SELECT orders` child. Service `search` runs v1 then an identical v2 (A/A), with a
//! slow warm-up right after its deploy that the comparison must exclude.

mod common;

use std::process::{Command, Output};

use headlight_collector::server::Server;
use headlight_proto::v1::RecordDeployRequest;
use headlight_proto::v1::deploy_service_client::DeployServiceClient;
use serde_json::Value;

use common::traffic::{Rng, Sender, traffic};

const BIN: &str = env!("CARGO_BIN_EXE_headlight");
const MIN: i64 = 60_000;

/// Runs the `headlight` binary against the server (blocking thread).
async fn headlight(server: &Server, args: &[&str]) -> Output {
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    args.push("--url".into());
    args.push(format!("http://{}", server.http));
    tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output().unwrap())
        .await
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn verdicts(report: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = report["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["transaction"].as_str().unwrap().to_owned(),
                t["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

const SHOP: [&str; 3] = ["GET /users/{id}", "GET /orders", "POST /checkout"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regressing_deploy_is_named_with_its_route_and_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let now = common::now_ms();
    // The deploy 20 min ago (on a minute, so the windows hold exactly the traffic sent):
    // before-window T-15..T, warm-up T..T+2, after-window T+2..T+17, complete (with the 30 s
    // settle time) well before now.
    let t = (now - 20 * MIN) / MIN * MIN;
    let mut rng = Rng(42);
    let mut sender = Sender::new(&server).await;
    let mut v1 = traffic(&mut rng, &SHOP, 600, (t - 15 * MIN, t), |_| 0);
    sender.send("shop", "1.0", &mut v1).await;
    let mut v2 = traffic(&mut rng, &SHOP, 600, (t + 2 * MIN, t + 17 * MIN), |route| {
        if route == "GET /orders" { 12_000 } else { 0 }
    });
    sender.send("shop", "2.0", &mut v2).await;
    server.flush().await.unwrap();

    // The new version got an automatic marker at its first transaction.
    let listed = common::get_ok(&server, "/api/v1/deploys?service=shop").await;
    let deploys = listed["deploys"].as_array().unwrap();
    assert_eq!(deploys.len(), 1, "{listed}");
    assert_eq!(deploys[0]["automatic"], true);
    assert_eq!(deploys[0]["version"], "2.0");
    assert_eq!(deploys[0]["environment"], "prod");
    let auto_time = deploys[0]["time_ms"].as_i64().unwrap();
    assert!(
        (t + 2 * MIN - 1000..t + 3 * MIN).contains(&auto_time),
        "{auto_time} vs {t}"
    );

    // The pipeline records the real deploy; it supersedes the automatic marker.
    let time = t.to_string();
    let out = headlight(
        &server,
        &[
            "deploy",
            "--service",
            "shop",
            "--version",
            "2.0",
            "--env",
            "prod",
            "--time",
            &time,
            "--commit",
            "9f1c2e",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let id = stdout(&out).trim().to_owned();
    assert_eq!(id.len(), 16, "{id:?}");
    let listed = common::get_ok(&server, "/api/v1/deploys?service=shop").await;
    let deploys = listed["deploys"].as_array().unwrap();
    assert_eq!(deploys.len(), 1, "{listed}");
    assert_eq!(
        (deploys[0]["id"].as_str(), &deploys[0]["automatic"]),
        (Some(id.as_str()), &Value::Bool(false))
    );
    assert_eq!(deploys[0]["commit"], "9f1c2e");

    // The gate stops the rollout: exit 3, the table names the route and the query.
    let out = headlight(
        &server,
        &["gate", "--deploy", &id, "--timeout", "60s", "--poll", "1s"],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let table = stdout(&out);
    assert!(
        table.contains("shop 2.0 (prod)") && table.contains("REGRESSION"),
        "{table}"
    );
    assert!(
        table.contains("GET /orders")
            && table.contains("most of the added time is in SELECT orders"),
        "{table}"
    );

    // The report: /orders regressed, the others did not; the query is the top suspect.
    let out = headlight(&server, &["compare", "--deploy", &id, "--json"]).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "ready");
    assert_eq!(report["verdict"], "regression");
    assert_eq!(
        report["window"]["before"]["versions"],
        serde_json::json!({"kind": "except", "version": "2.0"})
    );
    assert_eq!(report["window"]["after"]["from_ms"], t + 2 * MIN);
    let expected = vec![
        ("GET /orders".to_owned(), "regression".to_owned()),
        ("GET /users/{id}".to_owned(), "no_change".to_owned()),
        ("POST /checkout".to_owned(), "no_change".to_owned()),
    ];
    assert_eq!(verdicts(&report), expected, "{report:#}");
    let orders = &report["transactions"][0];
    assert_eq!(orders["transaction"], "GET /orders");
    assert_eq!(orders["before"]["count"], 600);
    assert_eq!(orders["after"]["count"], 600);
    assert_eq!(orders["suspects"][0]["operation"], "SELECT orders");
    let added = orders["suspects"][0]["added_ms"].as_f64().unwrap();
    assert!(
        (11.0..13.0).contains(&added),
        "12 ms added to the query: {added}"
    );
    let reason = orders["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with("median +") && reason.ends_with("p < 0.001"),
        "{reason}"
    );
    let p50 = orders["change"]["p50_pct"].as_f64().unwrap();
    assert!(
        (45.0..75.0).contains(&p50),
        "+12 ms on a 20 ms median: {p50}"
    );

    // Computed once: asking again returns the stored report.
    let again = common::get_ok(&server, &format!("/api/v1/deploys/{id}/comparison")).await;
    assert_eq!(again["computed_at_ms"], report["computed_at_ms"]);

    // A canary comparison of the same data, and v1's period against v2's, agree.
    let range = format!("{}..{}", t - 15 * MIN, t + 17 * MIN);
    let out = headlight(
        &server,
        &[
            "compare",
            "--service",
            "shop",
            "--env",
            "prod",
            "--baseline-version",
            "1.0",
            "--canary-version",
            "2.0",
            "--range",
            &range,
            "--json",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let canary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(canary["kind"], "canary");
    assert_eq!(verdicts(&canary), expected, "{canary:#}");
    let period = common::get_ok(
        &server,
        &format!(
            "/api/v1/compare?service=shop&env=prod&before_from={}&before_to={t}&after_from={}&after_to={}",
            t - 15 * MIN,
            t + 2 * MIN,
            t + 17 * MIN
        ),
    )
    .await;
    assert_eq!(period["kind"], "period");
    assert_eq!(verdicts(&period), expected, "{period:#}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_deploy_passes_the_gate_and_its_warm_up_is_excluded() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let t = (common::now_ms() - 20 * MIN) / MIN * MIN;
    let routes = ["GET /search", "GET /suggest"];
    let mut rng = Rng(7);
    let mut sender = Sender::new(&server).await;
    let mut before = traffic(&mut rng, &routes, 500, (t - 15 * MIN, t), |_| 0);
    sender.send("search", "1.0", &mut before).await;
    // Cold caches for the first two minutes: 100 ms slower, then the same as before.
    let mut warm_up = traffic(&mut rng, &routes, 100, (t, t + 2 * MIN), |_| 100_000);
    sender.send("search", "1.1", &mut warm_up).await;
    let mut after = traffic(&mut rng, &routes, 500, (t + 2 * MIN, t + 17 * MIN), |_| 0);
    sender.send("search", "1.1", &mut after).await;
    server.flush().await.unwrap();

    // Recorded over gRPC on the OTLP port.
    let mut deploys = DeployServiceClient::connect(format!("http://{}", server.otlp_grpc))
        .await
        .unwrap();
    let recorded = deploys
        .record_deploy(RecordDeployRequest {
            service: "search".into(),
            version: "1.1".into(),
            environment: "prod".into(),
            time_ms: t,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .deploy
        .unwrap();
    assert_eq!((recorded.time_ms, recorded.automatic), (t, false));
    let invalid = deploys
        .record_deploy(RecordDeployRequest {
            service: "search".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
    assert!(
        invalid.message().contains("`version` is required"),
        "{invalid:?}"
    );

    let out = headlight(
        &server,
        &["gate", "--deploy", &recorded.id, "--timeout", "60s"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}\n{}", stdout(&out));
    let report = common::get_ok(
        &server,
        &format!("/api/v1/deploys/{}/comparison", recorded.id),
    )
    .await;
    assert_eq!(report["verdict"], "no_change", "{report:#}");
    for t in report["transactions"].as_array().unwrap() {
        assert_eq!(
            t["after"]["count"], 500,
            "the warm-up is not in the after-window: {t}"
        );
        assert_eq!(t["verdict"], "no_change", "{t}");
    }

    // Without the warm-up exclusion the same deploy regresses: compare the periods directly.
    let period = common::get_ok(
        &server,
        &format!(
            "/api/v1/compare?service=search&before_from={}&before_to={t}&after_from={t}&after_to={}",
            t - 15 * MIN,
            t + 15 * MIN
        ),
    )
    .await;
    assert_eq!(period["verdict"], "regression", "{period:#}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_unknown_and_invalid_requests_are_answered_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/api/v1/deploys", server.http);

    // A deploy now: its after-window is 17 min away.
    let response = client
        .post(&url)
        .json(&serde_json::json!({"service": "cart", "version": "3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let deploy: Value = response.json().await.unwrap();
    assert_eq!(deploy["environment"], "default");
    let id = deploy["id"].as_str().unwrap().to_owned();
    let report = common::get_ok(&server, &format!("/api/v1/deploys/{id}/comparison")).await;
    assert_eq!(report["status"], "pending");
    assert_eq!(report["verdict"], Value::Null);
    let ready_at = report["ready_at_ms"].as_i64().unwrap();
    let time = deploy["time_ms"].as_i64().unwrap();
    assert!(ready_at >= time + 17 * MIN, "{ready_at} vs {time}");
    let out = headlight(
        &server,
        &["gate", "--deploy", &id, "--timeout", "2s", "--poll", "1s"],
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("still pending"),
        "{out:?}"
    );
    let out = headlight(&server, &["compare", "--deploy", &id]).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(stdout(&out).contains("PENDING until"), "{}", stdout(&out));

    // A service with no data: insufficient data, exit 4.
    let out = headlight(
        &server,
        &[
            "compare",
            "--service",
            "ghost",
            "--after",
            "1700000000000..1700000600000",
            "--offset",
            "7d",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");

    // Unknown deploys, bad bodies and parameters.
    let (status, body) = common::get(&server, "/api/v1/deploys/0123456789abcdef/comparison").await;
    assert_eq!(status, 404, "{body}");
    let out = headlight(&server, &["gate", "--deploy", "0123456789abcdef"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no deploy with id"),
        "{out:?}"
    );
    for (body, wanted) in [
        (r#"{"service": "cart"}"#, "missing field `version`"),
        (
            r#"{"service": "cart", "version": "3", "colour": "red"}"#,
            "unknown field `colour`",
        ),
        (
            r#"{"service": "", "version": "3"}"#,
            "`service` is required",
        ),
        (
            r#"{"service": "cart", "version": "3", "time_ms": 99}"#,
            "`time_ms` 99",
        ),
        ("not json", "invalid deploy JSON"),
    ] {
        let response = client.post(&url).body(body).send().await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(wanted), "{body}: {message}");
    }
    for query in [
        "/api/v1/compare?service=cart",
        "/api/v1/compare?service=cart&baseline_version=1&canary_version=2&after_from=1&after_to=2",
        "/api/v1/compare?service=cart&after_from=5&after_to=2&offset=1d",
        "/api/v1/compare?service=cart&after_from=1&after_to=2&offset=fortnight",
        "/api/v1/deploys?limit=0",
        "/api/v1/deploys?colour=red",
    ] {
        let (status, body) = common::get(&server, query).await;
        assert_eq!(status, 400, "{query}: {body}");
    }
    // Nothing invalid was recorded.
    let listed = common::get_ok(&server, "/api/v1/deploys").await;
    assert_eq!(listed["deploys"].as_array().unwrap().len(), 1, "{listed}");
    server.shutdown().await.unwrap();
}
