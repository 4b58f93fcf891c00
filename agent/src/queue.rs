//! The bounded export queue between application threads and the export thread.
//!
//! Application threads only push: one short lock, under which the item is appended and counted,
//! and no wake-up unless the queue just reached a full batch. The buffer keeps its capacity
//! across batches (the export thread hands back the one it emptied), so pushing neither grows
//! nor faults in memory in the steady state. When the queue holds `max_queue_spans` spans, new
//! items are dropped and counted, never awaited.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::pool::{BoxedRecord, Pool};
use crate::stats::{AgentStats, Counters, DropReason};

/// What the layer hands to the exporter.
#[derive(Debug)]
pub(crate) enum Item {
    /// A transaction span and the local child spans that ended before it.
    Transaction {
        span: BoxedRecord,
        children: Vec<BoxedRecord>,
    },
    /// A child span that ended after its transaction, or beyond its transaction's buffer: it
    /// is always sent.
    Loose(BoxedRecord),
}

impl Item {
    pub(crate) fn spans(&self) -> usize {
        match self {
            Self::Transaction { children, .. } => 1 + children.len(),
            Self::Loose(_) => 1,
        }
    }

    pub(crate) fn transactions(&self) -> u64 {
        u64::from(matches!(self, Self::Transaction { .. }))
    }
}

/// What the lock protects: the items and every count the push path changes.
#[derive(Debug, Default)]
struct Inner {
    items: Vec<Item>,
    /// Spans in `items`.
    queued_spans: usize,
    /// Spans and transactions pushed since start, accepted or not: the `recorded` counters.
    recorded_spans: u64,
    recorded_transactions: u64,
    closed: bool,
}

/// The queue, shared by the layer (producers) and the export thread (consumer).
#[derive(Debug)]
pub(crate) struct Queue {
    inner: Mutex<Inner>,
    capacity: usize,
    wake_at: usize,
    pub(crate) notify: Notify,
    pub(crate) counters: Arc<Counters>,
    /// Span records on their way back from the export thread.
    pub(crate) pool: Pool,
    last_warning_s: AtomicU64,
}

impl Queue {
    pub(crate) fn new(capacity: usize, wake_at: usize, counters: Arc<Counters>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity,
            wake_at: wake_at.min(capacity).max(1),
            notify: Notify::new(),
            counters,
            pool: Pool::new(capacity),
            last_warning_s: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an item, or drops and counts it when the queue is full or closed.
    pub(crate) fn push(&self, item: Item) {
        let spans = item.spans();
        let transactions = item.transactions();
        let mut inner = self.lock();
        inner.recorded_spans += spans as u64;
        inner.recorded_transactions += transactions;
        let refused = if inner.closed {
            Some(DropReason::Shutdown)
        } else if inner.queued_spans + spans > self.capacity {
            Some(DropReason::QueueFull)
        } else {
            None
        };
        if let Some(reason) = refused {
            // Counted under the lock, so a snapshot never sees it recorded but not dropped.
            self.counters.dropped(reason, spans as u64, transactions);
            drop(inner);
            drop(item);
            if reason == DropReason::QueueFull {
                self.warn_full();
            }
            return;
        }
        let before = inner.queued_spans;
        inner.queued_spans += spans;
        inner.items.push(item);
        drop(inner);
        if before < self.wake_at && before + spans >= self.wake_at {
            self.notify.notify_one();
        }
    }

    /// Takes everything queued, handing back `empty` (an emptied buffer, whose capacity the
    /// queue keeps using).
    pub(crate) fn take(&self, mut empty: Vec<Item>) -> Vec<Item> {
        debug_assert!(empty.is_empty());
        empty.clear();
        let mut inner = self.lock();
        inner.queued_spans = 0;
        std::mem::swap(&mut inner.items, &mut empty);
        empty
    }

    /// Refuses new items from now on (they are counted as dropped at shutdown).
    pub(crate) fn close(&self) {
        self.lock().closed = true;
    }

    /// Returns the agent's counters.
    pub(crate) fn stats(&self) -> AgentStats {
        let inner = self.lock();
        let (spans, transactions) = (inner.recorded_spans, inner.recorded_transactions);
        // Read under the lock: every push counted in `recorded` is either queued (pending) or
        // already in the drop counters.
        let stats = self.counters.snapshot(spans, transactions);
        drop(inner);
        stats
    }

    /// Logs that the queue is full, at most once per 10 s (the export thread's events are not
    /// recorded, but this runs on an application thread: the layer skips events whose target
    /// is this crate).
    fn warn_full(&self) {
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_warning_s.load(Relaxed);
        if now_s >= last + 10
            && self
                .last_warning_s
                .compare_exchange(last, now_s, Relaxed, Relaxed)
                .is_ok()
        {
            tracing::warn!(
                dropped_spans = self.stats().spans_dropped.get(DropReason::QueueFull),
                capacity = self.capacity,
                "headlight export queue full; dropping spans"
            );
        }
    }
}
