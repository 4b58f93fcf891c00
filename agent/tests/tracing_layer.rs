//! The tracing layer as an application sees it: composed with `fmt` and `EnvFilter`, it turns
//! fields, events, status and kind into OTLP, leaves out its own events, follows `traceparent`,
//! and takes its settings from the standard `OTEL_*` variables with builder overrides.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::front::{Fault, Seen, serve_front};
use common::{agent, keep_all};
use headlight_agent::{Builder, TraceContext};
use headlight_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};
use headlight_proto::otlp::trace::Span;
use tracing_subscriber::prelude::*;

async fn capture() -> (String, Arc<Mutex<Seen>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (url, serve_front(listener, Fault::None, None))
}

fn value<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn string(attributes: &[KeyValue], key: &str) -> Option<String> {
    match value(attributes, key)? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn span<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name}"))
}

#[derive(Clone)]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_events_status_and_kind_arrive_as_otlp_beside_fmt_and_env_filter() {
    let (url, seen) = capture().await;
    let (layer, guard) = agent("shop", &url).tail(keep_all()).build().unwrap();
    let logs = Logs(Arc::new(Mutex::new(Vec::new())));
    let writer = logs.clone();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info,noisy=off"))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        )
        .with(layer);
    tokio::task::spawn_blocking(move || {
        tracing::subscriber::with_default(subscriber, || {
            let root = tracing::info_span!(
                "consume",
                otel.name = "orders.consume",
                otel.kind = "consumer",
                count = 3i64,
                ratio = 0.5,
                urgent = true,
                customer = "acme",
                items = ?vec![1, 2],
            );
            let _entered = root.enter();
            tracing::info!(attempt = 2, "cache miss");
            tracing::warn!(target: "headlight_agent::export", "agent-internal notice");
            tracing::info_span!("charge", otel.kind = "client")
                .in_scope(|| tracing::error!(error = "card declined", "charge failed"));
            tracing::info_span!(target: "noisy", "hidden").in_scope(|| {});
            tracing::info_span!(
                "verify",
                otel.status_code = "ERROR",
                otel.status_message = "bad signature"
            )
            .in_scope(|| {});
            let late = tracing::info_span!("late", outcome = tracing::field::Empty);
            late.record("outcome", "ok");
        });
        assert!(guard.flush(Duration::from_secs(30)));
        guard.shutdown()
    })
    .await
    .unwrap();

    let seen = seen.lock().unwrap();
    let spans = &seen.spans;
    let mut names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["charge", "late", "orders.consume", "verify"]);

    let root = span(spans, "orders.consume");
    assert_eq!(root.kind, 5, "consumer");
    assert!(root.parent_span_id.is_empty());
    assert_eq!(value(&root.attributes, "count"), Some(&Value::IntValue(3)));
    assert_eq!(
        value(&root.attributes, "ratio"),
        Some(&Value::DoubleValue(0.5))
    );
    assert_eq!(
        value(&root.attributes, "urgent"),
        Some(&Value::BoolValue(true))
    );
    assert_eq!(
        string(&root.attributes, "customer").as_deref(),
        Some("acme")
    );
    assert_eq!(string(&root.attributes, "items").as_deref(), Some("[1, 2]"));
    assert!(
        root.attributes
            .iter()
            .all(|kv| !kv.key.starts_with("otel."))
    );
    assert_eq!(root.events.len(), 1, "the agent's own event is left out");
    assert_eq!(root.events[0].name, "cache miss");
    assert_eq!(
        value(&root.events[0].attributes, "attempt"),
        Some(&Value::IntValue(2))
    );
    assert!(root.status.is_none(), "a child's error is the child's");

    let charge = span(spans, "charge");
    assert_eq!(charge.kind, 3, "client");
    assert_eq!(charge.parent_span_id, root.span_id);
    assert_eq!(charge.trace_id, root.trace_id);
    let status = charge.status.as_ref().unwrap();
    assert_eq!((status.code, status.message.as_str()), (2, "card declined"));

    let verify = span(spans, "verify");
    let status = verify.status.as_ref().unwrap();
    assert_eq!((status.code, status.message.as_str()), (2, "bad signature"));
    assert_eq!(
        string(&span(spans, "late").attributes, "outcome").as_deref(),
        Some("ok")
    );

    let resource = &seen.resource;
    assert_eq!(string(resource, "service.name").as_deref(), Some("shop"));
    assert_eq!(
        string(resource, "service.version").as_deref(),
        Some("1.0.0")
    );
    assert_eq!(
        string(resource, "telemetry.sdk.name").as_deref(),
        Some("headlight-agent")
    );
    assert_eq!(
        string(resource, "process.pid"),
        Some(std::process::id().to_string())
    );
    assert_eq!(
        string(resource, "service.instance.id").map(|s| s.len()),
        Some(32)
    );
    assert_eq!(
        value(resource, "headlight.agent.dropped_transactions.queue_full"),
        Some(&Value::IntValue(0))
    );

    // The application's own fmt layer is untouched, the agent's notice included.
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("cache miss"), "{logs}");
    assert!(logs.contains("agent-internal notice"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_field_continues_the_remote_trace() {
    let (url, seen) = capture().await;
    let (layer, guard) = agent("shop", &url).build().unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let outgoing = tokio::task::spawn_blocking(move || {
        let outgoing = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "handle",
                otel.kind = "server",
                traceparent = incoming,
                tracestate = "vendor=abc"
            );
            let _entered = span.enter();
            let mut headers = http::HeaderMap::new();
            headlight_agent::inject_context(&mut headers);
            let context = TraceContext::current().unwrap();
            (headers, context)
        });
        guard.flush(Duration::from_secs(30));
        outgoing
    })
    .await
    .unwrap();
    let (headers, context) = outgoing;
    let seen = seen.lock().unwrap();
    let handle = span(&seen.spans, "handle");
    assert_eq!(hex(&handle.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&handle.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(handle.flags & 0x300, 0x300, "parent is remote");
    assert_eq!(context.span_id.to_vec(), handle.span_id);
    assert_eq!(
        headers["traceparent"].to_str().unwrap(),
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            hex(&handle.span_id)
        )
    );
    assert_eq!(handle.trace_state, "vendor=abc");
    assert_eq!(headers["tracestate"].to_str().unwrap(), "vendor=abc");
    assert!(
        handle
            .attributes
            .iter()
            .all(|kv| kv.key != "traceparent" && kv.key != "tracestate")
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_variables_configure_the_agent_and_the_builder_overrides_them() {
    let (url, seen) = capture().await;
    let env: HashMap<&str, &str> = HashMap::from([
        ("OTEL_SERVICE_NAME", "from-env"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.version=9.9,deployment.environment.name=staging,team=payments",
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20s3cret",
        ),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ]);
    let builder = Builder::from_env(&env).service_version("10.0");
    let config = builder.config().unwrap();
    assert_eq!(config.export.max_queue_spans, 100);
    assert_eq!(config.export.batch_timeout, Duration::from_millis(50));
    assert!(
        !format!("{config:?}").contains("s3cret"),
        "secrets stay out of Debug"
    );
    let (layer, guard) = builder.build().unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tokio::task::spawn_blocking(move || {
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("tick").in_scope(|| {});
        });
        guard.flush(Duration::from_secs(30));
    })
    .await
    .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.spans.len(), 1);
    assert_eq!(seen.authorization.as_deref(), Some("Bearer s3cret"));
    let resource = &seen.resource;
    assert_eq!(
        string(resource, "service.name").as_deref(),
        Some("from-env")
    );
    assert_eq!(string(resource, "service.version").as_deref(), Some("10.0"));
    assert_eq!(
        string(resource, "deployment.environment.name").as_deref(),
        Some("staging")
    );
    assert_eq!(string(resource, "team").as_deref(), Some("payments"));
}

#[test]
fn invalid_variables_are_refused_with_the_variable_named() {
    for (key, value) in [
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "lots"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign"),
    ] {
        let env = HashMap::from([(key, value)]);
        let error = Builder::from_env(&env).build().unwrap_err().to_string();
        assert!(error.contains(key), "{key}: {error}");
    }
    let error = Builder::from_env(&HashMap::<&str, &str>::new())
        .endpoint("not a url")
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("endpoint"), "{error}");
}

#[test]
fn always_off_records_nothing() {
    let env = HashMap::from([("OTEL_TRACES_SAMPLER", "always_off")]);
    let (layer, guard) = Builder::from_env(&env)
        .endpoint("http://127.0.0.1:9")
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info_span!("GET /", otel.kind = "server").in_scope(|| {});
    });
    assert_eq!(guard.shutdown().spans_recorded, 0);
}

/// A gRPC service that acknowledges everything.
struct Ack;

#[tonic::async_trait]
impl headlight_proto::otlp::collector::trace_service_server::TraceService for Ack {
    async fn export(
        &self,
        _request: tonic::Request<headlight_proto::otlp::collector::ExportTraceServiceRequest>,
    ) -> Result<
        tonic::Response<headlight_proto::otlp::collector::ExportTraceServiceResponse>,
        tonic::Status,
    > {
        tracing::info_span!("handle export").in_scope(|| {});
        Ok(tonic::Response::new(Default::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_requests_through_the_http_layer_are_rpc_transactions() {
    use headlight_proto::otlp::collector::trace_service_client::TraceServiceClient;
    use headlight_proto::otlp::collector::trace_service_server::TraceServiceServer;

    let (url, seen) = capture().await;
    let (layer, guard) = agent("grpc-app", &url).tail(keep_all()).build().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app_addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            tonic::transport::Server::builder()
                .layer(headlight_agent::HttpLayer::new())
                .add_service(TraceServiceServer::new(Ack))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async move {
                        let _ = stopped.await;
                    },
                )
                .await
                .unwrap();
        });
        guard.flush(Duration::from_secs(30));
        guard.shutdown()
    });
    let mut client = TraceServiceClient::connect(format!("http://{app_addr}"))
        .await
        .unwrap();
    for _ in 0..3 {
        let request = headlight_proto::otlp::collector::ExportTraceServiceRequest::default();
        client.export(request).await.unwrap();
    }
    stop.send(()).unwrap();
    let stats = tokio::task::spawn_blocking(move || server.join().unwrap())
        .await
        .unwrap();
    assert_eq!(stats.transactions_sent, 3);
    let seen = seen.lock().unwrap();
    let name = "opentelemetry.proto.collector.trace.v1.TraceService/Export";
    let calls: Vec<&Span> = seen.spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(calls.len(), 3);
    let call = calls[0];
    assert_eq!(call.kind, 2, "server");
    assert_eq!(
        string(&call.attributes, "rpc.system").as_deref(),
        Some("grpc")
    );
    assert_eq!(
        string(&call.attributes, "rpc.service").as_deref(),
        Some("opentelemetry.proto.collector.trace.v1.TraceService")
    );
    assert_eq!(
        string(&call.attributes, "rpc.method").as_deref(),
        Some("Export")
    );
    assert_eq!(
        value(&call.attributes, "http.response.status_code"),
        Some(&Value::IntValue(200))
    );
    let handler = span(&seen.spans, "handle export");
    assert_eq!(handler.trace_id, call.trace_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_below_info_are_skipped_and_their_children_stay_in_the_tree() {
    let (url, seen) = capture().await;
    let (layer, guard) = agent("shop", &url).tail(keep_all()).build().unwrap();
    // No filter at all: the layer's own level (INFO) decides.
    let subscriber = tracing_subscriber::registry().with(layer);
    tokio::task::spawn_blocking(move || {
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug_span!("connection").in_scope(|| {
                tracing::info_span!("GET /", otel.kind = "server").in_scope(|| {
                    tracing::trace_span!("poll").in_scope(|| {
                        tracing::info_span!("render").in_scope(|| tracing::debug!("detail"));
                    });
                });
            });
        });
        guard.flush(Duration::from_secs(30));
    })
    .await
    .unwrap();
    let seen = seen.lock().unwrap();
    let mut names: Vec<&str> = seen.spans.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["GET /", "render"]);
    let root = span(&seen.spans, "GET /");
    let render = span(&seen.spans, "render");
    assert_eq!(render.parent_span_id, root.span_id);
    assert!(render.events.is_empty(), "debug events are skipped too");
}
