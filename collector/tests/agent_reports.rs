//! The headlight agent's OTLP attributes, hand-built: a transaction whose children were not
//! sent still gets a complete breakdown (`headlight.self_ns`, `headlight.unsent_children`), and
//! the agents' cumulative drop counters show in `GET /api/v1/services`.

mod common;

use std::sync::atomic::Ordering;

use common::otlp::{
    array_attr, attr, child_span, int_attr, kvlist, now_ns, request, request_with_resource,
    server_span, unsent_child,
};
use common::{enc, get_ok, now_ms, start};
use headlight_collector::server::Server;
use headlight_proto::otlp::collector::ExportTraceServiceRequest;
use headlight_proto::otlp::collector::trace_service_client::TraceServiceClient;
use headlight_proto::otlp::common::KeyValue;
use serde_json::{Value, json};

const MS: u64 = 1_000_000;

async fn export(server: &Server, request: ExportTraceServiceRequest) {
    let mut client = TraceServiceClient::connect(format!("http://{}", server.otlp_grpc))
        .await
        .unwrap();
    let response = client.export(request).await.unwrap().into_inner();
    assert_eq!(response.partial_success, None);
}

fn range() -> String {
    let now = now_ms();
    format!("from={}&to={}", now - 3_600_000, now + 60_000)
}

/// The breakdown of one transaction of `shop`, by operation name.
async fn breakdown(server: &Server, transaction: &str) -> (Value, Vec<Value>) {
    let body = get_ok(
        server,
        &format!(
            "/api/v1/breakdown?service=shop&transaction={}&{}",
            enc(transaction),
            range()
        ),
    )
    .await;
    let mut operations = body["operations"].as_array().unwrap().clone();
    operations.sort_by_key(|o| o["operation"].as_str().unwrap().to_owned());
    (body, operations)
}

fn operation(name: &str, kind: &str, count: u64, total_ms: f64, self_ms: f64) -> (Value, Value) {
    (
        json!(name),
        json!({"kind": kind, "count": count, "total_ms": total_ms, "self_ms": self_ms}),
    )
}

fn summary(operations: &[Value]) -> Vec<(Value, Value)> {
    operations
        .iter()
        .map(|o| {
            (
                o["operation"].clone(),
                json!({"kind": o["kind"], "count": o["count"], "total_ms": o["total_ms"], "self_ms": o["self_ms"]}),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsent_children_and_reported_self_time_complete_the_breakdown() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let end = now_ns() - 5_000 * MS;

    // Transaction 1: 100 ms; the agent sent one child (cache, 5 ms) and kept the others to
    // itself: 3 × SELECT orders (45 ms) and 1 × render (25 ms, 20 ms of it its own); its own
    // self time is 30 ms. Four elements of the list are malformed.
    let mut kept_back = server_span(1, "GET /orders", end, 100 * MS);
    let mut missing_kind = unsent_child("no kind", 3, 1, 1_000, 1_000);
    if let Some(headlight_proto::otlp::common::any_value::Value::KvlistValue(list)) =
        &mut missing_kind.value
    {
        list.values.retain(|kv| kv.key != "kind");
    }
    kept_back.attributes = vec![
        attr("user.tier", "gold"),
        int_attr("headlight.self_ns", 30 * MS as i64),
        array_attr(
            "headlight.unsent_children",
            vec![
                unsent_child("SELECT orders", 3, 3, 45 * MS as i64, 45 * MS as i64),
                unsent_child("negative", 3, -2, 1_000, 1_000),
                missing_kind,
                kvlist(vec![
                    attr("name", "wrong type"),
                    attr("kind", "client"),
                    int_attr("count", 1),
                    int_attr("total_ns", 1_000),
                    int_attr("self_ns", 1_000),
                ]),
                attr("not a kvlist", "x").value.unwrap(),
                unsent_child("render", 1, 1, 25 * MS as i64, 20 * MS as i64),
            ],
        ),
    ];
    let cache = child_span(1, 2, 1, "cache", 1, end - 10 * MS, end - 5 * MS);
    // Transaction 2: 50 ms, its one child (SELECT orders, 10 ms) sent as usual.
    let sent = server_span(2, "GET /orders", end - 1_000 * MS, 50 * MS);
    let select = child_span(
        2,
        3,
        2,
        "SELECT orders",
        3,
        end - 1_040 * MS,
        end - 1_030 * MS,
    );
    export(
        &server,
        request("shop", vec![select, cache, kept_back, sent]),
    )
    .await;

    // Reported self times outside [0, duration] are clamped.
    let mut negative = server_span(3, "GET /clamp", end, 20 * MS);
    negative.attributes = vec![int_attr("headlight.self_ns", -5)];
    let mut too_long = server_span(4, "GET /clamp", end, 20 * MS);
    too_long.attributes = vec![int_attr("headlight.self_ns", 40 * MS as i64)];
    export(&server, request("shop", vec![negative, too_long])).await;
    server.flush().await.unwrap();

    let (body, operations) = breakdown(&server, "GET /orders").await;
    assert_eq!(body["transactions"], 2);
    assert_eq!(
        summary(&operations),
        vec![
            operation("GET /orders", "server", 2, 150.0, 70.0),
            operation("SELECT orders", "client", 4, 55.0, 55.0),
            operation("cache", "internal", 1, 5.0, 5.0),
            operation("render", "internal", 1, 25.0, 20.0),
        ],
        "{body}"
    );
    let all_self: f64 = operations
        .iter()
        .map(|o| o["self_ms"].as_f64().unwrap())
        .sum();
    assert_eq!(all_self, 150.0, "self times add up to the transactions");

    let (body, operations) = breakdown(&server, "GET /clamp").await;
    assert_eq!(
        summary(&operations),
        vec![operation("GET /clamp", "server", 2, 40.0, 20.0)],
        "{body}"
    );

    // The headlight.* attributes are consumed, not stored with the span.
    let trace = get_ok(&server, &format!("/api/v1/traces/{}", "01".repeat(16))).await;
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2, "{trace}");
    let root = spans.iter().find(|s| s["name"] == "GET /orders").unwrap();
    assert_eq!(root["attributes"], json!({"user.tier": "gold"}));

    let pipeline = server.pipeline();
    assert_eq!(
        pipeline
            .counters()
            .unsent_children_ignored
            .load(Ordering::Relaxed),
        4
    );
    assert_eq!(pipeline.aggregator_stats().unsent_children, 4);
    server.shutdown().await.unwrap();
}

fn agent_resource(service: &str, instance: &str, counters: &[(&str, i64)]) -> Vec<KeyValue> {
    let mut attributes = vec![
        attr("service.name", service),
        attr("service.instance.id", instance),
    ];
    attributes.extend(
        counters
            .iter()
            .map(|(key, n)| int_attr(&format!("headlight.agent.{key}"), *n)),
    );
    attributes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_drop_counters_keep_the_highest_value_and_sum_over_instances() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let end = now_ns() - 5_000 * MS;
    let report = |trace: u8, service: &str, instance: &str, counters: &[(&str, i64)]| {
        let span = server_span(trace, "GET /", end, MS);
        request_with_resource(agent_resource(service, instance, counters), vec![span])
    };
    export(
        &server,
        report(
            1,
            "shop",
            "pod-a",
            &[
                ("dropped_transactions.queue_full", 5),
                ("dropped_spans.queue_full", 50),
            ],
        ),
    )
    .await;
    export(
        &server,
        report(
            2,
            "shop",
            "pod-b",
            &[
                ("dropped_transactions.queue_full", 2),
                ("dropped_spans.export_failed", 7),
            ],
        ),
    )
    .await;
    export(
        &server,
        report(
            3,
            "shop",
            "pod-a",
            &[
                ("dropped_transactions.queue_full", 8),
                ("dropped_transactions.shutdown", 1),
                ("dropped_spans.queue_full", 60),
            ],
        ),
    )
    .await;
    // stale: sent before the previous one, arriving late
    export(
        &server,
        report(
            4,
            "shop",
            "pod-a",
            &[
                ("dropped_transactions.queue_full", 6),
                ("dropped_spans.queue_full", 55),
            ],
        ),
    )
    .await;
    export(
        &server,
        report(
            5,
            "shop",
            "pod-b",
            &[
                ("dropped_spans.export_failed", 9),
                ("dropped_transactions.Queue-Full", 100),
                ("dropped_transactions.rejected", -3),
            ],
        ),
    )
    .await;
    // an SDK with an instance id but no headlight counters is no agent instance
    export(&server, report(6, "shop", "sdk-1", &[])).await;
    export(
        &server,
        request("quiet", vec![server_span(20, "GET /", end, MS)]),
    )
    .await;
    // A service whose agent dropped everything it had: known only from the report.
    export(
        &server,
        request_with_resource(
            agent_resource("lost", "pod-z", &[("dropped_transactions.queue_full", 3)]),
            Vec::new(),
        ),
    )
    .await;
    server.flush().await.unwrap();

    let body = get_ok(&server, "/api/v1/services").await;
    let services = body["services"].as_array().unwrap();
    let service = |name: &str| {
        services
            .iter()
            .find(|s| s["service"] == name)
            .unwrap_or_else(|| panic!("{name} in {body}"))
            .clone()
    };
    assert_eq!(services.len(), 3, "{body}");
    assert_eq!(
        service("shop")["agent_dropped"],
        json!({
            "transactions": {"queue_full": 10, "shutdown": 1},
            "spans": {"queue_full": 60, "export_failed": 9},
            "instances": 2,
        })
    );
    assert_eq!(service("shop")["transactions"], json!(["GET /"]));
    assert_eq!(
        service("quiet")["agent_dropped"],
        json!({"transactions": {}, "spans": {}, "instances": 0})
    );
    let lost = service("lost");
    assert_eq!(lost["transactions"], json!([]));
    assert_eq!(
        lost["agent_dropped"],
        json!({"transactions": {"queue_full": 3}, "spans": {}, "instances": 1})
    );
    assert_eq!(server.pipeline().agent_drops_refused(), 0);
    server.shutdown().await.unwrap();
}
