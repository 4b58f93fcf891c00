//! The collector's Prometheus metrics (`GET /metrics`): per-series RED counters counted at
//! ingest, fixed-bucket histograms, counters by reason, process memory, and the text exposition
//! format they are written in. The handler is `crate::http::metrics`; the family names and
//! their meaning are listed in `docs/metrics.md`.

pub mod buckets;
pub mod exposition;
pub mod process;
pub mod reasons;
pub mod red;
