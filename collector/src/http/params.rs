//! Query-parameter parsing for the API, with a 400 naming the parameter for anything off.

use std::collections::HashMap;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use crate::query::range::TimeRange;
use crate::store::SeriesFilter;

/// Default range when `from` is not given: the last hour.
pub const DEFAULT_RANGE_MS: i64 = 3_600_000;

/// Parsed query parameters of one request.
#[derive(Debug)]
pub struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Takes the raw pairs; unknown or repeated names are refused, listing the allowed ones.
    pub fn new(raw: Vec<(String, String)>, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut values = HashMap::new();
        for (key, value) in raw {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter `{key}`; this endpoint takes: {}",
                    allowed.join(", ")
                )));
            }
            if values.insert(key.clone(), value).is_some() {
                return Err(ApiError::invalid(format!(
                    "query parameter `{key}` is repeated"
                )));
            }
        }
        Ok(Self { values })
    }

    /// A non-empty string parameter.
    pub fn string(&self, key: &str) -> Option<String> {
        self.values.get(key).filter(|v| !v.is_empty()).cloned()
    }

    /// A required non-empty string parameter.
    pub fn required(&self, key: &str) -> Result<String, ApiError> {
        self.string(key)
            .ok_or_else(|| ApiError::invalid(format!("query parameter `{key}` is required")))
    }

    /// A time: unix milliseconds or RFC 3339 (`2026-11-22T10:00:00Z`).
    pub fn time(&self, key: &str) -> Result<Option<i64>, ApiError> {
        let Some(text) = self.string(key) else {
            return Ok(None);
        };
        parse_time(&text)
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "query parameter `{key}`: {text:?} is neither unix milliseconds nor an RFC 3339 time"
                ))
            })
    }

    /// A finite number ≥ 0.
    pub fn non_negative(&self, key: &str) -> Result<Option<f64>, ApiError> {
        let Some(text) = self.string(key) else {
            return Ok(None);
        };
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
            _ => Err(ApiError::invalid(format!(
                "query parameter `{key}`: {text:?} is not a number ≥ 0"
            ))),
        }
    }

    /// A positive whole number.
    pub fn positive(&self, key: &str) -> Result<Option<u64>, ApiError> {
        let Some(text) = self.string(key) else {
            return Ok(None);
        };
        match text.parse::<u64>() {
            Ok(v) if v > 0 => Ok(Some(v)),
            _ => Err(ApiError::invalid(format!(
                "query parameter `{key}`: {text:?} is not a whole number ≥ 1"
            ))),
        }
    }

    /// `true`/`false` (also `1`/`0`).
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.string(key).as_deref() {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(other) => Err(ApiError::invalid(format!(
                "query parameter `{key}`: {other:?} is not true or false"
            ))),
        }
    }

    /// A duration in seconds: a whole number, or with a unit `s`, `m`, `h` (`30s`, `5m`).
    pub fn seconds(&self, key: &str) -> Result<Option<i64>, ApiError> {
        let Some(text) = self.string(key) else {
            return Ok(None);
        };
        parse_duration_s(&text).map(Some).ok_or_else(|| {
            ApiError::invalid(format!(
                "query parameter `{key}`: {text:?} is not a duration like 30, 30s, 5m, 1h or 7d"
            ))
        })
    }

    /// `from`/`to`; `to` defaults to now and `from` to an hour before `to`.
    pub fn range(&self, now_ms: i64) -> Result<TimeRange, ApiError> {
        let to_ms = self.time("to")?.unwrap_or(now_ms);
        let from_ms = self.time("from")?.unwrap_or(to_ms - DEFAULT_RANGE_MS);
        if from_ms >= to_ms {
            return Err(ApiError::invalid(format!(
                "`from` ({from_ms}) must be before `to` ({to_ms})"
            )));
        }
        Ok(TimeRange { from_ms, to_ms })
    }

    /// The series filter from `service`, `transaction`, `env`, `version`.
    pub fn filter(&self) -> SeriesFilter {
        SeriesFilter {
            service: self.string("service"),
            environment: self.string("env"),
            version: self.string("version"),
            transaction: self.string("transaction"),
        }
    }
}

/// Parses a positive duration in seconds: a whole number, or with a unit `s`, `m`, `h`, `d`
/// (`30s`, `5m`, `7d`); at most a year.
pub fn parse_duration_s(text: &str) -> Option<i64> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    let n = digits.parse::<i64>().ok()?;
    // Checked: a long digit string times a unit overflows (and would wrap in release).
    let seconds = n.checked_mul(factor)?;
    (n > 0 && seconds <= 366 * 86_400).then_some(seconds)
}

/// Latest accepted time, unix ms: 9999-12-31T23:59:59.999Z.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// Parses unix milliseconds or RFC 3339, from 1970 to the end of year 9999 (UTC) either way.
pub fn parse_time(text: &str) -> Option<i64> {
    let ms = match text.parse::<i64>() {
        Ok(ms) => ms,
        Err(_) => {
            let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
            i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok()?
        }
    };
    (0..=MAX_TIME_MS).contains(&ms).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)], allowed: &[&str]) -> Result<Params, ApiError> {
        Params::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            allowed,
        )
    }

    #[test]
    fn times_are_unix_ms_or_rfc3339() {
        assert_eq!(parse_time("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00"),
            Some(1_700_000_000_500)
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("-5"), None);
        // RFC 3339 has the same bounds as milliseconds (the query_params invariants).
        assert_eq!(parse_time("1969-12-31T23:59:59.999Z"), None);
        assert_eq!(parse_time("0000-01-01T00:00:00Z"), None);
        assert_eq!(parse_time("9999-12-31T23:59:59.999Z"), Some(MAX_TIME_MS));
        assert_eq!(parse_time("9999-12-31T23:59:59-01:00"), None);
    }

    #[test]
    fn unknown_and_bad_parameters_are_named() {
        let err = params(&[("servce", "x")], &["service"]).unwrap_err();
        assert!(err.message.contains("servce"), "{}", err.message);
        let p = params(&[("from", "soon")], &["from"]).unwrap();
        assert!(p.range(1_000_000).unwrap_err().message.contains("`from`"));
        let p = params(&[("from", "10"), ("to", "5")], &["from", "to"]).unwrap();
        assert!(p.range(1_000_000).is_err());
        let p = params(&[("limit", "0")], &["limit"]).unwrap();
        assert!(p.positive("limit").is_err());
        let p = params(&[("errors", "maybe")], &["errors"]).unwrap();
        assert!(p.boolean("errors").is_err());
    }

    #[test]
    fn defaults_to_the_last_hour() {
        let p = params(&[], &[]).unwrap();
        assert_eq!(
            p.range(10_000_000).unwrap(),
            TimeRange {
                from_ms: 10_000_000 - DEFAULT_RANGE_MS,
                to_ms: 10_000_000
            }
        );
    }

    #[test]
    fn durations_take_units() {
        let p = params(
            &[("a", "30"), ("b", "5m"), ("c", "1h"), ("d", "5x")],
            &["a", "b", "c", "d"],
        )
        .unwrap();
        assert_eq!(p.seconds("a").unwrap(), Some(30));
        assert_eq!(p.seconds("b").unwrap(), Some(300));
        assert_eq!(p.seconds("c").unwrap(), Some(3600));
        assert!(p.seconds("d").is_err());
    }

    #[test]
    fn huge_durations_are_refused_not_overflowed() {
        // 99999999999999999 d overflows i64 seconds: a panic in debug, a wrapped value in release.
        assert_eq!(parse_duration_s("99999999999999999d"), None);
        assert_eq!(parse_duration_s("106751991167301d"), None);
        assert_eq!(parse_duration_s(&i64::MAX.to_string()), None);
        assert_eq!(parse_duration_s("366d"), Some(366 * 86_400));
        assert_eq!(parse_duration_s("367d"), None);
    }
}
