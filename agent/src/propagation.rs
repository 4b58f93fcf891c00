//! W3C Trace Context: reading `traceparent`/`tracestate` from incoming requests and writing
//! them into outgoing ones, so one trace crosses services.

use std::fmt::Write as _;

use tracing_subscriber::Registry;
use tracing_subscriber::registry::LookupSpan;

use crate::layer::SpanState;

/// The context of a span, as it travels between services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The 16-byte trace id.
    pub trace_id: [u8; 16],
    /// The 8-byte id of the span (the parent of the next hop).
    pub span_id: [u8; 8],
    /// Whether the trace is recorded.
    pub sampled: bool,
    /// The vendor `tracestate`, passed through unchanged.
    pub trace_state: Option<String>,
}

impl TraceContext {
    /// Parses a version-00 `traceparent` header (`00-{trace}-{span}-{flags}`); invalid ids
    /// (all zeros, wrong length, not hex) give `None`, and the service starts a new trace.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        // Future versions may append fields; version 00 may not.
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let trace_id: [u8; 16] = decode_hex(trace)?;
        let span_id: [u8; 8] = decode_hex(span)?;
        let [flags]: [u8; 1] = decode_hex(flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
            trace_state: tracestate
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 512)
                .map(str::to_owned),
        })
    }

    /// Formats the `traceparent` header value.
    pub fn traceparent(&self) -> String {
        let mut out = String::with_capacity(55);
        out.push_str("00-");
        push_hex(&mut out, &self.trace_id);
        out.push('-');
        push_hex(&mut out, &self.span_id);
        out.push_str(if self.sampled { "-01" } else { "-00" });
        out
    }

    /// Returns the context of `span` when it is recorded by the Headlight layer on a
    /// `tracing_subscriber::Registry`.
    pub fn of(span: &tracing::Span) -> Option<Self> {
        span.with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<Registry>()?;
            let span = registry.span(id)?;
            let extensions = span.extensions();
            let state = extensions.get::<SpanState>()?;
            Some(state.context())
        })
        .flatten()
    }

    /// Returns the context of the current span.
    pub fn current() -> Option<Self> {
        Self::of(&tracing::Span::current())
    }
}

/// Writes the current span's `traceparent` (and `tracestate`) into outgoing request headers;
/// does nothing outside a recorded span. Works with `reqwest` (`RequestBuilder::headers`) and
/// `hyper`/`http` requests (`headers_mut()`).
///
/// # Examples
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headlight_agent::inject_context(&mut headers);
/// // Outside any span there is nothing to propagate.
/// assert!(headers.get("traceparent").is_none());
/// ```
pub fn inject_context(headers: &mut http::HeaderMap) {
    let Some(context) = TraceContext::current() else {
        return;
    };
    if let Ok(value) = http::HeaderValue::from_str(&context.traceparent()) {
        headers.insert("traceparent", value);
    }
    if let Some(state) = context
        .trace_state
        .as_deref()
        .and_then(|s| http::HeaderValue::from_str(s).ok())
    {
        headers.insert("tracestate", state);
    }
}

fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, chunk) in s.as_bytes().chunks_exact(2).enumerate() {
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        out[i] = digit(chunk[0])? << 4 | digit(chunk[1])?;
    }
    Some(out)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

#[cfg(test)]
mod tests {
    use super::TraceContext;

    #[test]
    fn traceparent_round_trips() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::parse(header, Some("congo=t61rcWkgMzE")).unwrap();
        assert!(context.sampled);
        assert_eq!(context.trace_state.as_deref(), Some("congo=t61rcWkgMzE"));
        assert_eq!(context.traceparent(), header);
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-xyz92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad, None), None, "{bad:?}");
        }
        // A future version may carry more fields.
        assert!(
            TraceContext::parse(
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more",
                None
            )
            .is_some_and(|c| !c.sampled)
        );
    }
}
