//! Notification channels: generic webhook (HMAC-SHA256 signed), Slack incoming webhook,
//! Prometheus Alertmanager, Jira-compatible issue creation, and a command hook.
//!
//! Each channel turns a [`Notification`] into the receiver's format and sends it once; the
//! outbox does retries, backoff and dedupe. Secrets (webhook keys, tokens, the Slack URL) are
//! read from environment variables named in the config and never logged.

use std::future::Future;
use std::pin::Pin;

use serde::Deserialize;

use super::model::Notification;

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying: connection refused, timeout, 5xx, 429.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Retrying will not help: 4xx other than 408/429, a command that is not executable.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A future returned by [`Channel::deliver`].
pub type Delivery<'a> = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;

/// A configured destination for notifications.
pub trait Channel: Send + Sync + std::fmt::Debug {
    /// The channel's name from the config.
    fn name(&self) -> &str;
    /// Sends one notification once.
    fn deliver<'a>(&'a self, notification: &'a Notification) -> Delivery<'a>;
}

/// One `[[alerts.channels]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelConfig {
    /// Placeholder until the channel implementations land.
    #[serde(skip)]
    Unimplemented,
}
