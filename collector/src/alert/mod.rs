//! Regression alerts: rules evaluated over the stored data and comparisons, a persisted
//! outbox, and the channels that deliver notifications.

pub mod channels;
pub mod dora;
pub mod evaluate;
pub mod model;
pub mod outbox;
pub mod rules;
pub mod store;
