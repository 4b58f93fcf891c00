//! Which `service.version`s each service has reported, to mark new ones automatically.

use std::collections::{HashMap, HashSet};

use crate::store::SeriesRecord;

/// Most versions remembered in total; beyond it no automatic marker is created (counted).
const MAX_VERSIONS: usize = 100_000;

/// The version `unknown` (no `service.version`) never gets a marker.
const UNKNOWN_VERSION: &str = "unknown";

/// A version seen for the first time in a service and environment that had reported others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVersion {
    /// `service.name`.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// The new `service.version`.
    pub version: String,
    /// Start of the first transaction of it seen, unix ms.
    pub first_seen_ms: i64,
}

/// Per service and environment, the versions seen.
#[derive(Debug, Default)]
pub struct KnownVersions {
    by_service: HashMap<String, HashMap<String, HashSet<String>>>,
    len: usize,
    refused: u64,
}

impl KnownVersions {
    /// Starts from the series already in the store.
    pub fn new(known: &[SeriesRecord]) -> Self {
        let mut versions = Self::default();
        for r in known {
            versions.insert(&r.key.service, &r.key.environment, &r.key.version);
        }
        versions
    }

    fn insert(&mut self, service: &str, environment: &str, version: &str) -> bool {
        if self.len >= MAX_VERSIONS {
            self.refused += 1;
            return false;
        }
        let inserted = self
            .by_service
            .entry(service.to_owned())
            .or_default()
            .entry(environment.to_owned())
            .or_default()
            .insert(version.to_owned());
        self.len += usize::from(inserted);
        inserted
    }

    /// Notes a transaction of `version`; returns it as new when the service and environment
    /// had reported other (known) versions before and not this one.
    pub fn observe(
        &mut self,
        service: &str,
        environment: &str,
        version: &str,
        start_ms: i64,
    ) -> Option<NewVersion> {
        let known = self
            .by_service
            .get(service)
            .and_then(|envs| envs.get(environment));
        if known.is_some_and(|v| v.contains(version)) {
            return None;
        }
        let had_others = known.is_some_and(|v| v.iter().any(|v| v != UNKNOWN_VERSION));
        if !self.insert(service, environment, version) || !had_others || version == UNKNOWN_VERSION
        {
            return None;
        }
        Some(NewVersion {
            service: service.to_owned(),
            environment: environment.to_owned(),
            version: version.to_owned(),
            first_seen_ms: start_ms,
        })
    }

    /// Versions not remembered because the bound was reached.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_new_version_of_a_known_service_is_new() {
        let mut v = KnownVersions::default();
        assert_eq!(
            v.observe("checkout", "prod", "1.0", 5),
            None,
            "first version"
        );
        assert_eq!(v.observe("checkout", "prod", "1.0", 6), None);
        assert_eq!(
            v.observe("checkout", "staging", "2.0", 7),
            None,
            "other env"
        );
        let new = v.observe("checkout", "prod", "2.0", 8).unwrap();
        assert_eq!((new.version.as_str(), new.first_seen_ms), ("2.0", 8));
        assert_eq!(v.observe("checkout", "prod", "2.0", 9), None, "only once");
        assert_eq!(v.observe("checkout", "prod", "unknown", 9), None);
        let mut u = KnownVersions::default();
        assert_eq!(u.observe("search", "prod", "unknown", 1), None);
        assert_eq!(
            u.observe("search", "prod", "3", 2),
            None,
            "after unknown only"
        );
    }
}
