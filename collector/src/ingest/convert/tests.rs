//! The in-place reader against `prost`: on any request `prost` decodes, [`convert`] must
//! succeed too and find exactly the spans an independent reading of `prost`'s message gives;
//! on damaged bytes it may only refuse what `prost` refuses.

use headlight_proto::otlp::collector::ExportTraceServiceRequest;
use headlight_proto::otlp::common::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use headlight_proto::otlp::resource::Resource;
use headlight_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span as OtlpSpan, Status};
use proptest::prelude::*;

use super::*;

const NOW: i64 = 1_800_000_000_000_000_000;

fn bounds() -> TimeBounds {
    TimeBounds {
        oldest_end_ns: NOW - 3_600_000_000_000,
        latest_end_ns: NOW + 600_000_000_000,
        max_duration_ns: 3_600_000_000_000,
    }
}

fn limits() -> LimitsConfig {
    LimitsConfig {
        max_attributes_per_span: 3,
        max_attribute_value_bytes: 8,
        ..LimitsConfig::default()
    }
}

fn some(value: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(value) })
}

fn scalar_value() -> impl Strategy<Value = any_value::Value> {
    prop_oneof![
        "\\PC{0,12}".prop_map(any_value::Value::StringValue),
        any::<bool>().prop_map(any_value::Value::BoolValue),
        any::<i64>().prop_map(any_value::Value::IntValue),
        any::<f64>().prop_map(any_value::Value::DoubleValue),
        prop::collection::vec(any::<u8>(), 0..6).prop_map(any_value::Value::BytesValue),
    ]
}

fn value() -> impl Strategy<Value = any_value::Value> {
    scalar_value().prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|values| {
                any_value::Value::ArrayValue(ArrayValue {
                    values: values.into_iter().filter_map(some).collect(),
                })
            }),
            prop::collection::vec(("[a-z]{1,4}", inner), 0..4).prop_map(|pairs| {
                any_value::Value::KvlistValue(KeyValueList {
                    values: pairs
                        .into_iter()
                        .map(|(key, v)| KeyValue {
                            key,
                            value: some(v),
                            ..KeyValue::default()
                        })
                        .collect(),
                })
            }),
        ]
    })
}

fn attribute() -> impl Strategy<Value = KeyValue> {
    let key = prop_oneof![
        Just("http.route".to_owned()),
        Just("http.request.method".to_owned()),
        Just("http.response.status_code".to_owned()),
        Just("http.method".to_owned()),
        Just("http.status_code".to_owned()),
        Just("rpc.service".to_owned()),
        Just("rpc.method".to_owned()),
        Just(agent::SELF_NS.to_owned()),
        "[a-z.]{1,10}",
    ];
    (key, prop::option::of(value())).prop_map(|(key, value)| KeyValue {
        key,
        value: value.and_then(some),
        ..KeyValue::default()
    })
}

fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), len),
        1 => prop::collection::vec(any::<u8>(), 0..len + 2),
        1 => Just(vec![0; len]),
    ]
}

fn span() -> impl Strategy<Value = OtlpSpan> {
    (
        (id(16), id(8), prop::option::of(id(8))),
        "\\PC{0,16}",
        0..7_i32,
        (-7_200_i64..900, 0_i64..4_000),
        prop::collection::vec(attribute(), 0..6),
        prop::option::of(0..3_i32),
    )
        .prop_map(
            |((trace, span, parent), name, kind, (end_s, duration_s), attributes, status)| {
                let end = (NOW + end_s * 1_000_000_000) as u64;
                OtlpSpan {
                    trace_id: trace,
                    span_id: span,
                    parent_span_id: parent.unwrap_or_default(),
                    name,
                    kind,
                    start_time_unix_nano: end.saturating_sub(duration_s as u64 * 1_000_000_000),
                    end_time_unix_nano: end,
                    attributes,
                    status: status.map(|code| Status {
                        code,
                        message: "m".into(),
                    }),
                    ..OtlpSpan::default()
                }
            },
        )
}

fn resource_attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    let pick = |key: &'static str| {
        prop::option::of("[a-z0-9]{0,6}").prop_map(move |v| {
            v.map(|v| KeyValue {
                key: key.to_owned(),
                value: some(any_value::Value::StringValue(v)),
                ..KeyValue::default()
            })
        })
    };
    (
        pick("service.name"),
        pick("deployment.environment.name"),
        pick("service.version"),
    )
        .prop_map(|(a, b, c)| [a, b, c].into_iter().flatten().collect())
}

fn request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    prop::collection::vec(
        (
            prop::option::of(resource_attributes()),
            prop::collection::vec(prop::collection::vec(span(), 0..5), 0..3),
        ),
        0..3,
    )
    .prop_map(|resources| ExportTraceServiceRequest {
        resource_spans: resources
            .into_iter()
            .map(|(resource, scopes)| ResourceSpans {
                resource: resource.map(|attributes| Resource {
                    attributes,
                    ..Resource::default()
                }),
                scope_spans: scopes
                    .into_iter()
                    .map(|spans| ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "scope".into(),
                            ..InstrumentationScope::default()
                        }),
                        spans,
                        ..ScopeSpans::default()
                    })
                    .collect(),
                ..ResourceSpans::default()
            })
            .collect(),
    })
}

/// What a span should become, read from `prost`'s message by other means than [`convert`]:
/// `(trace id, span id, parent, name, kind, start, end, error, transaction, attributes)`.
type Expected = (
    Vec<u8>,
    Vec<u8>,
    Option<Vec<u8>>,
    String,
    SpanKind,
    i64,
    i64,
    bool,
    Option<String>,
    serde_json::Map<String, serde_json::Value>,
);

fn text(value: Option<&any_value::Value>) -> Option<String> {
    Some(match value? {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        _ => return None,
    })
}

fn expected(request: &ExportTraceServiceRequest) -> (Vec<Expected>, u64) {
    let mut out = Vec::new();
    let mut rejected = 0;
    for resource_spans in &request.resource_spans {
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            let get = |key: &str| {
                span.attributes
                    .iter()
                    .find(|kv| kv.key == key)
                    .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            };
            let valid_id = |id: &[u8], len: usize| id.len() == len && id.iter().any(|b| *b != 0);
            let time = |ns: u64| i64::try_from(ns).unwrap_or(i64::MAX);
            let (start, end) = (
                time(span.start_time_unix_nano),
                time(span.end_time_unix_nano),
            );
            let b = bounds();
            if !valid_id(&span.trace_id, 16)
                || !valid_id(&span.span_id, 8)
                || end < start
                || end < b.oldest_end_ns
                || end > b.latest_end_ns
                || end - start > b.max_duration_ns
            {
                rejected += 1;
                continue;
            }
            let parent = valid_id(&span.parent_span_id, 8).then(|| span.parent_span_id.clone());
            let kind = SpanKind::from_otlp(span.kind);
            let code = |key| match get(key) {
                Some(any_value::Value::IntValue(i)) => Some(*i),
                Some(any_value::Value::StringValue(s)) => s.parse().ok(),
                Some(any_value::Value::DoubleValue(d)) if d.is_finite() => Some(*d as i64),
                _ => None,
            };
            let status_code =
                code("http.response.status_code").or_else(|| code("http.status_code"));
            let error = span.status.as_ref().is_some_and(|s| s.code == 2)
                || (kind == SpanKind::Server && status_code.is_some_and(|c| c >= 500));
            let transaction = (matches!(kind, SpanKind::Server | SpanKind::Consumer)
                || parent.is_none())
            .then(|| {
                let method = text(get("http.request.method")).or_else(|| text(get("http.method")));
                let name = match (method, text(get("http.route"))) {
                    (Some(m), Some(r)) => format!("{m} {r}"),
                    _ => match (text(get("rpc.service")), text(get("rpc.method"))) {
                        (Some(s), Some(m)) => format!("{s}/{m}"),
                        _ => span.name.clone(),
                    },
                };
                truncate(name, 512)
            });
            let kept = KeyValueList {
                values: span
                    .attributes
                    .iter()
                    .filter(|kv| kv.key != agent::SELF_NS)
                    .take(limits().max_attributes_per_span)
                    .cloned()
                    .collect(),
            };
            let attributes = kept
                .values
                .into_iter()
                .map(|kv| (truncate(kv.key, 256), json_value(kv.value, 8, 0)))
                .collect();
            out.push((
                span.trace_id.clone(),
                span.span_id.clone(),
                parent,
                truncate(span.name.clone(), 512),
                kind,
                start,
                end,
                error,
                transaction,
                attributes,
            ));
        }
    }
    (out, rejected)
}

fn actual(converted: Converted) -> Vec<Expected> {
    converted
        .spans
        .into_iter()
        .map(|s| {
            (
                s.trace_id.to_vec(),
                s.span_id.to_vec(),
                s.parent_span_id.map(|p| p.to_vec()),
                s.name.to_string(),
                s.kind,
                s.start_ns,
                s.end_ns,
                s.error,
                s.transaction.map(|t| t.to_string()),
                s.attributes.into_json(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn reads_every_request_as_prost_does(request in request()) {
        let bytes = Bytes::from(prost::Message::encode_to_vec(&request));
        let converted = convert(&bytes, bounds(), &limits()).expect("prost's own encoding");
        let (spans, rejected) = expected(&request);
        prop_assert_eq!(converted.rejected_count(), rejected);
        prop_assert_eq!(actual(converted), spans);
    }

    #[test]
    fn refuses_only_what_prost_refuses(
        request in request(),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        truncate_at in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = prost::Message::encode_to_vec(&request);
        prop_assume!(!bytes.is_empty());
        for (at, byte) in cuts {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Some(at) = truncate_at {
            bytes.truncate(at.index(bytes.len()));
        }
        let ours = convert(&Bytes::copy_from_slice(&bytes), bounds(), &limits());
        let theirs = ExportTraceServiceRequest::decode(&bytes[..]);
        if let Ok(decoded) = theirs {
            let converted = ours.map_err(|e| TestCaseError::fail(format!("stricter than prost: {e}")))?;
            let (spans, rejected) = expected(&decoded);
            prop_assert_eq!(converted.rejected_count(), rejected);
            prop_assert_eq!(actual(converted), spans);
        }
    }
}

#[test]
fn a_request_over_the_span_limit_is_refused_whole() {
    let spans: Vec<OtlpSpan> = (1..=4_u8)
        .map(|i| OtlpSpan {
            trace_id: vec![i; 16],
            span_id: vec![i; 8],
            start_time_unix_nano: NOW as u64 - 1_000,
            end_time_unix_nano: NOW as u64,
            ..OtlpSpan::default()
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    let bytes = Bytes::from(prost::Message::encode_to_vec(&request));
    let mut limits = limits();
    limits.max_spans_per_request = 4;
    assert_eq!(convert(&bytes, bounds(), &limits).unwrap().spans.len(), 4);
    limits.max_spans_per_request = 3;
    assert_eq!(
        convert(&bytes, bounds(), &limits).unwrap_err(),
        Refused::TooManySpans(3)
    );
}

fn key_value(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: some(value),
        ..KeyValue::default()
    }
}

/// One valid span with `attributes` after an attribute `bad` whose string value is not UTF-8
/// (which `prost` refuses, the whole request with it), encoded.
fn with_an_attribute_that_does_not_decode(mut span: OtlpSpan, attributes: Vec<KeyValue>) -> Bytes {
    span.trace_id = vec![1; 16];
    span.span_id = vec![1; 8];
    span.name = "GET /x".to_owned();
    span.kind = 2;
    span.start_time_unix_nano = NOW as u64 - 1_000;
    span.end_time_unix_nano = NOW as u64;
    span.attributes = vec![key_value(
        "bad",
        any_value::Value::BytesValue(vec![0xff, 0xfe]),
    )];
    span.attributes.extend(attributes);
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    let mut bytes = prost::Message::encode_to_vec(&request);
    // The bytes value (field 7, tag 0x3a) becomes a string (field 1, tag 0x0a).
    let at = bytes
        .windows(4)
        .position(|w| w == [0x3a, 0x02, 0xff, 0xfe])
        .expect("the bytes value");
    bytes[at] = 0x0a;
    assert!(
        ExportTraceServiceRequest::decode(&bytes[..]).is_err(),
        "prost refuses the whole request"
    );
    Bytes::from(bytes)
}

fn shown(span: &Span) -> serde_json::Value {
    serde_json::Value::Object(span.attributes.to_json().into_owned())
}

#[test]
fn an_attribute_prost_cannot_decode_is_left_out_not_the_request() {
    let ok = key_value("good", any_value::Value::StringValue("ok".to_owned()));
    let bytes = with_an_attribute_that_does_not_decode(OtlpSpan::default(), vec![ok]);
    let converted = convert(&bytes, bounds(), &limits()).expect("accepted");
    assert_eq!(converted.rejected_count(), 0);
    assert_eq!(converted.spans.len(), 1);
    assert_eq!(
        shown(&converted.spans[0]),
        serde_json::json!({"good": "ok"})
    );
}

#[test]
fn an_attribute_that_does_not_decode_still_counts_against_the_limit() {
    let text = |s: &str| any_value::Value::StringValue(s.to_owned());
    let span = OtlpSpan {
        events: vec![headlight_proto::otlp::trace::span::Event {
            name: "a long event name that a stored span does not keep".to_owned(),
            ..Default::default()
        }],
        ..OtlpSpan::default()
    };
    let attributes = vec![
        key_value(agent::SELF_NS, any_value::Value::IntValue(10)),
        key_value("a", text("1")),
        key_value("b", text("2")),
        key_value("c", text("3")),
    ];
    let bytes = with_an_attribute_that_does_not_decode(span, attributes);
    // limits(): 3 attributes kept: "bad", "a", "b"; "c" is dropped.
    let mut converted = convert(&bytes, bounds(), &limits()).expect("accepted");
    assert_eq!(converted.attributes_dropped, 1);
    let expected = serde_json::json!({"a": "1", "b": "2"});
    let mut span = converted.spans.remove(0);
    assert_eq!(shown(&span), expected);
    let encoded_len = |span: &Span| match &span.attributes {
        Attributes::Otlp { span, .. } => span.len(),
        Attributes::Json(_) => panic!("received attributes"),
    };
    let before = encoded_len(&span);
    span.attributes.detach();
    assert_eq!(shown(&span), expected, "detached, the same attributes");
    let after = encoded_len(&span);
    assert!(
        after < before / 2,
        "only the kept attributes: {after} of {before} bytes"
    );
}

#[test]
fn transactions_of_one_name_share_it_and_others_get_their_own() {
    let encoded = |s: &str| {
        some(any_value::Value::StringValue(s.into()))
            .unwrap()
            .encode_to_vec()
    };
    let (get, post, route) = (encoded("GET"), encoded("POST"), encoded("/users/{id}"));
    let http = |method| {
        [
            WireAttribute {
                key: b"http.request.method",
                any: method,
            },
            WireAttribute {
                key: b"http.route",
                any: &route,
            },
        ]
    };
    fn values<'a>(attributes: &[WireAttribute<'a>]) -> KnownValues<'a> {
        let mut values = KnownValues::default();
        attributes.iter().for_each(|a| values.note(a));
        values
    }
    let (get_values, post_values) = (values(&http(&get[..])), values(&http(&post[..])));
    let mut names = Names::default();
    let first = names.transaction("GET", &get_values);
    let again = names.transaction("other span name", &get_values);
    let post = names.transaction("POST", &post_values);
    let none = KnownValues::default();
    let plain = names.transaction("job.run", &none);
    assert_eq!(&*first, "GET /users/{id}");
    assert!(
        Arc::ptr_eq(&first, &again),
        "one allocation per name and request"
    );
    assert_eq!(&*post, "POST /users/{id}");
    assert_eq!(&*plain, "job.run");
    let long = "x".repeat(600);
    assert_eq!(names.transaction(&long, &none).len(), 512 + '…'.len_utf8());
}

#[test]
fn spans_detached_together_keep_their_own_attributes_in_one_shared_buffer() {
    let text = |s: &str| any_value::Value::StringValue(s.to_owned());
    let span = |n: u8, attributes: Vec<KeyValue>| OtlpSpan {
        trace_id: vec![1; 16],
        span_id: vec![n; 8],
        name: format!("op {n}"),
        kind: 3,
        start_time_unix_nano: NOW as u64 - 1_000,
        end_time_unix_nano: NOW as u64,
        attributes,
        events: vec![headlight_proto::otlp::trace::span::Event {
            name: "an event a stored span does not keep".to_owned(),
            ..Default::default()
        }],
        ..OtlpSpan::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    span(
                        1,
                        vec![key_value("a", text("1")), key_value("b", text("2"))],
                    ),
                    span(2, vec![]),
                    span(
                        3,
                        vec![key_value(agent::SELF_NS, any_value::Value::IntValue(5))],
                    ),
                    span(
                        4,
                        (0..5)
                            .map(|i| key_value(&format!("k{i}"), text("v")))
                            .collect(),
                    ),
                ],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    let bytes = Bytes::from(prost::Message::encode_to_vec(&request));
    let mut spans = convert(&bytes, bounds(), &limits())
        .expect("accepted")
        .spans;
    let before: Vec<_> = spans.iter().map(shown).collect();
    Attributes::detach_together(&mut spans);
    let after: Vec<_> = spans.iter().map(shown).collect();
    assert_eq!(after, before, "each span shows what it showed before");
    assert_eq!(after[0], serde_json::json!({"a": "1", "b": "2"}));
    assert_eq!(
        after[3],
        serde_json::json!({"k0": "v", "k1": "v", "k2": "v"})
    );
    drop(bytes);
    // Each is a slice of one buffer, laid end to end, holding only the kept attributes.
    let slices: Vec<&[u8]> = spans
        .iter()
        .map(|s| match &s.attributes {
            Attributes::Otlp { span, .. } => &span[..],
            Attributes::Json(_) => panic!("received attributes"),
        })
        .collect();
    assert!(slices[1].is_empty() && slices[2].is_empty());
    assert_eq!(
        slices[0].as_ptr_range().end,
        slices[3].as_ptr(),
        "one shared buffer"
    );
}
