//! Jira-compatible issue creation: `POST {url}/rest/api/2/issue` when an alert starts firing.

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::secret::Secret;
use super::{Channel, Delivery, DeliveryError, http};
use crate::alert::model::{Event, Notification};

/// Jira caps an issue summary at 255 characters.
const SUMMARY_LIMIT: usize = 255;
/// How many characters of the alert key the label keeps before its hash.
const LABEL_KEY_CHARS: usize = 80;

/// How the channel authenticates: the whole `Authorization` header value, and the forms of
/// the credentials that are scrubbed from error messages.
#[derive(Debug)]
pub(crate) struct Auth {
    header: Secret,
    scrub: Vec<Secret>,
}

impl Auth {
    /// `Authorization: Basic base64(user:token)` (Jira Cloud: e-mail and API token).
    pub(crate) fn basic(user: &Secret, token: Secret) -> Self {
        let encoded = Secret::new(base64(
            format!("{}:{}", user.expose(), token.expose()).as_bytes(),
        ));
        Self {
            header: Secret::new(format!("Basic {}", encoded.expose())),
            scrub: vec![encoded, token],
        }
    }

    /// `Authorization: Bearer <token>` (Jira Data Center personal access tokens).
    pub(crate) fn bearer(token: Secret) -> Self {
        Self {
            header: Secret::new(format!("Bearer {}", token.expose())),
            scrub: vec![token],
        }
    }
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
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
            let mut authorization =
                HeaderValue::from_str(self.auth.header.expose()).map_err(|_| {
                    DeliveryError::Permanent(
                        "the credentials are not a valid header value".to_owned(),
                    )
                })?;
            authorization.set_sensitive(true);
            let request = self
                .client
                .post(self.endpoint.clone())
                .header(AUTHORIZATION, authorization)
                .json(&body);
            let scrub: Vec<&Secret> = [&self.auth.header]
                .into_iter()
                .chain(&self.auth.scrub)
                .collect();
            http::send(&self.name, request, &scrub).await
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
    fn base64_matches_rfc_4648() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn labels_have_no_spaces_and_differ_for_keys_that_read_the_same() {
        let a = alert_label("checkout-p95/checkout/GET /orders");
        let b = alert_label("checkout-p95/checkout/GET_/orders");
        assert!(
            a.starts_with("headlight-checkout-p95_checkout_GET__orders-"),
            "{a}"
        );
        assert!(!a.contains(' '));
        assert_ne!(a, b);
        assert_eq!(a.len(), "headlight-".len() + 33 + 1 + 12);
    }
}
