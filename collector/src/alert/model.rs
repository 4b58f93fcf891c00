//! Alerts and the notifications sent about them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition holds.
    Firing,
    /// The condition held and no longer does.
    Resolved,
}

/// One alert: a rule's condition holding for one service (and transaction or deploy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Dedupe key: the same condition on the same subject is the same alert, e.g.
    /// `checkout-p95/checkout/GET /orders` or `deploy-regression/deploy/0af0d20fff4caaa2`.
    pub key: String,
    /// The rule's name (from the config).
    pub rule: String,
    /// The rule's kind: `deploy_regression`, `latency`, `error_rate`, `apdex`, `slow_wall`,
    /// `period_over_period`.
    pub kind: String,
    /// `service.name`.
    pub service: String,
    /// The environment, when the rule or deploy names one.
    pub environment: Option<String>,
    /// The transaction, when the rule is about one.
    pub transaction: Option<String>,
    /// The deploy, for deploy regressions.
    pub deploy_id: Option<String>,
    /// Firing or resolved.
    pub state: AlertState,
    /// One line a person reads, e.g. "checkout 2.4.0 regressed: GET /orders p95 +38 %".
    pub summary: String,
    /// The details, e.g. the comparison's reasons.
    pub reasons: Vec<String>,
    /// When it started firing, unix ms.
    pub started_ms: i64,
    /// When it resolved, unix ms.
    pub resolved_ms: Option<i64>,
    /// A link to look at (the comparison report or the service in the UI), when the
    /// collector's public URL is configured.
    pub link: Option<String>,
    /// Extra labels (e.g. `severity`), from the rule.
    pub labels: BTreeMap<String, String>,
}

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The alert started firing.
    Firing,
    /// Still firing after the re-notification interval.
    Renotify,
    /// The alert resolved.
    Resolved,
}

/// One notification to deliver to one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique per alert, event and occurrence: `{alert key}#{event}#{n}`. Channels send it where
    /// the receiver can dedupe (a header, a label); retries reuse it.
    pub delivery_id: String,
    /// Why it is sent.
    pub event: Event,
    /// The alert as of the event.
    pub alert: Alert,
}
