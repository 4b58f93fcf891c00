//! Comparing performance (design.md §5): two samples per transaction — before and after a
//! deploy, baseline and canary, or two periods — and a verdict on each.
//!
//! [`stats`] holds the pure statistics the comparison is built on: rank tests and shift
//! estimates over latency histogram bins, tail and error-rate proportion tests, and the
//! Benjamini–Hochberg correction over all transactions of a comparison.

pub mod stats;
