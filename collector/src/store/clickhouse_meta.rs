//! Deploys, comparisons, alerts, the outbox and claims in the ClickHouse store.
//!
//! ClickHouse has no unique keys and no transactions, so every write is an insert and reads
//! pick one row per key:
//!
//! - deploys and comparisons: the *first* row written (`written_ns`, ties by content), which
//!   gives insert-if-absent once all rows are visible;
//! - alerts: the highest `(notifications, written_ns)`: every transition bumps `notifications`;
//! - outbox entries: the highest `attempts`, then the latest write; a queued copy (attempts 0)
//!   never replaces an attempt, and of two queued copies the first stays (`INSERT OR IGNORE`);
//! - claims: see [`claim`].

use super::StoreError;
use super::alert_codes::{delivery_str, json, parse, state_str};
use super::clickhouse::{ClickHouseStore, now_ns};
use super::clickhouse_http::{Row, Rows, lit, rows};
use crate::alert::store::{AlertQuery, AlertRecord, OutboxEntry};
use crate::deploys::{Deploy, DeployQuery};

const DEPLOY_COLUMNS: &str =
    "id, service, environment, version, commit_id, description, time_ms, automatic, commit_time_ms";

fn deploy_from(r: &Row<'_>) -> Result<Deploy, StoreError> {
    Ok(Deploy {
        id: r.string(0)?,
        service: r.string(1)?,
        environment: r.string(2)?,
        version: r.string(3)?,
        commit: r.opt_string(4)?,
        description: r.opt_string(5)?,
        time_ms: r.num(6)?,
        automatic: r.num::<u8>(7)? != 0,
        commit_time_ms: r.opt_num(8)?,
    })
}

/// The first-written row of each deploy, filtered by `condition`, ordered by `order`.
fn select_deploys(
    store: &ClickHouseStore,
    condition: &str,
    order: &str,
    limit: usize,
) -> Result<Vec<Deploy>, StoreError> {
    let body = store.query(&format!(
        "SELECT {DEPLOY_COLUMNS} FROM
           (SELECT {DEPLOY_COLUMNS} FROM {db}.deploys WHERE {condition}
            ORDER BY written_ns, description LIMIT 1 BY id)
         ORDER BY {order} LIMIT {limit}",
        db = store.db()
    ))?;
    rows(&body).map(|r| deploy_from(&r)).collect()
}

pub(super) fn record_deploy(store: &ClickHouseStore, d: &Deploy) -> Result<Deploy, StoreError> {
    if let Some(existing) = deploy(store, &d.id)? {
        return Ok(existing);
    }
    let mut r = Rows::default();
    r.str(&d.id)
        .str(&d.service)
        .str(&d.environment)
        .str(&d.version)
        .opt_str(d.commit.as_deref())
        .opt_str(d.description.as_deref())
        .num(d.time_ms)
        .num(u8::from(d.automatic))
        .opt_num(d.commit_time_ms)
        .num(now_ns());
    r.end();
    store.insert("deploys", &format!("{DEPLOY_COLUMNS}, written_ns"), r)?;
    deploy(store, &d.id)?.ok_or_else(|| StoreError::Backend(format!("deploy {} vanished", d.id)))
}

pub(super) fn deploy(store: &ClickHouseStore, id: &str) -> Result<Option<Deploy>, StoreError> {
    Ok(
        select_deploys(store, &format!("id = {}", lit(id)), "id", 1)?
            .into_iter()
            .next(),
    )
}

pub(super) fn deploys(store: &ClickHouseStore, q: &DeployQuery) -> Result<Vec<Deploy>, StoreError> {
    let mut conditions = vec![format!(
        "time_ms >= {} AND time_ms < {}",
        q.from_ms.unwrap_or(i64::MIN),
        q.to_ms.unwrap_or(i64::MAX)
    )];
    if let Some(s) = &q.service {
        conditions.push(format!("service = {}", lit(s)));
    }
    if let Some(e) = &q.environment {
        conditions.push(format!("environment = {}", lit(e)));
    }
    select_deploys(
        store,
        &conditions.join(" AND "),
        "time_ms DESC, id",
        q.limit.min(i64::MAX as usize),
    )
}

pub(super) fn uncompared(
    store: &ClickHouseStore,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Deploy>, StoreError> {
    select_deploys(
        store,
        &format!(
            "time_ms >= {from_ms} AND time_ms < {to_ms}
             AND id NOT IN (SELECT deploy_id FROM {}.comparisons)",
            store.db()
        ),
        "time_ms, id",
        i64::MAX as usize,
    )
}

pub(super) fn save_comparison(
    store: &ClickHouseStore,
    deploy_id: &str,
    report: &str,
) -> Result<String, StoreError> {
    if let Some(existing) = comparison(store, deploy_id)? {
        return Ok(existing);
    }
    let mut r = Rows::default();
    r.str(deploy_id).str(report).num(now_ns());
    r.end();
    store.insert("comparisons", "deploy_id, report, written_ns", r)?;
    comparison(store, deploy_id)?
        .ok_or_else(|| StoreError::Backend(format!("comparison of {deploy_id} vanished")))
}

pub(super) fn comparison(
    store: &ClickHouseStore,
    deploy_id: &str,
) -> Result<Option<String>, StoreError> {
    let body = store.query(&format!(
        "SELECT report FROM {}.comparisons WHERE deploy_id = {}
         ORDER BY written_ns, report LIMIT 1",
        store.db(),
        lit(deploy_id)
    ))?;
    rows(&body).next().map(|r| r.string(0)).transpose()
}

/// The newest version of each alert, as a subquery.
fn latest_alerts(store: &ClickHouseStore) -> String {
    format!(
        "(SELECT key, service, state, started_ms, resolved_ms, record FROM {}.alerts
          ORDER BY notifications DESC, written_ns DESC LIMIT 1 BY key)",
        store.db()
    )
}

pub(super) fn alert(store: &ClickHouseStore, key: &str) -> Result<Option<AlertRecord>, StoreError> {
    let body = store.query(&format!(
        "SELECT record FROM {} WHERE key = {}",
        latest_alerts(store),
        lit(key)
    ))?;
    rows(&body)
        .next()
        .map(|r| parse("alert", &r.string(0)?))
        .transpose()
}

pub(super) fn alerts(
    store: &ClickHouseStore,
    q: &AlertQuery,
) -> Result<Vec<AlertRecord>, StoreError> {
    let mut conditions = vec![format!(
        "started_ms >= {} AND started_ms < {}",
        q.from_ms.unwrap_or(i64::MIN),
        q.to_ms.unwrap_or(i64::MAX)
    )];
    if let Some(s) = &q.service {
        conditions.push(format!("service = {}", lit(s)));
    }
    if let Some(s) = q.state {
        conditions.push(format!("state = {}", lit(state_str(s))));
    }
    let body = store.query(&format!(
        "SELECT record FROM {} WHERE {} ORDER BY started_ms DESC, key LIMIT {}",
        latest_alerts(store),
        conditions.join(" AND "),
        q.limit.min(i64::MAX as usize)
    ))?;
    rows(&body).map(|r| parse("alert", &r.string(0)?)).collect()
}

fn outbox_row(rows: &mut Rows, entry: &OutboxEntry) -> Result<(), StoreError> {
    rows.str(&entry.notification.delivery_id)
        .str(&entry.channel)
        .str(&entry.notification.alert.key)
        .str(delivery_str(entry.state))
        .num(entry.next_attempt_ms)
        .num(entry.created_ms)
        .num(entry.attempts)
        .str(&json(entry)?)
        .num(now_ns());
    rows.end();
    Ok(())
}

const OUTBOX_COLUMNS: &str = "delivery_id, channel, alert_key, state, next_attempt_ms, created_ms,
     attempts, entry, written_ns";

/// Writes the alert, then its queue: a reader that sees the new state finds the entries (the
/// two inserts are not atomic; a crash between them loses the notifications of that
/// transition, and the next evaluation does not queue them again).
pub(super) fn save_alert(
    store: &ClickHouseStore,
    record: &AlertRecord,
    queue: &[OutboxEntry],
) -> Result<(), StoreError> {
    let mut entries = Rows::default();
    for entry in queue {
        outbox_row(&mut entries, entry)?;
    }
    // Queue first: a crash in between leaves entries of an alert state not yet written, which
    // the next evaluation writes again with the same delivery ids (kept once on read).
    store.insert("outbox", OUTBOX_COLUMNS, entries)?;
    let a = &record.alert;
    let mut r = Rows::default();
    r.str(&a.key)
        .str(&a.service)
        .str(state_str(a.state))
        .num(a.started_ms)
        .opt_num(a.resolved_ms)
        .num(record.notifications)
        .str(&json(record)?)
        .num(now_ns());
    r.end();
    store.insert(
        "alerts",
        "key, service, state, started_ms, resolved_ms, notifications, record, written_ns",
        r,
    )
}

/// The current version of each outbox entry, as a subquery.
fn latest_outbox(store: &ClickHouseStore) -> String {
    format!(
        "(SELECT delivery_id, channel, alert_key, state, next_attempt_ms, created_ms, entry
          FROM {}.outbox
          ORDER BY attempts DESC, if(attempts = 0, written_ns, -written_ns)
          LIMIT 1 BY delivery_id, channel)",
        store.db()
    )
}

fn entries(store: &ClickHouseStore, sql: &str) -> Result<Vec<OutboxEntry>, StoreError> {
    let body = store.query(sql)?;
    rows(&body)
        .map(|r| parse("outbox entry", &r.string(0)?))
        .collect()
}

pub(super) fn due(
    store: &ClickHouseStore,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<OutboxEntry>, StoreError> {
    entries(
        store,
        &format!(
            "SELECT entry FROM {} WHERE state = 'pending' AND next_attempt_ms <= {now_ms}
             ORDER BY next_attempt_ms, created_ms LIMIT {}",
            latest_outbox(store),
            limit.min(i64::MAX as usize)
        ),
    )
}

pub(super) fn deliveries(
    store: &ClickHouseStore,
    alert_key: &str,
) -> Result<Vec<OutboxEntry>, StoreError> {
    entries(
        store,
        &format!(
            "SELECT entry FROM {} WHERE alert_key = {}
             ORDER BY created_ms, delivery_id, channel",
            latest_outbox(store),
            lit(alert_key)
        ),
    )
}

pub(super) fn update_delivery(
    store: &ClickHouseStore,
    entry: &OutboxEntry,
) -> Result<(), StoreError> {
    let mut r = Rows::default();
    outbox_row(&mut r, entry)?;
    store.insert("outbox", OUTBOX_COLUMNS, r)
}

/// Claims `keys` for `holder` for `lease_ms`: inserts one claim row per key, waits
/// `claim_settle_ms`, then reads back, per key, the earliest claim still within its lease; the
/// holder wins the keys whose earliest live claim is its own.
///
/// Every reader computes the same winner from the same rows, so two collectors both win a key
/// only if one of them read before the other's earlier-stamped row was visible: when an insert
/// takes longer than the settle time plus the clocks' skew, or the clocks differ by more than
/// that. The rows are on one node (never a `Distributed` table), where an acknowledged insert is
/// visible to the next query.
pub(super) fn claim(
    store: &ClickHouseStore,
    keys: &[String],
    holder: &str,
    lease_ms: i64,
) -> Result<Vec<bool>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let now_ms = now_ns() / 1_000_000;
    let mut r = Rows::default();
    for key in keys {
        r.str(key).str(holder).num(now_ms);
        r.end();
    }
    store.insert("claims", "key, holder, claimed_ms", r)?;
    std::thread::sleep(store.claim_settle);
    let read_ms = now_ns() / 1_000_000;
    let list: Vec<String> = keys.iter().map(|k| lit(k)).collect();
    let body = store.query(&format!(
        "SELECT key, argMin(holder, (claimed_ms, holder)) FROM {}.claims
         WHERE key IN ({}) AND claimed_ms > {} GROUP BY key",
        store.db(),
        list.join(","),
        read_ms - lease_ms
    ))?;
    let mut winners = std::collections::BTreeMap::new();
    for r in rows(&body) {
        winners.insert(r.string(0)?, r.string(1)?);
    }
    Ok(keys
        .iter()
        .map(|k| winners.get(k).is_some_and(|w| w == holder))
        .collect())
}

pub(super) fn deploys_retention(
    store: &ClickHouseStore,
    before_ms: i64,
) -> Result<u64, StoreError> {
    let body = store.query(&format!(
        "SELECT DISTINCT id FROM {}.deploys WHERE time_ms < {before_ms}",
        store.db()
    ))?;
    let ids: Vec<String> = rows(&body)
        .map(|r| r.string(0).map(|s| lit(&s)))
        .collect::<Result<_, _>>()?;
    if !ids.is_empty() {
        let list = ids.join(",");
        store.delete_where("comparisons", &format!("deploy_id IN ({list})"))?;
        store.delete_where("deploys", &format!("id IN ({list})"))?;
    }
    // Claims are short leases; a day-old one is history.
    store.delete_where(
        "claims",
        &format!("claimed_ms < {}", now_ns() / 1_000_000 - 86_400_000),
    )?;
    Ok(ids.len() as u64)
}

pub(super) fn alerts_retention(store: &ClickHouseStore, before_ms: i64) -> Result<u64, StoreError> {
    let body = store.query(&format!(
        "SELECT key FROM {} WHERE state = 'resolved' AND resolved_ms < {before_ms}",
        latest_alerts(store)
    ))?;
    let keys: Vec<String> = rows(&body)
        .map(|r| r.string(0).map(|s| lit(&s)))
        .collect::<Result<_, _>>()?;
    if !keys.is_empty() {
        let list = keys.join(",");
        store.delete_where("outbox", &format!("alert_key IN ({list})"))?;
        store.delete_where("alerts", &format!("key IN ({list})"))?;
    }
    Ok(keys.len() as u64)
}
