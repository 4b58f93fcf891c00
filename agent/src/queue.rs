//! The bounded export queue between application threads and the export thread.
//!
//! Application threads only push: a short uncontended lock, no allocation beyond the item, and
//! no wake-up unless the queue just reached a full batch. When the queue holds
//! `max_queue_spans` spans, new items are dropped and counted, never awaited.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::record::SpanRecord;
use crate::stats::{Counters, DropReason};

/// What the layer hands to the exporter.
#[derive(Debug)]
pub(crate) enum Item {
    /// A transaction span and the local child spans that ended before it.
    Transaction {
        span: SpanRecord,
        children: Vec<SpanRecord>,
    },
    /// A child span that ended after its transaction, or beyond its transaction's buffer: it
    /// is always sent.
    Loose(SpanRecord),
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

/// The queue, shared by the layer (producers) and the export thread (consumer).
#[derive(Debug)]
pub(crate) struct Queue {
    items: Mutex<VecDeque<Item>>,
    queued_spans: AtomicUsize,
    capacity: usize,
    wake_at: usize,
    closed: AtomicBool,
    pub(crate) notify: Notify,
    pub(crate) counters: Arc<Counters>,
    last_warning_s: AtomicU64,
}

impl Queue {
    pub(crate) fn new(capacity: usize, wake_at: usize, counters: Arc<Counters>) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            queued_spans: AtomicUsize::new(0),
            capacity,
            wake_at: wake_at.min(capacity).max(1),
            closed: AtomicBool::new(false),
            notify: Notify::new(),
            counters,
            last_warning_s: AtomicU64::new(0),
        }
    }

    /// Queues an item, or drops and counts it when the queue is full or closed.
    pub(crate) fn push(&self, item: Item) {
        let spans = item.spans();
        let transactions = item.transactions();
        self.counters
            .spans_recorded
            .fetch_add(spans as u64, Relaxed);
        if transactions > 0 {
            self.counters
                .transactions_recorded
                .fetch_add(transactions, Relaxed);
        }
        if self.closed.load(Relaxed) {
            self.counters
                .dropped(DropReason::Shutdown, spans as u64, transactions);
            return;
        }
        let before = self.queued_spans.fetch_add(spans, Relaxed);
        if before + spans > self.capacity {
            self.queued_spans.fetch_sub(spans, Relaxed);
            self.counters
                .dropped(DropReason::QueueFull, spans as u64, transactions);
            self.warn_full();
            return;
        }
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(item);
        if before < self.wake_at && before + spans >= self.wake_at {
            self.notify.notify_one();
        }
    }

    /// Takes everything queued.
    pub(crate) fn take(&self) -> VecDeque<Item> {
        let items = std::mem::take(&mut *self.items.lock().unwrap_or_else(PoisonError::into_inner));
        let spans: usize = items.iter().map(Item::spans).sum();
        self.queued_spans.fetch_sub(spans, Relaxed);
        items
    }

    /// Refuses new items from now on (they are counted as dropped at shutdown).
    pub(crate) fn close(&self) {
        self.closed.store(true, Relaxed);
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
            let stats = self.counters.snapshot();
            tracing::warn!(
                dropped_spans = stats.spans_dropped.get(DropReason::QueueFull),
                capacity = self.capacity,
                "headlight export queue full; dropping spans"
            );
        }
    }
}
