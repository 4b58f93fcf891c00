//! The OTLP export request: resource attributes and the envelope around encoded spans.

use headlight_proto::otlp::common::{AnyValue, InstrumentationScope, KeyValue, any_value};
use headlight_proto::otlp::resource::Resource;
use prost::Message as _;

use crate::export::encode::{delimited_len, put_delimited_header};
use crate::stats::{AgentStats, DropReason};

/// Span attribute: the transaction's own self time when its children were not sent.
pub(crate) const SELF_NS: &str = "headlight.self_ns";
/// Span attribute: per-operation summary of the children that were not sent.
pub(crate) const UNSENT_CHILDREN: &str = "headlight.unsent_children";

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

/// Builds an export request around spans already encoded by `encode::span`: the agent's
/// resource, its cumulative drop counts (so the collector knows how much this instance's
/// histograms miss), and the spans; returns the request's protobuf bytes.
pub(crate) fn request(resource: &[KeyValue], stats: &AgentStats, spans: &[u8]) -> Vec<u8> {
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
    let resource = Resource {
        attributes,
        dropped_attributes_count: 0,
        entity_refs: Vec::new(),
    }
    .encode_to_vec();
    let scope = InstrumentationScope {
        name: "headlight-agent".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }
    .encode_to_vec();
    // ExportTraceServiceRequest { resource_spans (1): ResourceSpans { resource (1),
    // scope_spans (2): ScopeSpans { scope (1), spans (2)… } } }; `spans` holds the encoded
    // field 2 entries.
    let scope_spans = delimited_len(1, scope.len()) + spans.len();
    let resource_spans = delimited_len(1, resource.len()) + delimited_len(2, scope_spans);
    let mut out = Vec::with_capacity(delimited_len(1, resource_spans));
    put_delimited_header(&mut out, 1, resource_spans);
    put_delimited_header(&mut out, 1, resource.len());
    out.extend_from_slice(&resource);
    put_delimited_header(&mut out, 2, scope_spans);
    put_delimited_header(&mut out, 1, scope.len());
    out.extend_from_slice(&scope);
    out.extend_from_slice(spans);
    debug_assert_eq!(out.len(), delimited_len(1, resource_spans));
    out
}
