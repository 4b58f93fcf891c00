//! A series' running p95, learnt from the transactions seen, for the "slow" storage rule.

use hdrhistogram::Histogram;

/// Transactions needed before the p95 is trusted.
const MIN_SAMPLES: u64 = 20;
/// How long one generation of the estimate covers, ms of transaction end time.
const GENERATION_MS: i64 = 60_000;
/// The p95 is read again once its histogram has grown by this fraction (1/32, 3 %) since it
/// was last read: reading it walks the histogram, which cost 1 % of the collector's CPU when
/// done for every transaction (benches/RESULTS.md).
const REFRESH_DIVISOR: u64 = 32;

/// p95 over the previous minute of transactions (or the current one while it is the only one),
/// from a 1-significant-digit HDR histogram (≈ 1.6 KiB per series).
#[derive(Debug)]
pub(crate) struct RunningP95 {
    current: Option<Histogram<u32>>,
    previous: Option<Histogram<u32>>,
    generation_start_ms: i64,
    /// The threshold last read: the reference histogram's count then, and the value.
    threshold: Option<(u64, u64)>,
}

fn coarse() -> Option<Histogram<u32>> {
    Histogram::new_with_bounds(1, super::histogram::HIGHEST_US, 1).ok()
}

impl RunningP95 {
    pub fn new() -> Self {
        Self {
            current: coarse(),
            previous: None,
            generation_start_ms: i64::MIN,
            threshold: None,
        }
    }

    /// Records a transaction ending in the window starting at `window_start_ms`.
    pub fn record(&mut self, window_start_ms: i64, duration_us: u64) {
        if self.generation_start_ms == i64::MIN {
            self.generation_start_ms = window_start_ms;
        }
        if window_start_ms >= self.generation_start_ms.saturating_add(GENERATION_MS) {
            self.generation_start_ms = window_start_ms;
            let finished = self.current.take();
            self.current = match self.previous.take() {
                Some(mut h) => {
                    h.reset();
                    Some(h)
                }
                None => coarse(),
            };
            self.previous = finished;
            self.threshold = None;
        }
        if let Some(h) = self.current.as_mut() {
            h.saturating_record(duration_us.clamp(1, super::histogram::HIGHEST_US));
        }
    }

    /// Returns whether a duration is above the learnt p95; false until enough samples.
    pub fn is_slow(&mut self, duration_us: u64) -> bool {
        let reference = match (&self.previous, &self.current) {
            (Some(p), _) if p.len() >= MIN_SAMPLES => p,
            (_, Some(c)) if c.len() >= MIN_SAMPLES => c,
            _ => return false,
        };
        let count = reference.len();
        let threshold = match self.threshold {
            Some((at, value)) if (at..=at + at / REFRESH_DIVISOR).contains(&count) => value,
            _ => {
                let value = reference.highest_equivalent(reference.value_at_quantile(0.95));
                self.threshold = Some((count, value));
                value
            }
        };
        duration_us > threshold
    }
}

#[cfg(test)]
mod tests {
    use super::RunningP95;

    #[test]
    fn learns_the_p95_and_flags_slower_transactions() {
        let mut p = RunningP95::new();
        assert!(!p.is_slow(1_000_000), "no verdict before enough samples");
        for i in 0..100 {
            p.record(0, 1_000 + i);
        }
        assert!(!p.is_slow(1_050));
        assert!(p.is_slow(50_000));
    }

    #[test]
    fn the_p95_follows_a_shift_within_a_few_percent_of_samples() {
        let mut p = RunningP95::new();
        for _ in 0..1000 {
            p.record(0, 1_000);
        }
        assert!(p.is_slow(5_000));
        // 2000 slower ones make 5 ms the common case: the threshold must move up.
        for _ in 0..2000 {
            p.record(0, 5_000);
            p.is_slow(5_000);
        }
        assert!(!p.is_slow(5_000), "the cached p95 was refreshed");
    }

    #[test]
    fn forgets_old_generations() {
        let mut p = RunningP95::new();
        for _ in 0..100 {
            p.record(0, 100_000);
        }
        for _ in 0..100 {
            p.record(60_000, 1_000);
        }
        for _ in 0..100 {
            p.record(120_000, 1_000);
        }
        assert!(p.is_slow(50_000), "the 100 ms generation is forgotten");
    }
}
