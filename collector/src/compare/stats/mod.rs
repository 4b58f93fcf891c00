//! The statistics of a comparison, as pure functions over latency histogram bins.
//!
//! A sample is a slice of bins `(value_us, count)`: the value of an HDR bucket in µs and how
//! many durations fell into it ([`histogram_bins`] extracts them from a histogram). Functions
//! accept bins in any order, with repeated values and zero counts; they never panic, and
//! degenerate inputs (an empty side, all values tied) give "no evidence": a p-value of 1.
//!
//! - [`mann_whitney_greater`]: is the after-sample stochastically greater (slower)?
//! - [`hodges_lehmann`]: by how many µs, with a confidence interval.
//! - [`tail_test`]: did a larger share of requests land above the baseline's p95 or p99?
//! - [`error_rate_test`] and [`fisher_exact_greater`]: did the error rate go up?
//! - [`benjamini_hochberg`] and [`bh_adjusted`]: false discovery rate over all transactions.
//! - [`normal_cdf`], [`normal_sf`] and [`normal_quantile`]: the standard normal distribution.

mod benjamini_hochberg;
mod bins;
mod fisher;
mod hodges_lehmann;
mod log_pmf;
mod mann_whitney;
mod normal;
mod proportion;

pub use benjamini_hochberg::{benjamini_hochberg, bh_adjusted};
pub use bins::histogram_bins;
pub use fisher::fisher_exact_greater;
pub use hodges_lehmann::{ShiftEstimate, hodges_lehmann};
pub use mann_whitney::{MannWhitney, mann_whitney_greater};
pub use normal::{erfc, normal_cdf, normal_quantile, normal_sf};
pub use proportion::{Proportion, error_rate_test, tail_test, two_proportion_z_greater};
