//! The ingest pipeline: validated spans into the aggregator, aggregated deltas into the store.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use headlight_proto::otlp::collector::{ExportTracePartialSuccess, ExportTraceServiceResponse};

use crate::aggregate::agent_drops::{AgentDrops, ServiceDrops};
use crate::aggregate::{Aggregator, AggregatorMetrics, AggregatorStats};
use crate::compare::report::{self, Report, Spec};
use crate::config::Config;
use crate::deploys::model::hide_superseded;
use crate::deploys::versions::{KnownVersions, NewVersion};
use crate::deploys::{Deploy, DeployQuery, NewDeploy};
use crate::error::ApiError;
use crate::ingest::admission::Admission;
use crate::ingest::convert::{self, RejectReason, TimeBounds};
use crate::ingest::refusal::Refusal;
use crate::ingest::wal::Wal;
use crate::metrics::buckets::{BucketCounts, STORE_WRITE_BOUNDS_US};
use crate::metrics::reasons::ReasonCounters;
use crate::store::{
    RetentionCutoffs, RetentionReport, SeriesFilter, Store, StoreError, WriteBatch,
};

/// Returns the current unix time in ns.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The write-ahead log could not be written (a full disk): the request was not accepted and
/// the client should retry it.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the write-ahead log: {0}")]
pub struct DurabilityError(#[source] pub std::io::Error);

/// Why an export request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The request is malformed or over a limit; retrying it cannot help.
    #[error(transparent)]
    Refused(#[from] convert::Refused),
    /// The write-ahead log could not be written; the client should retry.
    #[error(transparent)]
    Durability(#[from] DurabilityError),
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
    /// Span attributes dropped over `limits.max_attributes_per_span`.
    pub attributes_dropped: AtomicU64,
    /// Attribute values over `limits.max_attribute_value_bytes`, cut when stored.
    pub attribute_values_truncated: AtomicU64,
    /// Automatic deploy markers recorded.
    pub automatic_deploys: AtomicU64,
    /// Automatic deploy markers recorded that could not be written (store error).
    pub automatic_deploy_errors: AtomicU64,
    /// Spans rejected (invalid), by reason.
    pub spans_rejected: ReasonCounters<RejectReason>,
    /// OTLP/HTTP export requests refused before their spans were read, by reason.
    pub http_refused: ReasonCounters<Refusal>,
    /// OTLP/gRPC export requests refused before their spans were read, by reason.
    pub grpc_refused: ReasonCounters<Refusal>,
    /// Transactions aggregated whose batch is being written or waits for a retry (not counting
    /// those still in the aggregator).
    pub unwritten_transactions: AtomicU64,
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
    /// failed (and how many accepted spans it carries), to be written before the next one.
    flush_state: Mutex<Option<(WriteBatch, u64)>>,
    /// Spans applied to the aggregator since its last drain (changed under its lock).
    applied_since_drain: AtomicU64,
    /// Spans accepted whose data has not reached the store yet: what admission control bounds.
    buffered_spans: AtomicU64,
    admission: Admission,
    /// The write-ahead log (`durability.wal`).
    wal: Option<Wal>,
    /// Held for reading from an export's log append to its apply, for writing by a flush's
    /// rotate and drain.
    wal_gate: RwLock<()>,
    /// Versions each service reported, for automatic deploy markers.
    versions: Mutex<KnownVersions>,
    counters: PipelineCounters,
    /// How long each store write took, failed ones included.
    store_write_durations: Mutex<BucketCounts>,
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
        let aggregator = Aggregator::new(config.aggregation.clone(), config.spans.clone(), &known)
            .with_metrics_series_cap(config.metrics.max_series);
        let versions = KnownVersions::new(&known);
        let wal = if config.durability.wal {
            Some(Wal::open(&config.data_dir.join("wal")).map_err(|e| {
                StoreError::Backend(format!(
                    "cannot open the write-ahead log in {}: {e}",
                    config.data_dir.join("wal").display()
                ))
            })?)
        } else {
            None
        };
        Ok(Self {
            wal,
            wal_gate: RwLock::new(()),
            admission: Admission::new(&config.limits),
            config,
            store,
            aggregator: Mutex::new(aggregator),
            agent_drops: Mutex::new(AgentDrops::default()),
            flush_state: Mutex::new(None),
            applied_since_drain: AtomicU64::new(0),
            buffered_spans: AtomicU64::new(0),
            versions: Mutex::new(versions),
            counters: PipelineCounters::default(),
            store_write_durations: Mutex::new(BucketCounts::new(STORE_WRITE_BOUNDS_US)),
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

    /// What `GET /metrics` reads of the aggregator, under one short lock.
    pub fn aggregator_metrics(&self) -> AggregatorMetrics {
        lock(&self.aggregator).metrics()
    }

    /// How long the store writes took since start.
    pub fn store_write_durations(&self) -> BucketCounts {
        lock(&self.store_write_durations).clone()
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
    /// With the write-ahead log on, the request is on disk before this returns `Ok`; an `Err`
    /// (the log cannot be written: a full disk) means nothing of it was accepted.
    pub fn export(&self, request: &Bytes) -> Result<ExportTraceServiceResponse, ExportError> {
        let (response, seq) = self.ingest(request, self.wal.is_some())?;
        if let (Some(wal), Some(seq)) = (&self.wal, seq) {
            wal.sync(seq).map_err(|e| self.wal_failed(e))?;
        }
        Ok(response)
    }

    fn wal_failed(&self, e: std::io::Error) -> DurabilityError {
        // Counted by the listener as a `log_unwritable` refusal.
        tracing::warn!(error = %e, "cannot write the write-ahead log; the request is refused as retryable");
        DurabilityError(e)
    }

    /// Converts and applies an encoded request; with `log`, appends it to the write-ahead log
    /// first, under the gate that keeps a flush from draining between the two. Returns the
    /// response and the record's sequence number to sync.
    fn ingest(
        &self,
        request: &Bytes,
        log: bool,
    ) -> Result<(ExportTraceServiceResponse, Option<u64>), ExportError> {
        let bounds = TimeBounds::new(
            now_ns(),
            &self.config.limits,
            self.config.aggregation.raw_retention_ms(),
        );
        let converted = convert::convert(request, bounds, &self.config.limits)?;
        let rejected = converted.rejected_count();
        let message = converted.message();
        let mut seq = None;
        let new_versions = if !converted.spans.is_empty() {
            let n = converted.spans.len() as u64;
            let gate = self.wal_gate.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(wal) = self.wal.as_ref().filter(|_| log) {
                seq = Some(wal.append(request).map_err(|e| self.wal_failed(e))?);
            }
            let new_versions = if self.config.compare.automatic_deploys {
                self.new_versions(&converted.spans)
            } else {
                Vec::new()
            };
            lock(&self.aggregator).apply(converted.spans, Instant::now());
            self.applied_since_drain.fetch_add(n, Ordering::Relaxed);
            self.buffered_spans.fetch_add(n, Ordering::Relaxed);
            drop(gate);
            self.counters.spans_accepted.fetch_add(n, Ordering::Relaxed);
            new_versions
        } else {
            Vec::new()
        };
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.counters
            .unsent_children_ignored
            .fetch_add(converted.unsent_children_ignored, Ordering::Relaxed);
        self.counters
            .attributes_dropped
            .fetch_add(converted.attributes_dropped, Ordering::Relaxed);
        self.counters
            .attribute_values_truncated
            .fetch_add(converted.values_truncated, Ordering::Relaxed);
        if !converted.drop_reports.is_empty() {
            let mut drops = lock(&self.agent_drops);
            for report in converted.drop_reports {
                drops.record(report);
            }
        }
        if rejected > 0 {
            for (reason, n) in &converted.rejected {
                self.counters.spans_rejected.add(*reason, *n);
            }
            tracing::debug!(rejected, %message, "rejected spans");
        }
        for new in new_versions {
            self.record_automatic_deploy(new);
        }
        let response = ExportTraceServiceResponse {
            partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
                error_message: message,
            }),
        };
        Ok((response, seq))
    }

    /// Replays the write-ahead log left by a crash into the aggregator and writes it to the
    /// store; returns how many requests it held. Call before the listeners open.
    pub fn recover(&self) -> Result<u64, StoreError> {
        let Some(wal) = &self.wal else {
            return Ok(0);
        };
        let wal_error = |e: std::io::Error| StoreError::Backend(format!("write-ahead log: {e}"));
        let mut replayed = 0;
        wal.recover(
            |payload| match self.ingest(&Bytes::copy_from_slice(payload), false) {
                Ok(_) => replayed += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "write-ahead log: an unreadable record is skipped");
                }
            },
        )
        .map_err(wal_error)?;
        if replayed > 0 {
            self.flush()?;
            tracing::info!(
                requests = replayed,
                "write-ahead log replayed into the store"
            );
        }
        wal.remove_older_segments().map_err(wal_error)?;
        Ok(replayed)
    }

    /// Returns the versions first seen in these spans' transactions.
    fn new_versions(&self, spans: &[crate::model::Span]) -> Vec<NewVersion> {
        let mut versions = lock(&self.versions);
        let mut last: Option<(&str, &str, &str)> = None;
        let mut out = Vec::new();
        for span in spans.iter().filter(|s| s.transaction.is_some()) {
            let key = (&*span.service, &*span.environment, &*span.version);
            if last == Some(key) {
                continue;
            }
            last = Some(key);
            let start_ms = span.start_ns.div_euclid(1_000_000);
            if let Some(new) = versions.observe(key.0, key.1, key.2, start_ms) {
                out.push(new);
            }
        }
        drop(versions);
        // The earliest transaction of each new version in this request marks it.
        for new in &mut out {
            new.first_seen_ms = spans
                .iter()
                .filter(|s| {
                    s.transaction.is_some()
                        && *s.service == *new.service
                        && *s.environment == *new.environment
                        && *s.version == *new.version
                })
                .map(|s| s.start_ns.div_euclid(1_000_000))
                .min()
                .unwrap_or(new.first_seen_ms);
        }
        out
    }

    /// Records the automatic marker of a new version, unless a deploy of that version was
    /// recorded already (then that one is the marker).
    fn record_automatic_deploy(&self, new: NewVersion) {
        let recorded = self.store.deploys(&DeployQuery {
            service: Some(new.service.clone()),
            environment: Some(new.environment.clone()),
            limit: usize::MAX,
            ..DeployQuery::default()
        });
        let result = recorded.and_then(|recorded| {
            if recorded.iter().any(|d| d.version == new.version) {
                return Ok(());
            }
            let deploy = Deploy::automatic(
                &new.service,
                &new.environment,
                &new.version,
                new.first_seen_ms,
            );
            self.store.record_deploy(&deploy).map(|_| ())
        });
        match result {
            Ok(()) => {
                self.counters
                    .automatic_deploys
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(service = %new.service, environment = %new.environment, version = %new.version, "new version: automatic deploy marker");
            }
            Err(e) => {
                self.counters
                    .automatic_deploy_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, service = %new.service, version = %new.version, "cannot record the automatic deploy marker");
            }
        }
    }

    /// Validates and records a deploy (API, gRPC, CLI).
    pub fn record_deploy(&self, request: NewDeploy) -> Result<Deploy, ApiError> {
        let skew = i64::try_from(self.config.limits.max_future_skew_ms).unwrap_or(i64::MAX);
        let deploy = request.into_deploy(now_ns() / 1_000_000, skew)?;
        let stored = self.store.record_deploy(&deploy)?;
        tracing::info!(id = %stored.id, service = %stored.service, version = %stored.version, "deploy recorded");
        Ok(stored)
    }

    /// Lists deploys, newest first, without the automatic markers that a recorded deploy of the
    /// same version supersedes.
    pub fn deploys(&self, query: &DeployQuery) -> Result<Vec<Deploy>, ApiError> {
        let limit = query.limit;
        let all = self.store.deploys(&DeployQuery {
            limit: usize::MAX,
            ..query.clone()
        })?;
        let mut shown = hide_superseded(all);
        shown.truncate(limit);
        Ok(shown)
    }

    /// Returns a deploy's comparison report (computed and stored once it is ready).
    pub fn deploy_report(&self, id: &str) -> Result<Report, ApiError> {
        let deploy = self
            .store
            .deploy(id)?
            .ok_or_else(|| ApiError::not_found(format!("no deploy with id {id:?}")))?;
        Ok(report::deploy_report(
            self.store.as_ref(),
            &self.config,
            deploy,
            now_ns() / 1_000_000,
        )?)
    }

    /// Computes a canary or period comparison now.
    pub fn compare(&self, spec: Spec) -> Result<Report, ApiError> {
        Ok(report::compute(
            self.store.as_ref(),
            &self.config,
            spec,
            None,
            now_ns() / 1_000_000,
        )?)
    }

    /// Computes and stores the comparisons of deploys whose after-window has completed and
    /// whose claim `holder` (this collector) wins.
    pub fn settle_deploys(&self, holder: &str) -> Result<usize, StoreError> {
        report::settle_deploys(
            self.store.as_ref(),
            &self.config,
            now_ns() / 1_000_000,
            holder,
        )
    }

    /// Writes everything aggregated so far to the store. On failure the batch is kept and
    /// written first by the next flush, so nothing acknowledged is dropped by a store error.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut retry = lock(&self.flush_state);
        let (fresh, fresh_spans, rotated) = {
            // No export is between its log append and its apply while the gate is held, so the
            // closed segment holds exactly what this drain takes (and what earlier ones took).
            let _gate = self
                .wal_gate
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let rotated = match &self.wal {
                Some(wal) => wal
                    .rotate()
                    .map_err(|e| StoreError::Backend(format!("write-ahead log: {e}")))?,
                None => None,
            };
            let mut aggregator = lock(&self.aggregator);
            aggregator.expire(Instant::now());
            let spans = self.applied_since_drain.swap(0, Ordering::Relaxed);
            (aggregator.drain(), spans, rotated)
        };
        let unwritten = |batches: [Option<&WriteBatch>; 2]| {
            let n: usize = batches.iter().flatten().map(|b| b.transactions.len()).sum();
            self.counters
                .unwritten_transactions
                .store(n as u64, Ordering::Relaxed);
        };
        unwritten([retry.as_ref().map(|(b, _)| b), Some(&fresh)]);
        let result = self.write_flushed(&mut retry, fresh, fresh_spans);
        unwritten([retry.as_ref().map(|(b, _)| b), None]);
        // Everything logged up to the closed segment is in the store now.
        if result.is_ok()
            && let (Some(wal), Some(closed)) = (&self.wal, rotated)
            && let Err(e) = wal.remove_through(closed)
        {
            tracing::warn!(error = %e, "cannot delete written write-ahead log segments");
        }
        result
    }

    /// Writes the batch kept by a failed write, then `fresh`; what fails is kept in `retry`
    /// (with the count of accepted spans it carries). What is written leaves the buffered count.
    fn write_flushed(
        &self,
        retry: &mut Option<(WriteBatch, u64)>,
        fresh: WriteBatch,
        fresh_spans: u64,
    ) -> Result<(), StoreError> {
        if let Some((failed, failed_spans)) = retry.take() {
            if let Err(e) = self.timed_write(&failed) {
                *retry = Some((merge_batches(failed, fresh), failed_spans + fresh_spans));
                return Err(e);
            }
            self.buffered_spans
                .fetch_sub(failed_spans, Ordering::Relaxed);
        }
        if !fresh.is_empty()
            && let Err(e) = self.timed_write(&fresh)
        {
            *retry = Some((fresh, fresh_spans));
            return Err(e);
        }
        self.buffered_spans
            .fetch_sub(fresh_spans, Ordering::Relaxed);
        Ok(())
    }

    /// Writes a batch to the store, counting it and timing it.
    fn timed_write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.store.write(batch);
        let took_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        lock(&self.store_write_durations).record(took_us);
        let counter = match result {
            Ok(()) => &self.counters.writes,
            Err(_) => &self.counters.write_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// Admission control (ingest/admission.rs): waits for an export slot and checks the
    /// buffered spans and the memory. Hold the permit until the export is done (move it into
    /// the blocking task).
    pub async fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, (Refusal, String)> {
        self.admission
            .admit(|| self.buffered_spans())
            .await
            .map_err(|why| (why, self.admission.message(why, self.buffered_spans())))
    }

    /// Spans accepted whose data has not reached the store yet (the aggregator's since its last
    /// drain, the batch being written, a failed batch waiting to be written again).
    pub fn buffered_spans(&self) -> u64 {
        self.buffered_spans.load(Ordering::Relaxed)
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
