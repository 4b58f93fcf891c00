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
//! A transaction's list of children is recycled the same way.
//!
//! Both stashes are bounded, and a record or list that grew large (many attributes, events or
//! children) is not kept, so the pool holds at most as many small records as the queue holds
//! spans (and half as many lists), plus [`LOCAL_MAX`] of each per thread: no more than a full
//! queue would.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use crate::record::SpanRecord;

/// A recorded span, boxed so it moves as a pointer.
pub(crate) type BoxedRecord = Box<SpanRecord>;

/// Records (or lists) a thread takes from the pool at once (and keeps at most).
const LOCAL_MAX: usize = 32;
/// Child lists longer than this are freed rather than kept.
const LIST_MAX: usize = 64;

/// A transaction's child records: recycled too, as its first child would otherwise allocate it
/// on the application thread and the export thread free it.
pub(crate) type ChildList = Vec<BoxedRecord>;

/// A thread's stashes: taking from them costs no lock.
struct Local {
    records: Vec<BoxedRecord>,
    lists: Vec<ChildList>,
}

thread_local! {
    static LOCAL: RefCell<Local> = const {
        RefCell::new(Local {
            records: Vec::new(),
            lists: Vec::new(),
        })
    };
}

/// What the export thread handed back, bounded.
#[derive(Debug)]
struct Shared<T> {
    items: Mutex<Vec<T>>,
    /// `items.len()`, read without the lock so an empty pool costs no lock.
    len: AtomicUsize,
    capacity: usize,
}

impl<T> Shared<T> {
    fn new(capacity: usize) -> Self {
        Self {
            items: Mutex::new(Vec::new()),
            len: AtomicUsize::new(0),
            capacity,
        }
    }

    /// Moves up to [`LOCAL_MAX`] items into an empty local stash.
    fn refill(&self, local: &mut Vec<T>) {
        if !local.is_empty() || self.len.load(Relaxed) == 0 {
            return;
        }
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        let keep = items.len().saturating_sub(LOCAL_MAX);
        local.extend(items.drain(keep..));
        self.len.store(items.len(), Relaxed);
    }

    /// Keeps what fits under the bound and frees the rest; leaves `given` empty.
    fn give_back(&self, given: &mut Vec<T>) {
        if !given.is_empty() {
            let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
            let room = self.capacity.saturating_sub(items.len());
            let keep = given.len().min(room);
            items.extend(given.drain(..keep));
            self.len.store(items.len(), Relaxed);
        }
        given.clear();
    }
}

/// The records and child lists the export thread handed back.
#[derive(Debug)]
pub(crate) struct Pool {
    records: Shared<BoxedRecord>,
    lists: Shared<ChildList>,
}

impl Pool {
    /// A pool keeping at most `capacity` records (the queue's capacity in spans) and half as
    /// many child lists.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            records: Shared::new(capacity),
            lists: Shared::new(capacity / 2),
        }
    }

    /// Returns an empty record for a span named `name` starting at `start`: a recycled one
    /// when this thread's stash (refilled from the pool) has one, else a new one.
    pub(crate) fn take(&self, name: &'static str, start: SystemTime) -> BoxedRecord {
        let recycled = LOCAL
            .try_with(|local| {
                let records = &mut local.borrow_mut().records;
                self.records.refill(records);
                records.pop()
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

    /// Returns an empty child list, recycled when one is at hand.
    pub(crate) fn take_list(&self) -> ChildList {
        LOCAL
            .try_with(|local| {
                let lists = &mut local.borrow_mut().lists;
                self.lists.refill(lists);
                lists.pop()
            })
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Takes back records the export thread is done with, for reuse; beyond the pool's bound,
    /// or when they grew large, they are freed. Their values are dropped here, on the export
    /// thread, so that taking a record on an application thread frees nothing.
    pub(crate) fn give_back(&self, records: &mut Vec<BoxedRecord>) {
        records.retain_mut(|r| {
            r.release_values();
            r.is_small()
        });
        self.records.give_back(records);
    }

    /// Takes back emptied child lists.
    pub(crate) fn give_back_lists(&self, lists: &mut Vec<ChildList>) {
        lists.retain(|l| l.is_empty() && l.capacity() <= LIST_MAX);
        self.lists.give_back(lists);
    }
}
