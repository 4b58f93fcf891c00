//! The deploy record and its validation.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Longest `service`, `environment`, `version` or `commit`, bytes.
const MAX_NAME_BYTES: usize = 256;
/// Longest `description`, bytes.
const MAX_DESCRIPTION_BYTES: usize = 4096;
/// Deploy times before this (2000-01-01) are refused as absurd.
const EARLIEST_MS: i64 = 946_684_800_000;

/// A deploy marker: `{id, service, environment, version, commit?, description?, time}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deploy {
    /// Stable id, 16 hex digits: a hash of service, environment, version and time, so a
    /// retried request records the same deploy once.
    pub id: String,
    /// `service.name` of the deployed service.
    pub service: String,
    /// `deployment.environment`; `default` when not given.
    pub environment: String,
    /// The deployed `service.version`.
    pub version: String,
    /// VCS commit, if given.
    pub commit: Option<String>,
    /// Free text, if given.
    pub description: Option<String>,
    /// When the deploy happened, unix ms.
    pub time_ms: i64,
    /// True when the collector created the marker because a new `service.version` appeared.
    pub automatic: bool,
    /// When the deployed commit was made, unix ms, if given (for lead time).
    pub commit_time_ms: Option<i64>,
}

/// What a client sends to record a deploy (`POST /api/v1/deploys`, gRPC, `headlight deploy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewDeploy {
    /// `service.name`; required.
    pub service: String,
    /// `service.version`; required.
    pub version: String,
    /// `deployment.environment`; `default` when absent or empty.
    #[serde(default)]
    pub environment: Option<String>,
    /// VCS commit.
    #[serde(default)]
    pub commit: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Deploy time, unix ms; the collector's clock when absent.
    #[serde(default)]
    pub time_ms: Option<i64>,
    /// Commit time, unix ms.
    #[serde(default)]
    pub commit_time_ms: Option<i64>,
}

/// Which deploys to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployQuery {
    /// Only this service.
    pub service: Option<String>,
    /// Only this environment.
    pub environment: Option<String>,
    /// Deploy time from, unix ms, inclusive.
    pub from_ms: Option<i64>,
    /// Deploy time to, unix ms, exclusive.
    pub to_ms: Option<i64>,
    /// Most deploys, newest first.
    pub limit: usize,
}

fn check_name(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.len() > max {
        return Err(ApiError::invalid(format!(
            "`{field}` is longer than {max} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "`{field}` contains control characters"
        )));
    }
    Ok(())
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// Returns the stable id of a deploy: 64-bit FNV-1a over its identifying fields, as 16 hex
/// digits.
pub fn deploy_id(service: &str, environment: &str, version: &str, time: Option<i64>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let time = time.map_or_else(|| "automatic".to_owned(), |t| t.to_string());
    for part in [service, environment, version, time.as_str()] {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

impl NewDeploy {
    /// Validates the request and returns the deploy to record. `now_ms` is the collector's
    /// clock; times more than `max_future_ms` ahead of it, or before 2000, are refused.
    pub fn into_deploy(self, now_ms: i64, max_future_ms: i64) -> Result<Deploy, ApiError> {
        let service = self.service.trim().to_owned();
        let version = self.version.trim().to_owned();
        if service.is_empty() {
            return Err(ApiError::invalid("`service` is required"));
        }
        if version.is_empty() {
            return Err(ApiError::invalid("`version` is required"));
        }
        let environment = non_empty(self.environment)
            .map_or_else(|| "default".to_owned(), |e| e.trim().to_owned());
        let commit = non_empty(self.commit);
        let description = non_empty(self.description);
        check_name("service", &service, MAX_NAME_BYTES)?;
        check_name("version", &version, MAX_NAME_BYTES)?;
        check_name("environment", &environment, MAX_NAME_BYTES)?;
        if let Some(c) = &commit {
            check_name("commit", c, MAX_NAME_BYTES)?;
        }
        if description
            .as_ref()
            .is_some_and(|d| d.len() > MAX_DESCRIPTION_BYTES)
        {
            return Err(ApiError::invalid(format!(
                "`description` is longer than {MAX_DESCRIPTION_BYTES} bytes"
            )));
        }
        let time_ms = self.time_ms.unwrap_or(now_ms);
        let latest = now_ms.saturating_add(max_future_ms);
        for (field, value) in [
            ("time_ms", Some(time_ms)),
            ("commit_time_ms", self.commit_time_ms),
        ] {
            if let Some(t) = value
                && !(EARLIEST_MS..=latest).contains(&t)
            {
                return Err(ApiError::invalid(format!(
                    "`{field}` {t} is not a plausible unix time in ms (before 2000 or more than {} s ahead of the collector's clock)",
                    max_future_ms / 1000
                )));
            }
        }
        Ok(Deploy {
            id: deploy_id(&service, &environment, &version, Some(time_ms)),
            service,
            environment,
            version,
            commit,
            description,
            time_ms,
            automatic: false,
            commit_time_ms: self.commit_time_ms,
        })
    }
}

impl Deploy {
    /// The marker the collector records when `service` first reports `version` in
    /// `environment`, at `time_ms` (the start of the first transaction seen). Its id does not
    /// depend on the time, so collectors sharing a store record it once.
    pub fn automatic(service: &str, environment: &str, version: &str, time_ms: i64) -> Self {
        Self {
            id: deploy_id(service, environment, version, None),
            service: service.to_owned(),
            environment: environment.to_owned(),
            version: version.to_owned(),
            commit: None,
            description: Some(format!("automatic: first transaction of version {version}")),
            time_ms,
            automatic: true,
            commit_time_ms: None,
        }
    }
}

/// Removes the automatic markers of versions that also have a recorded deploy among
/// `deploys`: the recorded one is authoritative (it carries the real time, commit and
/// description).
pub fn hide_superseded(deploys: Vec<Deploy>) -> Vec<Deploy> {
    let recorded: std::collections::HashSet<(String, String, String)> = deploys
        .iter()
        .filter(|d| !d.automatic)
        .map(|d| (d.service.clone(), d.environment.clone(), d.version.clone()))
        .collect();
    deploys
        .into_iter()
        .filter(|d| {
            !d.automatic
                || !recorded.contains(&(
                    d.service.clone(),
                    d.environment.clone(),
                    d.version.clone(),
                ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn request() -> NewDeploy {
        NewDeploy {
            service: "checkout".into(),
            version: "2.0.1".into(),
            ..NewDeploy::default()
        }
    }

    #[test]
    fn defaults_are_filled_and_ids_are_stable() {
        let d = request().into_deploy(NOW, 600_000).unwrap();
        assert_eq!(d.environment, "default");
        assert_eq!(d.time_ms, NOW);
        assert!(!d.automatic);
        assert_eq!(d.id.len(), 16);
        let again = request().into_deploy(NOW, 600_000).unwrap();
        assert_eq!(d.id, again.id, "a retried request is the same deploy");
        let later = request().into_deploy(NOW + 1, 600_000).unwrap();
        assert_ne!(d.id, later.id);
        let auto = Deploy::automatic("checkout", "default", "2.0.1", NOW);
        assert_ne!(auto.id, d.id);
        assert_eq!(
            auto.id,
            Deploy::automatic("checkout", "default", "2.0.1", 5).id
        );
    }

    #[test]
    fn invalid_requests_name_the_field() {
        let cases: [(NewDeploy, &str); 5] = [
            (
                NewDeploy {
                    service: " ".into(),
                    ..request()
                },
                "`service` is required",
            ),
            (
                NewDeploy {
                    version: String::new(),
                    ..request()
                },
                "`version` is required",
            ),
            (
                NewDeploy {
                    time_ms: Some(NOW + 3_600_000),
                    ..request()
                },
                "`time_ms`",
            ),
            (
                NewDeploy {
                    time_ms: Some(1_000),
                    ..request()
                },
                "`time_ms` 1000",
            ),
            (
                NewDeploy {
                    environment: Some("a\nb".into()),
                    ..request()
                },
                "`environment` contains control",
            ),
        ];
        for (req, wanted) in cases {
            let err = req.into_deploy(NOW, 600_000).unwrap_err();
            assert!(err.message.contains(wanted), "{} vs {wanted}", err.message);
        }
    }

    #[test]
    fn recorded_deploys_hide_automatic_markers_of_their_version() {
        let auto = Deploy::automatic("checkout", "default", "2.0.1", NOW);
        let other = Deploy::automatic("checkout", "default", "2.0.2", NOW);
        let explicit = request().into_deploy(NOW, 0).unwrap();
        let all = vec![auto, other.clone(), explicit.clone()];
        let shown = hide_superseded(all);
        assert_eq!(shown, vec![other, explicit]);
    }
}
