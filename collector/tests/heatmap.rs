//! The hitmap API: every cell's count is the number of generated transactions in it, and the
//! drill-down over a cell returns exactly those transactions.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use headlight_proto::otlp::collector::trace_service_client::TraceServiceClient;
use headlight_proto::otlp::trace::{Span, Status, status::StatusCode};
use serde_json::Value;

use common::otlp::{attr, request_with_resource};

const MIN: i64 = 60_000;

/// A generated transaction.
#[derive(Debug, Clone)]
struct Txn {
    trace_id: String,
    name: &'static str,
    end_ms: i64,
    duration_us: u64,
    error: bool,
}

fn generate(from_ms: i64, n: usize) -> Vec<Txn> {
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            // Log-uniform over 0.5 ms .. 5 s, whole µs; ends spread over 30 min.
            let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
            let duration_us = (500.0 * 10_000f64.powf(u)).round() as u64;
            Txn {
                trace_id: format!("{:032x}", i + 1),
                name: if i % 3 == 0 { "GET /a" } else { "GET /b" },
                end_ms: from_ms + (next() % (30 * MIN as u64)) as i64,
                duration_us,
                error: next() % 10 == 0,
            }
        })
        .collect()
}

fn span(t: &Txn) -> Span {
    let end_ns = t.end_ms as u64 * 1_000_000;
    Span {
        trace_id: (0..16)
            .map(|i| u8::from_str_radix(&t.trace_id[2 * i..2 * i + 2], 16).unwrap())
            .collect(),
        span_id: vec![1; 8],
        name: t.name.to_owned(),
        kind: 2,
        start_time_unix_nano: end_ns - t.duration_us * 1000,
        end_time_unix_nano: end_ns,
        status: t.error.then(|| Status {
            code: StatusCode::Error as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Expected (column, row) → (count, errors, trace ids) for the returned axes.
fn expected(txns: &[&Txn], body: &Value) -> BTreeMap<(usize, usize), (u64, u64, BTreeSet<String>)> {
    let x: Vec<i64> = body["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let step = body["x_step_ms"].as_i64().unwrap();
    let edges_us: Vec<u64> = body["y_edges_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v.as_f64().unwrap() * 1000.0).round() as u64)
        .collect();
    let mut cells: BTreeMap<(usize, usize), (u64, u64, BTreeSet<String>)> = BTreeMap::new();
    for t in txns {
        let column = ((t.end_ms - x[0]) / step) as usize;
        let row = edges_us.partition_point(|&e| e <= t.duration_us);
        assert!(
            row >= 1 && row < edges_us.len(),
            "{t:?} outside the y axis {edges_us:?}"
        );
        let cell = cells.entry((column, row - 1)).or_default();
        cell.0 += 1;
        cell.1 += u64::from(t.error);
        cell.2.insert(t.trace_id.clone());
    }
    cells
}

fn assert_cells(body: &Value, cells: &BTreeMap<(usize, usize), (u64, u64, BTreeSet<String>)>) {
    let counts = body["counts"].as_array().unwrap();
    let errors = body["errors"].as_array().unwrap();
    for (i, column) in counts.iter().enumerate() {
        for (j, count) in column.as_array().unwrap().iter().enumerate() {
            let (n, e, _) = cells.get(&(i, j)).cloned().unwrap_or_default();
            assert_eq!(count.as_u64().unwrap(), n, "count of cell ({i}, {j})");
            assert_eq!(
                errors[i][j].as_u64().unwrap(),
                e,
                "errors of cell ({i}, {j})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cell_counts_exactly_its_transactions_and_drills_down_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let from = (common::now_ms() - 40 * MIN) / MIN * MIN;
    let txns = generate(from, 3000);
    let mut client = TraceServiceClient::connect(format!("http://{}", server.otlp_grpc))
        .await
        .unwrap();
    for chunk in txns.chunks(500) {
        let request = request_with_resource(
            vec![attr("service.name", "hits")],
            chunk.iter().map(span).collect(),
        );
        let response = client.export(request).await.unwrap().into_inner();
        assert!(response.partial_success.is_none(), "{response:?}");
    }
    server.flush().await.unwrap();
    let to = from + 30 * MIN;

    // One transaction, log scale, 1 min columns.
    let a: Vec<&Txn> = txns.iter().filter(|t| t.name == "GET /a").collect();
    let body = common::get_ok(
        &server,
        &format!("/api/v1/heatmap?service=hits&transaction=GET%20%2Fa&from={from}&to={to}&x_step_s=60&y_buckets=25"),
    )
    .await;
    assert_eq!(body["x"].as_array().unwrap().len(), 30);
    assert_eq!(body["x_step_ms"], MIN);
    assert_eq!(body["y_scale"], "log");
    assert!(body["y_edges_ms"].as_array().unwrap().len() > 20);
    assert_eq!(body["total"], a.len() as u64);
    assert_eq!(
        (body["below"].as_u64(), body["above"].as_u64()),
        (Some(0), Some(0))
    );
    let cells = expected(&a, &body);
    assert_cells(&body, &cells);
    let busiest = cells.values().map(|c| c.0).max().unwrap();
    assert_eq!(body["max_count"], busiest);

    // Drill down into the three busiest cells: exactly their transactions.
    let mut by_count: Vec<_> = cells.iter().collect();
    by_count.sort_by_key(|(_, c)| std::cmp::Reverse(c.0));
    let edges: Vec<f64> = body["y_edges_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for ((i, j), (n, _, ids)) in by_count.into_iter().take(3) {
        let x = from + *i as i64 * MIN;
        let (lo, hi) = (edges[*j], edges[*j + 1]);
        let listed = common::get_ok(
            &server,
            &format!(
                "/api/v1/transactions?service=hits&transaction=GET%20%2Fa&from={x}&to={}&min_ms={lo:.3}&max_ms={:.3}&limit=10000",
                x + MIN,
                hi - 0.001
            ),
        )
        .await;
        let got: BTreeSet<String> = listed["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["trace_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(got.len() as u64, *n);
        assert_eq!(&got, ids, "cell ({i}, {j})");
    }

    // The whole service, linear scale over a given range: what is outside is counted apart.
    let all: Vec<&Txn> = txns.iter().collect();
    let body = common::get_ok(
        &server,
        &format!("/api/v1/heatmap?service=hits&from={from}&to={to}&x_step_s=5m&y_scale=linear&y_buckets=10&y_min_ms=100&y_max_ms=1000"),
    )
    .await;
    assert_eq!(body["x"].as_array().unwrap().len(), 6);
    assert_eq!(body["y_scale"], "linear");
    assert_eq!(body["total"], 3000);
    let edges_us: Vec<u64> = body["y_edges_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v.as_f64().unwrap() * 1000.0).round() as u64)
        .collect();
    let (lo, hi) = (edges_us[0], *edges_us.last().unwrap());
    let inside: Vec<&Txn> = all
        .iter()
        .copied()
        .filter(|t| (lo..hi).contains(&t.duration_us))
        .collect();
    let below = all.iter().filter(|t| t.duration_us < lo).count() as u64;
    assert_eq!(body["below"], below);
    assert_eq!(body["above"], 3000 - below - inside.len() as u64);
    assert_cells(&body, &expected(&inside, &body));

    // Bad parameters are named.
    for (query, wanted) in [
        ("service=hits&y_scale=cubic", "y_scale"),
        ("service=hits&y_buckets=9999", "y_buckets"),
        ("service=hits&x_step_s=1s&from=0", "too many columns"),
        ("service=hits&y_min_ms=10&y_max_ms=5", "y_min_ms"),
        ("service=hits&colour=red", "colour"),
    ] {
        let (status, body) = common::get(&server, &format!("/api/v1/heatmap?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.to_string().contains(wanted), "{query}: {body}");
    }
    server.shutdown().await.unwrap();
}
