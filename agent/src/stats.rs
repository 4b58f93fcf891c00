//! The agent's own counters: every recorded span is sent, left out by the tail decision, or
//! dropped with a reason.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why spans were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The export queue was full (the collector is slow or down, or the application outruns
    /// the exporter).
    QueueFull,
    /// Export failed with a non-retryable error, or retries ran out of time.
    ExportFailed,
    /// The collector refused them (OTLP partial success).
    Rejected,
    /// Still queued, or ended, when the agent shut down.
    Shutdown,
}

impl DropReason {
    /// Every reason, in the order of [`DropCounts::by_reason`].
    pub const ALL: [Self; 4] = [
        Self::QueueFull,
        Self::ExportFailed,
        Self::Rejected,
        Self::Shutdown,
    ];

    /// The snake_case name used in the resource attributes sent to the collector.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::ExportFailed => "export_failed",
            Self::Rejected => "rejected",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Drop counts by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Counts indexed like [`DropReason::ALL`].
    pub by_reason: [u64; 4],
}

impl DropCounts {
    /// Returns the count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.by_reason[reason as usize]
    }

    /// Returns the sum over all reasons.
    pub fn total(&self) -> u64 {
        self.by_reason.iter().sum()
    }
}

/// A snapshot of the agent's counters since start.
///
/// Conservation: `spans_recorded = spans_sent + spans_not_kept + spans_dropped.total() +
/// spans_pending`, and the same for transactions (without `not_kept`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Sampled spans that ended (transactions included).
    pub spans_recorded: u64,
    /// Transactions that ended.
    pub transactions_recorded: u64,
    /// Spans the collector acknowledged.
    pub spans_sent: u64,
    /// Transactions the collector acknowledged.
    pub transactions_sent: u64,
    /// Child spans the tail decision did not send; their time still reaches the collector's
    /// breakdown as a per-operation summary on their transaction.
    pub spans_not_kept: u64,
    /// Spans dropped, by reason.
    pub spans_dropped: DropCounts,
    /// Transactions dropped, by reason (the collector's histograms miss these).
    pub transactions_dropped: DropCounts,
    /// Spans queued or in flight right now.
    pub spans_pending: u64,
    /// Transactions queued or in flight right now.
    pub transactions_pending: u64,
    /// Export requests sent (retries included).
    pub export_requests: u64,
    /// Export attempts that were retried.
    pub export_retries: u64,
}

impl std::ops::AddAssign for DropCounts {
    fn add_assign(&mut self, other: Self) {
        for (total, n) in self.by_reason.iter_mut().zip(other.by_reason) {
            *total += n;
        }
    }
}

impl std::ops::AddAssign for AgentStats {
    /// Sums every counter, e.g. over several agents or runs.
    fn add_assign(&mut self, other: Self) {
        self.spans_recorded += other.spans_recorded;
        self.transactions_recorded += other.transactions_recorded;
        self.spans_sent += other.spans_sent;
        self.transactions_sent += other.transactions_sent;
        self.spans_not_kept += other.spans_not_kept;
        self.spans_dropped += other.spans_dropped;
        self.transactions_dropped += other.transactions_dropped;
        self.spans_pending += other.spans_pending;
        self.transactions_pending += other.transactions_pending;
        self.export_requests += other.export_requests;
        self.export_retries += other.export_retries;
    }
}

impl std::fmt::Display for AgentStats {
    /// Writes the span fates on one line: `spans recorded R, sent S, not kept by the tail
    /// decision K, dropped D (queue_full q, …), pending P; transactions recorded …`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "spans recorded {}, sent {}, not kept by the tail decision {}, dropped {} (",
            self.spans_recorded,
            self.spans_sent,
            self.spans_not_kept,
            self.spans_dropped.total()
        )?;
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(
                f,
                "{sep}{} {}",
                reason.as_str(),
                self.spans_dropped.get(reason)
            )?;
        }
        write!(
            f,
            "), pending {}; transactions recorded {}, sent {}, dropped {}",
            self.spans_pending,
            self.transactions_recorded,
            self.transactions_sent,
            self.transactions_dropped.total()
        )
    }
}

/// The live counters behind [`AgentStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) spans_sent: AtomicU64,
    pub(crate) transactions_sent: AtomicU64,
    pub(crate) spans_not_kept: AtomicU64,
    spans_dropped: [AtomicU64; 4],
    transactions_dropped: [AtomicU64; 4],
    pub(crate) export_requests: AtomicU64,
    pub(crate) export_retries: AtomicU64,
}

impl Counters {
    pub(crate) fn dropped(&self, reason: DropReason, spans: u64, transactions: u64) {
        self.spans_dropped[reason as usize].fetch_add(spans, Relaxed);
        self.transactions_dropped[reason as usize].fetch_add(transactions, Relaxed);
    }

    /// Returns the counters beside the queue's `recorded` counts (kept under the queue's lock,
    /// which the push path takes anyway).
    pub(crate) fn snapshot(&self, spans_recorded: u64, transactions_recorded: u64) -> AgentStats {
        let load = |a: &[AtomicU64; 4]| DropCounts {
            by_reason: [0, 1, 2, 3].map(|i| a[i].load(Relaxed)),
        };
        let mut stats = AgentStats {
            spans_recorded,
            transactions_recorded,
            spans_sent: self.spans_sent.load(Relaxed),
            transactions_sent: self.transactions_sent.load(Relaxed),
            spans_not_kept: self.spans_not_kept.load(Relaxed),
            spans_dropped: load(&self.spans_dropped),
            transactions_dropped: load(&self.transactions_dropped),
            export_requests: self.export_requests.load(Relaxed),
            export_retries: self.export_retries.load(Relaxed),
            ..AgentStats::default()
        };
        // Counters are read one by one while others move; what is not accounted for yet is
        // pending by definition.
        stats.spans_pending = stats
            .spans_recorded
            .saturating_sub(stats.spans_sent + stats.spans_not_kept + stats.spans_dropped.total());
        stats.transactions_pending = stats
            .transactions_recorded
            .saturating_sub(stats.transactions_sent + stats.transactions_dropped.total());
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_lists_every_fate() {
        let counters = Counters::default();
        counters.spans_sent.store(5, Relaxed);
        counters.transactions_sent.store(3, Relaxed);
        counters.spans_not_kept.store(2, Relaxed);
        counters.dropped(DropReason::QueueFull, 2, 1);
        let mut twice = counters.snapshot(10, 4);
        twice += counters.snapshot(10, 4);
        assert_eq!(twice.spans_dropped.get(DropReason::QueueFull), 4);
        assert_eq!(twice.transactions_sent, 6);
        assert_eq!(twice.spans_pending, 2);
        assert_eq!(
            counters.snapshot(10, 4).to_string(),
            "spans recorded 10, sent 5, not kept by the tail decision 2, dropped 2 (queue_full 2, \
             export_failed 0, rejected 0, shutdown 0), pending 1; transactions recorded 4, sent 3, \
             dropped 1"
        );
    }
}
