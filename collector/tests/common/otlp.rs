//! Hand-built OTLP requests, for the cases no SDK will send (invalid spans, malformed bodies).

use headlight_proto::otlp::collector::ExportTraceServiceRequest;
use headlight_proto::otlp::common::{AnyValue, ArrayValue, KeyValue, KeyValueList, any_value};
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

/// An int attribute.
pub fn int_attr(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// An array attribute.
pub fn array_attr(key: &str, values: Vec<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
        }),
        ..Default::default()
    }
}

/// A kvlist value.
pub fn kvlist(values: Vec<KeyValue>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::KvlistValue(KeyValueList { values })),
    }
}

/// One element of `headlight.unsent_children`.
pub fn unsent_child(name: &str, kind: i64, count: i64, total_ns: i64, self_ns: i64) -> AnyValue {
    kvlist(vec![
        attr("name", name),
        int_attr("kind", kind),
        int_attr("count", count),
        int_attr("total_ns", total_ns),
        int_attr("self_ns", self_ns),
    ])
}

/// A child span `id` of span `parent` in trace `n`.
pub fn child_span(
    n: u8,
    id: u8,
    parent: u8,
    name: &str,
    kind: i32,
    start_ns: u64,
    end_ns: u64,
) -> Span {
    Span {
        trace_id: vec![n; 16],
        span_id: vec![id; 8],
        parent_span_id: vec![parent; 8],
        name: name.to_owned(),
        kind,
        start_time_unix_nano: start_ns,
        end_time_unix_nano: end_ns,
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
    request_with_resource(vec![attr("service.name", service)], spans)
}

/// A request with the spans under one resource with these attributes.
pub fn request_with_resource(
    attributes: Vec<KeyValue>,
    spans: Vec<Span>,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes,
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
