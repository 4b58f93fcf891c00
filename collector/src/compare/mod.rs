//! Comparing performance (design.md §5): two samples per transaction — before and after a
//! deploy, baseline and canary, or two periods — and a verdict on each.
//!
//! - [`stats`]: the pure statistics — rank tests and shift estimates over latency histogram
//!   bins, tail and error-rate proportion tests, Benjamini–Hochberg.
//! - [`engine`]: the verdict on each transaction and on the comparison, with its reasons and
//!   suspects, from the two samples.
//! - [`report`]: the three kinds of comparison (deploy, canary, period) over the store, in
//!   one report shape; a deploy's report is computed once, when ready, and stored.

pub mod engine;
pub mod report;
pub mod stats;
