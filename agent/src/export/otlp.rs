//! Conversion of recorded spans to OTLP protobuf messages.

use headlight_proto::otlp::collector::ExportTraceServiceRequest;
use headlight_proto::otlp::common::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use headlight_proto::otlp::resource::Resource;
use headlight_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status as OtlpStatus, span};

use crate::export::tail::Unsent;
use crate::ids;
use crate::record::{Attribute, SpanRecord, Status, Value};
use crate::stats::{AgentStats, DropReason};

/// Span attribute: the transaction's own self time when its children were not sent.
pub(crate) const SELF_NS: &str = "headlight.self_ns";
/// Span attribute: per-operation summary of the children that were not sent.
pub(crate) const UNSENT_CHILDREN: &str = "headlight.unsent_children";

/// OTLP span flags: sampled, and "the parent's remoteness is known" (+ "it is remote").
const FLAG_SAMPLED: u32 = 0x01;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

pub(crate) fn string(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key_strindex: 0,
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

fn int(key: &str, value: u64) -> KeyValue {
    KeyValue {
        key_strindex: 0,
        key: key.to_owned(),
        value: Some(int_value(value)),
    }
}

fn int_value(value: u64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::IntValue(
            i64::try_from(value).unwrap_or(i64::MAX),
        )),
    }
}

fn attribute(attribute: Attribute) -> KeyValue {
    let value = match attribute.value {
        Value::Str(s) => any_value::Value::StringValue(s),
        Value::Short(s) => any_value::Value::StringValue(s.as_str().to_owned()),
        Value::I64(v) => any_value::Value::IntValue(v),
        Value::F64(v) => any_value::Value::DoubleValue(v),
        Value::Bool(v) => any_value::Value::BoolValue(v),
    };
    KeyValue {
        key_strindex: 0,
        key: attribute.key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

/// Converts one span; `summary` is set when its children were not sent. The record's values
/// are moved out, its lists emptied with their capacity kept: it is ready to be recycled.
pub(crate) fn span(record: &mut SpanRecord, summary: Option<(u64, Vec<Unsent>)>) -> Span {
    let mut attributes: Vec<KeyValue> =
        Vec::with_capacity(record.attributes.len() + if summary.is_some() { 2 } else { 0 });
    attributes.extend(record.attributes.drain(..).map(attribute));
    if let Some((self_ns, unsent)) = summary {
        attributes.push(int(SELF_NS, self_ns));
        let values = unsent
            .into_iter()
            .map(|u| AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: vec![
                        string("name", u.name),
                        int("kind", u.kind as u64),
                        int("count", u.count),
                        int("total_ns", u.total_ns),
                        int("self_ns", u.self_ns),
                    ],
                })),
            })
            .collect();
        attributes.push(KeyValue {
            key_strindex: 0,
            key: UNSENT_CHILDREN.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
            }),
        });
    }
    let status = match std::mem::take(&mut record.status) {
        Status::Unset => None,
        Status::Ok => Some(OtlpStatus {
            message: String::new(),
            code: 1,
        }),
        Status::Error(message) => Some(OtlpStatus {
            message: message.unwrap_or_default(),
            code: 2,
        }),
    };
    let mut flags = FLAG_SAMPLED;
    if record.parent_span_id.is_some() {
        flags |= FLAG_HAS_IS_REMOTE;
        if record.remote_parent {
            flags |= FLAG_IS_REMOTE;
        }
    }
    Span {
        trace_id: record.trace_id.to_vec(),
        span_id: record.span_id.to_vec(),
        trace_state: record
            .trace_state
            .take()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        parent_span_id: record
            .parent_span_id
            .map(|p| p.to_vec())
            .unwrap_or_default(),
        flags,
        name: std::mem::take(&mut record.name).into_owned(),
        kind: record.kind as i32,
        start_time_unix_nano: record.start_ns(),
        end_time_unix_nano: record.end_ns(),
        attributes,
        dropped_attributes_count: record.dropped_attributes,
        events: record
            .events
            .drain(..)
            .map(|e| span::Event {
                time_unix_nano: ids::unix_ns(e.time),
                name: e.name.into_owned(),
                attributes: e.attributes.into_iter().map(attribute).collect(),
                dropped_attributes_count: 0,
            })
            .collect(),
        dropped_events_count: record.dropped_events,
        links: Vec::new(),
        dropped_links_count: 0,
        status,
    }
}

/// Builds an export request: the agent's resource, its cumulative drop counts (so the
/// collector knows how much this instance's histograms miss), and the spans.
pub(crate) fn request(
    resource: &[KeyValue],
    stats: &AgentStats,
    spans: Vec<Span>,
) -> ExportTraceServiceRequest {
    let mut attributes = resource.to_vec();
    for reason in DropReason::ALL {
        let transactions = stats.transactions_dropped.get(reason);
        let spans = stats.spans_dropped.get(reason);
        // Zeros are sent too: the collector counts an instance once it reports.
        attributes.push(int(
            &format!("headlight.agent.dropped_transactions.{}", reason.as_str()),
            transactions,
        ));
        attributes.push(int(
            &format!("headlight.agent.dropped_spans.{}", reason.as_str()),
            spans,
        ));
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes,
                dropped_attributes_count: 0,
                entity_refs: Vec::new(),
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "headlight-agent".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    attributes: Vec::new(),
                    dropped_attributes_count: 0,
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}
