//! Storage: the [`Store`] trait and its implementations.
//!
//! The trait is synchronous and object-safe; callers run it on blocking threads
//! (`spawn_blocking` or the writer thread). Writes are *deltas*: a histogram or breakdown row
//! written twice for the same window adds up, so late spans, restarts and several collectors
//! sharing one store all merge exactly. An append-only backend (ClickHouse) may keep the deltas
//! as rows and return several rows per window from the read methods; callers merge them.

mod alert_codes;
mod clickhouse;
mod clickhouse_http;
mod clickhouse_meta;
mod span_groups;
mod sqlite;
mod sqlite_alerts;
mod sqlite_deploys;
pub mod transaction_blocks;

pub use clickhouse::{ClickHouseStore, Credentials, RetentionAges};
pub use sqlite::SqliteStore;

use crate::aggregate::histogram::LatencyStats;
use crate::alert::store::{AlertQuery, AlertRecord, OutboxEntry};
use crate::deploys::{Deploy, DeployQuery};
use crate::model::{SeriesId, SeriesKey, Span, SpanKind, TraceId};

/// A store failure. Callers keep the data and retry writes; reads become `503`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error (disk full, locked, corrupt…).
    #[error("store backend error: {0}")]
    Backend(String),
    /// A stored value could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// One histogram delta for a series and window.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramDelta {
    /// The series.
    pub series: SeriesId,
    /// Window width in seconds (raw or rollup).
    pub resolution_s: u32,
    /// Window start, unix ms, aligned to `resolution_s`.
    pub window_start_ms: i64,
    /// The transactions of the window.
    pub stats: LatencyStats,
}

impl HistogramDelta {
    /// An empty delta for a series and window.
    pub fn empty(series: SeriesId, resolution_s: u32, window_start_ms: i64) -> Self {
        Self {
            series,
            resolution_s,
            window_start_ms,
            stats: LatencyStats::default(),
        }
    }

    /// Adds another delta of the same series and window.
    pub fn merge(&mut self, other: &HistogramDelta) {
        debug_assert_eq!(
            (self.series, self.resolution_s, self.window_start_ms),
            (other.series, other.resolution_s, other.window_start_ms)
        );
        self.stats.merge(&other.stats);
    }
}

/// One per-operation breakdown delta: the spans of one operation inside the transactions of a
/// series and window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakdownDelta {
    /// The series of the enclosing transaction.
    pub series: SeriesId,
    /// Window width in seconds.
    pub resolution_s: u32,
    /// Window start (of the transaction's end), unix ms.
    pub window_start_ms: i64,
    /// Operation: the span name.
    pub operation: String,
    /// The span kind.
    pub kind: SpanKind,
    /// Spans of this operation.
    pub count: u64,
    /// Sum of their durations, µs.
    pub total_us: u64,
    /// Sum of their self times (duration less time covered by local children), µs.
    pub self_us: u64,
}

/// One row of the transaction index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord {
    /// The series.
    pub series: SeriesId,
    /// End, unix ns.
    pub end_ns: i64,
    /// Duration, µs.
    pub duration_us: u64,
    /// Error.
    pub error: bool,
    /// Trace id.
    pub trace_id: TraceId,
    /// Span id of the transaction span.
    pub span_id: [u8; 8],
}

/// A known series with when it was first seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRecord {
    /// Its id (`key.id()`).
    pub id: SeriesId,
    /// Its key.
    pub key: SeriesKey,
    /// First seen, unix ms.
    pub first_seen_ms: i64,
}

/// Everything one flush writes, in one transaction where the backend has them.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    /// Series seen for the first time by this collector (upserted; first_seen keeps the minimum).
    pub series: Vec<SeriesRecord>,
    /// Histogram deltas (raw and rollup).
    pub histograms: Vec<HistogramDelta>,
    /// Breakdown deltas (raw and rollup).
    pub breakdown: Vec<BreakdownDelta>,
    /// Transaction index rows.
    pub transactions: Vec<TransactionRecord>,
    /// Spans chosen for storage.
    pub spans: Vec<Span>,
}

impl WriteBatch {
    /// Returns whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
            && self.histograms.is_empty()
            && self.breakdown.is_empty()
            && self.transactions.is_empty()
            && self.spans.is_empty()
    }
}

/// Which series a query is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesFilter {
    /// `service.name`; `None` for all.
    pub service: Option<String>,
    /// Environment; `None` for all.
    pub environment: Option<String>,
    /// Version; `None` for all.
    pub version: Option<String>,
    /// Transaction name; `None` for all.
    pub transaction: Option<String>,
}

/// A query over the transaction index.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionQuery {
    /// Series to search.
    pub series: Vec<SeriesId>,
    /// End time from, unix ns, inclusive.
    pub from_ns: i64,
    /// End time to, unix ns, exclusive.
    pub to_ns: i64,
    /// Minimum duration, µs, inclusive.
    pub min_us: Option<u64>,
    /// Maximum duration, µs, inclusive.
    pub max_us: Option<u64>,
    /// `Some(true)`: errors only; `Some(false)`: successes only.
    pub error: Option<bool>,
    /// Most rows, newest first.
    pub limit: usize,
}

/// What a retention pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    /// Histogram rows deleted.
    pub histograms: u64,
    /// Breakdown rows deleted.
    pub breakdown: u64,
    /// Transaction index rows deleted.
    pub transactions: u64,
    /// Spans deleted.
    pub spans: u64,
    /// Deploys (with their comparisons) deleted.
    pub deploys: u64,
    /// Resolved alerts (with their deliveries) deleted.
    pub alerts: u64,
}

/// Cut-offs for a retention pass, unix ms: rows older than these are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionCutoffs {
    /// Raw windows, transaction index, spans.
    pub raw_before_ms: i64,
    /// Raw window width, s.
    pub raw_resolution_s: u32,
    /// Rollup windows.
    pub rollup_before_ms: i64,
    /// Rollup window width, s.
    pub rollup_resolution_s: u32,
}

impl RetentionCutoffs {
    /// Deploys and their comparisons are kept as long as the rollups they compare.
    pub fn deploys_before_ms(&self) -> i64 {
        self.rollup_before_ms
    }
}

/// The storage backend of the collector. Implementations are shared across threads.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Writes one batch; histogram and breakdown deltas add to what is stored.
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError>;

    /// Lists the known series matching a filter.
    fn series(&self, filter: &SeriesFilter) -> Result<Vec<SeriesRecord>, StoreError>;

    /// Reads histogram rows of the given series and resolution whose window starts in
    /// `[from_ms, to_ms)`. May return several rows per window (deltas); callers merge.
    fn histograms(
        &self,
        series: &[SeriesId],
        resolution_s: u32,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<HistogramDelta>, StoreError>;

    /// Reads breakdown rows like [`Store::histograms`].
    fn breakdown(
        &self,
        series: &[SeriesId],
        resolution_s: u32,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<BreakdownDelta>, StoreError>;

    /// Searches the transaction index, newest first.
    fn transactions(&self, query: &TransactionQuery) -> Result<Vec<TransactionRecord>, StoreError>;

    /// Returns the stored spans of a trace, in any order.
    fn trace(&self, trace_id: &TraceId) -> Result<Vec<Span>, StoreError>;

    /// Deletes what is older than the cut-offs.
    fn enforce_retention(&self, cutoffs: &RetentionCutoffs) -> Result<RetentionReport, StoreError>;

    /// Records a deploy unless one with its id exists; returns the stored one (the first
    /// recorded wins, so retries and several collectors agree).
    fn record_deploy(&self, deploy: &Deploy) -> Result<Deploy, StoreError>;

    /// Lists deploys, newest first.
    fn deploys(&self, query: &DeployQuery) -> Result<Vec<Deploy>, StoreError>;

    /// Returns one deploy.
    fn deploy(&self, id: &str) -> Result<Option<Deploy>, StoreError>;

    /// Lists the deploys with time in `[from_ms, to_ms)` that have no stored comparison,
    /// oldest first.
    fn uncompared_deploys(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Deploy>, StoreError>;

    /// Stores a deploy's comparison report (JSON) unless one is stored; returns the stored one.
    fn save_comparison(&self, deploy_id: &str, report_json: &str) -> Result<String, StoreError>;

    /// Returns a deploy's stored comparison report (JSON).
    fn comparison(&self, deploy_id: &str) -> Result<Option<String>, StoreError>;

    /// Returns one alert.
    fn alert(&self, key: &str) -> Result<Option<AlertRecord>, StoreError>;

    /// Lists alerts, newest first.
    fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertRecord>, StoreError>;

    /// Writes an alert's new state and queues its notifications, in one transaction (an entry
    /// already queued with the same delivery id and channel is kept as it is).
    fn save_alert(&self, record: &AlertRecord, queue: &[OutboxEntry]) -> Result<(), StoreError>;

    /// Returns pending deliveries due at `now_ms`, oldest first.
    fn due_deliveries(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Writes a delivery's new state (attempts, next attempt, delivered, error).
    fn update_delivery(&self, entry: &OutboxEntry) -> Result<(), StoreError>;

    /// Returns every delivery of an alert, oldest first.
    fn deliveries(&self, alert_key: &str) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Claims each of `keys` for `holder` for `lease_ms`; returns, per key, whether `holder`
    /// holds it now. A key is held by the first holder that claimed it within the last
    /// `lease_ms`; once that lease has run out, the next claimant gets it. Collectors sharing a
    /// store claim a unit of work (a deploy's comparison, an alert evaluation period, a
    /// delivery attempt) before doing it, so it is done once, not once per collector. Keys are
    /// used once per unit of work; a holder claiming a key it holds keeps it.
    fn claim(&self, keys: &[String], holder: &str, lease_ms: i64) -> Result<Vec<bool>, StoreError>;

    /// Checks the store answers (for `/readyz`).
    fn ping(&self) -> Result<(), StoreError>;
}
