//! Comparison reports over the store: which windows and versions make each side, the samples
//! read from the stored histograms and breakdown, and the report shape of design.md §5, the
//! same for the three kinds (deploy, canary, period).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::engine::{Input, OperationKey, Settings, Side, TransactionVerdict, Verdict, judge};
use crate::config::Config;
use crate::deploys::Deploy;
use crate::model::SeriesId;
use crate::store::{SeriesFilter, Store, StoreError};

/// What is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A deploy's before-window against its after-window.
    Deploy,
    /// A baseline version against a canary version over the same time.
    Canary,
    /// One period against another (e.g. the same hours a week earlier).
    Period,
}

/// Whether the report is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The after-window is not complete yet; no verdict.
    Pending,
    /// Computed on complete windows.
    Ready,
}

/// Which versions a side takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "version")]
pub enum Versions {
    /// All versions.
    Any,
    /// Only this one.
    Only(String),
    /// All but this one.
    Except(String),
}

impl Versions {
    fn matches(&self, version: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(v) => v == version,
            Self::Except(v) => v != version,
        }
    }
}

/// One side: versions and a range of transaction end times, unix ms, `[from_ms, to_ms)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideSpec {
    /// Which versions.
    pub versions: Versions,
    /// Start, inclusive, aligned to the stored windows.
    pub from_ms: i64,
    /// End, exclusive, aligned to the stored windows.
    pub to_ms: i64,
}

/// What a comparison reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The kind.
    pub kind: Kind,
    /// `service.name`.
    pub service: String,
    /// Environment; all when `None`.
    pub environment: Option<String>,
    /// Window width the sides are read at, s (raw or rollup).
    pub resolution_s: u32,
    /// Before / baseline / earlier period.
    pub before: SideSpec,
    /// After / canary / later period.
    pub after: SideSpec,
}

/// The comparison report (design.md §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The kind.
    pub kind: Kind,
    /// The deploy, for a deploy comparison.
    pub deploy: Option<Deploy>,
    /// `pending` until the after-window is complete (and `settle_s` has passed).
    pub status: Status,
    /// The comparison's verdict; `null` while pending.
    pub verdict: Option<Verdict>,
    /// What was compared.
    pub window: Spec,
    /// When the report is (or was) final, unix ms.
    pub ready_at_ms: i64,
    /// When this report was computed, unix ms.
    pub computed_at_ms: i64,
    /// The thresholds used.
    pub settings: Settings,
    /// Per transaction: regressions first, then improvements, no change, insufficient data.
    pub transactions: Vec<TransactionVerdict>,
}

fn floor(t: i64, unit: i64) -> i64 {
    t.div_euclid(unit) * unit
}

fn ceil(t: i64, unit: i64) -> i64 {
    -floor(-t, unit)
}

/// The stored resolution that covers a range starting at `from_ms`: raw windows while they
/// are kept, else rollups.
fn resolution_for(config: &Config, from_ms: i64, now_ms: i64) -> u32 {
    let a = &config.aggregation;
    if from_ms >= now_ms - a.raw_retention_ms() {
        a.window_s
    } else {
        a.rollup_window_s
    }
}

/// Returns the spec of a deploy's comparison: the window before the deploy against the window
/// after the warm-up. When the deployed version is new (first seen inside the before-window
/// or later), the before side takes the other versions and the after side only the deployed
/// one, so instances still on the old version during a rolling deploy do not blur the
/// after-sample; otherwise (a re-deploy of a running version, or a service that reports no
/// version) both sides take all versions.
pub fn deploy_spec(
    store: &dyn Store,
    config: &Config,
    deploy: &Deploy,
    now_ms: i64,
) -> Result<Spec, StoreError> {
    let c = &config.compare;
    let provisional_from = deploy.time_ms - c.window_ms();
    let resolution_s = resolution_for(config, provisional_from, now_ms);
    let width = i64::from(resolution_s) * 1000;
    let before_to = floor(deploy.time_ms, width);
    let before_from = floor(before_to - c.window_ms(), width);
    let after_from = ceil(deploy.time_ms + c.warmup_ms(), width);
    let after_to = ceil(after_from + c.window_ms(), width);
    let first_seen = store
        .series(&SeriesFilter {
            service: Some(deploy.service.clone()),
            environment: Some(deploy.environment.clone()),
            version: Some(deploy.version.clone()),
            transaction: None,
        })?
        .iter()
        .map(|s| s.first_seen_ms)
        .min();
    let (before, after) = match first_seen {
        Some(t) if t >= before_from => (
            Versions::Except(deploy.version.clone()),
            Versions::Only(deploy.version.clone()),
        ),
        _ => (Versions::Any, Versions::Any),
    };
    Ok(Spec {
        kind: Kind::Deploy,
        service: deploy.service.clone(),
        environment: Some(deploy.environment.clone()),
        resolution_s,
        before: SideSpec {
            versions: before,
            from_ms: before_from,
            to_ms: before_to,
        },
        after: SideSpec {
            versions: after,
            from_ms: after_from,
            to_ms: after_to,
        },
    })
}

/// Returns the spec of a canary comparison: `baseline` against `canary` over `[from, to)`.
pub fn canary_spec(
    config: &Config,
    service: String,
    environment: Option<String>,
    baseline: String,
    canary: String,
    (from_ms, to_ms): (i64, i64),
    now_ms: i64,
) -> Spec {
    let resolution_s = resolution_for(config, from_ms, now_ms);
    let width = i64::from(resolution_s) * 1000;
    let (from_ms, to_ms) = (floor(from_ms, width), ceil(to_ms, width));
    Spec {
        kind: Kind::Canary,
        service,
        environment,
        resolution_s,
        before: SideSpec {
            versions: Versions::Only(baseline),
            from_ms,
            to_ms,
        },
        after: SideSpec {
            versions: Versions::Only(canary),
            from_ms,
            to_ms,
        },
    }
}

/// Returns the spec of a period comparison: all versions over `before` against `after`.
pub fn period_spec(
    config: &Config,
    service: String,
    environment: Option<String>,
    before: (i64, i64),
    after: (i64, i64),
    now_ms: i64,
) -> Spec {
    let resolution_s = resolution_for(config, before.0.min(after.0), now_ms);
    let width = i64::from(resolution_s) * 1000;
    let side = |(from, to): (i64, i64)| SideSpec {
        versions: Versions::Any,
        from_ms: floor(from, width),
        to_ms: ceil(to, width),
    };
    Spec {
        kind: Kind::Period,
        service,
        environment,
        resolution_s,
        before: side(before),
        after: side(after),
    }
}

/// When the data of a spec is complete: the end of its later side plus `settle_s`.
pub fn ready_at_ms(config: &Config, spec: &Spec) -> i64 {
    spec.before.to_ms.max(spec.after.to_ms) + config.compare.settle_ms()
}

fn side_of<'a>(
    samples: &'a mut BTreeMap<String, (Side, Side)>,
    transaction: &str,
    side: usize,
) -> &'a mut Side {
    let pair = samples.entry(transaction.to_owned()).or_default();
    if side == 0 { &mut pair.0 } else { &mut pair.1 }
}

/// Reads the two samples of every transaction of a spec from the store.
pub fn load(store: &dyn Store, spec: &Spec) -> Result<Vec<Input>, StoreError> {
    let series = store.series(&SeriesFilter {
        service: Some(spec.service.clone()),
        environment: spec.environment.clone(),
        version: None,
        transaction: None,
    })?;
    let mut samples: BTreeMap<String, (Side, Side)> = BTreeMap::new();
    for (i, side_spec) in [&spec.before, &spec.after].into_iter().enumerate() {
        let names: HashMap<SeriesId, &str> = series
            .iter()
            .filter(|s| side_spec.versions.matches(&s.key.version))
            .map(|s| (s.id, s.key.transaction.as_str()))
            .collect();
        if names.is_empty() {
            continue;
        }
        let ids: Vec<SeriesId> = names.keys().copied().collect();
        for row in store.histograms(&ids, spec.resolution_s, side_spec.from_ms, side_spec.to_ms)? {
            let Some(name) = names.get(&row.series) else {
                continue;
            };
            side_of(&mut samples, name, i).stats.merge(&row.stats);
        }
        for row in store.breakdown(&ids, spec.resolution_s, side_spec.from_ms, side_spec.to_ms)? {
            let Some(name) = names.get(&row.series) else {
                continue;
            };
            *side_of(&mut samples, name, i)
                .self_us
                .entry(OperationKey {
                    operation: row.operation,
                    kind: row.kind,
                })
                .or_default() += row.self_us;
        }
    }
    Ok(samples
        .into_iter()
        .filter(|(_, (b, a))| b.stats.count > 0 || a.stats.count > 0)
        .map(|(transaction, (before, after))| Input {
            transaction,
            before,
            after,
        })
        .collect())
}

fn rank(v: Verdict) -> u8 {
    match v {
        Verdict::Regression => 0,
        Verdict::Improvement => 1,
        Verdict::NoChange => 2,
        Verdict::InsufficientData => 3,
    }
}

/// Computes the report of a spec now. While the data is not complete (`now_ms` before
/// [`ready_at_ms`]) the report is `pending`, without verdict or transactions.
pub fn compute(
    store: &dyn Store,
    config: &Config,
    spec: Spec,
    deploy: Option<Deploy>,
    now_ms: i64,
) -> Result<Report, StoreError> {
    let ready_at_ms = ready_at_ms(config, &spec);
    let settings = config.compare.thresholds.clone();
    let mut report = Report {
        kind: spec.kind,
        deploy,
        status: Status::Pending,
        verdict: None,
        window: spec,
        ready_at_ms,
        computed_at_ms: now_ms,
        settings,
        transactions: Vec::new(),
    };
    if now_ms < ready_at_ms {
        return Ok(report);
    }
    let inputs = load(store, &report.window)?;
    let (mut transactions, verdict) = judge(&inputs, &report.settings);
    transactions.sort_by(|x, y| {
        rank(x.verdict)
            .cmp(&rank(y.verdict))
            .then(y.after.count.cmp(&x.after.count))
            .then_with(|| x.transaction.cmp(&y.transaction))
    });
    report.status = Status::Ready;
    report.verdict = Some(verdict);
    report.transactions = transactions;
    Ok(report)
}

/// Returns a deploy's report: the stored one if it was computed; else, once the after-window
/// is complete, computes it, stores it (the first stored wins) and returns what is stored;
/// else the pending report.
pub fn deploy_report(
    store: &dyn Store,
    config: &Config,
    deploy: Deploy,
    now_ms: i64,
) -> Result<Report, StoreError> {
    if let Some(stored) = store.comparison(&deploy.id)? {
        return serde_json::from_str(&stored)
            .map_err(|e| StoreError::Corrupt(format!("comparison of deploy {}: {e}", deploy.id)));
    }
    let spec = deploy_spec(store, config, &deploy, now_ms)?;
    let id = deploy.id.clone();
    let report = compute(store, config, spec, Some(deploy), now_ms)?;
    if report.status == Status::Pending {
        return Ok(report);
    }
    let json = serde_json::to_string(&report)
        .map_err(|e| StoreError::Backend(format!("cannot encode a report: {e}")))?;
    let stored = store.save_comparison(&id, &json)?;
    serde_json::from_str(&stored)
        .map_err(|e| StoreError::Corrupt(format!("comparison of deploy {id}: {e}")))
}

/// How long a collector holds the claim to compute a deploy's comparison, ms; if it dies
/// without storing the report, another takes over after this.
const COMPARE_LEASE_MS: i64 = 60_000;

/// Computes and stores the comparisons of deploys whose after-window is complete; returns how
/// many were stored. Run periodically by the server; deploys older than the rollup retention
/// are not looked at.
pub fn settle_deploys(
    store: &dyn Store,
    config: &Config,
    now_ms: i64,
    holder: &str,
) -> Result<usize, StoreError> {
    let c = &config.compare;
    let newest = now_ms - c.window_ms() - c.warmup_ms() - c.settle_ms();
    let oldest = now_ms - config.aggregation.rollup_retention_ms();
    let deploys = store.uncompared_deploys(oldest, newest)?;
    // Collectors sharing the store compute each comparison once: the one holding the claim.
    let keys: Vec<String> = deploys
        .iter()
        .map(|d| format!("compare/{}", d.id))
        .collect();
    let held = store.claim(&keys, holder, COMPARE_LEASE_MS)?;
    let mut stored = 0;
    for (deploy, held) in deploys.into_iter().zip(held) {
        if !held {
            continue;
        }
        let report = deploy_report(store, config, deploy, now_ms)?;
        stored += usize::from(report.status == Status::Ready);
    }
    Ok(stored)
}
