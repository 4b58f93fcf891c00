//! What the store keeps of alerts: each alert's current state, and the outbox of notifications
//! with every delivery attempt.

use serde::{Deserialize, Serialize};

use super::model::{Alert, AlertState, Notification};

/// An alert as stored: the alert and its notification bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// The alert.
    pub alert: Alert,
    /// When a notification was last queued for it, unix ms.
    pub last_notified_ms: i64,
    /// Notifications queued for it so far (numbers the delivery ids).
    pub notifications: u32,
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet; tried again at `next_attempt_ms`.
    Pending,
    /// The receiver accepted it.
    Delivered,
    /// Given up: a permanent error, an unknown channel, or `give_up_after_s` passed.
    Failed,
}

/// One notification to one channel, with its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The channel's name.
    pub channel: String,
    /// What to send (its `delivery_id` with the channel identifies the entry).
    pub notification: Notification,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When it was queued, unix ms.
    pub created_ms: i64,
    /// When to try next, unix ms.
    pub next_attempt_ms: i64,
    /// When it was delivered, unix ms.
    pub delivered_ms: Option<i64>,
    /// The last attempt's error.
    pub last_error: Option<String>,
}

/// Which alerts to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertQuery {
    /// Only this service.
    pub service: Option<String>,
    /// Only in this state.
    pub state: Option<AlertState>,
    /// Started at or after, unix ms.
    pub from_ms: Option<i64>,
    /// Started before, unix ms.
    pub to_ms: Option<i64>,
    /// Most alerts, newest first.
    pub limit: usize,
}
