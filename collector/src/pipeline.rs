//! The ingest pipeline: validated spans into the aggregator, aggregated deltas into the store.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use headlight_proto::otlp::collector::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use crate::aggregate::agent_drops::{AgentDrops, ServiceDrops};
use crate::aggregate::{Aggregator, AggregatorStats};
use crate::config::Config;
use crate::ingest::convert::{self, RejectReason, TimeBounds};
use crate::store::{
    RetentionCutoffs, RetentionReport, SeriesFilter, Store, StoreError, WriteBatch,
};

/// Returns the current unix time in ns.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Counters of the pipeline since start.
#[derive(Debug, Default)]
pub struct PipelineCounters {
    /// Export requests handled.
    pub requests: AtomicU64,
    /// Spans accepted.
    pub spans_accepted: AtomicU64,
    /// Store writes that failed (the batch is kept and retried).
    pub write_errors: AtomicU64,
    /// Store writes that succeeded.
    pub writes: AtomicU64,
    /// Elements of `headlight.unsent_children` ignored (malformed, or over 256 per span).
    pub unsent_children_ignored: AtomicU64,
    rejected: Mutex<BTreeMap<RejectReason, u64>>,
}

impl PipelineCounters {
    /// Spans rejected, by reason.
    pub fn rejected(&self) -> BTreeMap<RejectReason, u64> {
        self.rejected.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// Takes export requests in, keeps the aggregator, and flushes to the store.
#[derive(Debug)]
pub struct Pipeline {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    aggregator: Mutex<Aggregator>,
    /// The headlight agents' drop counters (in memory; they come back with the next report).
    agent_drops: Mutex<AgentDrops>,
    /// Held for a whole flush, so batches reach the store in order; holds a batch whose write
    /// failed, to be written before the next one.
    flush_state: Mutex<Option<WriteBatch>>,
    counters: PipelineCounters,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain counters and maps behind; keep serving.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Pipeline {
    /// Creates the pipeline over a store, loading the known series (for the cardinality cap).
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let known = store.series(&SeriesFilter::default())?;
        let aggregator = Aggregator::new(config.aggregation.clone(), config.spans.clone(), &known);
        Ok(Self {
            config,
            store,
            aggregator: Mutex::new(aggregator),
            agent_drops: Mutex::new(AgentDrops::default()),
            flush_state: Mutex::new(None),
            counters: PipelineCounters::default(),
        })
    }

    /// The store behind the pipeline.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The pipeline's counters.
    pub fn counters(&self) -> &PipelineCounters {
        &self.counters
    }

    /// The aggregator's counters.
    pub fn aggregator_stats(&self) -> AggregatorStats {
        lock(&self.aggregator).stats()
    }

    /// Returns what each service's headlight agents reported they dropped, summed over the
    /// service's instances.
    pub fn agent_drops(&self) -> BTreeMap<String, ServiceDrops> {
        lock(&self.agent_drops).by_service()
    }

    /// Returns how many agent drop reports (from instances beyond the bound) and counters were
    /// refused since start.
    pub fn agent_drops_refused(&self) -> u64 {
        lock(&self.agent_drops).refused()
    }

    /// Validates and aggregates one export request; invalid spans are counted and named in the
    /// partial success, the valid ones kept. The headlight agent's drop counters are recorded.
    pub fn export(&self, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse {
        let bounds = TimeBounds::new(
            now_ns(),
            &self.config.limits,
            self.config.aggregation.raw_retention_ms(),
        );
        let converted = convert::convert(request, bounds, &self.config.limits);
        let rejected = converted.rejected_count();
        let message = converted.message();
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.counters
            .spans_accepted
            .fetch_add(converted.spans.len() as u64, Ordering::Relaxed);
        self.counters
            .unsent_children_ignored
            .fetch_add(converted.unsent_children_ignored, Ordering::Relaxed);
        if !converted.drop_reports.is_empty() {
            let mut drops = lock(&self.agent_drops);
            for report in converted.drop_reports {
                drops.record(report);
            }
        }
        if rejected > 0 {
            let mut by_reason = lock(&self.counters.rejected);
            for (reason, n) in &converted.rejected {
                *by_reason.entry(*reason).or_default() += n;
            }
            tracing::debug!(rejected, %message, "rejected spans");
        }
        if !converted.spans.is_empty() {
            lock(&self.aggregator).apply(converted.spans, Instant::now());
        }
        ExportTraceServiceResponse {
            partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
                error_message: message,
            }),
        }
    }

    /// Writes everything aggregated so far to the store. On failure the batch is kept and
    /// written first by the next flush, so nothing acknowledged is dropped by a store error.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut retry = lock(&self.flush_state);
        let fresh = {
            let mut aggregator = lock(&self.aggregator);
            aggregator.expire(Instant::now());
            aggregator.drain()
        };
        if let Some(failed) = retry.take() {
            if let Err(e) = self.store.write(&failed) {
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                *retry = Some(merge_batches(failed, fresh));
                return Err(e);
            }
            self.counters.writes.fetch_add(1, Ordering::Relaxed);
        }
        if fresh.is_empty() {
            return Ok(());
        }
        match self.store.write(&fresh) {
            Ok(()) => {
                self.counters.writes.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                *retry = Some(fresh);
                Err(e)
            }
        }
    }

    /// Returns whether a failed batch is waiting to be written.
    pub fn has_unwritten_batch(&self) -> bool {
        lock(&self.flush_state).is_some()
    }

    /// Deletes what is past retention.
    pub fn enforce_retention(&self) -> Result<RetentionReport, StoreError> {
        let now_ms = now_ns() / 1_000_000;
        let a = &self.config.aggregation;
        self.store.enforce_retention(&RetentionCutoffs {
            raw_before_ms: now_ms - a.raw_retention_ms(),
            raw_resolution_s: a.window_s,
            rollup_before_ms: now_ms - a.rollup_retention_ms(),
            rollup_resolution_s: a.rollup_window_s,
        })
    }
}

/// Appends `b` to `a` (deltas add up in the store, so order within a batch does not matter).
fn merge_batches(mut a: WriteBatch, b: WriteBatch) -> WriteBatch {
    a.series.extend(b.series);
    a.histograms.extend(b.histograms);
    a.breakdown.extend(b.breakdown);
    a.transactions.extend(b.transactions);
    a.spans.extend(b.spans);
    a
}
