//! The load generator's traces: each is a SERVER span (the transaction) with children that
//! split its time, fresh ids, timestamps ending now, and as many attributes as asked.

use headlight_proto::otlp::collector::ExportTraceServiceRequest;
use headlight_proto::otlp::common::{AnyValue, KeyValue, any_value};
use headlight_proto::otlp::resource::Resource;
use headlight_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status, span, status};

use crate::random::{chance, log_normal_ms, next_u64, uniform};

/// The shape of the generated traffic.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Services (`loadgen-0`…).
    pub services: u32,
    /// Transaction names per service (`GET /route/0`…).
    pub transactions: u32,
    /// Spans per trace: the transaction and `spans_per_trace - 1` children.
    pub spans_per_trace: u32,
    /// Attributes per span.
    pub attributes: u32,
    /// Median transaction duration, ms.
    pub median_ms: f64,
    /// Log-normal shape of the durations.
    pub sigma: f64,
    /// Share of failed transactions.
    pub error_ratio: f64,
}

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

/// A random id of `N` bytes (8 or 16), never all zero (invalid in OTLP).
fn random_bytes<const N: usize>() -> Vec<u8> {
    let mut out: Vec<u8> = (0..N.div_ceil(8))
        .flat_map(|_| next_u64().to_le_bytes())
        .take(N)
        .collect();
    out[0] |= 1;
    out
}

/// Extra attributes on top of the ones a span carries anyway, up to `n` in all.
fn pad_attributes(attributes: &mut Vec<KeyValue>, n: u32) {
    let mut i = 0;
    while attributes.len() < n as usize {
        attributes.push(string(&format!("loadgen.attr{i}"), format!("value-{i}")));
        i += 1;
    }
    attributes.truncate(n as usize);
}

fn ns(ms: f64) -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ns = (ms * 1e6).max(1000.0) as u64;
    ns
}

/// Appends one trace of `shape` for `service`, ending at `end_ns`, to `spans`.
fn trace(shape: &Shape, end_ns: u64, spans: &mut Vec<Span>) {
    let trace_id = random_bytes::<16>();
    let root_id = random_bytes::<8>();
    let duration = ns(log_normal_ms(shape.median_ms, shape.sigma));
    let start = end_ns - duration;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let route = (uniform() * f64::from(shape.transactions)) as u32;
    let failed = chance(shape.error_ratio);
    let mut attributes = vec![
        string("http.request.method", "GET"),
        string("http.route", format!("/route/{route}")),
        int("http.response.status_code", if failed { 500 } else { 200 }),
    ];
    pad_attributes(&mut attributes, shape.attributes);
    spans.push(Span {
        trace_id: trace_id.clone(),
        span_id: root_id.clone(),
        name: format!("GET /route/{route}"),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end_ns,
        attributes,
        status: Some(Status {
            code: if failed {
                status::StatusCode::Error
            } else {
                status::StatusCode::Unset
            } as i32,
            message: String::new(),
        }),
        ..Span::default()
    });
    // The children split 80 % of the transaction one after the other.
    let children = u64::from(shape.spans_per_trace.saturating_sub(1));
    if children == 0 {
        return;
    }
    let slice = duration * 4 / 5 / children;
    for c in 0..children {
        let child_start = start + c * slice;
        let mut attributes = vec![
            string("db.system.name", "postgresql"),
            string(
                "db.query.text",
                format!("SELECT * FROM table_{c} WHERE id = ?"),
            ),
        ];
        pad_attributes(&mut attributes, shape.attributes);
        spans.push(Span {
            trace_id: trace_id.clone(),
            span_id: random_bytes::<8>(),
            parent_span_id: root_id.clone(),
            name: format!("SELECT table_{c}"),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: child_start,
            end_time_unix_nano: child_start + slice.max(1),
            attributes,
            ..Span::default()
        });
    }
}

/// A request of about `spans` spans (whole traces) from service `service`, ending now.
pub fn request(shape: &Shape, service: u32, spans: usize) -> (ExportTraceServiceRequest, usize) {
    let end_ns = u64::try_from(crate::pipeline::now_ns()).unwrap_or(0);
    let per_trace = shape.spans_per_trace.max(1) as usize;
    let traces = spans.div_ceil(per_trace).max(1);
    let mut list = Vec::with_capacity(traces * per_trace);
    for _ in 0..traces {
        trace(shape, end_ns, &mut list);
    }
    let count = list.len();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    string("service.name", format!("loadgen-{service}")),
                    string("service.version", "1.0.0"),
                    string("deployment.environment.name", "load"),
                ],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: list,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    (request, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_holds_whole_traces_with_the_asked_shape() {
        let shape = Shape {
            services: 2,
            transactions: 3,
            spans_per_trace: 5,
            attributes: 4,
            median_ms: 20.0,
            sigma: 0.5,
            error_ratio: 0.0,
        };
        let (request, count) = request(&shape, 1, 12);
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(count, 15); // 3 traces of 5
        assert_eq!(spans.len(), 15);
        assert!(spans.iter().all(|s| s.attributes.len() == 4));
        let roots: Vec<&Span> = spans
            .iter()
            .filter(|s| s.parent_span_id.is_empty())
            .collect();
        assert_eq!(roots.len(), 3);
        for root in roots {
            let children: Vec<&Span> = spans
                .iter()
                .filter(|s| s.parent_span_id == root.span_id)
                .collect();
            assert_eq!(children.len(), 4);
            assert!(children.iter().all(|c| c.trace_id == root.trace_id
                && c.start_time_unix_nano >= root.start_time_unix_nano
                && c.end_time_unix_nano <= root.end_time_unix_nano));
        }
        let mut ids: Vec<&Vec<u8>> = spans.iter().map(|s| &s.span_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 15, "span ids are unique");
    }
}
