//! The data model of design.md §3: spans, transactions, series.

use std::borrow::Cow;
use std::sync::Arc;

/// A 16-byte trace id.
pub type TraceId = [u8; 16];
/// An 8-byte span id.
pub type SpanId = [u8; 8];

/// The series a transaction is counted in: `(service, environment, version, transaction)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// `service.name`.
    pub service: String,
    /// `deployment.environment.name` (or the older `deployment.environment`), else `default`.
    pub environment: String,
    /// `service.version`, else `unknown`.
    pub version: String,
    /// The transaction name (see [`write_transaction_name`]), or [`OVERFLOW_TRANSACTION`].
    pub transaction: String,
}

/// The transaction name that collects a service's transactions beyond its cardinality cap.
pub const OVERFLOW_TRANSACTION: &str = "other";

/// A series' stable id: a 64-bit FNV-1a hash of its key, so every collector sharing a store
/// agrees on it without coordination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(pub i64);

impl SeriesKey {
    /// Returns the series' stable id.
    pub fn id(&self) -> SeriesId {
        Self::id_of(
            &self.service,
            &self.environment,
            &self.version,
            &self.transaction,
        )
    }

    /// The id of the series with these parts, without building its key.
    pub fn id_of(service: &str, environment: &str, version: &str, transaction: &str) -> SeriesId {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for part in [service, environment, version, transaction] {
            for byte in part.bytes().chain(std::iter::once(0xff)) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        SeriesId(i64::from_ne_bytes(hash.to_ne_bytes()))
    }
}

/// OTLP span kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpanKind {
    /// Unspecified (treated like internal).
    Unspecified,
    /// Internal operation.
    Internal,
    /// Handles a remote request.
    Server,
    /// Makes a remote request.
    Client,
    /// Sends a message.
    Producer,
    /// Handles a message.
    Consumer,
}

impl SpanKind {
    /// Maps the OTLP enum value; unknown values are `Unspecified`.
    pub fn from_otlp(value: i32) -> Self {
        match value {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }

    /// The lowercase name used in the API (`server`, `client`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Internal => "internal",
            Self::Server => "server",
            Self::Client => "client",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }

    /// Parses [`SpanKind::as_str`] back.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "unspecified" => Self::Unspecified,
            "internal" => Self::Internal,
            "server" => Self::Server,
            "client" => Self::Client,
            "producer" => Self::Producer,
            "consumer" => Self::Consumer,
            _ => return None,
        })
    }
}

/// One validated span, as the collector keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Trace id.
    pub trace_id: TraceId,
    /// Span id.
    pub span_id: SpanId,
    /// Parent span id; `None` for a root.
    pub parent_span_id: Option<SpanId>,
    /// Resource `service.name` (shared by the spans of one resource).
    pub service: Arc<str>,
    /// Resource environment (see [`SeriesKey::environment`]).
    pub environment: Arc<str>,
    /// Resource `service.version` or `unknown`.
    pub version: Arc<str>,
    /// Span name (shared by the spans of one request that have the same name).
    pub name: Arc<str>,
    /// Span kind.
    pub kind: SpanKind,
    /// Start, unix ns.
    pub start_ns: i64,
    /// End, unix ns (≥ start).
    pub end_ns: i64,
    /// Error per design.md §3.
    pub error: bool,
    /// The transaction name if this span is a transaction, else `None`.
    pub transaction: Option<Arc<str>>,
    /// Span attributes, at most `limits.max_attributes_per_span`; the headlight agent's
    /// `headlight.*` span attributes are not among them.
    pub attributes: Attributes,
    /// Self time reported by the headlight agent (`headlight.self_ns`), ns, within
    /// `[0, duration]`; used instead of the self time computed from the children received.
    pub reported_self_ns: Option<i64>,
    /// Child operations the headlight agent did not send (`headlight.unsent_children`); they
    /// count in the breakdown as if they had been received.
    pub unsent_children: Vec<UnsentOperation>,
}

/// A span's attributes. Spans arrive by the hundred thousand and most are only aggregated, so
/// their attributes stay in their received encoding and become JSON only for the spans stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Attributes {
    /// As received: the encoded OTLP `Span` they came in. Its `attributes` (field 9) are the
    /// span's, less the `headlight.*` ones the collector consumed, the first `max_attributes`
    /// of them; values are cut to `max_value_bytes` when converted. While the request is being
    /// processed `span` is a slice of the request's buffer (no copy per span); a span kept past
    /// that (waiting for its transaction, or to be stored) gets its own copy
    /// ([`Attributes::detach`]).
    Otlp {
        /// The encoded `Span`.
        span: bytes::Bytes,
        /// `limits.max_attributes_per_span` at ingest.
        max_attributes: usize,
        /// `limits.max_attribute_value_bytes` at ingest.
        max_value_bytes: usize,
    },
    /// A JSON object (string keys, JSON values), as stored.
    Json(serde_json::Map<String, serde_json::Value>),
}

impl Default for Attributes {
    fn default() -> Self {
        Self::Json(serde_json::Map::new())
    }
}

impl Attributes {
    /// Gives attributes that share the buffer of the request they arrived in a buffer of their
    /// own holding only the kept attributes, so a span kept after the request keeps neither
    /// the request nor the rest of its span (events, links) in memory or in the store.
    pub fn detach(&mut self) {
        if let Self::Otlp {
            span,
            max_attributes,
            ..
        } = self
        {
            *span = crate::ingest::convert::kept_attributes_only(span, *max_attributes);
        }
    }

    /// [`Attributes::detach`] for the spans of one group kept together (they are stored by the
    /// same flush): their kept attributes go into one buffer they share, one allocation
    /// instead of several per span (benches/RESULTS.md).
    pub fn detach_together(spans: &mut [Span]) {
        // A kept span's attributes are part of its encoded span: room for the group's spans
        // (up to 4 KiB, so a span with large events does not reserve their size for nothing).
        let room: usize = spans.iter().map(|s| s.attributes.encoded_len()).sum();
        let mut buffer = Vec::with_capacity(room.min(4096));
        let mut detached = Vec::with_capacity(spans.len());
        for attributes in spans.iter_mut().map(|s| &mut s.attributes) {
            if let Self::Otlp {
                span,
                max_attributes,
                ..
            } = attributes
            {
                let start = buffer.len();
                crate::ingest::convert::put_kept_attributes(&mut buffer, span, *max_attributes);
                detached.push((span, start..buffer.len()));
            }
        }
        let shared = bytes::Bytes::from(buffer);
        for (span, range) in detached {
            *span = shared.slice(range);
        }
    }

    /// The length of the encoded span the attributes are read from; 0 for JSON attributes.
    fn encoded_len(&self) -> usize {
        match self {
            Self::Otlp { span, .. } => span.len(),
            Self::Json(_) => 0,
        }
    }

    /// The attributes as a JSON object: keys cut to 256 bytes and values to the limit, nested
    /// arrays and maps kept (at most 64 elements each, 8 levels deep).
    pub fn into_json(self) -> serde_json::Map<String, serde_json::Value> {
        match self {
            Self::Json(map) => map,
            otlp @ Self::Otlp { .. } => otlp.to_json().into_owned(),
        }
    }

    /// [`Attributes::into_json`] without consuming them.
    pub fn to_json(&self) -> std::borrow::Cow<'_, serde_json::Map<String, serde_json::Value>> {
        match self {
            Self::Json(map) => std::borrow::Cow::Borrowed(map),
            Self::Otlp {
                span,
                max_attributes,
                max_value_bytes,
            } => std::borrow::Cow::Owned(crate::ingest::convert::attributes_json(
                span,
                *max_attributes,
                *max_value_bytes,
            )),
        }
    }
}

/// Spans of one child operation that the agent counted but did not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsentOperation {
    /// The span name (the operation).
    pub name: Arc<str>,
    /// The span kind.
    pub kind: SpanKind,
    /// Spans, at least 1.
    pub count: u64,
    /// Summed durations, ns.
    pub total_ns: u64,
    /// Summed self times, ns (at most `total_ns`).
    pub self_ns: u64,
}

impl Span {
    /// Duration in µs, at least 1 (the histograms' lowest value).
    pub fn duration_us(&self) -> u64 {
        let ns = self.end_ns.saturating_sub(self.start_ns).max(0);
        (ns.unsigned_abs() / 1000).max(1)
    }

    /// End in unix ms.
    pub fn end_ms(&self) -> i64 {
        self.end_ns.div_euclid(1_000_000)
    }
}

/// The attribute values a transaction's name is made of ([`write_transaction_name`]).
#[derive(Debug, Default)]
pub struct NamingAttributes<'a> {
    /// `http.request.method`, or the older `http.method` if it has none.
    pub method: Option<Cow<'a, str>>,
    /// `http.route`.
    pub route: Option<Cow<'a, str>>,
    /// `rpc.service`.
    pub rpc_service: Option<Cow<'a, str>>,
    /// `rpc.method`.
    pub rpc_method: Option<Cow<'a, str>>,
}

/// Appends the transaction name of a transaction span to `out` (a buffer reused across spans):
/// `"{method} {route}"` when both the method (`http.request.method`, or the older
/// `http.method`) and `http.route` exist, else `"{rpc.service}/{rpc.method}"`, else the span
/// name.
pub fn write_transaction_name(out: &mut String, span_name: &str, naming: NamingAttributes<'_>) {
    if let (Some(method), Some(route)) = (naming.method, naming.route) {
        out.extend([&*method, " ", &*route]);
    } else if let (Some(service), Some(method)) = (naming.rpc_service, naming.rpc_method) {
        out.extend([&*service, "/", &*method]);
    } else {
        out.push_str(span_name);
    }
}

/// Returns whether a span is a transaction: kind SERVER or CONSUMER, or no parent (local root).
pub fn is_transaction(kind: SpanKind, has_parent: bool) -> bool {
    matches!(kind, SpanKind::Server | SpanKind::Consumer) || !has_parent
}

/// Returns whether a span is an error: status ERROR, or a server span whose HTTP status is ≥ 500.
pub fn is_error(kind: SpanKind, status_error: bool, http_status: Option<i64>) -> bool {
    status_error || (kind == SpanKind::Server && http_status.is_some_and(|code| code >= 500))
}

/// Lowercase hex of an id.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Parses lowercase or uppercase hex into exactly `N` bytes.
pub fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transaction_name(span_name: &str, naming: [Option<&str>; 4]) -> String {
        let [method, route, rpc_service, rpc_method] = naming.map(|v| v.map(Cow::Borrowed));
        let mut name = String::from("left as it was: ");
        write_transaction_name(
            &mut name,
            span_name,
            NamingAttributes {
                method,
                route,
                rpc_service,
                rpc_method,
            },
        );
        name.split_off("left as it was: ".len())
    }

    #[test]
    fn names_follow_the_design_rules() {
        let http = [Some("GET"), Some("/users/{id}"), None, None];
        assert_eq!(transaction_name("GET", http), "GET /users/{id}");
        let no_route = [Some("GET"), None, None, None];
        assert_eq!(transaction_name("GET", no_route), "GET");
        let rpc = [None, None, Some("shop.Cart"), Some("Add")];
        assert_eq!(transaction_name("x", rpc), "shop.Cart/Add");
        let both = [Some("GET"), Some("/a"), Some("shop.Cart"), Some("Add")];
        assert_eq!(transaction_name("x", both), "GET /a", "HTTP first");
        assert_eq!(transaction_name("job.run", [None; 4]), "job.run");
    }

    #[test]
    fn transactions_and_errors_follow_the_design_rules() {
        assert!(is_transaction(SpanKind::Server, true));
        assert!(is_transaction(SpanKind::Consumer, true));
        assert!(is_transaction(SpanKind::Internal, false));
        assert!(!is_transaction(SpanKind::Client, true));
        assert!(is_error(SpanKind::Internal, true, None));
        assert!(is_error(SpanKind::Server, false, Some(503)));
        assert!(!is_error(SpanKind::Server, false, Some(404)));
        assert!(!is_error(SpanKind::Client, false, Some(500)));
    }

    #[test]
    fn series_ids_are_stable_and_distinct() {
        let key = |t: &str| SeriesKey {
            service: "shop".into(),
            environment: "default".into(),
            version: "1".into(),
            transaction: t.into(),
        };
        assert_eq!(key("a").id(), key("a").id());
        assert_ne!(key("a").id(), key("b").id());
        // field boundaries matter: ("ab","c") differs from ("a","bc")
        let a = SeriesKey {
            service: "ab".into(),
            environment: "c".into(),
            ..key("x")
        };
        let b = SeriesKey {
            service: "a".into(),
            environment: "bc".into(),
            ..key("x")
        };
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn hex_round_trips() {
        let id = [0xab_u8, 0x01, 0xff, 0, 1, 2, 3, 4];
        assert_eq!(hex(&id), "ab01ff0001020304");
        assert_eq!(parse_hex::<8>("ab01ff0001020304"), Some(id));
        assert_eq!(parse_hex::<8>("AB01FF0001020304"), Some(id));
        assert_eq!(parse_hex::<8>("ab01"), None);
        assert_eq!(parse_hex::<8>("zz01ff0001020304"), None);
    }
}
