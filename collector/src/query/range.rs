//! Time ranges and which stored resolution answers them.

use crate::config::AggregationConfig;

/// A half-open range of unix ms, `[from_ms, to_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Start, inclusive.
    pub from_ms: i64,
    /// End, exclusive.
    pub to_ms: i64,
}

/// A range aligned to the windows of one stored resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// Window width, s.
    pub resolution_s: u32,
    /// First window start, unix ms (the range start rounded down).
    pub from_ms: i64,
    /// End, unix ms (the range end rounded up to a window boundary).
    pub to_ms: i64,
}

impl Windows {
    /// Window width in ms.
    pub fn width_ms(&self) -> i64 {
        i64::from(self.resolution_s) * 1000
    }
}

fn floor(t: i64, unit: i64) -> i64 {
    t.div_euclid(unit) * unit
}

fn ceil(t: i64, unit: i64) -> i64 {
    -floor(-t, unit)
}

impl TimeRange {
    /// Picks the raw windows when the range starts within raw retention and `step_ms` (if
    /// given) is a multiple of the raw window, else the rollup windows; aligns the range
    /// outward to whole windows.
    pub fn windows(
        &self,
        config: &AggregationConfig,
        now_ms: i64,
        step_ms: Option<i64>,
    ) -> Windows {
        let raw_ok = self.from_ms >= now_ms - config.raw_retention_ms()
            && step_ms.is_none_or(|s| s % config.window_ms() == 0);
        let resolution_s = if raw_ok {
            config.window_s
        } else {
            config.rollup_window_s
        };
        let width = i64::from(resolution_s) * 1000;
        Windows {
            resolution_s,
            from_ms: floor(self.from_ms, width),
            to_ms: ceil(self.to_ms, width),
        }
    }
}

/// Returns the step for `points`: the requested one rounded up to a whole number of windows,
/// or one giving about 60 points.
pub fn step_ms(windows: &Windows, requested_ms: Option<i64>) -> i64 {
    let width = windows.width_ms();
    let wanted = requested_ms.unwrap_or((windows.to_ms - windows.from_ms) / 60);
    ceil(wanted.max(width), width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ranges_use_raw_windows_and_old_ones_rollups() {
        let config = AggregationConfig::default();
        let now = 100 * 86_400_000;
        let recent = TimeRange {
            from_ms: now - 3_600_000 + 1234,
            to_ms: now - 5,
        };
        let w = recent.windows(&config, now, None);
        assert_eq!(w.resolution_s, 10);
        assert_eq!(w.from_ms, now - 3_600_000);
        assert_eq!(w.to_ms, now);
        let old = TimeRange {
            from_ms: now - 2 * 86_400_000,
            to_ms: now,
        };
        assert_eq!(old.windows(&config, now, None).resolution_s, 60);
        assert_eq!(recent.windows(&config, now, Some(15_000)).resolution_s, 60);
    }

    #[test]
    fn steps_are_whole_windows() {
        let w = Windows {
            resolution_s: 10,
            from_ms: 0,
            to_ms: 3_600_000,
        };
        assert_eq!(step_ms(&w, None), 60_000);
        assert_eq!(step_ms(&w, Some(25_000)), 30_000);
        assert_eq!(step_ms(&w, Some(1)), 10_000);
    }
}
