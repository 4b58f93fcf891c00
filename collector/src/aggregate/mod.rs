//! Aggregation: spans in, store deltas out.
//!
//! [`Aggregator`] assembles each transaction with its local child spans, counts every
//! transaction into the HDR histogram of its series and window, adds every span to the
//! per-operation breakdown, appends the transaction index row, and decides which spans are
//! stored. [`Aggregator::drain`] hands the accumulated deltas over as a [`WriteBatch`]; the open
//! windows stay dense in memory only between two flushes.

pub mod agent_drops;
pub mod histogram;
pub mod self_time;

mod assembler;
mod running_p95;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crate::config::{AggregationConfig, MetricsConfig, SpanRetentionConfig};
use crate::metrics::red::{RedSnapshot, RedTotals};
use crate::model::{OVERFLOW_TRANSACTION, SeriesId, SeriesKey, Span, SpanKind, TraceId};
use crate::store::{BreakdownDelta, HistogramDelta, SeriesRecord, TransactionRecord, WriteBatch};

use assembler::{Assembled, Assembler, Orphans};
use running_p95::RunningP95;

/// Counters of what the aggregator did since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AggregatorStats {
    /// Spans accepted into aggregation.
    pub spans: u64,
    /// Transactions counted.
    pub transactions: u64,
    /// Transactions counted under the overflow series `other`.
    pub overflowed_transactions: u64,
    /// Spans chosen for storage.
    pub spans_kept: u64,
    /// Child spans whose transaction never arrived (not in any breakdown, not stored).
    pub orphans_dropped: u64,
    /// Child spans that arrived after their transaction and were attributed to it late.
    pub late_children: u64,
    /// Child spans the agent counted in `headlight.unsent_children` instead of sending, added
    /// to the breakdown.
    pub unsent_children: u64,
}

/// What `GET /metrics` reads of the aggregator.
#[derive(Debug, Clone)]
pub struct AggregatorMetrics {
    /// The counters.
    pub stats: AggregatorStats,
    /// The per-series RED totals since start.
    pub red: RedSnapshot,
    /// Series known (from the store at start, and new since).
    pub series: usize,
    /// Child spans waiting for their transaction.
    pub pending_child_spans: usize,
    /// Transactions aggregated since the last flush.
    pub unflushed_transactions: usize,
}

#[derive(Debug)]
struct SeriesState {
    p95: RunningP95,
    sampled_window_ms: i64,
    sampled_in_window: u32,
}

#[derive(Debug, Default, Clone, Copy)]
struct OperationTotals {
    count: u64,
    total_us: u64,
    self_us: u64,
}

impl OperationTotals {
    /// Adds spans; saturating, as agent-reported counts can be large.
    fn add(&mut self, count: u64, total_us: u64, self_us: u64) {
        self.count = self.count.saturating_add(count);
        self.total_us = self.total_us.saturating_add(total_us);
        self.self_us = self.self_us.saturating_add(self_us);
    }
}

type OperationKey = (SeriesId, i64, String, SpanKind);

/// A hash map with `foldhash`'s hasher, cheaper than the default SipHash on the ids the
/// aggregator looks up per span (SipHash was about 3 % of the collector's profile under load,
/// benches/RESULTS.md), and seeded at random per process like it, so crafted ids cannot aim at
/// collisions.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The in-memory aggregation state of one collector.
#[derive(Debug)]
pub struct Aggregator {
    config: AggregationConfig,
    retention: SpanRetentionConfig,
    /// Per service, the transaction names that have their own series (capped).
    names: FastMap<String, HashSet<String>>,
    series: FastMap<SeriesId, SeriesState>,
    new_series: Vec<SeriesRecord>,
    windows: FastMap<(SeriesId, i64), HistogramDelta>,
    /// Operation totals per (series, window, kind), by operation name.
    operations: FastMap<(SeriesId, i64, SpanKind, Arc<str>), OperationTotals>,
    transactions: Vec<TransactionRecord>,
    kept_spans: Vec<Span>,
    assembler: Assembler,
    stats: AggregatorStats,
    /// Per-series RED totals since start, for `GET /metrics` (never drained).
    red: RedTotals,
}

/// What the aggregator remembers of a processed transaction, for children that arrive late.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TransactionRef {
    series: SeriesId,
    window_start_ms: i64,
    keep: bool,
}

impl Aggregator {
    /// Creates an aggregator that knows the series already in the store, so the per-service
    /// cardinality cap survives restarts.
    pub fn new(
        config: AggregationConfig,
        retention: SpanRetentionConfig,
        known: &[SeriesRecord],
    ) -> Self {
        let mut names: FastMap<String, HashSet<String>> = FastMap::default();
        for record in known {
            if record.key.transaction != OVERFLOW_TRANSACTION {
                names
                    .entry(record.key.service.clone())
                    .or_default()
                    .insert(record.key.transaction.clone());
            }
        }
        let series = known.iter().map(|r| (r.id, SeriesState::new())).collect();
        let assembler = Assembler::new(config.orphan_wait_ms, config.max_pending_spans);
        Self {
            config,
            retention,
            names,
            series,
            new_series: Vec::new(),
            windows: FastMap::default(),
            operations: FastMap::default(),
            transactions: Vec::new(),
            kept_spans: Vec::new(),
            assembler,
            stats: AggregatorStats::default(),
            red: RedTotals::new(MetricsConfig::default().max_series),
        }
    }

    /// Gives at most `max_series` series their own RED totals (`metrics.max_series`).
    #[must_use]
    pub fn with_metrics_series_cap(mut self, max_series: usize) -> Self {
        self.red = RedTotals::new(max_series);
        self
    }

    /// Returns what `GET /metrics` shows of the aggregator.
    pub fn metrics(&self) -> AggregatorMetrics {
        AggregatorMetrics {
            stats: self.stats(),
            red: self.red.snapshot(),
            series: self.series.len(),
            pending_child_spans: self.pending_spans(),
            unflushed_transactions: self.transactions.len(),
        }
    }

    /// Returns the counters.
    pub fn stats(&self) -> AggregatorStats {
        AggregatorStats {
            orphans_dropped: self.stats.orphans_dropped + self.assembler.evicted(),
            ..self.stats
        }
    }

    /// Returns how many child spans wait for their transaction.
    pub fn pending_spans(&self) -> usize {
        self.assembler.pending_spans()
    }

    /// Aggregates validated spans (any order, any traces).
    pub fn apply(&mut self, spans: Vec<Span>, now: Instant) {
        self.stats.spans += spans.len() as u64;
        // Traces are processed in the order they first appear in the request, so which names
        // fill a service's cardinality cap is first come, first served. A trace's spans are
        // usually adjacent: runs of one trace id are found first, and looked up once a run.
        let mut runs: Vec<(TraceId, usize)> = Vec::new();
        for span in &spans {
            match runs.last_mut() {
                Some((trace_id, n)) if *trace_id == span.trace_id => *n += 1,
                _ => runs.push((span.trace_id, 1)),
            }
        }
        let mut position: FastMap<TraceId, usize> = FastMap::default();
        position.reserve(runs.len());
        let mut by_trace: Vec<(TraceId, Vec<Span>)> = Vec::with_capacity(runs.len());
        let mut spans = spans.into_iter();
        for (trace_id, n) in runs {
            let run = spans.by_ref().take(n);
            match position.entry(trace_id) {
                std::collections::hash_map::Entry::Occupied(seen) => {
                    by_trace[*seen.get()].1.extend(run);
                }
                std::collections::hash_map::Entry::Vacant(new) => {
                    new.insert(by_trace.len());
                    let mut trace = Vec::with_capacity(n);
                    trace.extend(run);
                    by_trace.push((trace_id, trace));
                }
            }
        }
        for (trace_id, spans) in by_trace {
            let assembled = self.assembler.assemble(trace_id, spans, now);
            for group in assembled {
                self.process(group);
            }
        }
    }

    /// Attributes or drops child spans that waited longer than `orphan_wait_ms`.
    pub fn expire(&mut self, now: Instant) {
        for Orphans {
            trace_id,
            spans,
            self_ns,
        } in self.assembler.expire(now)
        {
            match self.assembler.recent(&trace_id) {
                Some(transaction) => {
                    self.stats.late_children += spans.len() as u64;
                    self.add_operations(transaction, &spans, &self_ns);
                    if transaction.keep {
                        self.stats.spans_kept += spans.len() as u64;
                        // Detached already, when they began to wait.
                        self.kept_spans.extend(spans);
                    }
                }
                None => self.stats.orphans_dropped += spans.len() as u64,
            }
        }
    }

    fn process(&mut self, group: Assembled) {
        let Assembled {
            transaction_index,
            spans,
            self_ns,
        } = group;
        let transaction = &spans[transaction_index];
        let name = self.capped_name(transaction);
        let series = SeriesKey::id_of(
            &transaction.service,
            &transaction.environment,
            &transaction.version,
            name,
        );
        // The key's strings are copied only for a series seen for the first time.
        let key = || SeriesKey {
            service: transaction.service.to_string(),
            environment: transaction.environment.to_string(),
            version: transaction.version.to_string(),
            transaction: name.to_owned(),
        };
        let end_ms = transaction.end_ms();
        let window_ms = self.config.window_ms();
        let window_start_ms = end_ms.div_euclid(window_ms) * window_ms;
        let duration_us = transaction.duration_us();
        let error = transaction.error;
        self.red.record(series, key, duration_us, error);
        if let std::collections::hash_map::Entry::Vacant(entry) = self.series.entry(series) {
            entry.insert(SeriesState::new());
            self.new_series.push(SeriesRecord {
                id: series,
                key: key(),
                first_seen_ms: end_ms,
            });
        }

        let delta = self
            .windows
            .entry((series, window_start_ms))
            .or_insert_with(|| {
                HistogramDelta::empty(series, self.config.window_s, window_start_ms)
            });
        delta.stats.record(duration_us, error);
        self.stats.transactions += 1;

        let state = self.series.entry(series).or_insert_with(SeriesState::new);
        let slow = state.p95.is_slow(duration_us);
        state.p95.record(window_start_ms, duration_us);
        if state.sampled_window_ms != window_start_ms {
            state.sampled_window_ms = window_start_ms;
            state.sampled_in_window = 0;
        }
        let sampled = state.sampled_in_window < self.retention.sample_per_window;
        if sampled {
            state.sampled_in_window += 1;
        }
        let keep =
            sampled || (self.retention.keep_errors && error) || (self.retention.keep_slow && slow);

        self.transactions.push(TransactionRecord {
            series,
            end_ns: transaction.end_ns,
            duration_us,
            error,
            trace_id: transaction.trace_id,
            span_id: transaction.span_id,
        });
        let reference = TransactionRef {
            series,
            window_start_ms,
            keep,
        };
        self.assembler.remember(transaction.trace_id, reference);
        self.add_operations(reference, &spans, &self_ns);
        if keep {
            self.stats.spans_kept += spans.len() as u64;
            self.keep_spans(spans);
        }
    }

    /// Keeps spans to store; they outlive the request, so they get their own copy of their
    /// kept attributes (one buffer for the group).
    fn keep_spans(&mut self, mut spans: Vec<Span>) {
        crate::model::Attributes::detach_together(&mut spans);
        self.kept_spans.append(&mut spans);
    }

    /// Adds `spans` (with their self times, ns), and the children the agent reported but did
    /// not send, to the breakdown of a transaction.
    fn add_operations(&mut self, transaction: TransactionRef, spans: &[Span], self_ns: &[i64]) {
        debug_assert_eq!(spans.len(), self_ns.len());
        for (span, self_ns) in spans.iter().zip(self_ns) {
            self.add_operation(
                transaction,
                (&span.name, span.kind),
                1,
                span.duration_us(),
                self_ns.unsigned_abs() / 1000,
            );
            for unsent in &span.unsent_children {
                self.add_operation(
                    transaction,
                    (&unsent.name, unsent.kind),
                    unsent.count,
                    unsent.total_ns / 1000,
                    unsent.self_ns / 1000,
                );
                self.stats.unsent_children =
                    self.stats.unsent_children.saturating_add(unsent.count);
            }
        }
    }

    /// Adds to one operation's totals: one lookup, keyed by the span's shared name.
    fn add_operation(
        &mut self,
        transaction: TransactionRef,
        (name, kind): (&Arc<str>, SpanKind),
        count: u64,
        total_us: u64,
        self_us: u64,
    ) {
        let key = (
            transaction.series,
            transaction.window_start_ms,
            kind,
            Arc::clone(name),
        );
        self.operations
            .entry(key)
            .or_default()
            .add(count, total_us, self_us);
    }

    /// The transaction's name in its series: its own, or [`OVERFLOW_TRANSACTION`] once its
    /// service has `max_transactions_per_service` names.
    fn capped_name<'a>(&mut self, transaction: &'a Span) -> &'a str {
        let name = transaction
            .transaction
            .as_deref()
            .unwrap_or(&transaction.name);
        if name == OVERFLOW_TRANSACTION {
            return OVERFLOW_TRANSACTION;
        }
        let cap = self.config.max_transactions_per_service as usize;
        if !self.names.contains_key(&*transaction.service) {
            self.names
                .insert(transaction.service.to_string(), HashSet::new());
        }
        let Some(names) = self.names.get_mut(&*transaction.service) else {
            return OVERFLOW_TRANSACTION;
        };
        if names.contains(name) {
            name
        } else if names.len() < cap {
            names.insert(name.to_owned());
            name
        } else {
            self.stats.overflowed_transactions += 1;
            OVERFLOW_TRANSACTION
        }
    }

    /// Takes everything accumulated since the last drain, with rollup deltas added.
    pub fn drain(&mut self) -> WriteBatch {
        let rollup_ms = self.config.rollup_window_ms();
        let rollup_s = self.config.rollup_window_s;
        let mut histograms: Vec<HistogramDelta> = Vec::with_capacity(self.windows.len() * 2);
        let mut rollups: HashMap<(SeriesId, i64), HistogramDelta> = HashMap::new();
        for ((series, start), delta) in self.windows.drain() {
            let rollup_start = start.div_euclid(rollup_ms) * rollup_ms;
            let mut rolled = HistogramDelta {
                resolution_s: rollup_s,
                window_start_ms: rollup_start,
                ..delta.clone()
            };
            if let Some(existing) = rollups.remove(&(series, rollup_start)) {
                rolled.merge(&existing);
            }
            rollups.insert((series, rollup_start), rolled);
            histograms.push(delta);
        }
        histograms.extend(rollups.into_values());

        let mut breakdown = Vec::with_capacity(self.operations.len() * 2);
        let mut rolled_ops: HashMap<OperationKey, OperationTotals> = HashMap::new();
        let operations = self
            .operations
            .drain()
            .map(|((series, start, kind, name), totals)| {
                (series, start, name.to_string(), kind, totals)
            });
        for (series, start, operation, kind, totals) in operations {
            let rollup_start = start.div_euclid(rollup_ms) * rollup_ms;
            let rolled = rolled_ops
                .entry((series, rollup_start, operation.clone(), kind))
                .or_default();
            rolled.add(totals.count, totals.total_us, totals.self_us);
            breakdown.push(breakdown_delta(
                series,
                self.config.window_s,
                start,
                operation,
                kind,
                totals,
            ));
        }
        for ((series, start, operation, kind), totals) in rolled_ops {
            breakdown.push(breakdown_delta(
                series, rollup_s, start, operation, kind, totals,
            ));
        }

        WriteBatch {
            series: std::mem::take(&mut self.new_series),
            histograms,
            breakdown,
            transactions: std::mem::take(&mut self.transactions),
            spans: std::mem::take(&mut self.kept_spans),
        }
    }
}

impl SeriesState {
    fn new() -> Self {
        Self {
            p95: RunningP95::new(),
            sampled_window_ms: i64::MIN,
            sampled_in_window: 0,
        }
    }
}

fn breakdown_delta(
    series: SeriesId,
    resolution_s: u32,
    window_start_ms: i64,
    operation: String,
    kind: SpanKind,
    totals: OperationTotals,
) -> BreakdownDelta {
    BreakdownDelta {
        series,
        resolution_s,
        window_start_ms,
        operation,
        kind,
        count: totals.count,
        total_us: totals.total_us,
        self_us: totals.self_us,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const END_MS: i64 = 1_800_000_005_000;

    fn span(trace: u8, id: u8, parent: Option<u8>, name: &str, start_ms: i64, end_ms: i64) -> Span {
        Span {
            trace_id: [trace; 16],
            span_id: [id; 8],
            parent_span_id: parent.map(|p| [p; 8]),
            service: "svc".into(),
            environment: "default".into(),
            version: "1".into(),
            name: name.into(),
            kind: if parent.is_none() {
                SpanKind::Server
            } else {
                SpanKind::Internal
            },
            start_ns: start_ms * 1_000_000,
            end_ns: end_ms * 1_000_000,
            error: false,
            transaction: parent.is_none().then(|| name.into()),
            attributes: crate::model::Attributes::default(),
            reported_self_ns: None,
            unsent_children: Vec::new(),
        }
    }

    fn aggregator(orphan_wait_ms: u64) -> Aggregator {
        let config = AggregationConfig {
            orphan_wait_ms,
            ..AggregationConfig::default()
        };
        Aggregator::new(config, SpanRetentionConfig::default(), &[])
    }

    fn raw_self_us(batch: &WriteBatch, operation: &str) -> u64 {
        batch
            .breakdown
            .iter()
            .filter(|b| b.resolution_s == 10 && b.operation == operation)
            .map(|b| b.self_us)
            .sum()
    }

    #[test]
    fn children_sent_before_their_transaction_wait_for_it() {
        let mut agg = aggregator(15_000);
        let now = Instant::now();
        // grandchild and child arrive first (they end first), the transaction later
        agg.apply(
            vec![span(1, 3, Some(2), "db", END_MS - 80, END_MS - 60)],
            now,
        );
        agg.apply(
            vec![span(1, 2, Some(1), "handler", END_MS - 90, END_MS - 10)],
            now,
        );
        assert_eq!(agg.pending_spans(), 2);
        assert!(agg.drain().transactions.is_empty());
        agg.apply(vec![span(1, 1, None, "GET /", END_MS - 100, END_MS)], now);
        assert_eq!(agg.pending_spans(), 0);
        let batch = agg.drain();
        assert_eq!(batch.transactions.len(), 1);
        assert_eq!(raw_self_us(&batch, "GET /"), 20_000);
        assert_eq!(raw_self_us(&batch, "handler"), 60_000);
        assert_eq!(raw_self_us(&batch, "db"), 20_000);
        assert_eq!(
            batch.spans.len(),
            3,
            "sampled: the whole local subtree is stored"
        );
    }

    #[test]
    fn late_children_join_their_transaction_and_true_orphans_are_dropped() {
        let mut agg = aggregator(1_000);
        let t0 = Instant::now();
        agg.apply(vec![span(1, 1, None, "GET /", END_MS - 100, END_MS)], t0);
        // a child ending after its transaction (fire and forget), in a later request
        agg.apply(
            vec![span(1, 2, Some(9), "async", END_MS - 50, END_MS + 500)],
            t0,
        );
        // a child of a trace whose transaction never comes
        agg.apply(vec![span(2, 2, Some(1), "lost", END_MS - 50, END_MS)], t0);
        agg.expire(t0 + Duration::from_millis(500));
        assert_eq!(agg.pending_spans(), 2, "not yet expired");
        agg.expire(t0 + Duration::from_millis(1_500));
        assert_eq!(agg.pending_spans(), 0);
        let stats = agg.stats();
        assert_eq!(stats.late_children, 1);
        assert_eq!(stats.orphans_dropped, 1);
        let batch = agg.drain();
        assert_eq!(raw_self_us(&batch, "async"), 550_000);
        assert_eq!(raw_self_us(&batch, "lost"), 0);
    }

    fn raw_op(batch: &WriteBatch, operation: &str) -> (u64, u64, u64) {
        batch
            .breakdown
            .iter()
            .filter(|b| b.resolution_s == 10 && b.operation == operation)
            .fold((0, 0, 0), |t, b| {
                (t.0 + b.count, t.1 + b.total_us, t.2 + b.self_us)
            })
    }

    #[test]
    fn reported_self_time_and_unsent_children_complete_the_breakdown() {
        let mut agg = aggregator(15_000);
        let mut transaction = span(1, 1, None, "GET /", END_MS - 100, END_MS);
        transaction.reported_self_ns = Some(30_000_000);
        transaction.unsent_children = vec![
            crate::model::UnsentOperation {
                name: "db".into(),
                kind: SpanKind::Client,
                count: 3,
                total_ns: 45_000_999,
                self_ns: 45_000_000,
            },
            crate::model::UnsentOperation {
                name: "render".into(),
                kind: SpanKind::Internal,
                count: 1,
                total_ns: 25_000_000,
                self_ns: 20_000_000,
            },
        ];
        // one child was sent: its own time counts, but the reported self time wins
        let child = span(1, 2, Some(1), "cache", END_MS - 10, END_MS - 5);
        agg.apply(vec![transaction, child], Instant::now());
        assert_eq!(agg.stats().unsent_children, 4);
        let batch = agg.drain();
        assert_eq!(raw_op(&batch, "GET /"), (1, 100_000, 30_000));
        assert_eq!(raw_op(&batch, "db"), (3, 45_000, 45_000));
        assert_eq!(raw_op(&batch, "render"), (1, 25_000, 20_000));
        assert_eq!(raw_op(&batch, "cache"), (1, 5_000, 5_000));
        let rollup_db: u64 = batch
            .breakdown
            .iter()
            .filter(|b| b.resolution_s == 60 && b.operation == "db")
            .map(|b| b.count)
            .sum();
        assert_eq!(rollup_db, 3, "rollups carry the unsent children too");
    }

    #[test]
    fn pending_children_are_bounded() {
        let config = AggregationConfig {
            max_pending_spans: 3,
            ..AggregationConfig::default()
        };
        let mut agg = Aggregator::new(config, SpanRetentionConfig::default(), &[]);
        let now = Instant::now();
        for trace in 1..=5u8 {
            agg.apply(
                vec![span(trace, 2, Some(1), "child", END_MS - 10, END_MS)],
                now,
            );
        }
        assert_eq!(agg.pending_spans(), 3);
        assert_eq!(agg.stats().orphans_dropped, 2);
    }

    #[test]
    fn drain_adds_rollups_that_equal_the_raw_windows() {
        let mut agg = aggregator(15_000);
        let now = Instant::now();
        for (i, end) in [END_MS, END_MS + 10_000, END_MS + 20_000]
            .into_iter()
            .enumerate()
        {
            agg.apply(vec![span(i as u8 + 1, 1, None, "GET /", end - 5, end)], now);
        }
        let batch = agg.drain();
        let raw: Vec<_> = batch
            .histograms
            .iter()
            .filter(|h| h.resolution_s == 10)
            .collect();
        let rollup: Vec<_> = batch
            .histograms
            .iter()
            .filter(|h| h.resolution_s == 60)
            .collect();
        assert_eq!(raw.len(), 3);
        assert_eq!(raw.iter().map(|h| h.stats.count).sum::<u64>(), 3);
        assert_eq!(rollup.iter().map(|h| h.stats.count).sum::<u64>(), 3);
        assert!(rollup.iter().all(|h| h.window_start_ms % 60_000 == 0));
        assert!(agg.drain().is_empty(), "drained");
    }

    mod properties {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::*;
        use crate::aggregate::histogram::LatencyStats;

        /// Deliberately not on a rollup boundary; spans end up to 4 minutes before and 6 after
        /// it, across many raw and rollup windows.
        const BASE_MS: i64 = 1_800_000_040_000;

        /// One generated transaction: end offset (ms), duration (µs), error, name, service,
        /// and its children as (name, kind, fraction of the transaction's time).
        type Generated = (i64, u64, bool, u8, u8, Vec<(u8, u8, u8)>);

        fn generated() -> impl Strategy<Value = Vec<Generated>> {
            prop::collection::vec(
                (
                    -240_000i64..360_000,
                    prop_oneof![0u64..1_000, 0u64..2_000_000, 0u64..3_600_000_000],
                    any::<bool>(),
                    0u8..3,
                    0u8..2,
                    prop::collection::vec((0u8..4, 0u8..3, 0u8..=100), 0..3),
                ),
                0..120,
            )
        }

        /// The spans of the generated transactions, children included.
        fn spans(items: &[Generated]) -> Vec<Span> {
            let mut out = Vec::new();
            for (i, (offset_ms, duration_us, error, name, service, children)) in
                items.iter().enumerate()
            {
                let mut trace_id = [0u8; 16];
                trace_id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
                let end_ns = (BASE_MS + offset_ms) * 1_000_000 + (i as i64 % 1_000_000);
                let start_ns = end_ns - *duration_us as i64 * 1000;
                let name = format!("GET /{name}");
                let transaction = Span {
                    trace_id,
                    span_id: [1; 8],
                    parent_span_id: None,
                    service: format!("svc{service}").into(),
                    environment: "default".into(),
                    version: "1".into(),
                    name: name.as_str().into(),
                    kind: SpanKind::Server,
                    start_ns,
                    end_ns,
                    error: *error,
                    transaction: Some(name.into()),
                    attributes: crate::model::Attributes::default(),
                    reported_self_ns: None,
                    unsent_children: Vec::new(),
                };
                for (j, (child, kind, percent)) in children.iter().enumerate() {
                    out.push(Span {
                        span_id: [j as u8 + 2; 8],
                        parent_span_id: Some([1; 8]),
                        name: format!("op{child}").into(),
                        kind: [SpanKind::Internal, SpanKind::Client, SpanKind::Producer]
                            [usize::from(*kind)],
                        end_ns: start_ns + (end_ns - start_ns) * i64::from(*percent) / 100,
                        error: false,
                        transaction: None,
                        ..transaction.clone()
                    });
                }
                out.push(transaction);
            }
            out
        }

        fn aggregate(window_s: u32, rollup_window_s: u32, spans: Vec<Span>) -> WriteBatch {
            let config = AggregationConfig {
                window_s,
                rollup_window_s,
                ..AggregationConfig::default()
            };
            let mut agg = Aggregator::new(config, SpanRetentionConfig::default(), &[]);
            agg.apply(spans, Instant::now());
            assert_eq!(
                agg.pending_spans(),
                0,
                "every child came with its transaction"
            );
            agg.drain()
        }

        type Windows = BTreeMap<(SeriesId, i64), LatencyStats>;
        type Breakdown = BTreeMap<(SeriesId, i64, String, SpanKind), (u64, u64, u64)>;

        /// The histograms and breakdown of one resolution, keyed by series and window.
        fn at(batch: &WriteBatch, resolution_s: u32) -> (Windows, Breakdown) {
            let mut windows = Windows::new();
            for h in batch
                .histograms
                .iter()
                .filter(|h| h.resolution_s == resolution_s)
            {
                let old = windows.insert((h.series, h.window_start_ms), h.stats.clone());
                assert!(old.is_none(), "one delta per series and window");
            }
            let mut breakdown = Breakdown::new();
            for b in batch
                .breakdown
                .iter()
                .filter(|b| b.resolution_s == resolution_s)
            {
                let key = (b.series, b.window_start_ms, b.operation.clone(), b.kind);
                let old = breakdown.insert(key, (b.count, b.total_us, b.self_us));
                assert!(
                    old.is_none(),
                    "one breakdown row per series, window and operation"
                );
            }
            (windows, breakdown)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]

            /// Raw windows drained with rollups give rollup windows equal to aggregating the
            /// same spans directly at the rollup resolution; the raw windows count every
            /// transaction once, in the window its end falls in.
            #[test]
            fn rollups_equal_direct_aggregation_at_the_rollup_resolution(
                items in generated(),
                (window_s, factor) in prop_oneof![Just((10u32, 6u32)), Just((5, 12)), Just((1, 60)), Just((2, 30))],
            ) {
                let rollup_s = window_s * factor;
                let spans = spans(&items);
                let batch = aggregate(window_s, rollup_s, spans.clone());
                // Directly at the rollup width (its own rollups at twice that are ignored).
                let direct = aggregate(rollup_s, rollup_s * 2, spans.clone());

                let (rolled, rolled_breakdown) = at(&batch, rollup_s);
                let (direct_windows, direct_breakdown) = at(&direct, rollup_s);
                let (raw, _) = at(&batch, window_s);
                let raw_count: u64 = raw.values().map(|s| s.count).sum();
                prop_assert_eq!(raw_count, items.len() as u64);
                let width = i64::from(window_s) * 1000;
                let mut expected: BTreeMap<i64, u64> = BTreeMap::new();
                for span in spans.iter().filter(|s| s.parent_span_id.is_none()) {
                    *expected.entry(span.end_ms().div_euclid(width) * width).or_default() += 1;
                }
                let mut counted: BTreeMap<i64, u64> = BTreeMap::new();
                for ((_, start), stats) in &raw {
                    *counted.entry(*start).or_default() += stats.count;
                }
                prop_assert_eq!(counted, expected);
                prop_assert_eq!(rolled.len(), direct_windows.len());
                for (key, stats) in &rolled {
                    let direct = direct_windows.get(key);
                    prop_assert!(direct.is_some(), "rollup window {:?} not aggregated directly", key);
                    let direct = direct.unwrap();
                    prop_assert_eq!(
                        (stats.count, stats.errors, stats.sum_us, stats.max_us),
                        (direct.count, direct.errors, direct.sum_us, direct.max_us)
                    );
                    prop_assert_eq!(&stats.histogram, &direct.histogram);
                    prop_assert_eq!(&stats.error_histogram, &direct.error_histogram);
                }
                let total: u64 = rolled.values().map(|s| s.count).sum();
                prop_assert_eq!(total, items.len() as u64);
                prop_assert_eq!(rolled_breakdown, direct_breakdown);
            }
        }
    }
}
