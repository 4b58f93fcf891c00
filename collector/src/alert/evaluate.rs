//! Rule evaluation: which alerts' conditions hold now, and the firing → resolved transitions
//! that queue notifications in the outbox.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{Alert, AlertState, Event, Notification};
use super::rules::{Rule, RuleKind};
use super::store::{AlertQuery, AlertRecord, DeliveryState, OutboxEntry};
use crate::aggregate::histogram::{LatencyStats, quantile_us};
use crate::compare::engine::{Verdict, format_ms};
use crate::compare::report::{self, Report, Status};
use crate::config::Config;
use crate::deploys::DeployQuery;
use crate::deploys::model::hide_superseded;
use crate::query::range::TimeRange;
use crate::query::summarize;
use crate::store::{SeriesFilter, Store, StoreError};

/// How far back deploy regressions are looked for: a week.
const DEPLOY_LOOKBACK_MS: i64 = 7 * 86_400_000;

/// An alert whose condition holds now, with the channels its rule notifies.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The alert (state firing, `started_ms` = now).
    pub alert: Alert,
    /// Channel names.
    pub channels: Vec<String>,
}

/// What one evaluation found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Keys of alerts that started firing.
    pub fired: Vec<String>,
    /// Keys of alerts notified again.
    pub renotified: Vec<String>,
    /// Keys of alerts that resolved.
    pub resolved: Vec<String>,
}

fn services(store: &dyn Store, rule: &Rule) -> Result<BTreeSet<String>, StoreError> {
    if let Some(s) = &rule.config.service {
        return Ok(BTreeSet::from([s.clone()]));
    }
    Ok(store
        .series(&SeriesFilter::default())?
        .into_iter()
        .map(|s| s.key.service)
        .collect())
}

/// The transactions of a service (and rule filters) ending in the last `for_ms`.
fn recent(
    store: &dyn Store,
    config: &Config,
    rule: &Rule,
    service: &str,
    now_ms: i64,
) -> Result<LatencyStats, StoreError> {
    let filter = SeriesFilter {
        service: Some(service.to_owned()),
        environment: rule.config.environment.clone(),
        version: None,
        transaction: rule.config.transaction.clone(),
    };
    let ids: Vec<_> = store.series(&filter)?.into_iter().map(|s| s.id).collect();
    let mut total = LatencyStats::default();
    if ids.is_empty() {
        return Ok(total);
    }
    let windows = TimeRange {
        from_ms: now_ms - rule.for_ms,
        to_ms: now_ms,
    }
    .windows(&config.aggregation, now_ms, None);
    for row in store.histograms(&ids, windows.resolution_s, windows.from_ms, windows.to_ms)? {
        total.merge(&row.stats);
    }
    Ok(total)
}

fn subject(rule: &Rule, service: &str) -> String {
    match &rule.config.transaction {
        Some(t) => format!("{service} · {t}"),
        None => service.to_owned(),
    }
}

fn minutes(ms: i64) -> String {
    if ms % 60_000 == 0 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} s", ms / 1000)
    }
}

/// Evaluates a threshold rule on one service: the summary if the condition holds.
fn threshold(rule: &Rule, config: &Config, stats: &LatencyStats, subject: &str) -> Option<String> {
    if stats.count < rule.min_count {
        return None;
    }
    let c = &rule.config;
    let span = minutes(rule.for_ms);
    let n = stats.count;
    match c.kind {
        RuleKind::Latency => {
            let p = c.percentile?;
            let v = quantile_us(&stats.histogram, p / 100.0) as f64 / 1000.0;
            let limit = c.threshold_ms?;
            (v > limit).then(|| {
                format!(
                    "{subject}: p{p} {} > {} over the last {span} ({n} requests)",
                    format_ms(v),
                    format_ms(limit)
                )
            })
        }
        RuleKind::ErrorRate => {
            let rate = stats.errors as f64 / n as f64 * 100.0;
            let limit = c.max_error_rate_pct?;
            (rate > limit).then(|| {
                format!(
                    "{subject}: error rate {rate:.1} % > {limit} % over the last {span} ({} of {n} requests)",
                    stats.errors
                )
            })
        }
        RuleKind::Apdex => {
            let t = c.apdex_t_ms.unwrap_or(config.query.apdex_t_ms);
            let apdex = summarize(stats, t).apdex?;
            let limit = c.min_apdex?;
            (apdex < limit).then(|| {
                format!("{subject}: Apdex {apdex:.2} < {limit} (T = {t} ms) over the last {span} ({n} requests)")
            })
        }
        RuleKind::SlowWall => {
            let limit = c.threshold_ms?;
            let at_or_below = stats
                .histogram
                .count_between(0, (limit * 1000.0).round() as u64);
            let slow = n.saturating_sub(at_or_below);
            let share = slow as f64 / n as f64;
            let max = c.max_slow_share?;
            (share > max).then(|| {
                format!(
                    "{subject}: {:.1} % of requests slower than {} over the last {span} (at most {:.1} % allowed; {slow} of {n})",
                    share * 100.0,
                    format_ms(limit),
                    max * 100.0
                )
            })
        }
        RuleKind::DeployRegression | RuleKind::PeriodOverPeriod => None,
    }
}

fn regressions(report: &Report) -> Vec<String> {
    report
        .transactions
        .iter()
        .filter(|t| t.verdict == Verdict::Regression)
        .flat_map(|t| {
            t.reasons
                .iter()
                .map(move |r| format!("{}: {r}", t.transaction))
        })
        .collect()
}

fn regressed_names(report: &Report) -> String {
    report
        .transactions
        .iter()
        .filter(|t| t.verdict == Verdict::Regression)
        .map(|t| t.transaction.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn link(config: &Config, path: &str) -> Option<String> {
    config
        .alerts
        .public_url
        .as_ref()
        .map(|u| format!("{}{path}", u.trim_end_matches('/')))
}

/// Returns the alerts whose conditions hold now for one rule.
pub fn conditions(
    store: &dyn Store,
    config: &Config,
    rule: &Rule,
    now_ms: i64,
) -> Result<Vec<Candidate>, StoreError> {
    let c = &rule.config;
    let alert = |key: String, service: &str, summary: String, reasons: Vec<String>| Alert {
        key,
        rule: c.name.clone(),
        kind: c.kind.as_str().to_owned(),
        service: service.to_owned(),
        environment: c.environment.clone(),
        transaction: c.transaction.clone(),
        deploy_id: None,
        state: AlertState::Firing,
        summary,
        reasons,
        started_ms: now_ms,
        resolved_ms: None,
        link: None,
        labels: c.labels.clone(),
    };
    let mut out = Vec::new();
    match c.kind {
        RuleKind::DeployRegression => {
            let all = store.deploys(&DeployQuery {
                service: c.service.clone(),
                environment: c.environment.clone(),
                from_ms: Some(now_ms - DEPLOY_LOOKBACK_MS),
                to_ms: None,
                limit: usize::MAX,
            })?;
            let deploys = hide_superseded(all);
            // Newest first: a deploy's regression holds until a later deploy of the same
            // service and environment is judged without one (a fix or a rollback).
            let mut healed: BTreeSet<(String, String)> = BTreeSet::new();
            for d in deploys {
                let Some(stored) = store.comparison(&d.id)? else {
                    continue;
                };
                let report: Report = match serde_json::from_str(&stored) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(deploy = %d.id, error = %e, "unreadable stored comparison");
                        continue;
                    }
                };
                let scope = (d.service.clone(), d.environment.clone());
                if report.status != Status::Ready || healed.contains(&scope) {
                    continue;
                }
                if report.verdict != Some(Verdict::Regression) {
                    healed.insert(scope);
                    continue;
                }
                healed.insert(scope);
                let summary = format!(
                    "{} {} ({}) regressed: {}",
                    d.service,
                    d.version,
                    d.environment,
                    regressed_names(&report)
                );
                let mut a = alert(
                    format!("{}/deploy/{}", c.name, d.id),
                    &d.service,
                    summary,
                    regressions(&report),
                );
                a.environment = Some(d.environment.clone());
                a.deploy_id = Some(d.id.clone());
                a.link = link(config, &format!("/api/v1/deploys/{}/comparison", d.id));
                out.push(Candidate {
                    alert: a,
                    channels: rule.channels.clone(),
                });
            }
        }
        RuleKind::PeriodOverPeriod => {
            let window = i64::from(c.window_s.unwrap_or(3600)) * 1000;
            let offset = i64::from(c.offset_s.unwrap_or(604_800)) * 1000;
            let end = now_ms - config.compare.settle_ms();
            for service in services(store, rule)? {
                let spec = report::period_spec(
                    config,
                    service.clone(),
                    c.environment.clone(),
                    (end - window - offset, end - offset),
                    (end - window, end),
                    now_ms,
                );
                let report = report::compute(store, config, spec, None, now_ms)?;
                if report.verdict != Some(Verdict::Regression) {
                    continue;
                }
                let summary = format!(
                    "{service}: the last {} regressed against {} earlier: {}",
                    minutes(window),
                    minutes(offset),
                    regressed_names(&report)
                );
                let mut a = alert(
                    format!("{}/service/{service}", c.name),
                    &service,
                    summary,
                    regressions(&report),
                );
                a.link = link(config, &format!("/api/v1/compare?service={service}"));
                out.push(Candidate {
                    alert: a,
                    channels: rule.channels.clone(),
                });
            }
        }
        _ => {
            for service in services(store, rule)? {
                let stats = recent(store, config, rule, &service, now_ms)?;
                if let Some(summary) = threshold(rule, config, &stats, &subject(rule, &service)) {
                    let key = format!(
                        "{}/service/{service}{}",
                        c.name,
                        c.transaction
                            .as_ref()
                            .map_or_else(String::new, |t| format!("/{t}"))
                    );
                    let mut a = alert(key, &service, summary, Vec::new());
                    a.link = link(config, "/");
                    out.push(Candidate {
                        alert: a,
                        channels: rule.channels.clone(),
                    });
                }
            }
        }
    }
    Ok(out)
}

fn queue(record: &AlertRecord, event: Event, channels: &[String], now_ms: i64) -> Vec<OutboxEntry> {
    let notification = Notification {
        delivery_id: format!(
            "{}#{}#{}",
            record.alert.key,
            match event {
                Event::Firing => "firing",
                Event::Renotify => "renotify",
                Event::Resolved => "resolved",
            },
            record.notifications
        ),
        event,
        alert: record.alert.clone(),
    };
    channels
        .iter()
        .map(|channel| OutboxEntry {
            channel: channel.clone(),
            notification: notification.clone(),
            state: DeliveryState::Pending,
            attempts: 0,
            created_ms: now_ms,
            next_attempt_ms: now_ms,
            delivered_ms: None,
            last_error: None,
        })
        .collect()
}

/// Evaluates every rule and applies the transitions: a new condition fires (and queues a
/// notification to each of its rule's channels), a firing one is notified again after
/// `renotify_after_s`, and a firing alert whose rule no longer finds its condition resolves.
/// Alerts of rules no longer configured are left as they are.
pub fn evaluate(
    store: &dyn Store,
    config: &Config,
    rules: &[Rule],
    now_ms: i64,
) -> Result<Evaluation, StoreError> {
    let mut found: BTreeMap<String, Candidate> = BTreeMap::new();
    let mut channels_of: BTreeMap<&str, &Vec<String>> = BTreeMap::new();
    for rule in rules {
        channels_of.insert(rule.config.name.as_str(), &rule.channels);
        for candidate in conditions(store, config, rule, now_ms)? {
            found.insert(candidate.alert.key.clone(), candidate);
        }
    }
    let renotify_ms = i64::from(config.alerts.renotify_after_s) * 1000;
    let mut done = Evaluation::default();
    for (key, candidate) in &found {
        match store.alert(key)? {
            Some(mut record) if record.alert.state == AlertState::Firing => {
                if now_ms - record.last_notified_ms >= renotify_ms {
                    record.notifications += 1;
                    record.last_notified_ms = now_ms;
                    record.alert.summary.clone_from(&candidate.alert.summary);
                    record.alert.reasons.clone_from(&candidate.alert.reasons);
                    let q = queue(&record, Event::Renotify, &candidate.channels, now_ms);
                    store.save_alert(&record, &q)?;
                    done.renotified.push(key.clone());
                }
            }
            previous => {
                let record = AlertRecord {
                    alert: candidate.alert.clone(),
                    last_notified_ms: now_ms,
                    notifications: previous.map_or(1, |p| p.notifications + 1),
                };
                let q = queue(&record, Event::Firing, &candidate.channels, now_ms);
                store.save_alert(&record, &q)?;
                done.fired.push(key.clone());
            }
        }
    }
    let firing = store.alerts(&AlertQuery {
        state: Some(AlertState::Firing),
        limit: usize::MAX,
        ..AlertQuery::default()
    })?;
    for mut record in firing {
        let Some(channels) = channels_of.get(record.alert.rule.as_str()) else {
            continue;
        };
        if found.contains_key(&record.alert.key) {
            continue;
        }
        record.alert.state = AlertState::Resolved;
        record.alert.resolved_ms = Some(now_ms);
        record.notifications += 1;
        record.last_notified_ms = now_ms;
        let q = queue(&record, Event::Resolved, channels, now_ms);
        store.save_alert(&record, &q)?;
        done.resolved.push(record.alert.key.clone());
    }
    Ok(done)
}
