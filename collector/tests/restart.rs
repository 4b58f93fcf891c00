//! Everything survives a restart on the same data dir: the same queries give the same answers,
//! and new data for the same windows adds to what was stored.

mod common;

use common::sdk::{self, Exporter};
use common::{enc, get_ok, now_ms, start};
use headlight_collector::server::Server;
use serde_json::Value;

async fn answers(server: &Server, now: i64, trace_id: &str) -> Vec<Value> {
    let range = format!("from={}&to={}", now - 3_600_000, now + 60_000);
    let txn = enc("GET /users/{id}");
    let mut out = Vec::new();
    for path in [
        "/api/v1/services".to_owned(),
        format!("/api/v1/latency?service=users&transaction={txn}&{range}&step=60"),
        format!("/api/v1/histogram?service=users&{range}"),
        format!("/api/v1/transactions?service=users&{range}&min_ms=5&limit=1000"),
        format!("/api/v1/breakdown?service=users&{range}"),
        format!("/api/v1/traces/{trace_id}"),
    ] {
        out.push(get_ok(server, &path).await);
    }
    out
}

async fn send(server: &Server, txns: Vec<sdk::Txn>) -> Vec<sdk::Txn> {
    let endpoint = server.otlp_grpc.to_string();
    let mut txns = txns;
    let txns = tokio::task::spawn_blocking(move || {
        sdk::send(Exporter::Grpc, &endpoint, "users", "2.0.0", &mut txns);
        txns
    })
    .await
    .unwrap();
    server.flush().await.unwrap();
    txns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_the_same_data_dir_gives_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let server = start(dir.path()).await;
    let txns = send(&server, sdk::generate(250, 3, now)).await;
    let before = answers(&server, now, &txns[0].trace_id).await;
    assert_eq!(before[1]["summary"]["count"], 250);
    server.shutdown().await.unwrap();

    let server = start(dir.path()).await;
    let after = answers(&server, now, &txns[0].trace_id).await;
    assert_eq!(before, after);

    // More transactions in the same windows merge with the stored histograms.
    send(&server, sdk::generate(100, 5, now)).await;
    let merged = get_ok(
        &server,
        &format!(
            "/api/v1/latency?service=users&from={}&to={}",
            now - 3_600_000,
            now + 60_000
        ),
    )
    .await;
    assert_eq!(merged["summary"]["count"], 350);
    server.shutdown().await.unwrap();
}

async fn export(server: &Server, spans: Vec<headlight_proto::otlp::trace::Span>) {
    let url = format!("http://{}", server.otlp_grpc);
    let mut client =
        headlight_proto::otlp::collector::trace_service_client::TraceServiceClient::connect(url)
            .await
            .unwrap();
    let response = client
        .export(common::otlp::request("capped", spans))
        .await
        .unwrap()
        .into_inner();
    assert!(response.partial_success.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cardinality_cap_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path());
    config.aggregation.max_transactions_per_service = 2;
    let server = Server::start(config.clone()).await.unwrap();
    let now_ns = common::otlp::now_ns();
    let spans = |names: &[&str], first: u8| {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                common::otlp::server_span(first + i as u8, n, now_ns - 1_000_000_000, 5_000_000)
            })
            .collect::<Vec<_>>()
    };
    export(&server, spans(&["a", "b", "c"], 1)).await;
    server.flush().await.unwrap();
    server.shutdown().await.unwrap();

    let server = Server::start(config).await.unwrap();
    export(&server, spans(&["d", "a"], 10)).await;
    server.flush().await.unwrap();
    let services = get_ok(&server, "/api/v1/services").await;
    let capped = &services["services"][0];
    assert_eq!(
        capped["transactions"],
        serde_json::json!(["a", "b", "other"])
    );
    assert_eq!(capped["overflowed"], true);
    assert_eq!(capped["transaction_cap"], 2);
    let other = get_ok(&server, "/api/v1/latency?service=capped&transaction=other").await;
    assert_eq!(
        other["summary"]["count"], 2,
        "c and d are counted under `other`"
    );
    let all = get_ok(&server, "/api/v1/latency?service=capped").await;
    assert_eq!(all["summary"]["count"], 5, "every transaction is counted");
    server.shutdown().await.unwrap();
}
