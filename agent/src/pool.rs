//! Recycled span records.
//!
//! A span's record lives in a box from the start of the span until the export thread has
//! converted it; the layer, the transaction's child list and the queue only move the pointer.
//! The export thread hands converted records back to the agent's pool, and application threads
//! take them again, a few dozen at a time, into a per-thread stash. In the steady state,
//! recording a span therefore neither allocates nor frees, copies its record once at most, and
//! no memory crosses threads to be freed where it was not allocated (which made the allocator
//! consolidate and fault pages back in on the application thread).
//!
//! Both stashes are bounded, and a record that grew large (many attributes or events) is not
//! kept, so the pool holds at most as many small records as the queue holds spans, plus
//! [`LOCAL_MAX`] per thread: no more than a full queue would.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use crate::record::SpanRecord;

/// A recorded span, boxed so it moves as a pointer.
pub(crate) type BoxedRecord = Box<SpanRecord>;

/// Records a thread takes from the pool at once (and keeps at most).
const LOCAL_MAX: usize = 32;

thread_local! {
    /// This thread's stash: taking a record from it costs no lock.
    static LOCAL: RefCell<Vec<BoxedRecord>> = const { RefCell::new(Vec::new()) };
}

/// The records the export thread handed back.
#[derive(Debug)]
pub(crate) struct Pool {
    shared: Mutex<Vec<BoxedRecord>>,
    /// `shared.len()`, read without the lock so an empty pool costs no lock.
    shared_len: AtomicUsize,
    /// Records kept at most (the queue's capacity in spans).
    capacity: usize,
}

impl Pool {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            shared: Mutex::new(Vec::new()),
            shared_len: AtomicUsize::new(0),
            capacity,
        }
    }

    /// Returns an empty record for a span named `name` starting at `start`: a recycled one
    /// when this thread's stash (refilled from the pool) has one, else a new one.
    pub(crate) fn take(&self, name: &'static str, start: SystemTime) -> BoxedRecord {
        let recycled = LOCAL
            .try_with(|local| {
                let mut local = local.borrow_mut();
                if local.is_empty() && self.shared_len.load(Relaxed) > 0 {
                    let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
                    let keep = shared.len().saturating_sub(LOCAL_MAX);
                    local.extend(shared.drain(keep..));
                    self.shared_len.store(shared.len(), Relaxed);
                }
                local.pop()
            })
            .ok()
            .flatten();
        match recycled {
            Some(mut record) => {
                record.reset(name, start);
                record
            }
            None => Box::new(SpanRecord::new(name, start)),
        }
    }

    /// Takes back records the export thread is done with, for reuse; beyond the pool's bound,
    /// or when they grew large, they are freed. Their values are dropped here, on the export
    /// thread, so that taking a record on an application thread frees nothing.
    pub(crate) fn give_back(&self, records: &mut Vec<BoxedRecord>) {
        records.retain_mut(|r| {
            r.release_values();
            r.is_small()
        });
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let room = self.capacity.saturating_sub(shared.len());
        let keep = records.len().min(room);
        shared.extend(records.drain(..keep));
        self.shared_len.store(shared.len(), Relaxed);
        drop(shared);
        records.clear();
    }
}
