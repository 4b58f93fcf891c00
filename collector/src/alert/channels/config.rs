//! The `[[alerts.channels]]` entries: one per destination, told apart by `kind`.

use std::path::PathBuf;

use serde::Deserialize;

/// One `[[alerts.channels]]` entry. Every entry has a `name`, which rules use to pick their
/// channels; values that are secrets are never in the file: the entry names the environment
/// variable that holds them (`*_env`).
///
/// # Examples
///
/// ```
/// use headlight_collector::alert::channels::ChannelConfig;
///
/// let config: ChannelConfig = toml::from_str(r#"
///     kind = "webhook"
///     name = "ops-hook"
///     url = "http://hooks.internal:8080/headlight"
///     secret_env = "HEADLIGHT_WEBHOOK_KEY"
/// "#).unwrap();
/// assert_eq!(config.name(), "ops-hook");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelConfig {
    /// A generic webhook: the notification as JSON, HMAC-SHA256 signed.
    Webhook(WebhookConfig),
    /// A Slack incoming webhook.
    Slack(SlackConfig),
    /// A Prometheus Alertmanager.
    Alertmanager(AlertmanagerConfig),
    /// A Jira-compatible issue tracker.
    Jira(JiraConfig),
    /// A program run with the notification on stdin.
    Command(CommandConfig),
}

impl ChannelConfig {
    /// The channel's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Webhook(c) => &c.name,
            Self::Slack(c) => &c.name,
            Self::Alertmanager(c) => &c.name,
            Self::Jira(c) => &c.name,
            Self::Command(c) => &c.name,
        }
    }
}

/// `kind = "webhook"`: `POST {url}` with the notification as JSON, the headers
/// `X-Headlight-Delivery: <delivery_id>` and, with `secret_env`,
/// `X-Headlight-Signature: sha256=<hex HMAC-SHA256 of the body>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The channel's name. Required.
    pub name: String,
    /// Where to post, `http://` only (TLS through a terminating proxy). Required.
    pub url: String,
    /// The environment variable holding the HMAC key. Default: none, and then the body is sent
    /// unsigned (no signature header).
    #[serde(default)]
    pub secret_env: Option<String>,
}

/// `kind = "slack"`: a Block Kit message to an incoming webhook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The channel's name. Required.
    pub name: String,
    /// The environment variable holding the incoming-webhook URL (the URL is the credential).
    /// Required.
    pub url_env: String,
}

/// `kind = "alertmanager"`: `POST {url}/api/v2/alerts`, resolved with `endsAt`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// The channel's name. Required.
    pub name: String,
    /// The Alertmanager's base URL, e.g. `http://alertmanager:9093` (with its
    /// `--web.route-prefix`, if any). Required.
    pub url: String,
    /// When set, firing alerts carry `endsAt` = send time + this many seconds, so Alertmanager
    /// keeps them active that long without a re-notification; set it above the rules'
    /// re-notification interval. Default: unset, and Alertmanager applies its own
    /// `resolve_timeout` (5 min unless configured).
    #[serde(default)]
    pub ends_after_s: Option<u64>,
}

/// `kind = "jira"`: `POST {url}/rest/api/2/issue` when an alert starts firing; nothing on
/// re-notification or resolution.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    /// The channel's name. Required.
    pub name: String,
    /// The Jira base URL, e.g. `http://jira.internal:8080`. Required.
    pub url: String,
    /// The project key, e.g. `OPS`. Required.
    pub project: String,
    /// The issue type's name. Default: `"Bug"`.
    #[serde(default = "default_issue_type")]
    pub issue_type: String,
    /// The environment variable holding the user (Jira Cloud: the account's e-mail). Default:
    /// none, and then the token is sent as `Authorization: Bearer` (a personal access token);
    /// with it, `Authorization: Basic` of user and token.
    #[serde(default)]
    pub user_env: Option<String>,
    /// The environment variable holding the API token or personal access token. Required.
    pub token_env: String,
}

fn default_issue_type() -> String {
    "Bug".to_owned()
}

/// `kind = "command"`: runs `program args…` with the notification as JSON on stdin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The channel's name. Required.
    pub name: String,
    /// The program: a path, or a name looked up in `PATH`. Required.
    pub program: PathBuf,
    /// Its arguments, passed as they are (no shell). Default: none.
    #[serde(default)]
    pub args: Vec<String>,
    /// How long it may run before it is killed, in seconds. Default: 30.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
}

fn default_timeout_s() -> u64 {
    30
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_with_its_defaults() {
        let jira: ChannelConfig = toml::from_str(
            "kind = \"jira\"\nname = \"j\"\nurl = \"http://jira\"\nproject = \"OPS\"\ntoken_env = \"T\"",
        )
        .unwrap();
        let ChannelConfig::Jira(jira) = jira else {
            panic!("{jira:?}")
        };
        assert_eq!(jira.issue_type, "Bug");
        assert_eq!(jira.user_env, None);

        let command: ChannelConfig =
            toml::from_str("kind = \"command\"\nname = \"c\"\nprogram = \"/bin/true\"").unwrap();
        assert_eq!(
            command,
            ChannelConfig::Command(CommandConfig {
                name: "c".into(),
                program: "/bin/true".into(),
                args: vec![],
                timeout_s: 30,
            })
        );
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        let err =
            toml::from_str::<ChannelConfig>("kind = \"slack\"\nname = \"s\"\nurl = \"http://x\"")
                .unwrap_err()
                .to_string();
        assert!(err.contains("unknown field `url`"), "{err}");
        let err = toml::from_str::<ChannelConfig>("kind = \"pager\"\nname = \"p\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `pager`"), "{err}");
    }
}
