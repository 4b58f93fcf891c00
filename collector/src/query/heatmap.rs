//! The hitmap: transaction end time × response time, exact counts per cell.
//!
//! Cells are read from the stored histograms, not from the transaction index, so an hour of
//! 1 000 transactions/s costs 360 histograms, not 3.6 million rows. Each y edge is snapped down
//! to the start of the HDR bucket it falls in, so every bucket lies in exactly one row and a
//! cell's count is exactly the number of transactions whose end falls in the column and whose
//! duration (whole µs) falls in `[y_edges_ms[j], y_edges_ms[j + 1])` — the edges reported are
//! the snapped ones. Columns are whole windows, so a transaction is in the column of its end.

use serde::Serialize;

use super::range::Windows;
use super::rows_for;
use crate::aggregate::histogram::{LatencyHistogram, new_histogram};
use crate::error::ApiError;
use crate::store::{SeriesFilter, Store};

/// The y axis scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Edges in geometric progression (the default: latencies span decades).
    Log,
    /// Evenly spaced edges.
    Linear,
}

/// The y axis asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YAxis {
    /// Scale.
    pub scale: Scale,
    /// Rows wanted (fewer may come back where edges collapse at µs resolution).
    pub buckets: usize,
    /// Lowest edge, ms; the fastest transaction's bucket when `None`.
    pub min_ms: Option<f64>,
    /// Highest edge, ms; the slowest transaction's bucket end when `None`.
    pub max_ms: Option<f64>,
}

/// `GET /api/v1/heatmap`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HeatmapResponse {
    /// Column starts, unix ms.
    pub x: Vec<i64>,
    /// Column width, ms.
    pub x_step_ms: i64,
    /// Row edges, ms, ascending; row `j` is `[y_edges_ms[j], y_edges_ms[j + 1])`.
    pub y_edges_ms: Vec<f64>,
    /// The y scale used.
    pub y_scale: Scale,
    /// `counts[i][j]`: transactions in column `i`, row `j`.
    pub counts: Vec<Vec<u64>>,
    /// `errors[i][j]`: error transactions in column `i`, row `j`.
    pub errors: Vec<Vec<u64>>,
    /// Transactions in the range (in cells, below and above).
    pub total: u64,
    /// Transactions faster than the lowest edge (only with `y_min_ms`).
    pub below: u64,
    /// Transactions at or above the highest edge (only with `y_max_ms`).
    pub above: u64,
    /// The largest cell count (for colour scales).
    pub max_count: u64,
}

fn us(ms: f64) -> u64 {
    (ms * 1000.0).round().max(1.0) as u64
}

/// Returns the snapped, strictly increasing edges in µs from `lo_us` to `hi_us`.
fn edges(reference: &LatencyHistogram, axis: &YAxis, lo_us: u64, hi_us: u64) -> Vec<u64> {
    let n = axis.buckets.max(1);
    let (lo, hi) = (lo_us.max(1) as f64, hi_us.max(lo_us + 1) as f64);
    let mut out: Vec<u64> = (0..=n)
        .map(|k| {
            let f = k as f64 / n as f64;
            let v = match axis.scale {
                Scale::Log => lo * (hi / lo).powf(f),
                Scale::Linear => lo + (hi - lo) * f,
            };
            reference.lowest_equivalent(v.round() as u64)
        })
        .collect();
    // The top edge must be above every value meant to be inside: the start of the next bucket.
    if let Some(last) = out.last_mut() {
        let top = hi.round() as u64;
        *last = if reference.lowest_equivalent(top) == top {
            top
        } else {
            reference.next_non_equivalent(top)
        };
    }
    out.dedup();
    out
}

/// Builds the hitmap of the series matching `filter` over `windows`, in columns of `step_ms`
/// (a whole number of windows).
pub fn heatmap(
    store: &dyn Store,
    filter: &SeriesFilter,
    windows: &Windows,
    step_ms: i64,
    axis: &YAxis,
) -> Result<HeatmapResponse, ApiError> {
    let rows = rows_for(store, filter, windows)?;
    let columns =
        usize::try_from((windows.to_ms - windows.from_ms + step_ms - 1) / step_ms).unwrap_or(0);
    let reference = new_histogram();
    let (mut lo_us, mut hi_us) = (u64::MAX, 0u64);
    for row in rows.iter().filter(|r| r.stats.count > 0) {
        let h = &row.stats.histogram;
        lo_us = lo_us.min(h.lowest_equivalent(h.min()));
        hi_us = hi_us.max(h.next_non_equivalent(h.max()));
    }
    if lo_us == u64::MAX {
        (lo_us, hi_us) = (1_000, 1_000_000);
    }
    let lo_us = axis.min_ms.map_or(lo_us, us);
    let hi_us = axis.max_ms.map_or(hi_us, us);
    if lo_us >= hi_us {
        return Err(ApiError::invalid("`y_min_ms` must be below `y_max_ms`"));
    }
    let edges_us = edges(&reference, axis, lo_us, hi_us);
    let n_rows = edges_us.len() - 1;
    let mut response = HeatmapResponse {
        x: (0..columns)
            .map(|i| windows.from_ms + i as i64 * step_ms)
            .collect(),
        x_step_ms: step_ms,
        y_edges_ms: edges_us.iter().map(|&e| e as f64 / 1000.0).collect(),
        y_scale: axis.scale,
        counts: vec![vec![0; n_rows]; columns],
        errors: vec![vec![0; n_rows]; columns],
        total: 0,
        below: 0,
        above: 0,
        max_count: 0,
    };
    for row in &rows {
        let Ok(column) = usize::try_from((row.window_start_ms - windows.from_ms) / step_ms) else {
            continue;
        };
        if column >= columns {
            continue;
        }
        response.total += row.stats.count;
        for (histogram, errors) in [
            (&row.stats.histogram, false),
            (&row.stats.error_histogram, true),
        ] {
            for v in histogram.iter_recorded() {
                let value = histogram.lowest_equivalent(v.value_iterated_to());
                let n = v.count_at_value();
                // The row whose [edge, next edge) holds the bucket start.
                let j = edges_us.partition_point(|&e| e <= value);
                if j == 0 {
                    response.below += u64::from(!errors) * n;
                } else if j > n_rows {
                    response.above += u64::from(!errors) * n;
                } else if errors {
                    response.errors[column][j - 1] += n;
                } else {
                    response.counts[column][j - 1] += n;
                }
            }
        }
    }
    response.max_count = response.counts.iter().flatten().copied().max().unwrap_or(0);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::histogram::record;

    #[test]
    fn snapped_edges_put_every_bucket_in_one_row() {
        let reference = new_histogram();
        let axis = YAxis {
            scale: Scale::Log,
            buckets: 30,
            min_ms: None,
            max_ms: None,
        };
        let e = edges(&reference, &axis, 1_000, 10_000_000);
        assert!(e.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(e[0], 1_000);
        assert!(*e.last().unwrap() >= 10_000_000);
        // Any duration lands in the row of its bucket start.
        let mut h = new_histogram();
        for d in [1_000u64, 1_234, 98_765, 9_999_999] {
            record(&mut h, d);
            let start = h.lowest_equivalent(d);
            let row = e.partition_point(|&x| x <= start);
            assert!(
                row >= 1 && e[row - 1] <= d && (row == e.len() || d < e[row]),
                "{d} in {e:?}"
            );
        }
        let linear = edges(
            &reference,
            &YAxis {
                scale: Scale::Linear,
                buckets: 4,
                ..axis
            },
            100,
            500,
        );
        assert_eq!(linear, [100, 200, 300, 400, 500]);
    }
}
