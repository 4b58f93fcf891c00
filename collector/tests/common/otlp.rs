//! Hand-built OTLP requests, for the cases no SDK will send (invalid spans, malformed bodies).

use headlight_proto::otlp::collector::ExportTraceServiceRequest;
use headlight_proto::otlp::common::{AnyValue, KeyValue, any_value};
use headlight_proto::otlp::resource::Resource;
use headlight_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

/// A string attribute.
pub fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

/// A root SERVER span of trace `n` ending at `end_ns` after `duration_ns`.
pub fn server_span(n: u8, name: &str, end_ns: u64, duration_ns: u64) -> Span {
    Span {
        trace_id: vec![n; 16],
        span_id: vec![n; 8],
        name: name.to_owned(),
        kind: 2,
        start_time_unix_nano: end_ns.saturating_sub(duration_ns),
        end_time_unix_nano: end_ns,
        ..Default::default()
    }
}

/// A request with the spans under one resource for `service`.
pub fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attr("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Unix ns now.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}
