//! The soak procedure (issue 10): the collector under steady load for a long time while its
//! clients and the collector itself restart, then a check that every span is accounted for
//! (conservation, per source) and that the collector's memory stayed flat.
//!
//! `benches/soak.sh` runs it for 10 minutes (`benches/src/bin/soak.rs`); the collector's test
//! `collector/tests/soak.rs` runs a one-minute version of the same code. The procedure, what is
//! checked and why, is in `docs/soak.md`.
//!
//! The module reaches its sibling [`super::procfs`] only through `super`, so a test crate can
//! include both files with `#[path]` and run the same driver against its own binaries.

pub mod agent;
pub mod check;
mod child;
pub mod collector;
pub mod counts;
pub mod driver;
pub mod plan;

pub use agent::AgentCommand;
pub use collector::Stop;
pub use driver::{Outcome, run};
pub use plan::{Plan, Programs};
