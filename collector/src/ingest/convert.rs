//! OTLP trace data → validated [`Span`]s, with a count and a reason for every rejected span.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use headlight_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};
use headlight_proto::otlp::resource::Resource;
use prost::Message as _;

use super::agent;
use super::wire::{self, WireError};
use crate::aggregate::FastMap;
use crate::aggregate::agent_drops::DropReport;
use crate::config::LimitsConfig;
use crate::model::{self, Attributes, Span, SpanKind};

/// Why a span was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RejectReason {
    /// Trace id missing, not 16 bytes, or all zero.
    InvalidTraceId,
    /// Span id missing, not 8 bytes, or all zero.
    InvalidSpanId,
    /// End time before start time.
    EndBeforeStart,
    /// Longer than `limits.max_span_duration_ms`.
    AbsurdDuration,
    /// Ends before the raw retention horizon.
    OutsideRetention,
    /// Ends more than `limits.max_future_skew_ms` in the future.
    InFuture,
}

impl crate::metrics::reasons::Reason for RejectReason {
    const ALL: &'static [Self] = &[
        Self::InvalidTraceId,
        Self::InvalidSpanId,
        Self::EndBeforeStart,
        Self::AbsurdDuration,
        Self::OutsideRetention,
        Self::InFuture,
    ];

    /// The `reason` label of `headlight_spans_rejected_total`.
    fn label(self) -> &'static str {
        match self {
            Self::InvalidTraceId => "invalid_trace_id",
            Self::InvalidSpanId => "invalid_span_id",
            Self::EndBeforeStart => "end_before_start",
            Self::AbsurdDuration => "duration_over_limit",
            Self::OutsideRetention => "outside_retention",
            Self::InFuture => "in_future",
        }
    }
}

impl RejectReason {
    /// A short lowercase description, for the partial success message.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidTraceId => "invalid trace id",
            Self::InvalidSpanId => "invalid span id",
            Self::EndBeforeStart => "end before start",
            Self::AbsurdDuration => "duration over the limit",
            Self::OutsideRetention => "older than retention",
            Self::InFuture => "too far in the future",
        }
    }
}

/// The outcome of converting one export request.
#[derive(Debug, Default)]
pub struct Converted {
    /// The valid spans.
    pub spans: Vec<Span>,
    /// Rejected spans by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// The headlight agents' drop counters, one report per resource that carries them.
    pub drop_reports: Vec<DropReport>,
    /// Malformed (or over the bound) elements of `headlight.unsent_children`, ignored.
    pub unsent_children_ignored: u64,
    /// Span attributes dropped over `limits.max_attributes_per_span`.
    pub attributes_dropped: u64,
    /// Attribute values longer than `limits.max_attribute_value_bytes` (cut when stored).
    pub values_truncated: u64,
    /// The first rejected span, to name in the message.
    first_rejected: Option<(String, RejectReason)>,
}

impl Converted {
    /// Total rejected spans.
    pub fn rejected_count(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// A message for OTLP partial success, e.g.
    /// `rejected 2 of 10 spans: 1 end before start, 1 too far in the future (first: span "GET /")`;
    /// empty when nothing was rejected.
    pub fn message(&self) -> String {
        let rejected = self.rejected_count();
        if rejected == 0 {
            return String::new();
        }
        let total = rejected + self.spans.len() as u64;
        let mut message = format!("rejected {rejected} of {total} spans: ");
        for (i, (reason, n)) in self.rejected.iter().enumerate() {
            if i > 0 {
                message.push_str(", ");
            }
            let _ = write!(message, "{n} {}", reason.as_str());
        }
        if let Some((name, reason)) = &self.first_rejected {
            let _ = write!(message, " (first: span {name:?}, {})", reason.as_str());
        }
        message
    }
}

/// The time bounds a span must end within, unix ns.
#[derive(Debug, Clone, Copy)]
pub struct TimeBounds {
    /// Earliest accepted end.
    pub oldest_end_ns: i64,
    /// Latest accepted end.
    pub latest_end_ns: i64,
    /// Longest accepted duration.
    pub max_duration_ns: i64,
}

impl TimeBounds {
    /// Bounds for `now_ns` from the limits and the raw retention.
    pub fn new(now_ns: i64, limits: &LimitsConfig, raw_retention_ms: i64) -> Self {
        let ms = 1_000_000_i64;
        Self {
            oldest_end_ns: now_ns.saturating_sub(raw_retention_ms.saturating_mul(ms)),
            latest_end_ns: now_ns.saturating_add(
                i64::try_from(limits.max_future_skew_ms)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(ms),
            ),
            max_duration_ns: i64::try_from(limits.max_span_duration_ms)
                .unwrap_or(i64::MAX)
                .saturating_mul(ms),
        }
    }
}

/// The value of attribute `key`, if present and set.
fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key)? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

/// Converts an attribute value to JSON, moving its strings (no copies on the ingest path).
fn json_value(value: Option<AnyValue>, max_len: usize, depth: usize) -> serde_json::Value {
    use serde_json::Value as J;
    let Some(value) = value.and_then(|v| v.value) else {
        return J::Null;
    };
    if depth > 8 {
        return J::String("…".to_owned());
    }
    match value {
        Value::StringValue(s) => J::String(truncate(s, max_len)),
        Value::BoolValue(b) => J::Bool(b),
        Value::IntValue(i) => J::from(i),
        Value::DoubleValue(d) => serde_json::Number::from_f64(d).map_or(J::Null, J::Number),
        Value::BytesValue(b) => J::String(truncate(model::hex(&b), max_len)),
        Value::ArrayValue(a) => J::Array(
            a.values
                .into_iter()
                .take(64)
                .map(|v| json_value(Some(v), max_len, depth + 1))
                .collect(),
        ),
        Value::KvlistValue(kv) => J::Object(
            kv.values
                .into_iter()
                .take(64)
                .map(|kv| (kv.key, json_value(kv.value, max_len, depth + 1)))
                .collect(),
        ),
        // An index into a profiles string table: meaningless without the table.
        Value::StringValueStrindex(_) => J::Null,
    }
}

/// Cuts `s` to at most `max_len` bytes (on a character boundary), marking the cut with `…`.
pub(crate) fn truncate(mut s: String, max_len: usize) -> String {
    if s.len() <= max_len {
        return s;
    }
    let mut end = max_len;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
    s
}

fn id<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    let id: [u8; N] = bytes.try_into().ok()?;
    (id != [0; N]).then_some(id)
}

/// A span's fields as read from the request, borrowed from its bytes.
#[derive(Debug, Default)]
struct WireSpan<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent_span_id: &'a [u8],
    name: &'a str,
    kind: i32,
    start: u64,
    end: u64,
    status_error: bool,
}

/// One `KeyValue` of a span, borrowed. Only the attributes ingest reads (HTTP status and
/// route, RPC names, the agent's) are decoded; the others are checked when shown
/// ([`attributes_json`] leaves out one that does not decode).
#[derive(Debug, Clone, Copy)]
struct WireAttribute<'a> {
    /// The key's bytes (UTF-8 unless the sender is broken).
    key: &'a [u8],
    /// The encoded `AnyValue` (empty when unset).
    any: &'a [u8],
}

/// An attribute value, borrowed; arrays and maps are [`Scalar::Nested`] (read when stored).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar<'a> {
    None,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Nested,
}

impl<'a> Scalar<'a> {
    fn string(self) -> Option<Cow<'a, str>> {
        match self {
            Self::Str(s) => Some(Cow::Borrowed(s)),
            Self::Int(i) => Some(Cow::Owned(i.to_string())),
            Self::Bool(b) => Some(Cow::Owned(b.to_string())),
            Self::Double(d) => Some(Cow::Owned(d.to_string())),
            Self::None | Self::Nested => None,
        }
    }

    fn int(self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(i),
            Self::Str(s) => s.parse().ok(),
            Self::Double(d) if d.is_finite() => Some(d as i64),
            _ => None,
        }
    }
}

/// Reads an `AnyValue`; the last member of the oneof written wins, as in `prost`.
fn scalar(any: &[u8]) -> Result<Scalar<'_>, WireError> {
    scalar_at(any, 0)
}

/// [`scalar`] of an `AnyValue` nested `depth` lists deep; arrays and maps inside are checked
/// (see [`nested`]), not read.
fn scalar_at(any: &[u8], depth: u32) -> Result<Scalar<'_>, WireError> {
    let mut value = Scalar::None;
    for field in wire::fields(any) {
        let (number, v) = field?;
        value = match number {
            1 => Scalar::Str(v.str(1)?),
            2 => Scalar::Bool(v.varint(2)? != 0),
            3 => Scalar::Int(v.varint(3)? as i64),
            4 => Scalar::Double(f64::from_bits(v.fixed64(4)?)),
            5 | 6 => {
                nested(v.bytes(number)?, number == 6, depth + 1)?;
                Scalar::Nested
            }
            7 => {
                v.bytes(7)?;
                Scalar::Nested
            }
            8 => {
                v.varint(8)?;
                Scalar::None
            }
            _ => continue,
        };
    }
    Ok(value)
}

/// Checks an `ArrayValue` (`keyed` false) or a `KeyValueList` (`keyed` true) as `prost` would
/// decode it, without building it: strings are UTF-8, types match, nesting stays within
/// `prost`'s recursion limit.
fn nested(list: &[u8], keyed: bool, depth: u32) -> Result<(), WireError> {
    if depth > 100 {
        return Err(WireError::Depth);
    }
    for field in wire::fields(list) {
        let (1, element) = field? else { continue };
        let element = element.bytes(1)?;
        if !keyed {
            scalar_at(element, depth)?;
            continue;
        }
        for field in wire::fields(element) {
            match field? {
                (1, key) => {
                    key.str(1)?;
                }
                (2, any) => {
                    scalar_at(any.bytes(2)?, depth)?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn wire_attribute(encoded: &[u8]) -> Result<WireAttribute<'_>, WireError> {
    let mut attribute = WireAttribute { key: &[], any: &[] };
    for field in wire::fields(encoded) {
        match field? {
            (1, v) => attribute.key = v.bytes(1)?,
            (2, v) => attribute.any = v.bytes(2)?,
            _ => {}
        }
    }
    Ok(attribute)
}

/// What of an encoded `AnyValue` counts against `limits.max_attribute_value_bytes`: a string's
/// length, an array's, map's or bytes value's encoded length; 0 for other values and for a
/// value that does not decode (the last member of the oneof written wins, as in `prost`).
fn value_len(any: &[u8]) -> usize {
    let mut len = 0;
    for field in wire::fields(any) {
        let Ok((number, value)) = field else {
            return 0;
        };
        len = match (number, value) {
            (1, wire::Value::Bytes(s)) => s.len(),
            (5..=7, wire::Value::Bytes(_)) => any.len(),
            (1..=8, _) => 0,
            _ => continue,
        };
    }
    len
}

/// The encoded values of the attributes ingest reads, the first of each key, found in one pass
/// over a span's attributes (a search per key cost a `memcmp` per attribute and key).
#[derive(Default)]
struct KnownValues<'a> {
    status: Option<&'a [u8]>,
    old_status: Option<&'a [u8]>,
    method: Option<&'a [u8]>,
    old_method: Option<&'a [u8]>,
    route: Option<&'a [u8]>,
    rpc_service: Option<&'a [u8]>,
    rpc_method: Option<&'a [u8]>,
}

impl<'a> KnownValues<'a> {
    fn note(&mut self, attribute: &WireAttribute<'a>) {
        let slot = match attribute.key {
            b"http.response.status_code" => &mut self.status,
            b"http.status_code" => &mut self.old_status,
            b"http.request.method" => &mut self.method,
            b"http.method" => &mut self.old_method,
            b"http.route" => &mut self.route,
            b"rpc.service" => &mut self.rpc_service,
            b"rpc.method" => &mut self.rpc_method,
            _ => return,
        };
        slot.get_or_insert(attribute.any);
    }
}

/// The value of an attribute [`KnownValues`] found; one that is absent or does not decode
/// reads as [`Scalar::None`].
fn known(any: Option<&[u8]>) -> Scalar<'_> {
    any.and_then(|any| scalar(any).ok()).unwrap_or(Scalar::None)
}

/// Reads a span's fields, its attributes into `attributes` (cleared first).
fn wire_span<'a>(
    encoded: &'a [u8],
    attributes: &mut Vec<WireAttribute<'a>>,
) -> Result<WireSpan<'a>, WireError> {
    attributes.clear();
    let mut span = WireSpan::default();
    for field in wire::fields(encoded) {
        let (number, v) = field?;
        match number {
            1 => span.trace_id = v.bytes(1)?,
            2 => span.span_id = v.bytes(2)?,
            4 => span.parent_span_id = v.bytes(4)?,
            5 => span.name = v.str(5)?,
            6 => span.kind = v.varint(6)? as i32,
            7 => span.start = v.fixed64(7)?,
            8 => span.end = v.fixed64(8)?,
            9 => attributes.push(wire_attribute(v.bytes(9)?)?),
            15 => {
                // Status: `code` is field 3; a status without it keeps the earlier one's.
                for field in wire::fields(v.bytes(15)?) {
                    if let (3, code) = field? {
                        span.status_error = code.varint(3)? as i32 == 2;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(span)
}

/// Checks a span's ids and times; returns the ids of a valid span.
fn validate(
    span: &WireSpan<'_>,
    bounds: TimeBounds,
) -> Result<(model::TraceId, model::SpanId, i64, i64), RejectReason> {
    let trace_id = id::<16>(span.trace_id).ok_or(RejectReason::InvalidTraceId)?;
    let span_id = id::<8>(span.span_id).ok_or(RejectReason::InvalidSpanId)?;
    let start_ns = i64::try_from(span.start).unwrap_or(i64::MAX);
    let end_ns = i64::try_from(span.end).unwrap_or(i64::MAX);
    if end_ns < start_ns {
        return Err(RejectReason::EndBeforeStart);
    }
    if end_ns < bounds.oldest_end_ns {
        return Err(RejectReason::OutsideRetention);
    }
    if end_ns > bounds.latest_end_ns {
        return Err(RejectReason::InFuture);
    }
    if end_ns - start_ns > bounds.max_duration_ns {
        return Err(RejectReason::AbsurdDuration);
    }
    Ok((trace_id, span_id, start_ns, end_ns))
}

/// Why a whole export request is refused (nothing of it is accepted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not a valid `ExportTraceServiceRequest`.
    #[error("malformed protobuf: {0}")]
    Malformed(String),
    /// More spans than `limits.max_spans_per_request`.
    #[error(
        "the request holds more than {0} spans (limits.max_spans_per_request): send smaller batches"
    )]
    TooManySpans(usize),
}

impl From<WireError> for Refused {
    fn from(e: WireError) -> Self {
        Self::Malformed(e.to_string())
    }
}

impl From<prost::DecodeError> for Refused {
    fn from(e: prost::DecodeError) -> Self {
        Self::Malformed(e.to_string())
    }
}

/// The resource of one `ResourceSpans`: who sent its spans.
#[derive(Debug)]
struct Origin {
    service: Arc<str>,
    environment: Arc<str>,
    version: Arc<str>,
}

impl Origin {
    fn read(resource: &[KeyValue]) -> Self {
        Self {
            service: string_attribute(resource, "service.name")
                .unwrap_or_else(|| "unknown_service".into())
                .into(),
            environment: string_attribute(resource, "deployment.environment.name")
                .or_else(|| string_attribute(resource, "deployment.environment"))
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "default".into())
                .into(),
            version: string_attribute(resource, "service.version")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "unknown".into())
                .into(),
        }
    }
}

/// Converts an encoded `ExportTraceServiceRequest`, validating every span against the bounds
/// and limits. The request is read in place (nothing is decoded into `prost`'s owned types but
/// each `Resource`); a malformed request is an error and nothing of it is converted.
pub fn convert(
    request: &Bytes,
    bounds: TimeBounds,
    limits: &LimitsConfig,
) -> Result<Converted, Refused> {
    // An encoded span usually takes 70 bytes or more: room for that many (within reason) saves
    // regrowing the vector of spans several times per request.
    let mut out = Converted {
        spans: Vec::with_capacity((request.len() / 70).min(16_384)),
        ..Converted::default()
    };
    let mut attributes = Vec::new();
    let mut scopes = Vec::new();
    let mut names = Names::default();
    let mut spans = 0;
    for field in wire::fields(request) {
        // `ExportTraceServiceRequest.resource_spans` = 1.
        let (1, resource_spans) = field? else {
            continue;
        };
        // `ResourceSpans`: resource = 1, scope_spans = 2, in any order.
        let mut resource = Resource::default();
        scopes.clear();
        for field in wire::fields(resource_spans.bytes(1)?) {
            match field? {
                (1, v) => resource.merge(v.bytes(1)?)?,
                (2, v) => scopes.push(v.bytes(2)?),
                _ => {}
            }
        }
        let origin = Origin::read(&resource.attributes);
        out.drop_reports
            .extend(agent::drop_report(&origin.service, &resource.attributes));
        for scope in &scopes {
            // `ScopeSpans.spans` = 2.
            for field in wire::fields(scope) {
                if let (2, span) = field? {
                    spans += 1;
                    if spans > limits.max_spans_per_request {
                        return Err(Refused::TooManySpans(limits.max_spans_per_request));
                    }
                    let encoded = span.bytes(2)?;
                    let span = wire_span(encoded, &mut attributes)?;
                    let received = Received {
                        request,
                        span: &span,
                        encoded,
                        attributes: &attributes,
                    };
                    convert_span(&received, &mut names, &origin, bounds, limits, &mut out)?;
                }
            }
        }
    }
    Ok(out)
}

/// The span and transaction names of one request, each allocated once: a request's spans
/// repeat a few names. Found by hash: a linear search compared most spans' names with several
/// others of the same length (`GET /route/1`, `GET /route/2`…), 1.5 % of the collector's CPU in
/// `memcmp` (benches/RESULTS.md).
#[derive(Default)]
struct Names<'a> {
    seen: FastMap<&'a str, Arc<str>>,
    transactions: HashSet<Arc<str>, foldhash::fast::RandomState>,
    /// Where a transaction name is put together before it is looked up.
    scratch: String,
}

impl<'a> Names<'a> {
    /// Names remembered of each kind; a request with more allocates the others per span.
    const MAX: usize = 256;

    /// The name, cut to 512 bytes, shared with the request's other spans of that name.
    fn get(&mut self, name: &'a str) -> Arc<str> {
        if let Some(shared) = self.seen.get(name) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = truncate(name.to_owned(), 512).into();
        if self.seen.len() < Self::MAX {
            self.seen.insert(name, Arc::clone(&shared));
        }
        shared
    }

    /// The transaction name of a transaction span ([`model::write_transaction_name`]), cut to 512
    /// bytes, shared with the request's other transactions of that name.
    fn transaction(&mut self, span_name: &str, values: &KnownValues<'_>) -> Arc<str> {
        let mut name = std::mem::take(&mut self.scratch);
        name.clear();
        let naming = model::NamingAttributes {
            method: known(values.method)
                .string()
                .or_else(|| known(values.old_method).string()),
            route: known(values.route).string(),
            rpc_service: known(values.rpc_service).string(),
            rpc_method: known(values.rpc_method).string(),
        };
        model::write_transaction_name(&mut name, span_name, naming);
        let name = truncate(name, 512);
        let shared = match self.transactions.get(name.as_str()) {
            Some(seen) => Arc::clone(seen),
            None => {
                let shared: Arc<str> = name.as_str().into();
                if self.transactions.len() < Self::MAX {
                    self.transactions.insert(Arc::clone(&shared));
                }
                shared
            }
        };
        self.scratch = name;
        shared
    }
}

/// A span as read from the request.
struct Received<'r, 'a> {
    /// The whole request.
    request: &'r Bytes,
    span: &'r WireSpan<'a>,
    /// The encoded span (a part of `request`).
    encoded: &'a [u8],
    attributes: &'r [WireAttribute<'a>],
}

fn convert_span<'a>(
    received: &Received<'_, 'a>,
    names: &mut Names<'a>,
    origin: &Origin,
    bounds: TimeBounds,
    limits: &LimitsConfig,
    out: &mut Converted,
) -> Result<(), Refused> {
    let Received {
        span, attributes, ..
    } = *received;
    let (trace_id, span_id, start_ns, end_ns) = match validate(span, bounds) {
        Ok(valid) => valid,
        Err(reason) => {
            *out.rejected.entry(reason).or_default() += 1;
            out.first_rejected
                .get_or_insert_with(|| (truncate(span.name.to_owned(), 80), reason));
            return Ok(());
        }
    };
    let parent_span_id = id::<8>(span.parent_span_id);
    let kind = SpanKind::from_otlp(span.kind);
    let mut reported_self_ns = None;
    let mut unsent_children = Vec::new();
    let mut kept: usize = 0;
    let mut values = KnownValues::default();
    for attribute in attributes {
        values.note(attribute);
        match attribute.key {
            key if key == agent::SELF_NS.as_bytes() => {
                reported_self_ns =
                    agent::self_ns(Some(AnyValue::decode(attribute.any)?), end_ns - start_ns);
            }
            key if key == agent::UNSENT_CHILDREN.as_bytes() => {
                let unsent = agent::unsent_children(
                    Some(AnyValue::decode(attribute.any)?),
                    bounds.max_duration_ns,
                );
                out.unsent_children_ignored += unsent.ignored;
                unsent_children = unsent.operations;
            }
            _ if kept < limits.max_attributes_per_span => {
                kept += 1;
                out.values_truncated +=
                    u64::from(value_len(attribute.any) > limits.max_attribute_value_bytes);
            }
            _ => out.attributes_dropped += 1,
        }
    }
    let http_status = known(values.status)
        .int()
        .or_else(|| known(values.old_status).int());
    let transaction = model::is_transaction(kind, parent_span_id.is_some())
        .then(|| names.transaction(span.name, &values));
    out.spans.push(Span {
        trace_id,
        span_id,
        parent_span_id,
        service: origin.service.clone(),
        environment: origin.environment.clone(),
        version: origin.version.clone(),
        name: names.get(span.name),
        kind,
        start_ns,
        end_ns,
        error: model::is_error(kind, span.status_error, http_status),
        transaction,
        attributes: Attributes::Otlp {
            span: received.request.slice_ref(received.encoded),
            max_attributes: limits.max_attributes_per_span,
            max_value_bytes: limits.max_attribute_value_bytes,
        },
        reported_self_ns,
        unsent_children,
    });
    Ok(())
}

/// The JSON object of the attributes of an encoded `Span` ([`Attributes::Otlp`]): the first
/// `max_attributes` of those that are not `headlight.*` span attributes, keys cut to 256 bytes,
/// values to `max_len`; a later duplicate key replaces an earlier one. An attribute that does
/// not decode (never the case in what [`convert`] accepted) is left out.
pub fn attributes_json(
    span: &[u8],
    max_attributes: usize,
    max_len: usize,
) -> serde_json::Map<String, serde_json::Value> {
    kept_attributes(span, max_attributes)
        .filter_map(|encoded| KeyValue::decode(encoded).ok())
        .map(|kv| (truncate(kv.key, 256), json_value(kv.value, max_len, 0)))
        .collect()
}

/// The encoded `KeyValue`s of an encoded `Span` that ingest kept: the first `max_attributes`
/// that are not the agent's consumed ones (an attribute that does not decode counts, as at
/// ingest).
fn kept_attributes(span: &[u8], max_attributes: usize) -> impl Iterator<Item = &[u8]> {
    wire::fields(span)
        .map_while(Result::ok)
        .filter_map(|(field, value)| match (field, value) {
            (9, wire::Value::Bytes(encoded)) => Some(encoded),
            _ => None,
        })
        .filter(|encoded| wire_attribute(encoded).map_or(true, |a| !agent::is_consumed(a.key)))
        .take(max_attributes)
}

/// A `Span` message holding only the attributes ingest kept of an encoded `Span` (what
/// [`attributes_json`] reads), for a span kept after its request: not its events, links or
/// attributes over the limit.
pub fn kept_attributes_only(span: &[u8], max_attributes: usize) -> Bytes {
    let mut out = Vec::new();
    put_kept_attributes(&mut out, span, max_attributes);
    Bytes::from(out)
}

/// Appends [`kept_attributes_only`]'s message to `out`.
pub fn put_kept_attributes(out: &mut Vec<u8>, span: &[u8], max_attributes: usize) {
    for encoded in kept_attributes(span, max_attributes) {
        wire::put_bytes(out, 9, encoded);
    }
}

#[cfg(test)]
mod tests;
