//! The embedded store's spans in groups: the spans of one trace stored by one flush, in one row.
//!
//! A row per span, keyed by (trace, span), put each stored span at a random place of a large
//! B-tree: after the transaction index, those inserts and the pages they dirtied were most of
//! what a flush cost. The spans of a trace are stored together (a transaction's are kept or
//! not as a whole), so a flush now appends a row per trace, and only a small (trace id →
//! row) index is written at random. Spans are encoded in protobuf's wire format, attributes as
//! received (JSON only when shown). A span stored twice (a retried export, a replayed log)
//! may sit in two groups; [`decode_into`] keeps the first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::ingest::wire::{self, Value};
use crate::model::{Attributes, Span, SpanId, SpanKind, TraceId};

/// The format's first byte; then each span as field 1, a message of the fields below.
const FORMAT: u8 = 1;
const SPAN: u32 = 1;
const SPAN_ID: u32 = 1;
const PARENT: u32 = 2;
const SERVICE: u32 = 3;
const ENVIRONMENT: u32 = 4;
const VERSION: u32 = 5;
const NAME: u32 = 6;
const KIND: u32 = 7;
const START: u32 = 8;
const END: u32 = 9;
const ERROR: u32 = 10;
const TRANSACTION: u32 = 11;
/// Attributes as received ([`Attributes::Otlp`]): the encoded OTLP `Span` they came in, how
/// many of them are kept and the value length they are cut to when shown.
const OTLP_SPAN: u32 = 12;
const MAX_VALUE_BYTES: u32 = 13;
const MAX_ATTRIBUTES: u32 = 15;
/// Attributes already JSON (spans read back from a store and written again).
const JSON_ATTRIBUTES: u32 = 14;

/// The spans of one trace, ready to write.
#[derive(Debug)]
pub struct Group {
    /// The trace.
    pub trace_id: TraceId,
    /// The latest end among the spans, unix ns (what retention compares).
    pub end_ns: i64,
    /// Spans in `data`.
    pub count: usize,
    /// The encoded spans.
    pub data: Vec<u8>,
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    wire::put_varint(out, u64::from(field) << 3);
    wire::put_varint(out, value);
}

fn encode_span(span: &Span, out: &mut Vec<u8>) {
    out.clear();
    wire::put_bytes(out, SPAN_ID, &span.span_id);
    if let Some(parent) = &span.parent_span_id {
        wire::put_bytes(out, PARENT, parent);
    }
    wire::put_bytes(out, SERVICE, span.service.as_bytes());
    wire::put_bytes(out, ENVIRONMENT, span.environment.as_bytes());
    wire::put_bytes(out, VERSION, span.version.as_bytes());
    wire::put_bytes(out, NAME, span.name.as_bytes());
    wire::put_bytes(out, KIND, span.kind.as_str().as_bytes());
    put_varint_field(out, START, span.start_ns as u64);
    put_varint_field(out, END, span.end_ns as u64);
    put_varint_field(out, ERROR, u64::from(span.error));
    if let Some(transaction) = &span.transaction {
        wire::put_bytes(out, TRANSACTION, transaction.as_bytes());
    }
    match &span.attributes {
        Attributes::Otlp {
            span,
            max_attributes,
            max_value_bytes,
        } => {
            wire::put_bytes(out, OTLP_SPAN, span);
            put_varint_field(out, MAX_ATTRIBUTES, *max_attributes as u64);
            put_varint_field(out, MAX_VALUE_BYTES, *max_value_bytes as u64);
        }
        Attributes::Json(map) => {
            // A map of JSON values always serializes.
            let json = serde_json::to_vec(map).unwrap_or_default();
            wire::put_bytes(out, JSON_ATTRIBUTES, &json);
        }
    }
}

/// Groups spans by trace, in the order the traces first appear.
pub fn groups(spans: &[Span]) -> Vec<Group> {
    let mut first: HashMap<TraceId, usize> = HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        first.entry(s.trace_id).or_insert(i);
    }
    // By trace, each trace where it first appears, spans in their order.
    let mut order: Vec<(usize, &Span)> = spans.iter().enumerate().collect();
    order.sort_by_key(|(i, s)| (first[&s.trace_id], *i));
    let mut message = Vec::new();
    order
        .chunk_by(|a, b| a.1.trace_id == b.1.trace_id)
        .map(|group| {
            let mut data = vec![FORMAT];
            for (_, span) in group {
                encode_span(span, &mut message);
                wire::put_bytes(&mut data, SPAN, &message);
            }
            Group {
                trace_id: group[0].1.trace_id,
                end_ns: group.iter().map(|(_, s)| s.end_ns).max().unwrap_or(0),
                count: group.len(),
                data,
            }
        })
        .collect()
}

fn str_of(v: Value<'_>, field: u32) -> Result<&str, String> {
    v.str(field).map_err(|e| e.to_string())
}

fn decode_span(trace_id: TraceId, message: &[u8]) -> Result<Span, String> {
    let mut span = Span {
        trace_id,
        span_id: [0; 8],
        parent_span_id: None,
        service: Arc::from(""),
        environment: Arc::from(""),
        version: Arc::from(""),
        name: Arc::from(""),
        kind: SpanKind::Unspecified,
        start_ns: 0,
        end_ns: 0,
        error: false,
        transaction: None,
        attributes: Attributes::default(),
        reported_self_ns: None,
        unsent_children: Vec::new(),
    };
    let mut otlp: Option<&[u8]> = None;
    let mut max_value_bytes = usize::MAX;
    let mut max_attributes = usize::MAX;
    let id = |v: Value<'_>, field| -> Result<[u8; 8], String> {
        let bytes = v.bytes(field).map_err(|e| e.to_string())?;
        bytes
            .try_into()
            .map_err(|_| format!("an id of {} bytes", bytes.len()))
    };
    let number = |v: Value<'_>, field| v.varint(field).map_err(|e| e.to_string());
    for field in wire::fields(message) {
        let (field, v) = field.map_err(|e| e.to_string())?;
        match field {
            SPAN_ID => span.span_id = id(v, field)?,
            PARENT => span.parent_span_id = Some(id(v, field)?),
            SERVICE => span.service = Arc::from(str_of(v, field)?),
            ENVIRONMENT => span.environment = Arc::from(str_of(v, field)?),
            VERSION => span.version = Arc::from(str_of(v, field)?),
            NAME => span.name = Arc::from(str_of(v, field)?),
            KIND => span.kind = SpanKind::parse(str_of(v, field)?).unwrap_or(SpanKind::Unspecified),
            START => span.start_ns = number(v, field)? as i64,
            END => span.end_ns = number(v, field)? as i64,
            ERROR => span.error = number(v, field)? != 0,
            TRANSACTION => span.transaction = Some(str_of(v, field)?.into()),
            OTLP_SPAN => otlp = Some(v.bytes(field).map_err(|e| e.to_string())?),
            MAX_ATTRIBUTES => {
                max_attributes = usize::try_from(number(v, field)?).unwrap_or(usize::MAX);
            }
            MAX_VALUE_BYTES => {
                max_value_bytes = usize::try_from(number(v, field)?).unwrap_or(usize::MAX);
            }
            JSON_ATTRIBUTES => {
                span.attributes = match serde_json::from_str(str_of(v, field)?) {
                    Ok(serde_json::Value::Object(map)) => Attributes::Json(map),
                    _ => return Err("unreadable attributes".to_owned()),
                };
            }
            _ => {}
        }
    }
    if let Some(encoded) = otlp {
        span.attributes = Attributes::Otlp {
            span: bytes::Bytes::copy_from_slice(encoded),
            max_attributes,
            max_value_bytes,
        };
    }
    Ok(span)
}

/// Adds the spans of a stored group to `out`, except those whose id is in `seen` (which gets
/// the ids added).
pub fn decode_into(
    trace_id: TraceId,
    data: &[u8],
    seen: &mut HashSet<SpanId>,
    out: &mut Vec<Span>,
) -> Result<(), String> {
    let Some((&FORMAT, spans)) = data.split_first() else {
        return Err(format!("unknown format ({} bytes)", data.len()));
    };
    for field in wire::fields(spans) {
        let (field, v) = field.map_err(|e| e.to_string())?;
        if field != SPAN {
            continue;
        }
        let span = decode_span(trace_id, v.bytes(field).map_err(|e| e.to_string())?)?;
        if seen.insert(span.span_id) {
            out.push(span);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace: u8, id: u8, parent: Option<u8>, end_ns: i64) -> Span {
        let mut attributes = serde_json::Map::new();
        attributes.insert("http.route".into(), serde_json::json!("/a/{id}"));
        attributes.insert("n".into(), serde_json::json!(id));
        Span {
            trace_id: [trace; 16],
            span_id: [id; 8],
            parent_span_id: parent.map(|p| [p; 8]),
            service: Arc::from("checkout"),
            environment: Arc::from("prod"),
            version: Arc::from("1.2"),
            name: format!("op {id}").into(),
            kind: if parent.is_none() {
                SpanKind::Server
            } else {
                SpanKind::Client
            },
            start_ns: end_ns - 1000,
            end_ns,
            error: id == 3,
            transaction: parent.is_none().then(|| "GET /a".into()),
            attributes: Attributes::Json(attributes),
            reported_self_ns: None,
            unsent_children: Vec::new(),
        }
    }

    #[test]
    fn spans_are_grouped_by_trace_and_read_back_whole() {
        let spans = vec![
            span(1, 1, None, 500),
            span(2, 2, None, 900),
            span(1, 3, Some(1), 450),
        ];
        let groups = groups(&spans);
        let shape: Vec<(u8, i64, usize)> = groups
            .iter()
            .map(|g| (g.trace_id[0], g.end_ns, g.count))
            .collect();
        assert_eq!(shape, vec![(1, 500, 2), (2, 900, 1)]);
        let mut read = Vec::new();
        decode_into([1; 16], &groups[0].data, &mut HashSet::new(), &mut read).unwrap();
        assert_eq!(read, vec![spans[0].clone(), spans[2].clone()]);
    }

    #[test]
    fn a_span_stored_twice_is_read_once() {
        let first = groups(&[span(1, 1, None, 500)]);
        let again = groups(&[span(1, 1, None, 500), span(1, 4, Some(1), 400)]);
        let (mut seen, mut read) = (HashSet::new(), Vec::new());
        decode_into([1; 16], &first[0].data, &mut seen, &mut read).unwrap();
        decode_into([1; 16], &again[0].data, &mut seen, &mut read).unwrap();
        let ids: Vec<u8> = read.iter().map(|s| s.span_id[0]).collect();
        assert_eq!(ids, vec![1, 4]);
    }

    #[test]
    fn a_damaged_group_is_an_error() {
        let (mut seen, mut read) = (HashSet::new(), Vec::new());
        let good = groups(&[span(1, 1, None, 500)]).remove(0).data;
        assert!(decode_into([1; 16], &good[..good.len() - 1], &mut seen, &mut read).is_err());
        assert!(decode_into([1; 16], b"not a group", &mut seen, &mut read).is_err());
        assert!(decode_into([1; 16], &[], &mut seen, &mut read).is_err());
        assert!(read.is_empty());
    }
}
