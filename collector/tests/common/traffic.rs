//! Generated traffic with explicit timestamps, sent over OTLP/gRPC, remembered so tests can
//! compute what the collector must answer: one transaction is a SERVER span with a
//! `SELECT orders` (client) child and a `render` (internal) child.

use headlight_collector::server::Server;
use headlight_proto::otlp::collector::trace_service_client::TraceServiceClient;
use headlight_proto::otlp::trace::{Span, Status, status::StatusCode};

use super::otlp::{attr, int_attr, request_with_resource};

/// A seeded generator (splitmix64) of uniform and log-normal values.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Log-normal with this median (µs) and σ = 0.4.
    pub fn duration_us(&mut self, median_us: f64) -> u64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (median_us * (0.4 * z).exp()).round() as u64
    }
}

/// One generated transaction. The query covers 10 %..50 % of `base_us` plus `extra_db_us`,
/// which the transaction takes longer by; `render` follows it for 20 % of `base_us`.
#[derive(Debug, Clone)]
pub struct Txn {
    /// `"METHOD route"`: the transaction name.
    pub route: &'static str,
    /// End time, unix ms.
    pub end_ms: i64,
    /// The duration without the added query time, µs.
    pub base_us: u64,
    /// Time added to the query, µs.
    pub extra_db_us: u64,
    /// Whether it failed (status ERROR, HTTP 500).
    pub error: bool,
    /// Set by [`Sender::send`]: the service version.
    pub version: String,
    /// Set by [`Sender::send`]: the trace id, 32 hex digits.
    pub trace_id: String,
}

impl Txn {
    /// The transaction's duration, µs.
    pub fn duration_us(&self) -> u64 {
        self.base_us + self.extra_db_us
    }

    /// The duration in ms, as the API reports it.
    pub fn duration_ms(&self) -> f64 {
        self.duration_us() as f64 / 1000.0
    }

    /// The spans as (name, duration µs, self time µs), root first.
    pub fn span_times(&self) -> [(&str, u64, u64); 3] {
        let b = self.base_us;
        let db = b / 2 + self.extra_db_us - b / 10;
        let render = b * 3 / 10 - b / 10;
        [
            (
                self.route,
                self.duration_us(),
                self.duration_us() - db - render,
            ),
            ("SELECT orders", db, db),
            ("render", render, render),
        ]
    }
}

/// `n` transactions per route, ending evenly over `[from_ms, to_ms)`, durations log-normal
/// around 20 ms, 0.5 % errors; `slow(route)` adds that many µs to the query.
pub fn traffic(
    rng: &mut Rng,
    routes: &[&'static str],
    n: usize,
    (from_ms, to_ms): (i64, i64),
    slow: impl Fn(&str) -> u64,
) -> Vec<Txn> {
    let step = (to_ms - from_ms) / n as i64;
    let mut out = Vec::new();
    for i in 0..n {
        for &route in routes {
            out.push(Txn {
                route,
                end_ms: from_ms + i as i64 * step + step / 2,
                base_us: rng.duration_us(20_000.0),
                extra_db_us: slow(route),
                error: rng.uniform() < 0.005,
                version: String::new(),
                trace_id: String::new(),
            });
        }
    }
    out
}

/// Sends transactions over OTLP/gRPC, numbering their traces.
#[derive(Debug)]
pub struct Sender {
    client: TraceServiceClient<tonic::transport::Channel>,
    next_trace: u64,
}

impl Sender {
    /// Connects to the collector's OTLP/gRPC port.
    pub async fn new(server: &Server) -> Self {
        let client = TraceServiceClient::connect(format!("http://{}", server.otlp_grpc))
            .await
            .unwrap();
        Self {
            client,
            next_trace: 1,
        }
    }

    /// Numbers the next trace `n` (collectors sharing traffic give each transaction the trace
    /// id it has when one collector gets it all).
    pub fn set_next_trace(&mut self, n: u64) {
        self.next_trace = n;
    }

    fn spans(&mut self, t: &mut Txn) -> Vec<Span> {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next_trace.to_be_bytes());
        id[8] = 0xab;
        self.next_trace += 1;
        t.trace_id = id.iter().map(|b| format!("{b:02x}")).collect();
        let trace_id = id.to_vec();
        let us = 1000u64;
        let end = t.end_ms as u64 * 1_000_000;
        let b = t.base_us;
        let start = end - t.duration_us() * us;
        let (method, route) = t.route.split_once(' ').unwrap();
        let span =
            |id: u8, parent: Option<u8>, name: &str, kind: i32, from_us: u64, to_us: u64| Span {
                trace_id: trace_id.clone(),
                span_id: vec![id; 8],
                parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
                name: name.to_owned(),
                kind,
                start_time_unix_nano: start + from_us * us,
                end_time_unix_nano: start + to_us * us,
                ..Default::default()
            };
        let mut root = span(1, None, t.route, 2, 0, t.duration_us());
        root.attributes = vec![
            attr("http.request.method", method),
            attr("http.route", route),
            int_attr("http.response.status_code", if t.error { 500 } else { 200 }),
        ];
        if t.error {
            root.status = Some(Status {
                code: StatusCode::Error as i32,
                ..Default::default()
            });
        }
        let db_end = b / 2 + t.extra_db_us;
        vec![
            root,
            span(2, Some(1), "SELECT orders", 3, b / 10, db_end),
            span(
                3,
                Some(1),
                "render",
                1,
                db_end + b / 10,
                db_end + b * 3 / 10,
            ),
        ]
    }

    /// Sends transactions of one service version (environment `prod`), 200 per request,
    /// setting their `version` and `trace_id`.
    pub async fn send(&mut self, service: &str, version: &str, txns: &mut [Txn]) {
        for chunk in txns.chunks_mut(200) {
            let mut spans = Vec::new();
            for t in chunk.iter_mut() {
                t.version = version.to_owned();
                spans.extend(self.spans(t));
            }
            let request = request_with_resource(
                vec![
                    attr("service.name", service),
                    attr("service.version", version),
                    attr("deployment.environment.name", "prod"),
                ],
                spans,
            );
            let response = self.client.export(request).await.unwrap().into_inner();
            assert!(response.partial_success.is_none(), "{response:?}");
        }
    }
}
