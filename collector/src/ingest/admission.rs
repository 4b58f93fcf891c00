//! Admission control: what keeps the collector's memory bounded under any load.
//!
//! Before an export request is handled it must pass three checks, and a refused request is
//! answered `UNAVAILABLE` with `RetryInfo` (gRPC) or `503` with `Retry-After` (HTTP), so
//! OpenTelemetry exporters keep the data and send it again later; nothing of it was accepted,
//! so nothing acknowledged is lost:
//!
//! 1. **concurrency**: at most `limits.max_concurrent_exports` requests are converted and
//!    aggregated at once; a request waits up to [`QUEUE_WAIT`] for its turn;
//! 2. **buffered spans**: the spans accepted but not yet written to the store (the store is
//!    slower than the traffic, or failing) stay under `limits.max_buffered_spans`;
//! 3. **memory**: the process's resident memory (`VmRSS`, sampled at most every 100 ms) stays
//!    under `limits.memory_limit_mib` (0 = no limit; Linux only).
//!
//! Each refusal is counted by reason in `headlight_export_requests_refused_total` (`busy`,
//! `store_behind`, `memory_limit`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::refusal::Refusal;
use crate::config::LimitsConfig;
use crate::metrics::process::resident_memory_bytes;
use crate::metrics::reasons::Reason as _;

/// How long a request waits for a free slot before it is refused.
pub const QUEUE_WAIT: Duration = Duration::from_millis(250);
/// The delay a refused client is told to wait (`RetryInfo`, `Retry-After`).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How often the resident memory is read again.
const RSS_EVERY_MS: i64 = 100;

/// The checks. Refusals are counted by the listeners, by protocol, in the pipeline's
/// `grpc_refused` / `http_refused` (`headlight_export_requests_refused_total`).
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    max_buffered_spans: u64,
    memory_limit_bytes: u64,
    /// Last sampled RSS, bytes, and when (ms since `started`).
    rss: AtomicU64,
    rss_at_ms: AtomicI64,
    started: Instant,
}

impl Admission {
    /// The checks for these limits.
    pub fn new(limits: &LimitsConfig) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limits.max_concurrent_exports)),
            max_buffered_spans: limits.max_buffered_spans,
            memory_limit_bytes: limits.memory_limit_mib.saturating_mul(1024 * 1024),
            rss: AtomicU64::new(0),
            rss_at_ms: AtomicI64::new(i64::MIN),
            started: Instant::now(),
        }
    }

    /// Waits for an export slot and checks the buffered spans and the memory. The permit must
    /// be held until the request's spans are applied: move it into the blocking task, so a
    /// client that gives up (its future dropped) does not free the slot while the work goes on.
    /// `buffered_spans` is read once the slot is taken (a value read before the wait would be
    /// stale by up to [`QUEUE_WAIT`] of other requests' spans).
    pub async fn admit(
        &self,
        buffered_spans: impl Fn() -> u64,
    ) -> Result<OwnedSemaphorePermit, Refusal> {
        let permit =
            match tokio::time::timeout(QUEUE_WAIT, Arc::clone(&self.slots).acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => return Err(Refusal::Busy),
            };
        if buffered_spans() >= self.max_buffered_spans {
            return Err(Refusal::StoreBehind);
        }
        if self.memory_limit_bytes > 0 && self.rss_bytes() >= self.memory_limit_bytes {
            return Err(Refusal::MemoryLimit);
        }
        Ok(permit)
    }

    /// The process's resident memory, bytes, read at most every 100 ms.
    pub fn rss_bytes(&self) -> u64 {
        let now = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let at = self.rss_at_ms.load(Relaxed);
        if now.saturating_sub(at) >= RSS_EVERY_MS {
            self.rss_at_ms.store(now, Relaxed);
            if let Some(rss) = resident_memory_bytes() {
                self.rss.store(rss, Relaxed);
            }
        }
        self.rss.load(Relaxed)
    }

    /// The message a refused client gets.
    pub fn message(&self, why: Refusal, buffered_spans: u64) -> String {
        match why {
            Refusal::Busy => format!(
                "the collector is busy: every export slot stayed taken for {} ms; retry after {} s",
                QUEUE_WAIT.as_millis(),
                RETRY_AFTER.as_secs()
            ),
            Refusal::StoreBehind => format!(
                "the store is behind: {buffered_spans} spans wait to be written (limit {}); retry after {} s",
                self.max_buffered_spans,
                RETRY_AFTER.as_secs()
            ),
            Refusal::MemoryLimit => format!(
                "the collector is over its memory limit ({} MiB resident, limit {} MiB); retry after {} s",
                self.rss.load(Relaxed) >> 20,
                self.memory_limit_bytes >> 20,
                RETRY_AFTER.as_secs()
            ),
            other => format!("refused: {}", other.label()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(slots: usize, buffered: u64, memory_mib: u64) -> LimitsConfig {
        LimitsConfig {
            max_concurrent_exports: slots,
            max_buffered_spans: buffered,
            memory_limit_mib: memory_mib,
            ..LimitsConfig::default()
        }
    }

    #[tokio::test]
    async fn refuses_when_busy_behind_or_over_memory() {
        let a = Admission::new(&limits(1, 100, 0));
        let held = a.admit(|| 0).await.unwrap();
        assert_eq!(a.admit(|| 0).await.unwrap_err(), Refusal::Busy);
        drop(held);
        assert!(a.admit(|| 99).await.is_ok());
        assert_eq!(a.admit(|| 100).await.unwrap_err(), Refusal::StoreBehind);
        assert!(
            a.message(Refusal::StoreBehind, 100)
                .contains("100 spans wait")
        );
        // A 1 MiB limit: this test process is far above it.
        let m = Admission::new(&limits(1, 100, 1));
        assert!(resident_memory_bytes().unwrap() > 1 << 20);
        assert_eq!(m.admit(|| 0).await.unwrap_err(), Refusal::MemoryLimit);
        assert!(m.message(Refusal::MemoryLimit, 0).contains("limit 1 MiB"));
    }
}
