//! The headlight agent's OTLP attributes: what it tells the collector about the spans it did
//! not send (span attributes) and about what it dropped (resource attributes).
//!
//! The agent decides locally, per transaction, whether to send the child spans; it always sends
//! the transaction span. When it keeps the children to itself it sets, on the transaction span,
//! `headlight.self_ns` (the transaction's own self time) and `headlight.unsent_children` (the
//! child operations it counted), so the breakdown stays complete. Both are consumed here and
//! never stored with the span. On every request its resource carries `service.instance.id` and
//! cumulative `headlight.agent.dropped_{transactions,spans}.<reason>` counters.

use headlight_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};

use crate::aggregate::agent_drops::DropReport;
use crate::model::{SpanKind, UnsentOperation};

/// Span attribute: the span's self time, ns (int).
pub const SELF_NS: &str = "headlight.self_ns";
/// Span attribute: the child operations the agent did not send (array of kvlists).
pub const UNSENT_CHILDREN: &str = "headlight.unsent_children";

/// Whether a span attribute's key is one of the agent's that ingest consumes (not stored).
pub fn is_consumed(key: &[u8]) -> bool {
    key == SELF_NS.as_bytes() || key == UNSENT_CHILDREN.as_bytes()
}

/// Resource attribute: the agent instance.
pub const INSTANCE_ID: &str = "service.instance.id";
/// Resource attribute prefix: transactions the agent dropped, by reason (int, cumulative).
pub const DROPPED_TRANSACTIONS: &str = "headlight.agent.dropped_transactions.";
/// Resource attribute prefix: spans the agent dropped, by reason (int, cumulative).
pub const DROPPED_SPANS: &str = "headlight.agent.dropped_spans.";

/// Most elements of `headlight.unsent_children` read per span; the rest are ignored.
pub const MAX_UNSENT_OPERATIONS: usize = 256;
/// Most spans one element of `headlight.unsent_children` may claim; above is implausible.
pub const MAX_UNSENT_COUNT: i64 = 1_000_000;
/// Longest accepted `service.name` and `service.instance.id` of a drop report, bytes.
const MAX_IDENTITY_BYTES: usize = 256;
/// Longest accepted drop reason, bytes.
const MAX_REASON_BYTES: usize = 32;

/// Returns the self time reported in a `headlight.self_ns` value, clamped to
/// `[0, duration_ns]`; `None` when the value is not an int.
pub fn self_ns(value: Option<AnyValue>, duration_ns: i64) -> Option<i64> {
    match value?.value? {
        Value::IntValue(ns) => Some(ns.clamp(0, duration_ns.max(0))),
        _ => None,
    }
}

/// The operations of a `headlight.unsent_children` value, and how many elements were ignored
/// (malformed, or beyond [`MAX_UNSENT_OPERATIONS`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UnsentChildren {
    /// The well-formed elements, in order.
    pub operations: Vec<UnsentOperation>,
    /// Elements ignored.
    pub ignored: u64,
}

/// Reads a `headlight.unsent_children` value: an array of kvlists with `name` (string), `kind`
/// (int, OTLP SpanKind 0..=5), `count` (int, 1..=[`MAX_UNSENT_COUNT`]), `total_ns` (int) and
/// `self_ns` (int), `0 ≤ self_ns ≤ total_ns ≤ count × max_span_ns` (no child longer than the
/// longest span accepted). Elements that break these rules are ignored one by one; unknown keys
/// are allowed; a value that is not an array is one ignored element.
pub fn unsent_children(value: Option<AnyValue>, max_span_ns: i64) -> UnsentChildren {
    let mut out = UnsentChildren::default();
    let Some(Value::ArrayValue(array)) = value.and_then(|v| v.value) else {
        out.ignored = 1;
        return out;
    };
    let total = array.values.len();
    out.ignored = total.saturating_sub(MAX_UNSENT_OPERATIONS) as u64;
    for element in array.values.into_iter().take(MAX_UNSENT_OPERATIONS) {
        match unsent_operation(element, max_span_ns) {
            Some(operation) => out.operations.push(operation),
            None => out.ignored += 1,
        }
    }
    out
}

fn unsent_operation(element: AnyValue, max_span_ns: i64) -> Option<UnsentOperation> {
    let Some(Value::KvlistValue(list)) = element.value else {
        return None;
    };
    let (mut name, mut kind, mut count, mut total_ns, mut self_ns) = (None, None, None, None, None);
    for kv in list.values {
        match (kv.key.as_str(), kv.value.and_then(|v| v.value)) {
            ("name", Some(Value::StringValue(s))) => name = Some(s),
            ("kind", Some(Value::IntValue(i))) => kind = Some(i),
            ("count", Some(Value::IntValue(i))) => count = Some(i),
            ("total_ns", Some(Value::IntValue(i))) => total_ns = Some(i),
            ("self_ns", Some(Value::IntValue(i))) => self_ns = Some(i),
            // A known key with a wrong type leaves its value missing; unknown keys are extensions.
            _ => {}
        }
    }
    let (name, kind, count, total_ns, self_ns) = (name?, kind?, count?, total_ns?, self_ns?);
    let kind = i32::try_from(kind).ok().filter(|k| (0..=5).contains(k))?;
    if !(1..=MAX_UNSENT_COUNT).contains(&count)
        || self_ns < 0
        || self_ns > total_ns
        || total_ns > count.saturating_mul(max_span_ns)
    {
        return None;
    }
    Some(UnsentOperation {
        name: super::convert::truncate(name, 512).into(),
        kind: SpanKind::from_otlp(kind),
        count: count.unsigned_abs(),
        total_ns: total_ns.unsigned_abs(),
        self_ns: self_ns.unsigned_abs(),
    })
}

/// Reads a resource's drop report: `service.instance.id` (string) and the counters
/// `headlight.agent.dropped_transactions.<reason>` / `headlight.agent.dropped_spans.<reason>`
/// (int ≥ 0, reason `[a-z0-9_]{1,32}`). Returns `None` without an instance id or without any
/// valid counter, or when the service name or the instance id is longer than 256 bytes.
pub fn drop_report(service: &str, resource: &[KeyValue]) -> Option<DropReport> {
    let mut instance = None;
    let mut report = DropReport::default();
    for kv in resource {
        let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
        if kv.key == INSTANCE_ID {
            if let Some(Value::StringValue(id)) = value {
                instance = Some(id);
            }
            continue;
        }
        let (counters, reason) = if let Some(reason) = kv.key.strip_prefix(DROPPED_TRANSACTIONS) {
            (&mut report.transactions, reason)
        } else if let Some(reason) = kv.key.strip_prefix(DROPPED_SPANS) {
            (&mut report.spans, reason)
        } else {
            continue;
        };
        let Some(&Value::IntValue(n)) = value else {
            continue;
        };
        if n < 0 || !is_reason(reason) {
            continue;
        }
        counters.push((reason.to_owned(), n.unsigned_abs()));
    }
    let instance = instance.filter(|id| !id.is_empty() && id.len() <= MAX_IDENTITY_BYTES)?;
    if service.len() > MAX_IDENTITY_BYTES
        || (report.transactions.is_empty() && report.spans.is_empty())
    {
        return None;
    }
    report.service = service.to_owned();
    report.instance = instance.clone();
    Some(report)
}

/// Returns whether `reason` matches `[a-z0-9_]{1,32}`.
fn is_reason(reason: &str) -> bool {
    (1..=MAX_REASON_BYTES).contains(&reason.len())
        && reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use headlight_proto::otlp::common::{ArrayValue, KeyValueList};

    use super::*;

    const MS: i64 = 1_000_000;

    fn int(i: i64) -> AnyValue {
        AnyValue {
            value: Some(Value::IntValue(i)),
        }
    }

    fn string(s: &str) -> AnyValue {
        AnyValue {
            value: Some(Value::StringValue(s.to_owned())),
        }
    }

    fn kv(key: &str, value: AnyValue) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(value),
            ..Default::default()
        }
    }

    fn kvlist(pairs: Vec<KeyValue>) -> AnyValue {
        AnyValue {
            value: Some(Value::KvlistValue(KeyValueList { values: pairs })),
        }
    }

    fn element(name: &str, kind: i64, count: i64, total_ns: i64, self_ns: i64) -> AnyValue {
        kvlist(vec![
            kv("name", string(name)),
            kv("kind", int(kind)),
            kv("count", int(count)),
            kv("total_ns", int(total_ns)),
            kv("self_ns", int(self_ns)),
        ])
    }

    fn array(values: Vec<AnyValue>) -> Option<AnyValue> {
        Some(AnyValue {
            value: Some(Value::ArrayValue(ArrayValue { values })),
        })
    }

    #[test]
    fn self_ns_is_clamped_to_the_duration() {
        assert_eq!(self_ns(Some(int(30 * MS)), 100 * MS), Some(30 * MS));
        assert_eq!(self_ns(Some(int(-5)), 100 * MS), Some(0));
        assert_eq!(self_ns(Some(int(500 * MS)), 100 * MS), Some(100 * MS));
        assert_eq!(self_ns(Some(string("30")), 100 * MS), None);
        assert_eq!(self_ns(None, 100 * MS), None);
    }

    #[test]
    fn unsent_children_keep_the_good_elements_and_ignore_each_bad_one() {
        let mut missing_kind = element("x", 0, 1, 1, 1);
        if let Some(Value::KvlistValue(list)) = &mut missing_kind.value {
            list.values.retain(|kv| kv.key != "kind");
        }
        let mut string_count = element("x", 0, 1, 1, 1);
        if let Some(Value::KvlistValue(list)) = &mut string_count.value {
            list.values[2] = kv("count", string("1"));
        }
        let value = array(vec![
            element("SELECT orders", 3, 3, 45 * MS, 45 * MS),
            missing_kind,
            string_count,
            element("negative", 3, -1, 1, 1),
            element("self over total", 1, 1, 1, 2),
            element("bad kind", 6, 1, 1, 1),
            element("zero count", 1, 0, 0, 0),
            element("longer than any span", 1, 2, 2 * 3_600_000 * MS + 1, 0),
            string("not a kvlist"),
            element("render", 1, 1, 25 * MS, 20 * MS),
        ]);
        let got = unsent_children(value, 3_600_000 * MS);
        assert_eq!(got.ignored, 8);
        assert_eq!(
            got.operations,
            vec![
                UnsentOperation {
                    name: "SELECT orders".into(),
                    kind: SpanKind::Client,
                    count: 3,
                    total_ns: 45_000_000,
                    self_ns: 45_000_000,
                },
                UnsentOperation {
                    name: "render".into(),
                    kind: SpanKind::Internal,
                    count: 1,
                    total_ns: 25_000_000,
                    self_ns: 20_000_000,
                },
            ]
        );
    }

    #[test]
    fn unsent_children_are_bounded_per_span() {
        let values = (0..300).map(|_| element("op", 1, 1, 10, 10)).collect();
        let got = unsent_children(array(values), i64::MAX);
        assert_eq!(got.operations.len(), MAX_UNSENT_OPERATIONS);
        assert_eq!(got.ignored, 300 - MAX_UNSENT_OPERATIONS as u64);
        assert_eq!(unsent_children(Some(int(1)), i64::MAX).ignored, 1);
    }

    #[test]
    fn drop_reports_need_an_instance_and_valid_counters() {
        let resource = vec![
            kv("service.name", string("shop")),
            kv(INSTANCE_ID, string("pod-1")),
            kv("headlight.agent.dropped_transactions.queue_full", int(5)),
            kv("headlight.agent.dropped_spans.export_failed", int(7)),
            kv("headlight.agent.dropped_spans.Queue-Full", int(1)),
            kv(&format!("{DROPPED_SPANS}{}", "a".repeat(33)), int(1)),
            kv("headlight.agent.dropped_spans.", int(1)),
            kv("headlight.agent.dropped_spans.rejected", int(-3)),
            kv("headlight.agent.dropped_spans.shutdown", string("4")),
        ];
        let report = drop_report("shop", &resource).unwrap();
        assert_eq!(
            report,
            DropReport {
                service: "shop".into(),
                instance: "pod-1".into(),
                transactions: vec![("queue_full".into(), 5)],
                spans: vec![("export_failed".into(), 7)],
            }
        );
        assert_eq!(drop_report("shop", &resource[2..]), None, "no instance id");
        assert_eq!(drop_report("shop", &resource[..2]), None, "no counters");
        assert_eq!(drop_report(&"s".repeat(257), &resource), None);
    }
}
