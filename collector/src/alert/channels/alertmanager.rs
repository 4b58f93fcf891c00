//! Prometheus Alertmanager: `POST {url}/api/v2/alerts`, resolved by sending the same labels
//! with `endsAt`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Channel, Delivery, DeliveryError, http};
use crate::alert::model::{Event, Notification};

/// Posts one alert per notification to an Alertmanager.
#[derive(Debug)]
pub struct Alertmanager {
    name: String,
    endpoint: Url,
    ends_after: Option<Duration>,
    client: reqwest::Client,
}

impl Alertmanager {
    /// An Alertmanager channel for the Alertmanager at `url` (its base, without `/api/v2`).
    pub(crate) fn new(name: &str, url: &Url, ends_after: Option<Duration>) -> Result<Self, String> {
        Ok(Self {
            name: name.to_owned(),
            endpoint: http::join(url, "api/v2/alerts"),
            ends_after,
            client: http::client(name)?,
        })
    }
}

impl Channel for Alertmanager {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver<'a>(&'a self, notification: &'a Notification) -> Delivery<'a> {
        Box::pin(async move {
            let body = postable_alerts(notification, now_ms(), self.ends_after)?;
            let request = self.client.post(self.endpoint.clone()).json(&body);
            http::send(&self.name, request, &[]).await
        })
    }
}

/// Builds the body of `POST /api/v2/alerts`: a list of one alert.
///
/// - `labels`: `alertname` (the rule), `service`, and `transaction`, `deploy_id`,
///   `environment` when present, then the alert's own labels (which never replace those);
///   names are made valid Prometheus label names (`[a-zA-Z_][a-zA-Z0-9_]*`, other characters
///   become `_`), empty values are left out. The labels are the same on every event, so
///   Alertmanager sees one alert.
/// - `annotations`: `summary`, `description` (the reasons, one per line), `link` when present,
///   and `alert_key`, `delivery_id`.
/// - `startsAt`: when the alert started firing.
/// - `endsAt`: on `Resolved`, when it resolved (or `now_ms` when unknown), which makes
///   Alertmanager resolve it; on `Firing`/`Renotify`, `now_ms + ends_after` when configured,
///   otherwise absent (Alertmanager then applies its `resolve_timeout`).
/// - `generatorURL`: the link, when present.
pub fn postable_alerts(
    notification: &Notification,
    now_ms: i64,
    ends_after: Option<Duration>,
) -> Result<Value, DeliveryError> {
    let alert = &notification.alert;
    let mut labels = BTreeMap::new();
    let core = [
        ("alertname", Some(&alert.rule)),
        ("service", Some(&alert.service)),
        ("transaction", alert.transaction.as_ref()),
        ("deploy_id", alert.deploy_id.as_ref()),
        ("environment", alert.environment.as_ref()),
    ];
    for (name, value) in core {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            labels.insert(name.to_owned(), value.clone());
        }
    }
    for (name, value) in &alert.labels {
        if !value.is_empty() {
            labels
                .entry(label_name(name))
                .or_insert_with(|| value.clone());
        }
    }

    let mut annotations = BTreeMap::new();
    annotations.insert("summary", alert.summary.clone());
    annotations.insert("description", alert.reasons.join("\n"));
    if let Some(link) = &alert.link {
        annotations.insert("link", link.clone());
    }
    annotations.insert("alert_key", alert.key.clone());
    annotations.insert("delivery_id", notification.delivery_id.clone());

    let mut body = json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(alert.started_ms)?,
    });
    let ends_ms = match notification.event {
        // Alertmanager refuses an end before the start.
        Event::Resolved => Some(alert.resolved_ms.unwrap_or(now_ms).max(alert.started_ms)),
        Event::Firing | Event::Renotify => ends_after
            .map(|d| now_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
    };
    if let Some(ends_ms) = ends_ms {
        body["endsAt"] = Value::String(rfc3339(ends_ms)?);
    }
    if let Some(link) = &alert.link {
        body["generatorURL"] = Value::String(link.clone());
    }
    Ok(Value::Array(vec![body]))
}

/// Makes `name` a valid Prometheus label name.
fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Unix ms as RFC 3339 with milliseconds, UTC.
fn rfc3339(ms: i64) -> Result<String, DeliveryError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or_else(|| DeliveryError::Permanent(format!("time {ms} ms is out of range")))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_made_valid() {
        assert_eq!(label_name("severity"), "severity");
        assert_eq!(label_name("team.name"), "team_name");
        assert_eq!(label_name("1st"), "_1st");
        assert_eq!(label_name(""), "_");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(
            rfc3339(1_700_000_000_123).unwrap(),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
