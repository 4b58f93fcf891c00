//! Conservation, per source: what each client created or sent against what the collector
//! stored, exact where the design promises exactness (`docs/soak.md` says why each bound).
//!
//! - loadgen: `accepted + rejected + failed = sent` (its own tally), and the distinct stored
//!   transactions × spans per trace lie within `accepted ..= sent`: equal to `accepted` when
//!   nothing was rejected or failed for good (a request that failed after the collector logged
//!   it may still have arrived).
//! - an agent's lifetimes that stopped gracefully (they share one `service.version`, so their
//!   counters are summed): `created = transactions recorded = sent + dropped` (every reason,
//!   `rejected` included; nothing pending after the shutdown), and
//!   `distinct stored + dropped - created` lies within `0 ..= export_failed + shutdown` (a batch
//!   given up on may still have arrived); 0 when nothing was given up.
//! - an agent lifetime ended by SIGKILL (its own `service.version`) cannot report its end: the transactions acknowledged
//!   before its last once-a-second report must be stored, and no more than it announced it would
//!   create; the difference is what died with the process, shown, not a violation.
//! - every source: duplicates (index rows beyond the first per transaction) only where the
//!   collector was SIGKILLed in the source's lifetime, at most two seconds of the source's
//!   traffic plus its requests in flight per kill (write-ahead-log replay and client retries are
//!   at least once); and the API's count (histograms) equals the index rows.

use std::fmt::Write as _;

use serde_json::Value;

use super::agent::{AgentEnd, AgentLifetime};
use super::counts::IndexRows;
use super::plan::{AGENT_BATCH, LOADGEN_BATCH, LOADGEN_CONNECTIONS, LOADGEN_SPANS_PER_TRACE};

/// The loadgen's report (`headlight loadgen --json`), spans.
#[derive(Debug, Clone, Default)]
pub struct LoadgenTally {
    /// Spans sent (each once, however often retried).
    pub sent: u64,
    /// Spans acknowledged.
    pub accepted: u64,
    /// Spans rejected in partial successes.
    pub rejected: u64,
    /// Spans of requests that failed for good.
    pub failed: u64,
    /// Retried attempts, and why (`reason: count, …`).
    pub retries: String,
    /// Requests that failed for good, and why.
    pub failures: String,
}

impl LoadgenTally {
    /// Reads the `--json` report.
    pub fn from_json(report: &Value) -> anyhow::Result<Self> {
        let n = |k: &str| {
            report[k]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("no {k} in the loadgen report {report}"))
        };
        Ok(Self {
            sent: n("spans_sent")?,
            accepted: n("spans_accepted")?,
            rejected: n("spans_rejected")?,
            failed: n("spans_failed")?,
            retries: reasons(&report["retries"]),
            failures: reasons(&report["failures"]),
        })
    }
}

/// `{"reason": n, …}` as `reason: n, …` (`none` when empty).
fn reasons(map: &Value) -> String {
    let list: Vec<String> = map
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}: {v}")).collect())
        .unwrap_or_default();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

/// What the collector holds for a source.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stored {
    /// Transactions counted by `GET /api/v1/latency`.
    pub api: u64,
    /// The transaction index.
    pub index: IndexRows,
}

impl std::ops::AddAssign for Stored {
    fn add_assign(&mut self, other: Self) {
        self.api += other.api;
        self.index += other.index;
    }
}

/// The lifetimes of one agent's (service, version) and what was stored for it: the graceful
/// lifetimes of an agent, or one killed lifetime.
#[derive(Debug, Clone)]
pub struct AgentRun {
    /// What the processes reported.
    pub lifetimes: Vec<AgentLifetime>,
    /// Collector SIGKILLs while they ran.
    pub collector_kills: u64,
    /// What the collector stored for its (service, version).
    pub stored: Stored,
}

/// One line of the conservation table.
#[derive(Debug, Clone)]
pub struct Row {
    /// `loadgen`, `soak-agent-0 0.0 (7 graceful lifetimes)`, `soak-agent-1 1.killed1 (SIGKILL)`.
    pub source: String,
    /// `spans` or `transactions`.
    pub unit: &'static str,
    /// Created (agents) or sent (loadgen).
    pub created: u64,
    /// Acknowledged by the collector (agents: `transactions_sent`).
    pub acknowledged: u64,
    /// Rejected by the collector.
    pub rejected: u64,
    /// Dropped by the agent (every reason but `rejected`) or failed for good (loadgen).
    pub dropped: u64,
    /// Distinct stored, in `unit`.
    pub stored: u64,
    /// Stored twice or more, in `unit`.
    pub duplicates: u64,
    /// API count and index rows, transactions.
    pub api_vs_index: (u64, u64),
    /// What died with a killed agent (announced, not stored), an upper bound.
    pub lost_at_kill: Option<u64>,
    /// The violations found on this row.
    pub violations: Vec<String>,
}

fn duplicates_check(row: &mut Row, kills: u64, allowed_per_kill: u64) {
    let allowed = kills * allowed_per_kill;
    if row.duplicates > allowed {
        row.violations.push(format!(
            "{}: {} {} stored twice, at most {allowed} allowed ({kills} collector SIGKILL)",
            row.source, row.duplicates, row.unit
        ));
    }
    if row.api_vs_index.0 != row.api_vs_index.1 {
        row.violations.push(format!(
            "{}: the API counts {} transactions, the index holds {}",
            row.source, row.api_vs_index.0, row.api_vs_index.1
        ));
    }
}

/// Checks the loadgen's row; `kills` is how many collector SIGKILLs happened while it sent.
pub fn loadgen(tally: &LoadgenTally, stored: Stored, rate: u64, kills: u64) -> Row {
    let spans = LOADGEN_SPANS_PER_TRACE;
    let mut row = Row {
        source: "loadgen".to_owned(),
        unit: "spans",
        created: tally.sent,
        acknowledged: tally.accepted,
        rejected: tally.rejected,
        dropped: tally.failed,
        stored: stored.index.distinct * spans,
        duplicates: stored.index.duplicates() * spans,
        api_vs_index: (stored.api, stored.index.rows),
        lost_at_kill: None,
        violations: Vec::new(),
    };
    if tally.accepted + tally.rejected + tally.failed != tally.sent {
        row.violations.push(format!(
            "loadgen: accepted {} + rejected {} + failed {} != sent {}",
            tally.accepted, tally.rejected, tally.failed, tally.sent
        ));
    }
    if row.stored < tally.accepted {
        row.violations.push(format!(
            "loadgen: {} acknowledged spans, only {} stored: {} lost",
            tally.accepted,
            row.stored,
            tally.accepted - row.stored
        ));
    }
    if row.stored > tally.sent {
        row.violations.push(format!(
            "loadgen: {} spans stored, more than the {} sent",
            row.stored, tally.sent
        ));
    }
    duplicates_check(
        &mut row,
        kills,
        2 * rate + LOADGEN_CONNECTIONS * LOADGEN_BATCH,
    );
    row
}

fn stat(stats: &Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or(0)
}

/// What agent lifetimes reported, summed: transactions.
#[derive(Debug, Default)]
struct Totals {
    created: u64,
    announced: u64,
    recorded: u64,
    sent: u64,
    /// Dropped, by reason.
    queue_full: u64,
    export_failed: u64,
    rejected: u64,
    shutdown: u64,
}

impl Totals {
    fn add(&mut self, lifetime: &AgentLifetime) {
        let r = &lifetime.reported;
        let empty = Value::Null;
        let stats = match lifetime.end {
            AgentEnd::Graceful => r.last.as_ref(),
            AgentEnd::Killed => r.stats.as_ref(),
        }
        .unwrap_or(&empty);
        let dropped = |reason: &str| stats["transactions_dropped"][reason].as_u64().unwrap_or(0);
        self.created += r.created.unwrap_or(r.announced);
        self.announced += r.announced;
        self.recorded += stat(stats, "transactions_recorded");
        self.sent += stat(stats, "transactions_sent");
        self.queue_full += dropped("queue_full");
        self.export_failed += dropped("export_failed");
        self.rejected += dropped("rejected");
        self.shutdown += dropped("shutdown");
    }

    fn dropped(&self) -> u64 {
        self.queue_full + self.export_failed + self.rejected + self.shutdown
    }
}

/// Checks one agent's (service, version); `rate` is its transactions per second.
pub fn agent(run: &AgentRun, rate: u64) -> Row {
    let mut totals = Totals::default();
    for lifetime in &run.lifetimes {
        totals.add(lifetime);
    }
    let killed = run.lifetimes.iter().any(|l| l.end == AgentEnd::Killed);
    let (service, version) = run
        .lifetimes
        .first()
        .map_or(("?", "?"), |l| (l.service.as_str(), l.version.as_str()));
    let name = if killed {
        format!("{service} {version} (SIGKILL)")
    } else {
        format!(
            "{service} {version} ({} graceful lifetimes)",
            run.lifetimes.len()
        )
    };
    let distinct = run.stored.index.distinct;
    let all_dropped = totals.dropped();
    let mut row = Row {
        source: name.clone(),
        unit: "transactions",
        created: totals.created,
        acknowledged: totals.sent,
        rejected: totals.rejected,
        dropped: all_dropped - totals.rejected,
        stored: distinct,
        duplicates: run.stored.index.duplicates(),
        api_vs_index: (run.stored.api, run.stored.index.rows),
        lost_at_kill: None,
        violations: Vec::new(),
    };
    if killed {
        if distinct < totals.sent {
            row.violations.push(format!(
                "{name}: {} transactions acknowledged before the kill, only {distinct} stored",
                totals.sent
            ));
        }
        if distinct > totals.announced {
            row.violations.push(format!(
                "{name}: {distinct} transactions stored, more than the {} announced",
                totals.announced
            ));
        }
        row.lost_at_kill = Some(totals.announced.saturating_sub(distinct));
    } else {
        if totals.recorded != totals.created {
            row.violations.push(format!(
                "{name}: created {} transactions, the agent recorded {}",
                totals.created, totals.recorded
            ));
        }
        if totals.sent + all_dropped != totals.recorded {
            row.violations.push(format!(
                "{name}: sent {} + dropped {all_dropped} != recorded {}",
                totals.sent, totals.recorded
            ));
        }
        let in_doubt = totals.export_failed + totals.shutdown;
        let accounted = distinct + all_dropped;
        if accounted < totals.created {
            row.violations.push(format!(
                "{name}: created {} but stored {distinct} + dropped {all_dropped}: {} lost",
                totals.created,
                totals.created - accounted
            ));
        } else if accounted - totals.created > in_doubt {
            row.violations.push(format!(
                "{name}: stored {distinct} + dropped {all_dropped} exceed the {} created by more than the {in_doubt} given up on",
                totals.created
            ));
        }
    }
    duplicates_check(&mut row, run.collector_kills, 2 * rate + AGENT_BATCH);
    row
}

/// The conservation table, Markdown.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| source | unit | created / sent | acknowledged | rejected | dropped / failed | stored (distinct) | duplicates | API count / index rows (tx) | lost at agent kill (≤) | result |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} |",
            r.source,
            r.unit,
            r.created,
            r.acknowledged,
            r.rejected,
            r.dropped,
            r.stored,
            r.duplicates,
            r.api_vs_index.0,
            r.api_vs_index.1,
            r.lost_at_kill.map_or("–".to_owned(), |n| n.to_string()),
            if r.violations.is_empty() {
                "ok"
            } else {
                "**VIOLATION**"
            }
        );
    }
    out
}
