//! Per-series RED totals (rate, errors, duration) since the process started, counted as each
//! transaction is aggregated, for `GET /metrics`.
//!
//! The aggregator drains its windows at every flush; these totals are never drained, so the
//! counters are monotonic for the life of the process. At most `metrics.max_series` series get
//! their own totals; the transactions of any further series are added to one overflow total,
//! so the sum over all series stays exact.

use std::collections::HashMap;
use std::sync::Arc;

use super::buckets::{BucketCounts, TRANSACTION_BOUNDS_US};
use crate::model::{SeriesId, SeriesKey};

/// The totals of one series (or of the overflow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRed {
    /// Error transactions.
    pub errors: u64,
    /// Durations of all transactions (its `count` is the transaction count).
    pub duration: BucketCounts,
}

impl Default for SeriesRed {
    fn default() -> Self {
        Self {
            errors: 0,
            duration: BucketCounts::new(TRANSACTION_BOUNDS_US),
        }
    }
}

impl SeriesRed {
    fn record(&mut self, duration_us: u64, error: bool) {
        self.duration.record(duration_us);
        self.errors += u64::from(error);
    }
}

/// The RED totals of every series seen since start, capped.
#[derive(Debug)]
pub struct RedTotals {
    max_series: usize,
    series: HashMap<SeriesId, (Arc<SeriesKey>, SeriesRed)>,
    overflow: SeriesRed,
}

/// A copy of the totals (cheap to take: the keys are shared).
#[derive(Debug, Clone, Default)]
pub struct RedSnapshot {
    /// The series with their own totals, in no particular order.
    pub series: Vec<(Arc<SeriesKey>, SeriesRed)>,
    /// The transactions of series beyond the cap.
    pub overflow: SeriesRed,
    /// The cap (`metrics.max_series`).
    pub max_series: usize,
}

impl RedTotals {
    /// Returns empty totals that give at most `max_series` series their own.
    pub fn new(max_series: usize) -> Self {
        Self {
            max_series,
            series: HashMap::new(),
            overflow: SeriesRed::default(),
        }
    }

    /// Counts one transaction of series `id` (whose key is `key`).
    pub fn record(
        &mut self,
        id: SeriesId,
        key: impl FnOnce() -> SeriesKey,
        duration_us: u64,
        error: bool,
    ) {
        if let Some((_, red)) = self.series.get_mut(&id) {
            red.record(duration_us, error);
        } else if self.series.len() < self.max_series {
            let mut red = SeriesRed::default();
            red.record(duration_us, error);
            self.series.insert(id, (Arc::new(key()), red));
        } else {
            self.overflow.record(duration_us, error);
        }
    }

    /// Returns a copy (taken under the aggregator's lock, so it only copies; sort it after).
    pub fn snapshot(&self) -> RedSnapshot {
        RedSnapshot {
            series: self.series.values().cloned().collect(),
            overflow: self.overflow.clone(),
            max_series: self.max_series,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(transaction: &str) -> SeriesKey {
        SeriesKey {
            service: "svc".into(),
            environment: "prod".into(),
            version: "1".into(),
            transaction: transaction.into(),
        }
    }

    #[test]
    fn series_beyond_the_cap_go_to_the_overflow() {
        let mut red = RedTotals::new(1);
        let (a, b) = (key("a"), key("b"));
        red.record(a.id(), || a.clone(), 1_000, false);
        red.record(b.id(), || b.clone(), 2_000, true);
        red.record(a.id(), || a.clone(), 30_000, true);
        let snapshot = red.snapshot();
        assert_eq!(snapshot.series.len(), 1);
        let (k, totals) = &snapshot.series[0];
        assert_eq!(**k, a);
        assert_eq!((totals.duration.count, totals.errors), (2, 1));
        assert_eq!(totals.duration.sum_us, 31_000);
        assert_eq!(
            (snapshot.overflow.duration.count, snapshot.overflow.errors),
            (1, 1)
        );
    }
}
