//! The axum examples against a real collector: every request counted, one trace across two
//! services, attributes and errors as sent.

mod common;

#[path = "../examples/backend.rs"]
mod backend;
#[path = "../examples/frontend.rs"]
mod frontend;
#[path = "../examples/axum_service.rs"]
mod users;

use std::collections::HashSet;

use common::{Collector, Service, agent, assert_conserved, keep_all};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_through_the_axum_example_is_counted_once() {
    let collector = Collector::start().await;
    let service = Service::start(agent("users", &collector.endpoint()), users::app);
    let client = reqwest::Client::new();
    let requests = 300u64;
    let mut failures = 0;
    for i in 0..requests {
        let id = i % 50;
        let response = client
            .get(format!("{}/users/{id}", service.url()))
            .header("user-agent", "headlight-test/1")
            .send()
            .await
            .unwrap();
        if id == 13 {
            assert_eq!(response.status(), 500);
            failures += 1;
        } else {
            assert_eq!(response.status(), 200);
        }
    }
    let stats = service.stop();
    assert_conserved(&stats);
    assert_eq!(stats.transactions_recorded, requests);
    assert_eq!(stats.transactions_sent, requests);
    assert_eq!(stats.spans_dropped.total(), 0);

    assert_eq!(collector.transactions_counted("users").await, requests);
    let latency = collector
        .get("/api/v1/latency?service=users&transaction=GET%20%2Fusers%2F%7Bid%7D")
        .await;
    assert_eq!(latency["summary"]["count"], requests);
    assert_eq!(latency["summary"]["errors"], failures);

    // A failed request: its transaction and its database child arrive with their attributes.
    let failed = collector
        .get("/api/v1/transactions?service=users&errors=true&limit=100")
        .await;
    let failed = failed["transactions"].as_array().unwrap();
    assert_eq!(failed.len() as u64, failures);
    let trace_id = failed[0]["trace_id"].as_str().unwrap();
    let trace = collector.get(&format!("/api/v1/traces/{trace_id}")).await;
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2, "{trace}");
    let root = find(spans, "GET /users/{id}");
    assert_eq!(root["kind"], "server");
    assert_eq!(root["error"], true);
    let attributes = &root["attributes"];
    assert_eq!(attributes["http.request.method"], "GET");
    assert_eq!(attributes["http.route"], "/users/{id}");
    assert_eq!(attributes["url.path"], "/users/13");
    assert_eq!(attributes["http.response.status_code"], 500);
    assert_eq!(attributes["user_agent.original"], "headlight-test/1");
    assert_eq!(attributes["client.address"], "127.0.0.1");
    let db = find(spans, "SELECT users");
    assert_eq!(db["kind"], "client");
    assert_eq!(db["parent_span_id"], root["span_id"]);
    assert_eq!(db["attributes"]["db.system.name"], "sqlite");
    assert_eq!(db["attributes"]["user.id"], 13);
    assert_eq!(db["error"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_across_two_services_is_one_trace() {
    let collector = Collector::start().await;
    let backend = Service::start(
        agent("backend", &collector.endpoint()).tail(keep_all()),
        backend::app,
    );
    let backend_url = backend.url();
    let frontend = Service::start(
        agent("frontend", &collector.endpoint()).tail(keep_all()),
        move || frontend::app(backend_url),
    );
    let client = reqwest::Client::new();
    let requests = 20u64;
    for item in 0..requests {
        let body = client
            .get(format!("{}/checkout/{item}", frontend.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            body,
            format!("{{\"item\":{item},\"price_cents\":{}}}", item * 100 + 99)
        );
    }
    let frontend_stats = frontend.stop();
    let backend_stats = backend.stop();
    assert_conserved(&frontend_stats);
    assert_conserved(&backend_stats);
    assert_eq!(collector.transactions_counted("frontend").await, requests);
    assert_eq!(collector.transactions_counted("backend").await, requests);

    let listed = collector
        .get("/api/v1/transactions?service=frontend&limit=100")
        .await;
    let listed = listed["transactions"].as_array().unwrap();
    assert_eq!(listed.len() as u64, requests);
    let mut trace_ids = HashSet::new();
    for transaction in listed {
        let trace_id = transaction["trace_id"].as_str().unwrap();
        assert!(
            trace_ids.insert(trace_id.to_owned()),
            "one trace per request"
        );
        let trace = collector.get(&format!("/api/v1/traces/{trace_id}")).await;
        let spans = trace["spans"].as_array().unwrap();
        // frontend transaction → client call → backend transaction → database span.
        assert_eq!(spans.len(), 4, "{trace}");
        let ids: HashSet<&str> = spans
            .iter()
            .map(|s| s["span_id"].as_str().unwrap())
            .collect();
        let roots: Vec<&Value> = spans
            .iter()
            .filter(|s| {
                s["parent_span_id"]
                    .as_str()
                    .is_none_or(|p| !ids.contains(p))
            })
            .collect();
        assert_eq!(roots.len(), 1, "one tree: {trace}");
        let root = roots[0];
        assert_eq!(root["service"], "frontend");
        assert_eq!(root["name"], "GET /checkout/{item}");
        let call = spans
            .iter()
            .find(|s| s["kind"] == "client" && s["service"] == "frontend")
            .unwrap();
        assert_eq!(call["parent_span_id"], root["span_id"]);
        let served = spans
            .iter()
            .find(|s| s["kind"] == "server" && s["service"] == "backend")
            .unwrap();
        assert_eq!(served["parent_span_id"], call["span_id"], "{trace}");
        assert_eq!(served["attributes"]["http.route"], "/prices/{item}");
        let query = find(spans, "SELECT prices");
        assert_eq!(query["service"], "backend");
        assert_eq!(query["parent_span_id"], served["span_id"]);
    }
}

fn find<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:?}"))
}
