//! Randomness for `headlight demo` and `headlight loadgen`: latencies and errors that look like
//! a real service's. A small
//! per-thread SplitMix64 generator is enough; nothing here needs to be unpredictable.

use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Truncation is fine: any 64 bits of the clock, mixed with the thread's address space.
    #[allow(clippy::cast_possible_truncation)]
    let nanos = nanos as u64;
    let local = 0u8;
    nanos ^ (std::ptr::addr_of!(local) as u64).rotate_left(32)
}

/// 64 uniform bits.
pub fn next_u64() -> u64 {
    STATE.with(|s| {
        let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// A uniform number in [0, 1).
pub fn uniform() -> f64 {
    // The top 53 bits, as a fraction.
    #[allow(clippy::cast_precision_loss)]
    let fraction = (next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    fraction
}

/// True with probability `p`.
pub fn chance(p: f64) -> bool {
    uniform() < p
}

/// A log-normal sample with the given median (ms) and shape `sigma`.
pub fn log_normal_ms(median_ms: f64, sigma: f64) -> f64 {
    // Box–Muller: one standard normal from two uniforms (the first kept away from 0).
    let u1 = uniform().max(f64::MIN_POSITIVE);
    let u2 = uniform();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median_ms * (sigma * z).exp()
}

/// An exponential sample with the given mean (the gap between Poisson arrivals).
pub fn exponential(mean: f64) -> f64 {
    -mean * (1.0 - uniform()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_normal_has_the_asked_median() {
        let mut v: Vec<f64> = (0..20_001).map(|_| log_normal_ms(10.0, 0.4)).collect();
        v.sort_by(f64::total_cmp);
        let median = v[10_000];
        assert!((9.5..10.5).contains(&median), "median {median}");
        assert!(v.iter().all(|x| *x > 0.0));
    }

    #[test]
    fn chance_and_exponential_have_the_asked_means() {
        let n = 100_000;
        let hits = (0..n).filter(|_| chance(0.2)).count();
        assert!((19_000..21_000).contains(&hits), "{hits}");
        let mean = (0..n).map(|_| exponential(5.0)).sum::<f64>() / f64::from(n);
        assert!((4.8..5.2).contains(&mean), "{mean}");
    }
}
