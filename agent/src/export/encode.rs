//! OTLP `Span` messages written straight from span records into protobuf bytes.
//!
//! Building the generated `Span` structs first allocated a `String` per attribute key and
//! value, and prost's encoder then recomputed the length of every nested message at every
//! level (attributes are four levels deep, the children's summary six): together more than a
//! third of the export thread's CPU. Here each length is computed once, from the record, and
//! the bytes are written in one pass. `tests::matches_the_generated_types` decodes the output
//! with the generated types and compares it with a conversion through them.
//!
//! Wire format (protobuf): a field is a varint key `number << 3 | wire type` followed by a
//! varint (type 0), 8 bytes little-endian (type 1), a varint length and that many bytes
//! (type 2), or 4 bytes little-endian (type 5).

use crate::export::otlp::{SELF_NS, UNSENT_CHILDREN};
use crate::export::tail::Unsent;
use crate::ids;
use crate::record::{Attribute, SpanRecord, Status, Value};

/// OTLP span flags: sampled, and "the parent's remoteness is known" (+ "it is remote").
const FLAG_SAMPLED: u32 = 0x01;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const BYTES: u32 = 2;
const FIXED32: u32 = 5;

fn varint_len(value: u64) -> usize {
    // 7 bits per byte; 0 still takes one byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn key_len(field: u32) -> usize {
    varint_len(u64::from(field << 3))
}

fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    put_varint(out, u64::from(field << 3 | wire_type));
}

/// The size of a length-delimited field whose content is `len` bytes.
pub(crate) fn delimited_len(field: u32, len: usize) -> usize {
    key_len(field) + varint_len(len as u64) + len
}

pub(crate) fn put_delimited_header(out: &mut Vec<u8>, field: u32, len: usize) {
    put_key(out, field, BYTES);
    put_varint(out, len as u64);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_delimited_header(out, field, bytes.len());
    out.extend_from_slice(bytes);
}

fn put_fixed64(out: &mut Vec<u8>, field: u32, value: u64) {
    put_key(out, field, FIXED64);
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_uint(out: &mut Vec<u8>, field: u32, value: u64) {
    put_key(out, field, VARINT);
    put_varint(out, value);
}

/// A proto3 string or bytes field: left out when empty.
fn string_len(field: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        delimited_len(field, s.len())
    }
}

fn put_string(out: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        put_bytes(out, field, s.as_bytes());
    }
}

/// A proto3 integer field: left out when zero.
fn uint_len(field: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(field) + varint_len(value)
    }
}

fn put_uint_nonzero(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        put_uint(out, field, value);
    }
}

/// An `AnyValue` holding a scalar or string (a oneof: written even when zero or empty).
fn any_value_len(value: &Value) -> usize {
    match value {
        Value::Str(_) | Value::Short(_) => delimited_len(1, value.as_str().map_or(0, str::len)),
        Value::Bool(_) => 2,
        Value::I64(v) => 1 + varint_len(*v as u64),
        Value::F64(_) => 9,
    }
}

fn put_any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Str(s) => put_bytes(out, 1, s.as_bytes()),
        Value::Short(s) => put_bytes(out, 1, s.as_str().as_bytes()),
        Value::Bool(v) => put_uint(out, 2, u64::from(*v)),
        // int64 is the two's complement as a varint.
        Value::I64(v) => put_uint(out, 3, *v as u64),
        Value::F64(v) => put_fixed64(out, 4, v.to_bits()),
    }
}

/// A `KeyValue`'s content.
fn key_value_len(key: &str, value: &Value) -> usize {
    string_len(1, key) + delimited_len(2, any_value_len(value))
}

fn put_key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    put_delimited_header(out, field, key_value_len(key, value));
    put_string(out, 1, key);
    put_delimited_header(out, 2, any_value_len(value));
    put_any_value(out, value);
}

fn attribute_len(field: u32, attribute: &Attribute) -> usize {
    delimited_len(field, key_value_len(attribute.key, &attribute.value))
}

fn int(value: u64) -> Value {
    Value::I64(i64::try_from(value).unwrap_or(i64::MAX))
}

/// The five `KeyValue`s summarizing one child operation, as (key, value).
fn unsent_fields(unsent: &Unsent) -> [(&'static str, Value); 5] {
    [
        ("name", Value::string(&unsent.name)),
        ("kind", int(unsent.kind as u64)),
        ("count", int(unsent.count)),
        ("total_ns", int(unsent.total_ns)),
        ("self_ns", int(unsent.self_ns)),
    ]
}

/// The content of one operation's `KeyValueList`.
fn unsent_list_len(fields: &[(&'static str, Value); 5]) -> usize {
    fields
        .iter()
        .map(|(key, value)| delimited_len(1, key_value_len(key, value)))
        .sum()
}

/// The content of the `ArrayValue` (one `AnyValue` holding a `KeyValueList` per operation).
fn unsent_array_len(operations: &[[(&'static str, Value); 5]]) -> usize {
    operations
        .iter()
        .map(|fields| delimited_len(1, delimited_len(6, unsent_list_len(fields))))
        .sum()
}

/// The content of the `headlight.unsent_children` `KeyValue`.
fn unsent_children_len(operations: &[[(&'static str, Value); 5]]) -> usize {
    string_len(1, UNSENT_CHILDREN)
        + delimited_len(2, delimited_len(5, unsent_array_len(operations)))
}

fn put_unsent_children(out: &mut Vec<u8>, field: u32, operations: &[[(&'static str, Value); 5]]) {
    let array = unsent_array_len(operations);
    put_delimited_header(out, field, unsent_children_len(operations));
    put_string(out, 1, UNSENT_CHILDREN);
    put_delimited_header(out, 2, delimited_len(5, array));
    put_delimited_header(out, 5, array);
    for fields in operations {
        let list = unsent_list_len(fields);
        put_delimited_header(out, 1, delimited_len(6, list));
        put_delimited_header(out, 6, list);
        for (key, value) in fields {
            put_key_value(out, 1, key, value);
        }
    }
}

/// The OTLP status: none when unset.
fn status(status: &Status) -> Option<(&str, u64)> {
    match status {
        Status::Unset => None,
        Status::Ok => Some(("", 1)),
        Status::Error(message) => Some((message.as_deref().unwrap_or_default(), 2)),
    }
}

fn status_len((message, code): (&str, u64)) -> usize {
    string_len(2, message) + uint_len(3, code)
}

fn event_len(event: &crate::record::EventRecord) -> usize {
    let time = ids::unix_ns(event.time);
    let attributes: usize = event.attributes.iter().map(|a| attribute_len(3, a)).sum();
    (if time == 0 { 0 } else { key_len(1) + 8 }) + string_len(2, &event.name) + attributes
}

/// Appends one span to `out` as an entry of `ScopeSpans.spans` (field 2: key, length, the
/// `Span`); `summary` is set when its children were not sent. The record is left as it is (the
/// pool drops its values).
pub(crate) fn span(out: &mut Vec<u8>, record: &SpanRecord, summary: Option<&(u64, Vec<Unsent>)>) {
    let start = record.start_ns();
    let end = record.end_ns();
    let trace_state = record.trace_state.as_deref().unwrap_or_default();
    let name = record.name.as_str();
    let status = status(&record.status);
    let self_ns = summary.map(|(self_ns, _)| int(*self_ns));
    let operations: Vec<[(&'static str, Value); 5]> = summary
        .map(|(_, unsent)| unsent.iter().map(unsent_fields).collect())
        .unwrap_or_default();
    let mut flags = FLAG_SAMPLED;
    if record.parent_span_id.is_some() {
        flags |= FLAG_HAS_IS_REMOTE;
        if record.remote_parent {
            flags |= FLAG_IS_REMOTE;
        }
    }

    let mut len = delimited_len(1, record.trace_id.len())
        + delimited_len(2, record.span_id.len())
        + string_len(3, trace_state)
        + record
            .parent_span_id
            .map_or(0, |p| delimited_len(4, p.len()))
        + string_len(5, name)
        + uint_len(6, record.kind as u64)
        + if start == 0 { 0 } else { key_len(7) + 8 }
        + if end == 0 { 0 } else { key_len(8) + 8 }
        + uint_len(10, u64::from(record.dropped_attributes))
        + uint_len(12, u64::from(record.dropped_events))
        + status.map_or(0, |s| delimited_len(15, status_len(s)))
        + key_len(16)
        + 4;
    len += record
        .attributes
        .iter()
        .map(|a| attribute_len(9, a))
        .sum::<usize>();
    if let Some(self_ns) = &self_ns {
        len += delimited_len(9, key_value_len(SELF_NS, self_ns));
        len += delimited_len(9, unsent_children_len(&operations));
    }
    len += record
        .events
        .iter()
        .map(|e| delimited_len(11, event_len(e)))
        .sum::<usize>();

    out.reserve(delimited_len(2, len));
    let before = out.len();
    put_delimited_header(out, 2, len);
    let body = out.len();
    put_bytes(out, 1, &record.trace_id);
    put_bytes(out, 2, &record.span_id);
    put_string(out, 3, trace_state);
    if let Some(parent) = &record.parent_span_id {
        put_bytes(out, 4, parent);
    }
    put_string(out, 5, name);
    put_uint_nonzero(out, 6, record.kind as u64);
    if start != 0 {
        put_fixed64(out, 7, start);
    }
    if end != 0 {
        put_fixed64(out, 8, end);
    }
    for attribute in &record.attributes {
        put_key_value(out, 9, attribute.key, &attribute.value);
    }
    if let Some(self_ns) = &self_ns {
        put_key_value(out, 9, SELF_NS, self_ns);
        put_unsent_children(out, 9, &operations);
    }
    put_uint_nonzero(out, 10, u64::from(record.dropped_attributes));
    for event in &record.events {
        put_delimited_header(out, 11, event_len(event));
        let time = ids::unix_ns(event.time);
        if time != 0 {
            put_fixed64(out, 1, time);
        }
        put_string(out, 2, &event.name);
        for attribute in &event.attributes {
            put_key_value(out, 3, attribute.key, &attribute.value);
        }
    }
    put_uint_nonzero(out, 12, u64::from(record.dropped_events));
    if let Some(status) = status {
        put_delimited_header(out, 15, status_len(status));
        put_string(out, 2, status.0);
        put_uint_nonzero(out, 3, status.1);
    }
    put_key(out, 16, FIXED32);
    out.extend_from_slice(&flags.to_le_bytes());
    debug_assert_eq!(
        out.len() - body,
        len,
        "computed and written span lengths agree"
    );
    debug_assert_eq!(out.len() - before, delimited_len(2, len));
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use headlight_proto::otlp::collector::ExportTraceServiceRequest;
    use headlight_proto::otlp::common::{AnyValue, ArrayValue, KeyValue, KeyValueList, any_value};
    use headlight_proto::otlp::trace::{Span, Status as OtlpStatus, span};
    use prost::Message as _;

    use super::*;
    use crate::export::otlp;
    use crate::record::{EventRecord, Kind, Name};
    use crate::stats::AgentStats;

    /// The reference: the same span through the generated types (the conversion this module
    /// replaced).
    fn typed(record: &SpanRecord, summary: Option<&(u64, Vec<Unsent>)>) -> Span {
        fn value(value: &Value) -> AnyValue {
            let value = match value {
                Value::Str(_) | Value::Short(_) => {
                    any_value::Value::StringValue(value.as_str().unwrap_or_default().to_owned())
                }
                Value::I64(v) => any_value::Value::IntValue(*v),
                Value::F64(v) => any_value::Value::DoubleValue(*v),
                Value::Bool(v) => any_value::Value::BoolValue(*v),
            };
            AnyValue { value: Some(value) }
        }
        fn key_value(key: &str, v: AnyValue) -> KeyValue {
            KeyValue {
                key_strindex: 0,
                key: key.to_owned(),
                value: Some(v),
            }
        }
        let attribute = |a: &Attribute| key_value(a.key, value(&a.value));
        let mut attributes: Vec<KeyValue> = record.attributes.iter().map(attribute).collect();
        if let Some((self_ns, unsent)) = summary {
            attributes.push(key_value(SELF_NS, value(&int(*self_ns))));
            let values = unsent
                .iter()
                .map(|u| AnyValue {
                    value: Some(any_value::Value::KvlistValue(KeyValueList {
                        values: unsent_fields(u)
                            .iter()
                            .map(|(k, v)| key_value(k, value(v)))
                            .collect(),
                    })),
                })
                .collect();
            attributes.push(key_value(
                UNSENT_CHILDREN,
                AnyValue {
                    value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
                },
            ));
        }
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
            trace_state: record.trace_state.as_deref().unwrap_or_default().to_owned(),
            parent_span_id: record
                .parent_span_id
                .map(|p| p.to_vec())
                .unwrap_or_default(),
            flags,
            name: record.name.as_str().to_owned(),
            kind: record.kind as i32,
            start_time_unix_nano: record.start_ns(),
            end_time_unix_nano: record.end_ns(),
            attributes,
            dropped_attributes_count: record.dropped_attributes,
            events: record
                .events
                .iter()
                .map(|e| span::Event {
                    time_unix_nano: ids::unix_ns(e.time),
                    name: e.name.to_string(),
                    attributes: e.attributes.iter().map(attribute).collect(),
                    dropped_attributes_count: 0,
                })
                .collect(),
            dropped_events_count: record.dropped_events,
            links: Vec::new(),
            dropped_links_count: 0,
            status: status(&record.status).map(|(message, code)| OtlpStatus {
                message: message.to_owned(),
                code: code as i32,
            }),
        }
    }

    fn at(ns: u64) -> std::time::SystemTime {
        UNIX_EPOCH + Duration::from_nanos(ns)
    }

    /// A record with, for a summarized transaction, its self time and unsent children.
    type Case = (SpanRecord, Option<(u64, Vec<Unsent>)>);

    fn records() -> Vec<Case> {
        let attribute = |key, value| Attribute { key, value };
        let mut plain = SpanRecord::new("SELECT users", at(1_700_000_000_000_000_000));
        plain.trace_id = [7; 16];
        plain.span_id = [8; 8];
        plain.parent_span_id = Some([9; 8]);
        plain.end = at(1_700_000_000_000_123_456);
        plain.kind = Kind::Client;
        plain.attributes.extend([
            attribute("db.system.name", Value::string("sqlite")),
            attribute("db.query.text", Value::string(&"SELECT x ".repeat(40))),
            attribute("user.id", Value::I64(-42)),
            attribute("big", Value::I64(i64::MAX)),
            attribute("ratio", Value::F64(0.25)),
            attribute("cached", Value::Bool(false)),
            attribute("hit", Value::Bool(true)),
            attribute("empty", Value::string("")),
            attribute("", Value::I64(0)),
        ]);
        let mut rich = SpanRecord::new("HTTP request", at(1));
        rich.name = Name::Owned("GET /users/{id} with a name longer than thirty bytes".into());
        rich.trace_id = [1; 16];
        rich.span_id = [2; 8];
        rich.parent_span_id = Some([3; 8]);
        rich.remote_parent = true;
        rich.trace_state = Some(Arc::from("vendor=value"));
        rich.kind = Kind::Server;
        rich.end = at(300);
        rich.status = Status::Error(Some("boom".into()));
        rich.dropped_attributes = 3;
        rich.dropped_events = 200;
        rich.attributes
            .push(attribute("http.route", Value::string("/users/{id}")));
        rich.events.push(EventRecord {
            time: at(150),
            name: Cow::Borrowed("cache miss"),
            attributes: [attribute("key", Value::string("users:7"))]
                .into_iter()
                .collect(),
        });
        rich.events.push(EventRecord {
            time: UNIX_EPOCH,
            name: Cow::Borrowed(""),
            attributes: Default::default(),
        });
        let mut ok = SpanRecord::new("", UNIX_EPOCH);
        ok.trace_id = [4; 16];
        ok.span_id = [5; 8];
        ok.status = Status::Ok;
        let mut failed = ok.clone();
        failed.status = Status::Error(None);
        let unsent = |name: &str, kind, count| Unsent {
            name: name.to_owned(),
            kind,
            count,
            total_ns: count * 1_000,
            self_ns: count * 900,
        };
        let summary = (
            12_345,
            vec![
                unsent("SELECT users", Kind::Client, 3),
                unsent(
                    &"a long operation name ".repeat(10),
                    Kind::Internal,
                    1 << 40,
                ),
            ],
        );
        vec![
            (plain.clone(), None),
            (rich.clone(), None),
            (ok, None),
            (failed, None),
            (plain, Some(summary.clone())),
            (rich, Some((0, Vec::new()))),
        ]
    }

    #[test]
    fn matches_the_generated_types() {
        for (record, summary) in records() {
            let mut bytes = Vec::new();
            span(&mut bytes, &record, summary.as_ref());
            // `bytes` is one `ScopeSpans.spans` entry: decode it as a whole request's innermost
            // field by wrapping it the way `otlp::request` does.
            let request = otlp::request(&[], &AgentStats::default(), &bytes);
            let decoded = ExportTraceServiceRequest::decode(request.as_slice()).unwrap();
            let spans = &decoded.resource_spans[0].scope_spans[0].spans;
            assert_eq!(spans, &[typed(&record, summary.as_ref())]);
        }
    }

    #[test]
    fn varints_have_their_protobuf_length() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value), "{value}");
            assert_eq!(
                prost::encoding::decode_varint(&mut out.as_slice()).unwrap(),
                value
            );
        }
    }
}
