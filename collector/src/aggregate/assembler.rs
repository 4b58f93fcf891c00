//! Assembles transactions with their local child spans.
//!
//! Children usually end — and are exported — before their transaction span, sometimes in an
//! earlier export request. A child whose chain of parents does not yet reach a transaction waits
//! here (bounded in count and time) until the rest of its trace arrives; then the transaction
//! is processed with its whole local subtree, so self times and the breakdown are complete.

use std::collections::VecDeque;
use std::hash::BuildHasher as _;
use std::time::{Duration, Instant};

use super::self_time::self_time_ns;
use super::{FastMap, TransactionRef};
use crate::model::{Span, SpanId, TraceId};

/// Longest parent chain followed; deeper (or cyclic) chains stay unresolved.
const MAX_DEPTH: usize = 512;
/// Slots of the memory of transactions for children that arrive after them (a power of two).
const MAX_RECENT: usize = 65_536;

/// A transaction with its local subtree, ready to aggregate.
#[derive(Debug)]
pub(crate) struct Assembled {
    /// Index of the transaction span in `spans`.
    pub transaction_index: usize,
    /// The transaction span and its local descendants (nested transactions excluded).
    pub spans: Vec<Span>,
    /// Self time of each of `spans`, ns (children anywhere in the trace subtracted).
    pub self_ns: Vec<i64>,
}

/// Child spans whose transaction never came in time.
#[derive(Debug)]
pub(crate) struct Orphans {
    pub trace_id: TraceId,
    pub spans: Vec<Span>,
    pub self_ns: Vec<i64>,
}

#[derive(Debug)]
struct Pending {
    spans: Vec<Span>,
    since: Instant,
}

#[derive(Debug)]
pub(crate) struct Assembler {
    wait: Duration,
    max_pending: usize,
    pending: FastMap<TraceId, Pending>,
    order: VecDeque<(TraceId, Instant)>,
    pending_spans: usize,
    evicted: u64,
    /// The last transaction processed per trace, in a slot chosen by the trace id's hash; a
    /// newer trace in the same slot replaces it. A write and a compare per transaction, where
    /// a map and a queue of the last 65 536 cost an insert and a removal.
    recent: Vec<Option<(TraceId, TransactionRef)>>,
    recent_hasher: foldhash::fast::RandomState,
}

/// Spans up to which parents are found by a linear scan rather than a hash map (a trace's
/// spans in one request are usually a handful).
const SMALL_TRACE: usize = 16;

/// The index in `spans` of each span's parent, when it is among them (the last span with that
/// id, if ids repeat).
fn parent_indices(spans: &[Span]) -> Vec<Option<usize>> {
    if spans.len() <= SMALL_TRACE {
        return spans
            .iter()
            .map(|s| {
                let parent = s.parent_span_id?;
                spans.iter().rposition(|p| p.span_id == parent)
            })
            .collect();
    }
    let index: FastMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    spans
        .iter()
        .map(|s| index.get(s.parent_span_id.as_ref()?).copied())
        .collect()
}

/// Self time of each span: the one the agent reported (`headlight.self_ns`), else its duration
/// less its children among `spans` (`parents` from [`parent_indices`]).
fn self_times(spans: &[Span], parents: &[Option<usize>]) -> Vec<i64> {
    // (parent, start, end) of every child, grouped by parent.
    let mut children: Vec<(usize, i64, i64)> = parents
        .iter()
        .zip(spans)
        .filter_map(|(parent, s)| Some(((*parent)?, s.start_ns, s.end_ns)))
        .collect();
    children.sort_unstable_by_key(|c| c.0);
    let mut rest = &children[..];
    spans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let first = rest.partition_point(|c| c.0 < i);
            let count = rest[first..].partition_point(|c| c.0 == i);
            let own = &rest[first..first + count];
            rest = &rest[first + count..];
            if let Some(reported) = s.reported_self_ns {
                return reported;
            }
            self_time_ns(s.start_ns, s.end_ns, own.iter().map(|c| (c.1, c.2)))
        })
        .collect()
}

impl Assembler {
    pub fn new(wait_ms: u64, max_pending: usize) -> Self {
        Self {
            wait: Duration::from_millis(wait_ms),
            max_pending,
            pending: FastMap::default(),
            order: VecDeque::new(),
            pending_spans: 0,
            evicted: 0,
            recent: Vec::new(),
            recent_hasher: foldhash::fast::RandomState::default(),
        }
    }

    pub fn pending_spans(&self) -> usize {
        self.pending_spans
    }

    /// Child spans dropped because the pending buffer was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Groups the spans of one trace (with any that waited) into transactions; spans whose
    /// transaction is still missing wait.
    pub fn assemble(
        &mut self,
        trace_id: TraceId,
        mut spans: Vec<Span>,
        now: Instant,
    ) -> Vec<Assembled> {
        let mut since = now;
        if let Some(waiting) = self.pending.remove(&trace_id) {
            self.pending_spans -= waiting.spans.len();
            since = waiting.since;
            spans.extend(waiting.spans);
        }
        let parents = parent_indices(&spans);
        let owners: Vec<Option<usize>> = (0..spans.len())
            .map(|i| {
                let mut current = i;
                for _ in 0..MAX_DEPTH {
                    if spans[current].transaction.is_some() {
                        return Some(current);
                    }
                    current = parents[current]?;
                }
                None
            })
            .collect();
        let self_ns = self_times(&spans, &parents);

        // The usual case: one transaction and all of its subtree, as they came.
        if let Some(Some(first)) = owners.first()
            && owners.iter().all(|owner| *owner == Some(*first))
        {
            return vec![Assembled {
                transaction_index: *first,
                spans,
                self_ns,
            }];
        }

        // One group per transaction, in the order of the transactions in `spans`.
        let mut group_of = vec![usize::MAX; spans.len()];
        let mut sizes = Vec::new();
        for (i, owner) in owners.iter().enumerate() {
            if *owner == Some(i) {
                group_of[i] = sizes.len();
                sizes.push(0_usize);
            }
        }
        for owner in owners.iter().flatten() {
            sizes[group_of[*owner]] += 1;
        }
        let mut groups: Vec<Assembled> = sizes
            .iter()
            .map(|&n| Assembled {
                transaction_index: 0,
                spans: Vec::with_capacity(n),
                self_ns: Vec::with_capacity(n),
            })
            .collect();
        let mut unresolved = Vec::new();
        for (i, (span, self_ns)) in spans.into_iter().zip(self_ns).enumerate() {
            match owners[i] {
                Some(owner) => {
                    let group = &mut groups[group_of[owner]];
                    if owner == i {
                        group.transaction_index = group.spans.len();
                    }
                    group.spans.push(span);
                    group.self_ns.push(self_ns);
                }
                None => {
                    // It outlives the request: its own copy of its attributes.
                    let mut span = span;
                    span.attributes.detach();
                    unresolved.push(span);
                }
            }
        }
        if !unresolved.is_empty() {
            self.pending_spans += unresolved.len();
            self.pending.insert(
                trace_id,
                Pending {
                    spans: unresolved,
                    since,
                },
            );
            if since == now {
                self.order.push_back((trace_id, since));
            }
            self.evict_over_limit();
        }
        groups
    }

    fn evict_over_limit(&mut self) {
        while self.pending_spans > self.max_pending {
            let Some((trace_id, since)) = self.order.pop_front() else {
                break;
            };
            if self
                .pending
                .get(&trace_id)
                .is_some_and(|p| p.since == since)
                && let Some(p) = self.pending.remove(&trace_id)
            {
                self.pending_spans -= p.spans.len();
                self.evicted += p.spans.len() as u64;
            }
        }
    }

    /// Returns the child spans that waited longer than the wait time.
    pub fn expire(&mut self, now: Instant) -> Vec<Orphans> {
        let mut out = Vec::new();
        while let Some(&(trace_id, since)) = self.order.front() {
            if now.duration_since(since) < self.wait {
                break;
            }
            self.order.pop_front();
            if self
                .pending
                .get(&trace_id)
                .is_some_and(|p| p.since == since)
                && let Some(p) = self.pending.remove(&trace_id)
            {
                self.pending_spans -= p.spans.len();
                let self_ns = self_times(&p.spans, &parent_indices(&p.spans));
                out.push(Orphans {
                    trace_id,
                    spans: p.spans,
                    self_ns,
                });
            }
        }
        out
    }

    fn recent_slot(&self, trace_id: &TraceId) -> usize {
        (self.recent_hasher.hash_one(trace_id) as usize) & (MAX_RECENT - 1)
    }

    /// Remembers a processed transaction for children of its trace that arrive late.
    pub fn remember(&mut self, trace_id: TraceId, transaction: TransactionRef) {
        if self.recent.is_empty() {
            self.recent = vec![None; MAX_RECENT];
        }
        let slot = self.recent_slot(&trace_id);
        self.recent[slot] = Some((trace_id, transaction));
    }

    /// The last transaction processed for a trace, if still remembered.
    pub fn recent(&self, trace_id: &TraceId) -> Option<TransactionRef> {
        match self.recent.get(self.recent_slot(trace_id))? {
            Some((id, transaction)) if id == trace_id => Some(*transaction),
            _ => None,
        }
    }
}
