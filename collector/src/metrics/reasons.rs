//! Counters by reason: one atomic counter per variant of a reason enum, every reason listed
//! (zero included) so that a dashboard's `rate()` works before the first refusal.
//!
//! Adding a reason is adding a variant to its enum and to its [`Reason::ALL`]; the metric
//! follows.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

/// A reason something was refused, exposed as the `reason` label of a counter.
pub trait Reason: Copy + PartialEq + 'static {
    /// Every reason, in the order they are listed.
    const ALL: &'static [Self];

    /// The label value: lowercase `snake_case`, stable (dashboards and alerts match on it).
    fn label(self) -> &'static str;
}

/// A monotonic counter per reason, cumulative since the process started.
#[derive(Debug)]
pub struct ReasonCounters<R> {
    counts: Box<[AtomicU64]>,
    reasons: PhantomData<R>,
}

impl<R: Reason> Default for ReasonCounters<R> {
    fn default() -> Self {
        Self {
            counts: R::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            reasons: PhantomData,
        }
    }
}

impl<R: Reason> ReasonCounters<R> {
    /// Adds `n` to the counter of `reason`.
    pub fn add(&self, reason: R, n: u64) {
        if let Some(i) = R::ALL.iter().position(|r| *r == reason) {
            self.counts[i].fetch_add(n, Ordering::Relaxed);
        } else {
            debug_assert!(false, "a reason missing from Reason::ALL");
        }
    }

    /// Returns every reason with its count, in [`Reason::ALL`] order.
    pub fn counts(&self) -> impl Iterator<Item = (R, u64)> + '_ {
        R::ALL
            .iter()
            .zip(self.counts.iter())
            .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
    }

    /// Returns the sum over all reasons.
    pub fn total(&self) -> u64 {
        self.counts().map(|(_, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Why {
        A,
        B,
    }

    impl Reason for Why {
        const ALL: &'static [Self] = &[Self::A, Self::B];
        fn label(self) -> &'static str {
            match self {
                Self::A => "a",
                Self::B => "b",
            }
        }
    }

    #[test]
    fn every_reason_is_listed_and_counted() {
        let counters = ReasonCounters::<Why>::default();
        counters.add(Why::B, 3);
        counters.add(Why::B, 1);
        let got: Vec<_> = counters.counts().map(|(r, n)| (r.label(), n)).collect();
        assert_eq!(got, vec![("a", 0), ("b", 4)]);
        assert_eq!(counters.total(), 4);
    }
}
