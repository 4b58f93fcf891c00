//! DORA metrics per service from deploys, their stored verdicts and alerts.

use serde::Serialize;

use super::model::{Alert, AlertState};
use crate::compare::engine::Verdict;
use crate::deploys::Deploy;

/// `GET /api/v1/dora`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dora {
    /// The service.
    pub service: String,
    /// Range start, unix ms.
    pub from_ms: i64,
    /// Range end, unix ms.
    pub to_ms: i64,
    /// Deploys in the range (automatic markers superseded by a recorded deploy not counted).
    pub deploys: u64,
    /// Deploys per day.
    pub deploys_per_day: f64,
    /// Deploys whose comparison's verdict is `regression`, or during whose window (deploy to
    /// the end of its after-window) an alert of the service started firing.
    pub failed_deploys: u64,
    /// `failed_deploys / deploys`; `null` without deploys.
    pub change_failure_rate: Option<f64>,
    /// Alerts of the service that started in the range and resolved.
    pub restored: u64,
    /// Mean time from firing to resolved, ms; `null` without any.
    pub mean_time_to_restore_ms: Option<f64>,
    /// Median time from firing to resolved, ms.
    pub median_time_to_restore_ms: Option<f64>,
    /// Deploys that gave their commit time.
    pub lead_times: u64,
    /// Mean commit → deploy time, ms.
    pub mean_lead_time_ms: Option<f64>,
    /// Median commit → deploy time, ms.
    pub median_lead_time_ms: Option<f64>,
}

fn mean(v: &[i64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64)
}

fn median(v: &mut [i64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0
    })
}

/// Computes the metrics of one service over `[from_ms, to_ms)`. `deploys` are the service's
/// deploys in the range, each with its stored verdict (`None` while pending); `alerts` the
/// service's alerts; `window_ms` a deploy's window (warm-up + after-window).
pub fn dora(
    service: &str,
    (from_ms, to_ms): (i64, i64),
    deploys: &[(Deploy, Option<Verdict>)],
    alerts: &[Alert],
    window_ms: i64,
) -> Dora {
    let in_range = |t: i64| (from_ms..to_ms).contains(&t);
    let deploys: Vec<&(Deploy, Option<Verdict>)> = deploys
        .iter()
        .filter(|(d, _)| in_range(d.time_ms))
        .collect();
    let failed = deploys
        .iter()
        .filter(|(d, verdict)| {
            *verdict == Some(Verdict::Regression)
                || alerts.iter().any(|a| {
                    a.deploy_id.as_deref() == Some(d.id.as_str())
                        || (d.time_ms..=d.time_ms + window_ms).contains(&a.started_ms)
                })
        })
        .count() as u64;
    let mut restore: Vec<i64> = alerts
        .iter()
        .filter(|a| in_range(a.started_ms) && a.state == AlertState::Resolved)
        .filter_map(|a| a.resolved_ms.map(|r| r - a.started_ms))
        .collect();
    let mut lead: Vec<i64> = deploys
        .iter()
        .filter_map(|(d, _)| d.commit_time_ms.map(|c| d.time_ms - c))
        .collect();
    let days = (to_ms - from_ms) as f64 / 86_400_000.0;
    let n = deploys.len() as u64;
    Dora {
        service: service.to_owned(),
        from_ms,
        to_ms,
        deploys: n,
        deploys_per_day: if days > 0.0 { n as f64 / days } else { 0.0 },
        failed_deploys: failed,
        change_failure_rate: (n > 0).then(|| failed as f64 / n as f64),
        restored: restore.len() as u64,
        mean_time_to_restore_ms: mean(&restore),
        median_time_to_restore_ms: median(&mut restore),
        lead_times: lead.len() as u64,
        mean_lead_time_ms: mean(&lead),
        median_lead_time_ms: median(&mut lead),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;

    fn deploy(id: &str, time_ms: i64, commit_ago: Option<i64>) -> Deploy {
        Deploy {
            id: id.into(),
            service: "shop".into(),
            environment: "prod".into(),
            version: id.into(),
            commit: None,
            description: None,
            time_ms,
            automatic: false,
            commit_time_ms: commit_ago.map(|a| time_ms - a),
        }
    }

    fn alert(started_ms: i64, resolved_ms: Option<i64>, deploy_id: Option<&str>) -> Alert {
        Alert {
            key: format!("k{started_ms}"),
            rule: "r".into(),
            kind: "latency".into(),
            service: "shop".into(),
            environment: None,
            transaction: None,
            deploy_id: deploy_id.map(str::to_owned),
            state: if resolved_ms.is_some() {
                AlertState::Resolved
            } else {
                AlertState::Firing
            },
            summary: String::new(),
            reasons: Vec::new(),
            started_ms,
            resolved_ms,
            link: None,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn a_scripted_history_gives_the_hand_computed_figures() {
        let deploys = vec![
            (deploy("d1", DAY, Some(2 * HOUR)), Some(Verdict::NoChange)),
            (
                deploy("d2", 3 * DAY, Some(6 * HOUR)),
                Some(Verdict::Regression),
            ),
            (deploy("d3", 5 * DAY, None), Some(Verdict::NoChange)),
            (deploy("d4", 8 * DAY, Some(HOUR)), None),
            (
                deploy("d5", 11 * DAY, Some(HOUR)),
                Some(Verdict::Regression),
            ),
        ];
        let alerts = vec![
            alert(3 * DAY + 20 * MIN, Some(3 * DAY + 80 * MIN), Some("d2")),
            // Within d3's window (17 min): d3 failed though its verdict did not say so.
            alert(5 * DAY + 10 * MIN, Some(5 * DAY + 40 * MIN), None),
            // Still firing: no time to restore yet.
            alert(9 * DAY, None, None),
        ];
        let d = dora("shop", (0, 10 * DAY), &deploys, &alerts, 17 * MIN);
        // d5 is outside the range.
        assert_eq!(d.deploys, 4);
        assert!((d.deploys_per_day - 0.4).abs() < 1e-12);
        assert_eq!(d.failed_deploys, 2, "d2 by verdict, d3 by alert");
        assert_eq!(d.change_failure_rate, Some(0.5));
        assert_eq!(d.restored, 2);
        assert_eq!(d.mean_time_to_restore_ms, Some((45 * MIN) as f64));
        assert_eq!(d.median_time_to_restore_ms, Some((45 * MIN) as f64));
        assert_eq!(d.lead_times, 3);
        assert_eq!(d.mean_lead_time_ms, Some((3 * HOUR) as f64));
        assert_eq!(d.median_lead_time_ms, Some((2 * HOUR) as f64));
        let empty = dora("shop", (0, DAY), &[], &[], 17 * MIN);
        assert_eq!(
            (
                empty.deploys,
                empty.change_failure_rate,
                empty.mean_lead_time_ms
            ),
            (0, None, None)
        );
    }
}
