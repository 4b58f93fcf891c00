//! Alerts and the notification outbox in the SQLite store. Rows carry their record as JSON
//! beside the columns queries filter on.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::alert_codes::{delivery_str, json, parse, state_str};
use super::sqlite::backend;
use crate::alert::store::{AlertQuery, AlertRecord, OutboxEntry};

pub(super) fn alert(conn: &Connection, key: &str) -> Result<Option<AlertRecord>, StoreError> {
    let text: Option<String> = conn
        .query_row("SELECT record FROM alerts WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()
        .map_err(backend)?;
    text.map(|t| parse("alert", &t)).transpose()
}

pub(super) fn alerts(conn: &Connection, q: &AlertQuery) -> Result<Vec<AlertRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT record FROM alerts
             WHERE (?1 IS NULL OR service = ?1) AND (?2 IS NULL OR state = ?2)
               AND started_ms >= ?3 AND started_ms < ?4
             ORDER BY started_ms DESC, key LIMIT ?5",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(
            params![
                q.service,
                q.state.map(state_str),
                q.from_ms.unwrap_or(i64::MIN),
                q.to_ms.unwrap_or(i64::MAX),
                i64::try_from(q.limit).unwrap_or(i64::MAX)
            ],
            |r| r.get::<_, String>(0),
        )
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(parse("alert", &row.map_err(backend)?)?);
    }
    Ok(out)
}

pub(super) fn save(
    conn: &mut Connection,
    record: &AlertRecord,
    queue: &[OutboxEntry],
) -> Result<(), StoreError> {
    let tx = conn.transaction().map_err(backend)?;
    let a = &record.alert;
    tx.execute(
        "INSERT OR REPLACE INTO alerts (key, service, state, started_ms, resolved_ms, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            a.key,
            a.service,
            state_str(a.state),
            a.started_ms,
            a.resolved_ms,
            json(record)?
        ],
    )
    .map_err(backend)?;
    for entry in queue {
        tx.execute(
            "INSERT OR IGNORE INTO outbox
             (delivery_id, channel, alert_key, state, next_attempt_ms, created_ms, entry)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                entry.notification.delivery_id,
                entry.channel,
                entry.notification.alert.key,
                delivery_str(entry.state),
                entry.next_attempt_ms,
                entry.created_ms,
                json(entry)?
            ],
        )
        .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}

fn entries(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map(args, |r| r.get::<_, String>(0))
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(parse("outbox entry", &row.map_err(backend)?)?);
    }
    Ok(out)
}

pub(super) fn due(
    conn: &Connection,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<OutboxEntry>, StoreError> {
    entries(
        conn,
        "SELECT entry FROM outbox WHERE state = 'pending' AND next_attempt_ms <= ?1
         ORDER BY next_attempt_ms, created_ms LIMIT ?2",
        params![now_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
    )
}

pub(super) fn deliveries(
    conn: &Connection,
    alert_key: &str,
) -> Result<Vec<OutboxEntry>, StoreError> {
    entries(
        conn,
        "SELECT entry FROM outbox WHERE alert_key = ?1 ORDER BY created_ms, delivery_id, channel",
        [alert_key],
    )
}

pub(super) fn update_delivery(conn: &Connection, entry: &OutboxEntry) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE outbox SET state = ?1, next_attempt_ms = ?2, entry = ?3
         WHERE delivery_id = ?4 AND channel = ?5",
        params![
            delivery_str(entry.state),
            entry.next_attempt_ms,
            json(entry)?,
            entry.notification.delivery_id,
            entry.channel
        ],
    )
    .map_err(backend)?;
    Ok(())
}

pub(super) fn enforce_retention(conn: &Connection, before_ms: i64) -> Result<u64, StoreError> {
    conn.execute(
        "DELETE FROM outbox WHERE alert_key IN
           (SELECT key FROM alerts WHERE state = 'resolved' AND resolved_ms < ?1)",
        [before_ms],
    )
    .map_err(backend)?;
    let deleted = conn
        .execute(
            "DELETE FROM alerts WHERE state = 'resolved' AND resolved_ms < ?1",
            [before_ms],
        )
        .map_err(backend)?;
    Ok(deleted as u64)
}
