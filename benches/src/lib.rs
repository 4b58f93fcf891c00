//! Benchmarks, load generator and accuracy harness for Headlight; see `benches/RESULTS.md`.
