//! Notification channels: generic webhook (HMAC-SHA256 signed), Slack incoming webhook,
//! Prometheus Alertmanager, Jira-compatible issue creation, and a command hook.
//!
//! Each channel turns a [`Notification`] into the receiver's format and sends it once; the
//! outbox does retries, backoff and dedupe. Secrets (webhook keys, tokens, the Slack URL) are
//! read from environment variables named in the config and never logged.
//!
//! Every HTTP request has a [`REQUEST_TIMEOUT`] of 10 s and follows no redirects. This build
//! has no TLS stack: channel URLs are `http://`, and an `https://` receiver (Slack, a hosted
//! Jira) is reached through a proxy that terminates TLS. See `docs/alerts.md` for the payloads.
//!
//! # Examples
//!
//! ```
//! use headlight_collector::alert::channels::{self, ChannelConfig};
//!
//! let config: ChannelConfig = toml::from_str(r#"
//!     kind = "jira"
//!     name = "ops-jira"
//!     url = "http://jira.internal:8080"
//!     project = "OPS"
//!     token_env = "JIRA_TOKEN"
//! "#).unwrap();
//! // Secrets are read once, at startup, through `env` (here: not set).
//! let err = channels::build(&config, &|_| None).unwrap_err();
//! assert_eq!(
//!     err,
//!     "channel \"ops-jira\": environment variable JIRA_TOKEN (token_env) is not set"
//! );
//! let channel = channels::build(&config, &|var| (var == "JIRA_TOKEN").then(|| "t0ken".into())).unwrap();
//! assert_eq!(channel.name(), "ops-jira");
//! assert!(!format!("{channel:?}").contains("t0ken"));
//! ```

mod alertmanager;
mod command;
mod config;
mod http;
mod jira;
mod secret;
mod slack;
mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use alertmanager::{Alertmanager, postable_alerts};
pub use command::Command;
pub use config::{
    AlertmanagerConfig, ChannelConfig, CommandConfig, JiraConfig, SlackConfig, WebhookConfig,
};
pub use http::REQUEST_TIMEOUT;
pub use jira::{Jira, alert_label, issue};
pub use secret::Secret;
pub use slack::{Slack, message as slack_message};
pub use webhook::{DELIVERY_HEADER, SIGNATURE_HEADER, Webhook, signature};

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

/// Builds the channel `config` describes, reading its secrets through `env` (the process
/// environment in the binary, a map in tests) now, at startup. Fails — naming the channel and
/// the key or variable, never a secret's value — when a variable is missing or empty, a URL
/// is not `http://`, a name or program is empty, or a duration is zero.
pub fn build(
    config: &ChannelConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Box<dyn Channel>, String> {
    let name = config.name();
    if name.trim().is_empty() {
        return Err("a channel has an empty name".to_owned());
    }
    match config {
        ChannelConfig::Webhook(c) => {
            let url = http::parse_url(name, "url", &c.url)?;
            let key = match &c.secret_env {
                Some(var) => Some(secret::read(env, name, "secret_env", var)?),
                None => None,
            };
            Ok(Box::new(Webhook::new(name, url, key)?))
        }
        ChannelConfig::Slack(c) => {
            let url = secret::read(env, name, "url_env", &c.url_env)?;
            http::parse_secret_url(name, "url_env", &c.url_env, &url)?;
            Ok(Box::new(Slack::new(name, url)?))
        }
        ChannelConfig::Alertmanager(c) => {
            let url = http::parse_url(name, "url", &c.url)?;
            if c.ends_after_s == Some(0) {
                return Err(format!("channel {name:?}: ends_after_s must be at least 1"));
            }
            let ends_after = c.ends_after_s.map(Duration::from_secs);
            Ok(Box::new(Alertmanager::new(name, &url, ends_after)?))
        }
        ChannelConfig::Jira(c) => {
            let url = http::parse_url(name, "url", &c.url)?;
            if c.project.trim().is_empty() {
                return Err(format!("channel {name:?}: project is empty"));
            }
            if c.issue_type.trim().is_empty() {
                return Err(format!("channel {name:?}: issue_type is empty"));
            }
            let token = secret::read(env, name, "token_env", &c.token_env)?;
            let auth = match &c.user_env {
                Some(var) => jira::Auth::basic(&secret::read(env, name, "user_env", var)?, token),
                None => jira::Auth::bearer(token),
            };
            Ok(Box::new(Jira::new(
                name,
                &url,
                &c.project,
                &c.issue_type,
                auth,
            )?))
        }
        ChannelConfig::Command(c) => {
            if c.program.as_os_str().is_empty() {
                return Err(format!("channel {name:?}: program is empty"));
            }
            if c.timeout_s == 0 {
                return Err(format!("channel {name:?}: timeout_s must be at least 1"));
            }
            Ok(Box::new(Command::new(
                name,
                c.program.clone(),
                c.args.clone(),
                Duration::from_secs(c.timeout_s),
            )))
        }
    }
}
