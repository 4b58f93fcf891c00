//! What the agent records of a span, and how `tracing` fields become OTLP attributes.
//!
//! Field names are `&'static str` in `tracing`, so keys never allocate; only string values do.

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use tracing::field::{Field, Visit};

use crate::ids;

/// OTLP span kinds (the protobuf enum values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub(crate) enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

impl Kind {
    fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        [
            ("server", Self::Server),
            ("client", Self::Client),
            ("internal", Self::Internal),
            ("producer", Self::Producer),
            ("consumer", Self::Consumer),
        ]
        .into_iter()
        .find_map(|(name, kind)| value.eq_ignore_ascii_case(name).then_some(kind))
    }

    /// A transaction is a span of kind server or consumer, or a local root (design.md §3).
    pub(crate) fn starts_transaction(self) -> bool {
        matches!(self, Self::Server | Self::Consumer)
    }
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    /// A string of at most [`ShortStr::CAPACITY`] bytes, kept inline: most attribute values
    /// (methods, routes, paths, addresses, ids, flags) fit, and then recording them allocates
    /// nothing.
    Short(ShortStr),
    I64(i64),
    F64(f64),
    Bool(bool),
}

impl Value {
    /// Returns a string value, inline when short.
    pub(crate) fn string(s: &str) -> Self {
        ShortStr::new(s).map_or_else(|| Self::Str(s.to_owned()), Self::Short)
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            Self::Short(s) => Some(s.as_str()),
            _ => None,
        }
    }
}

// The inline capacity is chosen so that it costs nothing: a `Value` is as large as with a `String`.
const _: () = assert!(size_of::<Value>() == 32);

/// A short string stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShortStr {
    len: u8,
    bytes: [u8; ShortStr::CAPACITY],
}

impl ShortStr {
    /// 30 bytes: with its length byte and the enum's tag, a `Value` stays 32 bytes, as with a
    /// `String`.
    pub(crate) const CAPACITY: usize = 30;

    fn new(s: &str) -> Option<Self> {
        if s.len() > Self::CAPACITY {
            return None;
        }
        let mut bytes = [0u8; Self::CAPACITY];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(Self {
            len: s.len() as u8,
            bytes,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        // Copied from a `&str` at a char boundary (its whole length), so always valid.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A span's name: the callsite's, or set by `otel.name` (inline when short).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Name {
    Static(&'static str),
    Short(ShortStr),
    Owned(String),
}

impl Name {
    fn new(s: &str) -> Self {
        ShortStr::new(s).map_or_else(|| Self::Owned(s.to_owned()), Self::Short)
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Static(s) => s,
            Self::Short(s) => s.as_str(),
            Self::Owned(s) => s,
        }
    }
}

/// A span's attributes: four inline before the first allocation.
pub(crate) type Attributes = smallvec::SmallVec<[Attribute; 4]>;

/// One attribute: a `tracing` field name and its value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Attribute {
    pub(crate) key: &'static str,
    pub(crate) value: Value,
}

/// The span's status.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Status {
    #[default]
    Unset,
    Ok,
    Error(Option<String>),
}

/// An event inside a span.
#[derive(Debug, Clone)]
pub(crate) struct EventRecord {
    pub(crate) time: SystemTime,
    pub(crate) name: Cow<'static, str>,
    pub(crate) attributes: smallvec::SmallVec<[Attribute; 2]>,
}

/// Events kept per span; beyond, they are counted in `dropped_events`.
pub(crate) const MAX_EVENTS: usize = 128;
/// Attributes kept per span or event; beyond, they are counted in `dropped_attributes`.
pub(crate) const MAX_ATTRIBUTES: usize = 128;

/// A span as recorded, ready to be sent once it has ended.
#[derive(Debug, Clone)]
pub(crate) struct SpanRecord {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) parent_span_id: Option<[u8; 8]>,
    /// The parent lives in another process (came in a `traceparent`).
    pub(crate) remote_parent: bool,
    /// The W3C `tracestate` that came with the trace, passed on unchanged.
    pub(crate) trace_state: Option<std::sync::Arc<str>>,
    pub(crate) name: Name,
    pub(crate) kind: Kind,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    pub(crate) status: Status,
    pub(crate) attributes: Attributes,
    pub(crate) dropped_attributes: u32,
    pub(crate) events: Vec<EventRecord>,
    pub(crate) dropped_events: u32,
}

impl SpanRecord {
    pub(crate) fn new(name: &'static str, start: SystemTime) -> Self {
        Self {
            trace_id: [0; 16],
            span_id: [0; 8],
            parent_span_id: None,
            remote_parent: false,
            trace_state: None,
            name: Name::Static(name),
            kind: Kind::Internal,
            start,
            end: start,
            status: Status::Unset,
            attributes: Attributes::new(),
            dropped_attributes: 0,
            events: Vec::new(),
            dropped_events: 0,
        }
    }

    /// Makes a recycled record as new, keeping the capacity of its attribute and event lists.
    pub(crate) fn reset(&mut self, name: &'static str, start: SystemTime) {
        self.trace_id = [0; 16];
        self.span_id = [0; 8];
        self.parent_span_id = None;
        self.remote_parent = false;
        self.trace_state = None;
        self.name = Name::Static(name);
        self.kind = Kind::Internal;
        self.start = start;
        self.end = start;
        self.status = Status::Unset;
        self.attributes.clear();
        self.dropped_attributes = 0;
        self.events.clear();
        self.dropped_events = 0;
    }

    /// Drops the record's values, keeping the capacity of its attribute and event lists.
    pub(crate) fn release_values(&mut self) {
        self.trace_state = None;
        self.name = Name::Static("");
        self.status = Status::Unset;
        self.attributes.clear();
        self.events.clear();
    }

    /// Whether the record's lists stayed small enough to be worth recycling.
    pub(crate) fn is_small(&self) -> bool {
        self.attributes.capacity() <= 16 && self.events.capacity() <= 8
    }

    /// The start in unix nanoseconds.
    pub(crate) fn start_ns(&self) -> u64 {
        ids::unix_ns(self.start)
    }

    /// The end in unix nanoseconds.
    pub(crate) fn end_ns(&self) -> u64 {
        ids::unix_ns(self.end)
    }

    pub(crate) fn duration_ns(&self) -> u64 {
        self.end_ns().saturating_sub(self.start_ns())
    }

    pub(crate) fn is_error(&self) -> bool {
        if matches!(self.status, Status::Error(_)) {
            return true;
        }
        // The collector's rule: a server span answering HTTP ≥ 500 is an error.
        self.kind == Kind::Server
            && self
                .attribute_i64("http.response.status_code")
                .is_some_and(|s| s >= 500)
    }

    pub(crate) fn attribute_str(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .rev()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_str())
    }

    fn attribute_i64(&self, key: &str) -> Option<i64> {
        self.attributes.iter().rev().find_map(|a| match a.value {
            Value::I64(v) if a.key == key => Some(v),
            Value::Str(_) | Value::Short(_) if a.key == key => a.value.as_str()?.parse().ok(),
            _ => None,
        })
    }

    /// The transaction name of design.md §3: `"{method} {route}"`, else
    /// `rpc.service/rpc.method`, else the span name.
    pub(crate) fn transaction_name(&self) -> Cow<'_, str> {
        let method = self
            .attribute_str("http.request.method")
            .or_else(|| self.attribute_str("http.method"));
        if let (Some(method), Some(route)) = (method, self.attribute_str("http.route")) {
            return Cow::Owned(format!("{method} {route}"));
        }
        if let (Some(service), Some(method)) = (
            self.attribute_str("rpc.service"),
            self.attribute_str("rpc.method"),
        ) {
            return Cow::Owned(format!("{service}/{method}"));
        }
        Cow::Borrowed(self.name.as_str())
    }
}

/// Visits span fields: plain fields become attributes; `otel.*`, `error`, `traceparent` and
/// `tracestate` steer the span instead.
pub(crate) struct SpanVisitor<'a> {
    pub(crate) record: &'a mut SpanRecord,
    /// The record holds no attribute yet and the fields all come from one callsite (a new
    /// span): each field is appended without looking for an earlier value of the same name.
    /// A callsite declaring a name twice then sends it twice, as `tracing-opentelemetry` does.
    pub(crate) fresh: bool,
    pub(crate) traceparent: Option<String>,
    pub(crate) tracestate: Option<String>,
}

impl SpanVisitor<'_> {
    fn special(&mut self, field: &Field, value: &str) -> bool {
        let name = field.name();
        // Most fields are plain attributes: one byte tells.
        if !matches!(name.as_bytes().first(), Some(b'o' | b'e' | b't')) {
            return false;
        }
        match name {
            "otel.name" => self.record.name = Name::new(value),
            "otel.kind" => {
                if let Some(kind) = Kind::parse(value) {
                    self.record.kind = kind;
                }
            }
            "otel.status_code" => {
                let code = value.trim();
                if code.eq_ignore_ascii_case("error") {
                    if !matches!(self.record.status, Status::Error(_)) {
                        self.record.status = Status::Error(None);
                    }
                } else if code.eq_ignore_ascii_case("ok") {
                    self.record.status = Status::Ok;
                }
            }
            "otel.status_message" | "otel.status_description" => {
                self.record.status = Status::Error(Some(value.to_owned()));
            }
            "error" => {
                self.record.status = Status::Error(Some(value.to_owned()));
            }
            "traceparent" => self.traceparent = Some(value.to_owned()),
            "tracestate" => self.tracestate = Some(value.to_owned()),
            _ => return false,
        }
        true
    }

    fn push(&mut self, field: &Field, value: Value) {
        if self.fresh {
            let attributes = &mut self.record.attributes;
            if attributes.len() < MAX_ATTRIBUTES {
                attributes.push(Attribute {
                    key: field.name(),
                    value,
                });
            } else {
                self.record.dropped_attributes = self.record.dropped_attributes.saturating_add(1);
            }
            return;
        }
        push_attribute(
            &mut self.record.attributes,
            &mut self.record.dropped_attributes,
            field,
            value,
        );
    }
}

fn push_attribute<A: smallvec::Array<Item = Attribute>>(
    attributes: &mut smallvec::SmallVec<A>,
    dropped: &mut u32,
    field: &Field,
    value: Value,
) {
    let key = field.name();
    // A field recorded again replaces its value (same `&'static str` as a rule, so the pointer
    // comparison settles most cases without comparing bytes).
    if let Some(existing) = attributes
        .iter_mut()
        .find(|a| std::ptr::eq(a.key, key) || a.key == key)
    {
        existing.value = value;
        return;
    }
    if attributes.len() >= MAX_ATTRIBUTES {
        *dropped = dropped.saturating_add(1);
        return;
    }
    attributes.push(Attribute { key, value });
}

impl Visit for SpanVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.special(field, value) {
            self.push(field, Value::string(value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if !self.special(field, &text) {
            self.push(field, Value::Str(text));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::I64(i64::try_from(value).unwrap_or(i64::MAX)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let message = value.to_string();
        self.record.status = Status::Error(Some(message.clone()));
        if field.name() != "error" {
            self.push(field, Value::Str(message));
        }
    }
}

/// Visits event fields: `message` names the event, `error` marks the span as failed.
pub(crate) struct EventVisitor<'a> {
    pub(crate) event: &'a mut EventRecord,
    pub(crate) dropped_attributes: u32,
    pub(crate) error: Option<String>,
}

impl EventVisitor<'_> {
    fn value(&mut self, field: &Field, value: Value) {
        push_attribute(
            &mut self.event.attributes,
            &mut self.dropped_attributes,
            field,
            value,
        );
    }
}

impl Visit for EventVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.event.name = Cow::Owned(value.to_owned()),
            name => {
                if name == "error" {
                    self.error = Some(value.to_owned());
                }
                self.value(field, Value::string(value));
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.record_str(field, &text);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.value(field, Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.value(field, Value::I64(i64::try_from(value).unwrap_or(i64::MAX)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.value(field, Value::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.value(field, Value::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let message = value.to_string();
        self.error = Some(message.clone());
        self.value(field, Value::Str(message));
    }
}
