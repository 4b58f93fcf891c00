//! Random trace and span ids, and wall-clock times in unix nanoseconds.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    // RandomState is seeded from the OS once per process and varied per instance, so each
    // thread starts from a different, unpredictable state without a dependency.
    RandomState::new().hash_one(std::thread::current().id()) | 1
}

/// Returns 64 random bits (xorshift64*; ids only need to be unique, not secret).
pub(crate) fn next_u64() -> u64 {
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// Returns a non-zero span id.
pub(crate) fn span_id() -> [u8; 8] {
    loop {
        let id = next_u64();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

/// Returns a non-zero trace id.
pub(crate) fn trace_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&next_u64().to_be_bytes());
    id[8..].copy_from_slice(&span_id());
    id
}

/// Converts a wall-clock time to unix nanoseconds (0 before 1970). Application threads keep
/// the `SystemTime` they read and the export thread converts it: the clock read is the only
/// cost left on the hot path.
pub(crate) fn unix_ns(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
