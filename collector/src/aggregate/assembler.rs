//! Assembles transactions with their local child spans.
//!
//! Children usually end — and are exported — before their transaction span, sometimes in an
//! earlier export request. A child whose chain of parents does not yet reach a transaction waits
//! here (bounded in count and time) until the rest of its trace arrives; then the transaction
//! is processed with its whole local subtree, so self times and the breakdown are complete.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::TransactionRef;
use super::self_time::self_time_ns;
use crate::model::{Span, SpanId, TraceId};

/// Longest parent chain followed; deeper (or cyclic) chains stay unresolved.
const MAX_DEPTH: usize = 512;
/// Transactions remembered for children that arrive after them.
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
    pending: HashMap<TraceId, Pending>,
    order: VecDeque<(TraceId, Instant)>,
    pending_spans: usize,
    evicted: u64,
    recent: HashMap<TraceId, (u64, TransactionRef)>,
    recent_order: VecDeque<(TraceId, u64)>,
    recent_seq: u64,
}

/// Self time of each span: the one the agent reported (`headlight.self_ns`), else its duration
/// less its children among `spans`.
fn self_times(spans: &[Span]) -> Vec<i64> {
    let mut children: HashMap<SpanId, Vec<(i64, i64)>> = HashMap::new();
    for s in spans {
        if let Some(parent) = s.parent_span_id {
            children
                .entry(parent)
                .or_default()
                .push((s.start_ns, s.end_ns));
        }
    }
    spans
        .iter()
        .map(|s| {
            if let Some(reported) = s.reported_self_ns {
                return reported;
            }
            let kids = children.get(&s.span_id).map(Vec::as_slice).unwrap_or(&[]);
            self_time_ns(s.start_ns, s.end_ns, kids.iter().copied())
        })
        .collect()
}

impl Assembler {
    pub fn new(wait_ms: u64, max_pending: usize) -> Self {
        Self {
            wait: Duration::from_millis(wait_ms),
            max_pending,
            pending: HashMap::new(),
            order: VecDeque::new(),
            pending_spans: 0,
            evicted: 0,
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            recent_seq: 0,
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
        let index: HashMap<SpanId, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i))
            .collect();
        let owners: Vec<Option<usize>> = (0..spans.len())
            .map(|i| {
                let mut current = i;
                for _ in 0..MAX_DEPTH {
                    if spans[current].transaction.is_some() {
                        return Some(current);
                    }
                    current = *spans[current]
                        .parent_span_id
                        .as_ref()
                        .and_then(|p| index.get(p))?;
                }
                None
            })
            .collect();
        let self_ns = self_times(&spans);

        let mut groups: HashMap<usize, Assembled> = HashMap::new();
        let mut unresolved = Vec::new();
        for (i, (span, self_ns)) in spans.into_iter().zip(self_ns).enumerate() {
            match owners[i] {
                Some(owner) => {
                    let group = groups.entry(owner).or_insert_with(|| Assembled {
                        transaction_index: 0,
                        spans: Vec::new(),
                        self_ns: Vec::new(),
                    });
                    if owner == i {
                        group.transaction_index = group.spans.len();
                    }
                    group.spans.push(span);
                    group.self_ns.push(self_ns);
                }
                None => unresolved.push(span),
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
        let mut groups: Vec<(usize, Assembled)> = groups.into_iter().collect();
        groups.sort_unstable_by_key(|(owner, _)| *owner);
        groups.into_iter().map(|(_, group)| group).collect()
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
                let self_ns = self_times(&p.spans);
                out.push(Orphans {
                    trace_id,
                    spans: p.spans,
                    self_ns,
                });
            }
        }
        out
    }

    /// Remembers a processed transaction for children of its trace that arrive late.
    pub fn remember(&mut self, trace_id: TraceId, transaction: TransactionRef) {
        self.recent_seq += 1;
        self.recent.insert(trace_id, (self.recent_seq, transaction));
        self.recent_order.push_back((trace_id, self.recent_seq));
        while self.recent_order.len() > MAX_RECENT {
            if let Some((old, seq)) = self.recent_order.pop_front()
                && self.recent.get(&old).is_some_and(|(s, _)| *s == seq)
            {
                self.recent.remove(&old);
            }
        }
    }

    /// The last transaction processed for a trace, if still remembered.
    pub fn recent(&self, trace_id: &TraceId) -> Option<TransactionRef> {
        self.recent.get(trace_id).map(|(_, t)| *t)
    }
}
