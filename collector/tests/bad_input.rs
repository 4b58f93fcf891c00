//! Bad input never crashes or corrupts: invalid spans are rejected with a partial success while
//! the good spans of the same request are kept; malformed bodies are INVALID_ARGUMENT / 400;
//! oversize bodies (raw or decompressed) are RESOURCE_EXHAUSTED / 413; bad query parameters
//! are 400 with the reason.

mod common;

use std::io::Write as _;
use std::sync::atomic::Ordering;

use bytes::{Buf as _, BufMut as _};
use common::otlp::{attr, now_ns, request, server_span};
use common::{get, get_ok, test_config};
use headlight_collector::metrics::reasons::{Reason, ReasonCounters};
use headlight_collector::server::Server;
use headlight_proto::otlp::collector::ExportTraceServiceResponse;
use headlight_proto::otlp::collector::trace_service_client::TraceServiceClient;
use prost::Message as _;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

const LIMIT: usize = 64 * 1024;
const SEC: u64 = 1_000_000_000;

async fn start_small(dir: &std::path::Path) -> Server {
    let mut config = test_config(dir);
    config.limits.max_request_bytes = LIMIT;
    Server::start(config).await.unwrap()
}

async fn count(server: &Server, service: &str) -> u64 {
    server.flush().await.unwrap();
    let body = get_ok(server, &format!("/api/v1/latency?service={service}")).await;
    body["summary"]["count"].as_u64().unwrap()
}

/// One good transaction and one of each kind of invalid span.
fn mixed_request(
    service: &str,
    first_trace: u8,
) -> headlight_proto::otlp::collector::ExportTraceServiceRequest {
    let now = now_ns();
    let mut end_before_start = server_span(first_trace + 1, "backwards", now - SEC, 0);
    end_before_start.start_time_unix_nano = now;
    let mut bad_trace_id = server_span(first_trace + 6, "short id", now - SEC, SEC / 100);
    bad_trace_id.trace_id = vec![1; 8];
    request(
        service,
        vec![
            server_span(first_trace, "good", now - 5 * SEC, 20_000_000),
            end_before_start,
            server_span(first_trace + 2, "future", now + 3600 * SEC, SEC / 100),
            server_span(first_trace + 3, "endless", now - SEC, 2 * 3600 * SEC),
            server_span(
                first_trace + 4,
                "ancient",
                now - 2 * 86_400 * SEC,
                SEC / 100,
            ),
            bad_trace_id,
        ],
    )
}

/// Conservation: every span of the `mixed` requests was either accepted or rejected with its
/// reason, and every accepted transaction was counted.
fn assert_conserved(server: &Server, mixed_requests: u64) {
    let counters = server.pipeline().counters();
    assert_eq!(
        counters.spans_accepted.load(Ordering::Relaxed),
        mixed_requests
    );
    let m = mixed_requests;
    assert_eq!(
        by_reason(&counters.spans_rejected),
        [
            ("invalid_trace_id", m),
            ("invalid_span_id", 0),
            ("end_before_start", m),
            ("duration_over_limit", m),
            ("outside_retention", m),
            ("in_future", m),
        ]
    );
    assert_eq!(
        server.pipeline().aggregator_stats().transactions,
        mixed_requests
    );
}

/// A counter's values by reason label.
fn by_reason<R: Reason>(counters: &ReasonCounters<R>) -> Vec<(&'static str, u64)> {
    counters
        .counts()
        .map(|(reason, n)| (reason.label(), n))
        .collect()
}

/// Asserts the export requests refused per protocol: malformed, too large, unsupported (and
/// none to retry later: bad input is not overload, nor a disk problem).
fn assert_refused(server: &Server, grpc: [u64; 3], http: [u64; 3]) {
    let counters = server.pipeline().counters();
    let reasons = [
        "malformed",
        "too_large",
        "unsupported_media_type",
        "busy",
        "store_behind",
        "memory_limit",
        "log_unwritable",
    ];
    let expect = |n: [u64; 3]| {
        reasons
            .into_iter()
            .zip(n.into_iter().chain([0; 4]))
            .collect::<Vec<_>>()
    };
    assert_eq!(by_reason(&counters.grpc_refused), expect(grpc), "grpc");
    assert_eq!(by_reason(&counters.http_refused), expect(http), "http");
}

fn assert_partial_success(response: &ExportTraceServiceResponse) {
    let partial = response.partial_success.as_ref().expect("partial success");
    assert_eq!(partial.rejected_spans, 5, "{partial:?}");
    for reason in [
        "end before start",
        "too far in the future",
        "duration over the limit",
        "older than retention",
        "invalid trace id",
    ] {
        assert!(
            partial.error_message.contains(reason),
            "{reason}: {}",
            partial.error_message
        );
    }
}

/// Sends raw bytes as the request message, to reach the server's decoder with garbage.
#[derive(Debug, Clone, Default)]
struct RawCodec;
#[derive(Debug)]
struct Raw;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = buf.chunk().to_vec();
        buf.advance(bytes.len());
        Ok(Some(bytes))
    }
}

async fn raw_grpc(server: &Server, body: Vec<u8>, gzip: bool) -> Result<Vec<u8>, Status> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.otlp_grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    if gzip {
        grpc = grpc.send_compressed(CompressionEncoding::Gzip);
    }
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    grpc.unary(tonic::Request::new(body), path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_rejects_bad_spans_and_bodies_and_keeps_the_good_spans() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_small(dir.path()).await;
    let mut client = TraceServiceClient::connect(format!("http://{}", server.otlp_grpc))
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);

    let response = client
        .export(mixed_request("grpc-svc", 10))
        .await
        .unwrap()
        .into_inner();
    assert_partial_success(&response);
    assert_eq!(
        count(&server, "grpc-svc").await,
        1,
        "the good span of the request is kept"
    );

    // Malformed protobuf: field 1 (resource_spans) says 127 bytes follow, but only 2 do.
    let err = raw_grpc(&server, vec![0x0a, 0x7f, 0x01, 0x02], false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("malformed protobuf"),
        "{}",
        err.message()
    );

    // Oversize, uncompressed: non-retryable RESOURCE_EXHAUSTED.
    let mut big = request(
        "grpc-svc",
        vec![server_span(30, "big", now_ns() - SEC, 1000)],
    );
    big.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(attr("blob", &"x".repeat(LIMIT * 2)));
    let err = raw_grpc(&server, big.encode_to_vec(), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    // Oversize only after decompression (a small gzip bomb).
    let err = raw_grpc(&server, big.encode_to_vec(), true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    // Nothing else was lost, and the collector still serves.
    let response = client
        .export(mixed_request("grpc-svc", 40))
        .await
        .unwrap()
        .into_inner();
    assert_partial_success(&response);
    assert_eq!(count(&server, "grpc-svc").await, 2);
    assert_conserved(&server, 2);
    assert_refused(&server, [1, 2, 0], [0, 0, 0]);
    server.shutdown().await.unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

async fn post(server: &Server, content_type: &str, gzipped: bool, body: Vec<u8>) -> (u16, Vec<u8>) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", server.otlp_http))
        .header("content-type", content_type);
    if gzipped {
        request = request.header("content-encoding", "gzip");
    }
    let response = request.body(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_rejects_bad_spans_and_bodies_and_keeps_the_good_spans() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_small(dir.path()).await;
    let protobuf = "application/x-protobuf";

    // Partial success over protobuf, plain and gzip.
    for (i, gzipped) in [(10u8, false), (20, true)] {
        let body = mixed_request("http-svc", i).encode_to_vec();
        let body = if gzipped { gzip(&body) } else { body };
        let (status, body) = post(&server, protobuf, gzipped, body).await;
        assert_eq!(status, 200);
        assert_partial_success(&ExportTraceServiceResponse::decode(&body[..]).unwrap());
    }
    // …and over JSON.
    let json = serde_json::to_vec(&mixed_request("http-svc", 30)).unwrap();
    let (status, body) = post(&server, "application/json", false, json).await;
    assert_eq!(status, 200);
    let response: ExportTraceServiceResponse = serde_json::from_slice(&body).unwrap();
    assert_partial_success(&response);
    assert_eq!(
        count(&server, "http-svc").await,
        3,
        "the good span of each request is kept"
    );

    // Malformed protobuf → 400 with a google.rpc.Status body.
    let (status, body) = post(&server, protobuf, false, vec![0x0a, 0x7f, 0x01]).await;
    assert_eq!(status, 400);
    let rpc_status = tonic_types::Status::decode(&body[..]).unwrap();
    assert_eq!(rpc_status.code, Code::InvalidArgument as i32);
    assert!(
        rpc_status.message.contains("malformed protobuf"),
        "{}",
        rpc_status.message
    );

    // Malformed JSON → 400 with a JSON status.
    let (status, body) = post(
        &server,
        "application/json",
        false,
        b"{\"resourceSpans\": [".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], Code::InvalidArgument as i32);
    assert!(
        body["message"].as_str().unwrap().contains("malformed json"),
        "{body}"
    );

    // Oversize raw, oversize after decompression (gzip bomb), broken gzip, wrong type.
    let (status, _) = post(&server, protobuf, false, vec![0; LIMIT + 1]).await;
    assert_eq!(status, 413);
    let bomb = gzip(&vec![0; LIMIT * 16]);
    assert!(bomb.len() < LIMIT);
    let (status, body) = post(&server, protobuf, true, bomb).await;
    assert_eq!(status, 413);
    let rpc_status = tonic_types::Status::decode(&body[..]).unwrap();
    assert_eq!(rpc_status.code, Code::ResourceExhausted as i32);
    assert!(
        rpc_status.message.contains("limits.max_request_bytes"),
        "{}",
        rpc_status.message
    );
    let (status, _) = post(&server, protobuf, true, b"not gzip".to_vec()).await;
    assert_eq!(status, 400);
    let (status, _) = post(&server, "text/plain", false, b"hello".to_vec()).await;
    assert_eq!(status, 415);

    // Nothing that was accepted got lost.
    assert_eq!(count(&server, "http-svc").await, 3);
    assert_conserved(&server, 3);
    assert_refused(&server, [0, 0, 0], [3, 2, 1]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_parameters_get_400_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_small(dir.path()).await;
    for (path, needle) in [
        ("/api/v1/latency?servce=x", "servce"),
        ("/api/v1/latency?service=x&from=tomorrow", "`from`"),
        ("/api/v1/latency?service=x&from=2000&to=1000", "before"),
        ("/api/v1/latency?service=x&step=5x", "`step`"),
        ("/api/v1/transactions?service=x&limit=0", "`limit`"),
        ("/api/v1/transactions?service=x&limit=100000", "`limit`"),
        ("/api/v1/transactions?service=x&errors=perhaps", "`errors`"),
        ("/api/v1/transactions?service=x&min_ms=-3", "`min_ms`"),
        ("/api/v1/transactions?service=x&min_ms=9&max_ms=3", "min_ms"),
        ("/api/v1/traces/xyz", "32 hex digits"),
        ("/api/v1/breakdown?service=x&to=abc", "`to`"),
    ] {
        let (status, body) = get(&server, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_argument");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{path}: {message}");
    }
    let (status, body) = get(&server, "/api/v1/traces/0123456789abcdef0123456789abcdef").await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = get(&server, "/api/v1/nothing-here").await;
    assert_eq!(status, 404);
    let (status, _) = get(&server, "/healthz").await;
    assert_eq!(status, 200);
    server.shutdown().await.unwrap();
}

/// The value of an unlabelled sample in the `/metrics` text.
async fn metric(server: &Server, name: &str) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", server.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_request_limits_are_answered_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.limits.max_spans_per_request = 5;
    config.limits.max_attributes_per_span = 2;
    config.limits.max_attribute_value_bytes = 16;
    config.limits.max_streams_per_connection = 3;
    config.aggregation.max_transactions_per_service = 2;
    let server = Server::start(config).await.unwrap();
    let end = now_ns() - SEC;
    let spans = |first: u8, n: u8| -> Vec<_> {
        (first..first + n)
            .map(|i| server_span(i, &format!("GET /{}", i % 2), end, 1_000_000))
            .collect()
    };

    // Six spans where five are allowed: the whole request is refused as too large, over both
    // protocols, and none of it is kept.
    let err = raw_grpc(
        &server,
        request("limits", spans(1, 6)).encode_to_vec(),
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("limits.max_spans_per_request"),
        "{}",
        err.message()
    );
    let body = request("limits", spans(11, 6)).encode_to_vec();
    let (status, _) = post(&server, "application/x-protobuf", false, body).await;
    assert_eq!(status, 413);
    assert_refused(&server, [0, 1, 0], [0, 1, 0]);

    // Five spans pass. One carries four attributes (two over the limit), the first one 40
    // bytes long (over the value limit). Its name, `GET /0` and `GET /1` make three names in a
    // service allowed two: both `GET /1` transactions overflow.
    let mut ok = spans(21, 5);
    ok[0].name = "GET /third".into();
    ok[0].attributes = vec![
        attr("long", &"v".repeat(40)),
        attr("short", "ok"),
        attr("dropped.1", "x"),
        attr("dropped.2", "y"),
    ];
    let err = raw_grpc(&server, request("limits", ok).encode_to_vec(), false).await;
    assert!(err.is_ok(), "{err:?}");
    assert_eq!(
        count(&server, "limits").await,
        5,
        "only the request within the limit is kept"
    );
    assert_eq!(
        metric(&server, "headlight_span_attributes_dropped_total").await,
        2
    );
    assert_eq!(
        metric(&server, "headlight_span_attribute_values_truncated_total").await,
        1
    );
    assert_eq!(
        metric(&server, "headlight_transactions_overflowed_total").await,
        2
    );

    // The stored span keeps two attributes, the long value cut to 16 bytes and marked.
    let trace = get_ok(&server, &format!("/api/v1/traces/{}", "15".repeat(16))).await;
    let attributes = &trace["spans"][0]["attributes"];
    assert_eq!(attributes["short"], "ok", "{trace}");
    assert_eq!(
        attributes["long"],
        format!("{}…", "v".repeat(16)),
        "{trace}"
    );
    assert!(attributes.get("dropped.1").is_none(), "{trace}");

    // The OTLP/gRPC listener tells each connection how many requests it may have in flight.
    let tcp = tokio::net::TcpStream::connect(server.otlp_grpc)
        .await
        .unwrap();
    let (send, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let mut settled = false;
    for _ in 0..50 {
        // Drive the connection until the server's SETTINGS are in.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(20), &mut connection).await;
        if connection.max_concurrent_send_streams() == 3 {
            settled = true;
            break;
        }
    }
    assert!(
        settled,
        "max concurrent streams {}",
        connection.max_concurrent_send_streams()
    );
    drop(send);
    server.shutdown().await.unwrap();
}
