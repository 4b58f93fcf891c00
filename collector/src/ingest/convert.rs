//! OTLP trace data → validated [`Span`]s, with a count and a reason for every rejected span.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use headlight_proto::otlp::collector::ExportTraceServiceRequest;
use headlight_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};

use super::agent;
use crate::aggregate::agent_drops::DropReport;
use crate::config::LimitsConfig;
use crate::model::{self, Span, SpanKind};

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

fn int_attribute(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attribute(attributes, key)? {
        Value::IntValue(i) => Some(*i),
        Value::StringValue(s) => s.parse().ok(),
        Value::DoubleValue(d) if d.is_finite() => Some(*d as i64),
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

/// Checks a span's ids and times; returns the ids of a valid span.
fn validate(
    span: &headlight_proto::otlp::trace::Span,
    bounds: TimeBounds,
) -> Result<(model::TraceId, model::SpanId, i64, i64), RejectReason> {
    let trace_id = id::<16>(&span.trace_id).ok_or(RejectReason::InvalidTraceId)?;
    let span_id = id::<8>(&span.span_id).ok_or(RejectReason::InvalidSpanId)?;
    let start_ns = i64::try_from(span.start_time_unix_nano).unwrap_or(i64::MAX);
    let end_ns = i64::try_from(span.end_time_unix_nano).unwrap_or(i64::MAX);
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

/// Converts a request, validating every span against the bounds and limits. Takes the request
/// by value so names and attributes move into the spans instead of being copied.
pub fn convert(
    request: ExportTraceServiceRequest,
    bounds: TimeBounds,
    limits: &LimitsConfig,
) -> Converted {
    let mut out = Converted::default();
    for resource_spans in request.resource_spans {
        let resource: &[KeyValue] = resource_spans
            .resource
            .as_ref()
            .map_or(&[], |r| r.attributes.as_slice());
        let service =
            string_attribute(resource, "service.name").unwrap_or_else(|| "unknown_service".into());
        let environment = string_attribute(resource, "deployment.environment.name")
            .or_else(|| string_attribute(resource, "deployment.environment"))
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "default".into());
        let version = string_attribute(resource, "service.version")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unknown".into());
        out.drop_reports
            .extend(agent::drop_report(&service, resource));
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            let (trace_id, span_id, start_ns, end_ns) = match validate(&span, bounds) {
                Ok(valid) => valid,
                Err(reason) => {
                    *out.rejected.entry(reason).or_default() += 1;
                    out.first_rejected
                        .get_or_insert_with(|| (truncate(span.name, 80), reason));
                    continue;
                }
            };
            let parent_span_id = id::<8>(&span.parent_span_id);
            let kind = SpanKind::from_otlp(span.kind);
            let status_error = span.status.as_ref().is_some_and(|s| s.code == 2);
            let http_status = int_attribute(&span.attributes, "http.response.status_code")
                .or_else(|| int_attribute(&span.attributes, "http.status_code"));
            let transaction = model::is_transaction(kind, parent_span_id.is_some()).then(|| {
                let name =
                    model::transaction_name(&span.name, |k| string_attribute(&span.attributes, k));
                truncate(name, 512)
            });
            let mut attributes = serde_json::Map::new();
            let mut taken = 0;
            let mut reported_self_ns = None;
            let mut unsent_children = Vec::new();
            for kv in span.attributes {
                match kv.key.as_str() {
                    agent::SELF_NS => {
                        reported_self_ns = agent::self_ns(kv.value, end_ns - start_ns);
                    }
                    agent::UNSENT_CHILDREN => {
                        let unsent = agent::unsent_children(kv.value, bounds.max_duration_ns);
                        out.unsent_children_ignored += unsent.ignored;
                        unsent_children = unsent.operations;
                    }
                    _ if taken < limits.max_attributes_per_span => {
                        taken += 1;
                        attributes.insert(
                            truncate(kv.key, 256),
                            json_value(kv.value, limits.max_attribute_value_bytes, 0),
                        );
                    }
                    _ => {}
                }
            }
            out.spans.push(Span {
                trace_id,
                span_id,
                parent_span_id,
                service: service.clone(),
                environment: environment.clone(),
                version: version.clone(),
                name: truncate(span.name, 512),
                kind,
                start_ns,
                end_ns,
                error: model::is_error(kind, status_error, http_status),
                transaction,
                attributes,
                reported_self_ns,
                unsent_children,
            });
        }
    }
    out
}
