//! Alert rules as code: `[alerts]` and `[[alerts.rules]]` in the TOML config, validated at start.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::channels::ChannelConfig;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A deploy whose stored comparison's verdict is `regression`.
    DeployRegression,
    /// A percentile above `threshold_ms` over the last `for_s`.
    Latency,
    /// The error rate above `max_error_rate_pct` over the last `for_s`.
    ErrorRate,
    /// Apdex (T = `apdex_t_ms`) below `min_apdex` over the last `for_s`.
    Apdex,
    /// The hitmap's "slow wall": more than `max_slow_share` of the transactions of the last
    /// `for_s` slower than `threshold_ms`.
    SlowWall,
    /// The last `window_s` compared with the same time `offset_s` earlier (a week by default)
    /// regresses, by the comparison engine.
    PeriodOverPeriod,
}

impl RuleKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeployRegression => "deploy_regression",
            Self::Latency => "latency",
            Self::ErrorRate => "error_rate",
            Self::Apdex => "apdex",
            Self::SlowWall => "slow_wall",
            Self::PeriodOverPeriod => "period_over_period",
        }
    }
}

/// One `[[alerts.rules]]` entry. Which threshold fields a kind takes is checked at start.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name; the alert's `rule`.
    pub name: String,
    /// What it watches.
    pub kind: RuleKind,
    /// Only this service; every service when absent (each judged on its own).
    #[serde(default)]
    pub service: Option<String>,
    /// Only this environment; all when absent.
    #[serde(default)]
    pub environment: Option<String>,
    /// Only this transaction; the whole service when absent (not for `deploy_regression`).
    #[serde(default)]
    pub transaction: Option<String>,
    /// Channels to notify, by name; all configured channels when absent.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// Extra labels on the alert (e.g. `severity = "page"`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `latency`: the percentile, e.g. 95 or 99.9.
    #[serde(default)]
    pub percentile: Option<f64>,
    /// `latency`, `slow_wall`: the threshold, ms.
    #[serde(default)]
    pub threshold_ms: Option<f64>,
    /// `error_rate`: the highest acceptable error rate, %.
    #[serde(default)]
    pub max_error_rate_pct: Option<f64>,
    /// `apdex`: the lowest acceptable score, 0..1.
    #[serde(default)]
    pub min_apdex: Option<f64>,
    /// `apdex`: T in ms; `query.apdex_t_ms` when absent.
    #[serde(default)]
    pub apdex_t_ms: Option<f64>,
    /// `slow_wall`: the highest acceptable share above `threshold_ms`, 0..1.
    #[serde(default)]
    pub max_slow_share: Option<f64>,
    /// The sustained window, s (`latency`, `error_rate`, `apdex`: default 300; `slow_wall`:
    /// default 60).
    #[serde(default)]
    pub for_s: Option<u32>,
    /// Fewest transactions in the window for the rule to judge; default 20.
    #[serde(default)]
    pub min_count: Option<u64>,
    /// `period_over_period`: the compared window, s; default 3600.
    #[serde(default)]
    pub window_s: Option<u32>,
    /// `period_over_period`: how far back the other period is, s; default 604800 (a week).
    #[serde(default)]
    pub offset_s: Option<u32>,
}

/// `[alerts]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// How often rules are evaluated, s; default 15.
    pub evaluate_every_s: u32,
    /// A still-firing alert is notified again after this long, s; default 14400 (4 h).
    pub renotify_after_s: u32,
    /// A delivery still failing this long after it was queued is given up, s; default 86400.
    pub give_up_after_s: u32,
    /// The collector's URL as people reach it (for links in notifications), e.g.
    /// `https://headlight.example.com`; no links when absent.
    pub public_url: Option<String>,
    /// The rules.
    pub rules: Vec<RuleConfig>,
    /// The channels.
    pub channels: Vec<ChannelConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            evaluate_every_s: 15,
            renotify_after_s: 14_400,
            give_up_after_s: 86_400,
            public_url: None,
            rules: Vec::new(),
            channels: Vec::new(),
        }
    }
}

/// A rule with its defaults filled in, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// As configured.
    pub config: RuleConfig,
    /// The sustained window, ms.
    pub for_ms: i64,
    /// Fewest transactions to judge.
    pub min_count: u64,
    /// The channels it notifies: its `channels`, or every configured channel.
    pub channels: Vec<String>,
}

fn need(
    rule: &RuleConfig,
    field: &str,
    value: Option<f64>,
    range: std::ops::RangeInclusive<f64>,
) -> Result<f64, String> {
    let v = value.ok_or_else(|| {
        format!(
            "rule {:?} ({}): `{field}` is required",
            rule.name,
            rule.kind.as_str()
        )
    })?;
    if !(v.is_finite() && range.contains(&v)) {
        return Err(format!(
            "rule {:?}: `{field}` = {v} is outside {}..={}",
            rule.name,
            range.start(),
            range.end()
        ));
    }
    Ok(v)
}

impl AlertsConfig {
    /// Validates the rules and fills their defaults; the error names the rule and the field.
    pub fn rules(&self) -> Result<Vec<Rule>, String> {
        let mut names = std::collections::HashSet::new();
        let channel_names: Vec<&str> = self.channels.iter().map(ChannelConfig::name).collect();
        let mut out = Vec::new();
        for r in &self.rules {
            if r.name.trim().is_empty() {
                return Err("a rule has an empty `name`".into());
            }
            if !names.insert(r.name.as_str()) {
                return Err(format!("two rules are named {:?}", r.name));
            }
            for c in r.channels.iter().flatten() {
                if !channel_names.contains(&c.as_str()) {
                    return Err(format!("rule {:?}: no channel named {c:?}", r.name));
                }
            }
            let allowed: &[&str] = match r.kind {
                RuleKind::DeployRegression => &[],
                RuleKind::Latency => &["percentile", "threshold_ms", "for_s", "min_count"],
                RuleKind::ErrorRate => &["max_error_rate_pct", "for_s", "min_count"],
                RuleKind::Apdex => &["min_apdex", "apdex_t_ms", "for_s", "min_count"],
                RuleKind::SlowWall => &["threshold_ms", "max_slow_share", "for_s", "min_count"],
                RuleKind::PeriodOverPeriod => &["window_s", "offset_s"],
            };
            let given = [
                ("percentile", r.percentile.is_some()),
                ("threshold_ms", r.threshold_ms.is_some()),
                ("max_error_rate_pct", r.max_error_rate_pct.is_some()),
                ("min_apdex", r.min_apdex.is_some()),
                ("apdex_t_ms", r.apdex_t_ms.is_some()),
                ("max_slow_share", r.max_slow_share.is_some()),
                ("for_s", r.for_s.is_some()),
                ("min_count", r.min_count.is_some()),
                ("window_s", r.window_s.is_some()),
                ("offset_s", r.offset_s.is_some()),
            ];
            if let Some((field, _)) = given.iter().find(|(f, g)| *g && !allowed.contains(f)) {
                return Err(format!(
                    "rule {:?}: `{field}` does not apply to kind {}",
                    r.name,
                    r.kind.as_str()
                ));
            }
            if r.kind == RuleKind::DeployRegression && r.transaction.is_some() {
                return Err(format!(
                    "rule {:?}: `transaction` does not apply to kind deploy_regression (the deploy's verdict covers all its transactions)",
                    r.name
                ));
            }
            match r.kind {
                RuleKind::Latency => {
                    need(r, "percentile", r.percentile, 1.0..=99.999)?;
                    need(r, "threshold_ms", r.threshold_ms, 0.001..=3_600_000.0)?;
                }
                RuleKind::ErrorRate => {
                    need(r, "max_error_rate_pct", r.max_error_rate_pct, 0.0..=100.0)?;
                }
                RuleKind::Apdex => {
                    need(r, "min_apdex", r.min_apdex, 0.0..=1.0)?;
                    if r.apdex_t_ms.is_some() {
                        need(r, "apdex_t_ms", r.apdex_t_ms, 0.001..=3_600_000.0)?;
                    }
                }
                RuleKind::SlowWall => {
                    need(r, "threshold_ms", r.threshold_ms, 0.001..=3_600_000.0)?;
                    need(r, "max_slow_share", r.max_slow_share, 0.0..=1.0)?;
                }
                RuleKind::DeployRegression | RuleKind::PeriodOverPeriod => {}
            }
            let default_for = if r.kind == RuleKind::SlowWall {
                60
            } else {
                300
            };
            let for_s = r.for_s.unwrap_or(default_for);
            if !(10..=86_400).contains(&for_s) {
                return Err(format!(
                    "rule {:?}: `for_s` must be within 10..=86400",
                    r.name
                ));
            }
            if r.window_s.is_some_and(|w| !(60..=86_400).contains(&w)) {
                return Err(format!(
                    "rule {:?}: `window_s` must be within 60..=86400",
                    r.name
                ));
            }
            if r.offset_s.is_some_and(|o| o < r.window_s.unwrap_or(3600)) {
                return Err(format!(
                    "rule {:?}: `offset_s` must be at least `window_s`",
                    r.name
                ));
            }
            out.push(Rule {
                config: r.clone(),
                for_ms: i64::from(for_s) * 1000,
                min_count: r.min_count.unwrap_or(20),
                channels: r
                    .channels
                    .clone()
                    .unwrap_or_else(|| channel_names.iter().map(|&c| c.to_owned()).collect()),
            });
        }
        if self.evaluate_every_s == 0 || self.renotify_after_s == 0 || self.give_up_after_s == 0 {
            return Err(
                "`evaluate_every_s`, `renotify_after_s` and `give_up_after_s` must be at least 1"
                    .into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.channels {
            if !seen.insert(c.name()) {
                return Err(format!("two channels are named {:?}", c.name()));
            }
        }
        Ok(out)
    }
}
