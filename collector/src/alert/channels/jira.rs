//! Jira-compatible issue creation: `POST {url}/rest/api/2/issue` when an alert starts firing.

use reqwest::Url;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::secret::Secret;
use super::{Channel, Delivery, http};
use crate::alert::model::{Event, Notification};

/// Jira caps an issue summary at 255 characters.
const SUMMARY_LIMIT: usize = 255;
/// How many characters of the alert key the label keeps before its hash.
const LABEL_KEY_CHARS: usize = 80;

/// How the channel authenticates.
#[derive(Debug)]
pub(crate) enum Auth {
    /// `Authorization: Basic base64(user:token)` (Jira Cloud: e-mail and API token).
    Basic { user: Secret, token: Secret },
    /// `Authorization: Bearer <token>` (Jira Data Center personal access tokens).
    Bearer(Secret),
}

/// Creates one issue per alert.
#[derive(Debug)]
pub struct Jira {
    name: String,
    endpoint: Url,
    project: String,
    issue_type: String,
    auth: Auth,
    client: reqwest::Client,
}

impl Jira {
    /// A Jira channel for the server at `url` (its base, without `/rest`).
    pub(crate) fn new(
        name: &str,
        url: &Url,
        project: &str,
        issue_type: &str,
        auth: Auth,
    ) -> Result<Self, String> {
        Ok(Self {
            name: name.to_owned(),
            endpoint: http::join(url, "rest/api/2/issue"),
            project: project.to_owned(),
            issue_type: issue_type.to_owned(),
            auth,
            client: http::client(name)?,
        })
    }
}

impl Channel for Jira {
    fn name(&self) -> &str {
        &self.name
    }

    /// Creates an issue on `Firing`; does nothing on `Renotify` (the issue exists) and on
    /// `Resolved` (closing is a person's call, and workflows differ between Jira projects).
    fn deliver<'a>(&'a self, notification: &'a Notification) -> Delivery<'a> {
        Box::pin(async move {
            if notification.event != Event::Firing {
                return Ok(());
            }
            let body = issue(notification, &self.project, &self.issue_type);
            let request = self.client.post(self.endpoint.clone()).json(&body);
            match &self.auth {
                Auth::Basic { user, token } => {
                    let request = request.basic_auth(user.expose(), Some(token.expose()));
                    http::send(&self.name, request, &[user, token]).await
                }
                Auth::Bearer(token) => {
                    let request = request.bearer_auth(token.expose());
                    http::send(&self.name, request, &[token]).await
                }
            }
        })
    }
}

/// Builds the create-issue body: `fields.project.key`, `fields.issuetype.name`,
/// `fields.summary` (the alert's summary, one line, at most 255 characters),
/// `fields.description` (Jira wiki markup: service, transaction, deploy, reasons, link,
/// alert key and delivery id), and `fields.labels` = `["headlight", alert_label(key)]`.
pub fn issue(notification: &Notification, project: &str, issue_type: &str) -> Value {
    let alert = &notification.alert;
    let summary: String = alert
        .summary
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(SUMMARY_LIMIT)
        .collect();

    let mut description = format!("*{}*\n\n", alert.summary);
    description.push_str(&format!("* Rule: {} ({})\n", alert.rule, alert.kind));
    description.push_str(&format!("* Service: {}\n", alert.service));
    if let Some(environment) = &alert.environment {
        description.push_str(&format!("* Environment: {environment}\n"));
    }
    if let Some(transaction) = &alert.transaction {
        description.push_str(&format!("* Transaction: {{{{{transaction}}}}}\n"));
    }
    if let Some(deploy) = &alert.deploy_id {
        description.push_str(&format!("* Deploy: {deploy}\n"));
    }
    if !alert.reasons.is_empty() {
        description.push_str("\nh3. Reasons\n");
        for reason in &alert.reasons {
            description.push_str(&format!("* {reason}\n"));
        }
    }
    if let Some(link) = &alert.link {
        description.push_str(&format!("\n[Open in Headlight|{link}]\n"));
    }
    description.push_str(&format!(
        "\n_Alert key {}, delivery {}_",
        alert.key, notification.delivery_id
    ));

    json!({
        "fields": {
            "project": { "key": project },
            "issuetype": { "name": issue_type },
            "summary": summary,
            "description": description,
            "labels": ["headlight", alert_label(&alert.key)],
        }
    })
}

/// A Jira label naming the alert, for finding its issue (`labels = …` in JQL): `headlight-`,
/// the key with every character other than ASCII letters, digits, `-`, `_` and `.` turned
/// into `_` (at most 80 characters), `-`, and the first 12 hex digits of SHA-256 of the key,
/// so two keys that read the same after the replacement still get different labels.
pub fn alert_label(key: &str) -> String {
    let readable: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(LABEL_KEY_CHARS)
        .collect();
    let digest = Sha256::digest(key.as_bytes());
    let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("headlight-{readable}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_have_no_spaces_and_differ_for_keys_that_read_the_same() {
        let a = alert_label("checkout-p95/checkout/GET /orders");
        let b = alert_label("checkout-p95/checkout/GET_/orders");
        assert!(a.starts_with("headlight-checkout-p95_checkout_GET__orders-"), "{a}");
        assert!(!a.contains(' '));
        assert_ne!(a, b);
        assert_eq!(a.len(), "headlight-".len() + 33 + 1 + 12);
    }
}
