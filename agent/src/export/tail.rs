//! The local tail decision (design.md §3), made on the export thread with the whole local
//! subtree of a transaction in view.
//!
//! Children are kept for errors, for transactions slower than their name's running p95, for
//! the first few transactions per name per 10 s window, and for a sampled fraction of the rest.
//! Children not kept are summarized per operation (count, total and self time) so the
//! collector's breakdown still sees all of them.

use std::collections::HashMap;

use crate::config::TailConfig;
use crate::ids;
use crate::pool::BoxedRecord;
use crate::record::{Kind, SpanRecord};

/// Names tracked separately; beyond, they share one estimator.
const MAX_NAMES: usize = 1000;
const WINDOW_NS: u64 = 10_000_000_000;

/// A running p95 over log-spaced buckets (4 per octave from 1 µs: ±9 %), halved every 2000
/// samples so it follows change.
#[derive(Debug, Clone)]
struct RunningP95 {
    buckets: [u32; 128],
    total: u32,
    seen: u64,
    cached_p95_us: u64,
    since_cache: u32,
}

impl RunningP95 {
    fn new() -> Self {
        Self {
            buckets: [0; 128],
            total: 0,
            seen: 0,
            cached_p95_us: u64::MAX,
            since_cache: 0,
        }
    }

    fn bucket(us: u64) -> usize {
        if us <= 1 {
            return 0;
        }
        let log2 = (us as f64).log2();
        ((log2 * 4.0) as usize).min(127)
    }

    fn upper_us(bucket: usize) -> u64 {
        2f64.powf((bucket + 1) as f64 / 4.0) as u64
    }

    fn record(&mut self, us: u64) {
        self.buckets[Self::bucket(us)] += 1;
        self.total += 1;
        self.seen += 1;
        self.since_cache += 1;
        if self.total >= 2000 {
            for b in &mut self.buckets {
                *b /= 2;
            }
            self.total = self.buckets.iter().sum();
        }
        if self.since_cache >= 16 || self.cached_p95_us == u64::MAX {
            self.since_cache = 0;
            let rank = u64::from(self.total) * 95 / 100;
            let mut below = 0u64;
            for (i, count) in self.buckets.iter().enumerate() {
                below += u64::from(*count);
                if below > rank {
                    self.cached_p95_us = Self::upper_us(i);
                    break;
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct NameState {
    p95: RunningP95,
    window: u64,
    kept_in_window: u32,
}

impl NameState {
    fn new() -> Self {
        Self {
            p95: RunningP95::new(),
            window: 0,
            kept_in_window: 0,
        }
    }
}

/// Child operations that were not sent, summed per (name, kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsent {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) count: u64,
    pub(crate) total_ns: u64,
    pub(crate) self_ns: u64,
}

/// The outcome for one transaction.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Send the transaction and every child.
    Keep,
    /// Send the transaction only, with its own self time and the children's summary.
    Summarize {
        transaction_self_ns: u64,
        unsent: Vec<Unsent>,
    },
}

/// The decider's memory: one running p95 and window counter per transaction name.
#[derive(Debug)]
pub(crate) struct TailDecider {
    config: TailConfig,
    names: HashMap<String, NameState>,
    overflow: NameState,
}

impl TailDecider {
    pub(crate) fn new(config: TailConfig) -> Self {
        Self {
            config,
            names: HashMap::new(),
            overflow: NameState::new(),
        }
    }

    /// Decides for one transaction and learns its duration.
    pub(crate) fn decide(
        &mut self,
        transaction: &SpanRecord,
        children: &[BoxedRecord],
    ) -> Decision {
        let name = transaction.transaction_name();
        let state = if let Some(state) = self.names.get_mut(name.as_ref()) {
            state
        } else if self.names.len() < MAX_NAMES {
            self.names
                .entry(name.into_owned())
                .or_insert_with(NameState::new)
        } else {
            &mut self.overflow
        };
        let duration_us = transaction.duration_ns() / 1000;
        let slow = self.config.keep_slow
            && state.p95.seen >= u64::from(self.config.slow_min_samples)
            && duration_us > state.p95.cached_p95_us;
        state.p95.record(duration_us);
        let window = transaction.end_ns() / WINDOW_NS;
        if state.window != window {
            state.window = window;
            state.kept_in_window = 0;
        }
        let first_in_window = state.kept_in_window < self.config.keep_per_window;
        let error = self.config.keep_errors
            && (transaction.is_error() || children.iter().any(|c| c.is_error()));
        let sampled = self.config.sample_ratio > 0.0
            && ((ids::next_u64() >> 11) as f64) < self.config.sample_ratio * (1u64 << 53) as f64;
        if children.is_empty() || error || slow || first_in_window || sampled {
            if first_in_window {
                state.kept_in_window += 1;
            }
            return Decision::Keep;
        }
        summarize(transaction, children)
    }
}

/// Sums the children per operation, with self times computed from the subtree.
fn summarize(transaction: &SpanRecord, children: &[BoxedRecord]) -> Decision {
    let mut by_parent: HashMap<[u8; 8], Vec<(u64, u64)>> = HashMap::new();
    for child in children {
        if let Some(parent) = child.parent_span_id {
            by_parent
                .entry(parent)
                .or_default()
                .push((child.start_ns(), child.end_ns()));
        }
    }
    let mut self_of = |span: &SpanRecord| {
        let intervals = by_parent.remove(&span.span_id).unwrap_or_default();
        self_time_ns(span.start_ns(), span.end_ns(), intervals)
    };
    let transaction_self_ns = self_of(transaction);
    let mut unsent: Vec<Unsent> = Vec::new();
    for child in children {
        let self_ns = self_of(child);
        let duration = child.duration_ns();
        match unsent
            .iter_mut()
            .find(|u| u.kind == child.kind && u.name == child.name.as_str())
        {
            Some(u) => {
                u.count += 1;
                u.total_ns += duration;
                u.self_ns += self_ns;
            }
            None => unsent.push(Unsent {
                name: child.name.as_str().to_owned(),
                kind: child.kind,
                count: 1,
                total_ns: duration,
                self_ns,
            }),
        }
    }
    Decision::Summarize {
        transaction_self_ns,
        unsent,
    }
}

/// The ns of `[start, end)` not covered by the union of the children's intervals.
fn self_time_ns(start: u64, end: u64, mut children: Vec<(u64, u64)>) -> u64 {
    for c in &mut children {
        *c = (c.0.max(start), c.1.min(end));
    }
    children.retain(|(s, e)| s < e);
    children.sort_unstable();
    let mut covered = 0;
    let mut current: Option<(u64, u64)> = None;
    for (s, e) in children {
        current = match current {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                covered += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = current {
        covered += ce - cs;
    }
    (end - start).saturating_sub(covered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Status;

    fn span(name: &'static str, id: u8, parent: Option<u8>, start: u64, end: u64) -> BoxedRecord {
        let at = |ns| std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
        let mut s = Box::new(SpanRecord::new(name, at(start)));
        s.end = at(end);
        s.span_id = [id; 8];
        s.parent_span_id = parent.map(|p| [p; 8]);
        s
    }

    fn never_sample() -> TailConfig {
        TailConfig {
            keep_per_window: 0,
            sample_ratio: 0.0,
            ..TailConfig::default()
        }
    }

    #[test]
    fn summary_has_exact_self_times() {
        let root = span("GET /", 1, None, 0, 100);
        let children = [
            span("handler", 2, Some(1), 10, 90),
            span("db", 3, Some(2), 20, 40),
            span("db", 4, Some(2), 30, 60),
        ];
        let Decision::Summarize {
            transaction_self_ns,
            unsent,
        } = TailDecider::new(never_sample()).decide(&root, &children)
        else {
            panic!("expected a summary");
        };
        assert_eq!(transaction_self_ns, 20);
        assert_eq!(
            unsent,
            vec![
                Unsent {
                    name: "handler".into(),
                    kind: Kind::Internal,
                    count: 1,
                    total_ns: 80,
                    self_ns: 40
                },
                Unsent {
                    name: "db".into(),
                    kind: Kind::Internal,
                    count: 2,
                    total_ns: 50,
                    self_ns: 50
                },
            ]
        );
    }

    #[test]
    fn errors_slow_and_first_per_window_keep_children() {
        let children = [span("db", 2, Some(1), 1_000, 2_000)];
        let mut decider = TailDecider::new(TailConfig {
            keep_per_window: 2,
            sample_ratio: 0.0,
            ..TailConfig::default()
        });
        let mut kept = 0;
        for i in 0..100u64 {
            let root = span("GET /", 1, None, i * 1000, i * 1000 + 10_000_000);
            kept += usize::from(matches!(decider.decide(&root, &children), Decision::Keep));
        }
        assert_eq!(kept, 2, "only the first two per window");
        let slow = span("GET /", 1, None, 0, 50_000_000);
        assert!(matches!(decider.decide(&slow, &children), Decision::Keep));
        let mut failed = children[0].clone();
        failed.status = Status::Error(None);
        let root = span("GET /", 1, None, 0, 10_000_000);
        assert!(matches!(decider.decide(&root, &[failed]), Decision::Keep));
        assert!(matches!(
            decider.decide(&root, &children),
            Decision::Summarize { .. }
        ));
    }

    #[test]
    fn p95_follows_the_distribution() {
        let mut p95 = RunningP95::new();
        for i in 1..=1000u64 {
            p95.record(i * 100);
        }
        let expected = 95_000.0;
        let got = p95.cached_p95_us as f64;
        assert!((got - expected).abs() / expected < 0.2, "p95 {got}");
    }
}
