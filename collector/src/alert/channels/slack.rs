//! Slack incoming webhooks: a Block Kit message with the summary, the state, the reasons and a
//! button to the report.

use serde_json::{Value, json};

use super::secret::Secret;
use super::{Channel, Delivery, http};
use crate::alert::model::{Event, Notification};

/// Slack caps a header block's text at 150 characters.
const HEADER_LIMIT: usize = 150;
/// Slack caps a section's text at 3000 characters.
const SECTION_LIMIT: usize = 3000;

/// Posts a Block Kit message to a Slack incoming-webhook URL (itself the secret).
#[derive(Debug)]
pub struct Slack {
    name: String,
    /// The webhook URL; kept only as a [`Secret`] so that no `Debug` of the channel shows it.
    url: Secret,
    client: reqwest::Client,
}

impl Slack {
    /// A Slack channel posting to `url`, already checked by [`http::parse_secret_url`].
    pub(crate) fn new(name: &str, url: Secret) -> Result<Self, String> {
        Ok(Self {
            name: name.to_owned(),
            url,
            client: http::client(name)?,
        })
    }
}

impl Channel for Slack {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver<'a>(&'a self, notification: &'a Notification) -> Delivery<'a> {
        Box::pin(async move {
            let request = self
                .client
                .post(self.url.expose())
                .json(&message(notification));
            http::send(&self.name, request, &[&self.url]).await
        })
    }
}

/// Builds the Block Kit payload: `text` (the notification fallback), a header with the state
/// and the rule, the summary, fields (service, state, kind, and the transaction, deploy and
/// environment when present), the reasons as a bulleted list, a button to `alert.link` when
/// present, and a context line with the delivery id.
pub fn message(notification: &Notification) -> Value {
    let alert = &notification.alert;
    let (state, icon) = match notification.event {
        Event::Firing => ("Firing", ":red_circle:"),
        Event::Renotify => ("Still firing", ":red_circle:"),
        Event::Resolved => ("Resolved", ":large_green_circle:"),
    };
    let text = format!("{state}: {}", alert.summary);

    let mut fields = vec![
        field("Service", &alert.service),
        field("State", state),
        field("Kind", &alert.kind),
    ];
    if let Some(transaction) = &alert.transaction {
        fields.push(field("Transaction", transaction));
    }
    if let Some(deploy) = &alert.deploy_id {
        fields.push(field("Deploy", deploy));
    }
    if let Some(environment) = &alert.environment {
        fields.push(field("Environment", environment));
    }

    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": truncate(&format!("{icon} {state}: {}", alert.rule), HEADER_LIMIT),
                "emoji": true,
            },
        }),
        json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": truncate(&format!("*{}*", escape(&alert.summary)), SECTION_LIMIT) },
            "fields": fields,
        }),
    ];
    if !alert.reasons.is_empty() {
        let reasons = alert
            .reasons
            .iter()
            .map(|r| format!("• {}", escape(r)))
            .collect::<Vec<_>>()
            .join("\n");
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": truncate(&format!("*Reasons*\n{reasons}"), SECTION_LIMIT) },
        }));
    }
    if let Some(link) = &alert.link {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": { "type": "plain_text", "text": "Open in Headlight" },
                "url": link,
            }],
        }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": escape(&format!("{} · delivery {}", alert.key, notification.delivery_id)) }],
    }));
    json!({ "text": text, "blocks": blocks })
}

/// A two-line `*Label*\nvalue` field.
fn field(label: &str, value: &str) -> Value {
    json!({ "type": "mrkdwn", "text": truncate(&format!("*{label}*\n{}", escape(value)), 2000) })
}

/// Escapes the three characters mrkdwn gives a meaning to.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cuts `text` to at most `limit` characters, ending with `…` when cut.
fn truncate(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(limit - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_truncates() {
        assert_eq!(escape("p95 <300 & >1"), "p95 &lt;300 &amp; &gt;1");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
