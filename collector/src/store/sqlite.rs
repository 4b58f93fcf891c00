//! The embedded store: SQLite (bundled) in WAL mode, one file `headlight.db` in the data dir.
//!
//! Histogram rows are merged on write (read, add, write back in the same transaction), so one
//! row per series and window remains however often a window is flushed. Breakdown rows add
//! with an upsert. Spans are keyed by `(trace_id, span_id)`, so a retried export is idempotent.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::{
    BreakdownDelta, HistogramDelta, RetentionCutoffs, RetentionReport, SeriesFilter, SeriesRecord,
    Store, StoreError, TransactionQuery, TransactionRecord, WriteBatch,
};
use crate::aggregate::histogram::{self, LatencyStats};
use crate::alert::store::{AlertQuery, AlertRecord, OutboxEntry};
use crate::deploys::{Deploy, DeployQuery};
use crate::model::{Attributes, SeriesId, SeriesKey, Span, SpanKind, TraceId};

/// Version 2 added `deploys` and `comparisons`, version 3 `alerts` and `outbox`, version 4
/// `claims`; older files are upgraded in place (the tables are created, nothing else changes).
const SCHEMA_VERSION: i64 = 5;

/// Version 5 keeps the transaction index clustered by (series, end) with no other index: one
/// B-tree insert per transaction instead of three (the rowid table and two indexes). The old
/// table is renamed (its indexes go with it), [`SCHEMA`] creates the new one, the rows move.
const UPGRADE_TRANSACTIONS_TO_5: [&str; 3] = [
    "ALTER TABLE transactions RENAME TO transactions_v4;",
    SCHEMA,
    "INSERT OR IGNORE INTO transactions (series_id, end_ns, span_id, duration_us, error, trace_id)
         SELECT series_id, end_ns, span_id, duration_us, error, trace_id FROM transactions_v4;
     DROP TABLE transactions_v4;",
];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    version TEXT NOT NULL,
    txn TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS histograms (
    series_id INTEGER NOT NULL,
    resolution_s INTEGER NOT NULL,
    window_start_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    sum_us INTEGER NOT NULL,
    max_us INTEGER NOT NULL,
    hist BLOB NOT NULL,
    err_hist BLOB,
    PRIMARY KEY (series_id, resolution_s, window_start_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS breakdown (
    series_id INTEGER NOT NULL,
    resolution_s INTEGER NOT NULL,
    window_start_ms INTEGER NOT NULL,
    operation TEXT NOT NULL,
    kind TEXT NOT NULL,
    count INTEGER NOT NULL,
    total_us INTEGER NOT NULL,
    self_us INTEGER NOT NULL,
    PRIMARY KEY (series_id, resolution_s, window_start_ms, operation, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transactions (
    series_id INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    span_id BLOB NOT NULL,
    duration_us INTEGER NOT NULL,
    error INTEGER NOT NULL,
    trace_id BLOB NOT NULL,
    PRIMARY KEY (series_id, end_ns, span_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spans (
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    parent_span_id BLOB,
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    version TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    error INTEGER NOT NULL,
    txn TEXT,
    attributes TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spans_by_end ON spans (end_ns);
CREATE TABLE IF NOT EXISTS deploys (
    id TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    version TEXT NOT NULL,
    commit_id TEXT,
    description TEXT,
    time_ms INTEGER NOT NULL,
    automatic INTEGER NOT NULL,
    commit_time_ms INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deploys_by_time ON deploys (time_ms);
CREATE TABLE IF NOT EXISTS comparisons (
    deploy_id TEXT PRIMARY KEY,
    report TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
    key TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    state TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    resolved_ms INTEGER,
    record TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alerts_by_start ON alerts (started_ms);
CREATE TABLE IF NOT EXISTS outbox (
    delivery_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    alert_key TEXT NOT NULL,
    state TEXT NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (delivery_id, channel)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_ms);
CREATE INDEX IF NOT EXISTS outbox_by_alert ON outbox (alert_key, created_ms);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    claimed_ms INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Most bound parameters in one statement (SQLite allows 32766).
const MAX_SERIES_PER_QUERY: usize = 30_000;
/// Read connections kept open for reuse.
const READ_POOL: usize = 4;

/// The SQLite implementation of [`Store`].
#[derive(Debug)]
pub struct SqliteStore {
    path: std::path::PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

pub(super) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl SqliteStore {
    /// Opens (creating if needed) `headlight.db` in `dir`, creating the directory too.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let path = dir.join("headlight.db");
        let writer = Self::connect(&path)?;
        writer
            .execute_batch("PRAGMA journal_mode = WAL;")
            .map_err(backend)?;
        writer.execute_batch(SCHEMA).map_err(backend)?;
        let version: Option<String> = writer
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        match version.as_deref().map(str::parse::<i64>) {
            None => {
                writer
                    .execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                        [SCHEMA_VERSION.to_string()],
                    )
                    .map_err(backend)?;
            }
            Some(Ok(SCHEMA_VERSION)) => {}
            Some(Ok(1..=4)) => {
                writer
                    .execute_batch(&format!(
                        "BEGIN;
                         {}
                         UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version';
                         COMMIT;",
                        UPGRADE_TRANSACTIONS_TO_5.join("\n")
                    ))
                    .map_err(backend)?;
            }
            Some(other) => {
                return Err(StoreError::Corrupt(format!(
                    "{} has schema version {other:?}; this collector reads {SCHEMA_VERSION}",
                    path.display()
                )));
            }
        }
        Ok(Self {
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    fn connect(path: &Path) -> Result<Connection, StoreError> {
        let conn = Connection::open(path).map_err(backend)?;
        // WAL + NORMAL: a committed transaction survives a process crash (kill -9); an OS
        // crash may lose the last commits. busy_timeout covers the retention pass.
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = OFF;",
        )
        .map_err(backend)?;
        Ok(conn)
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().map_err(poisoned)?.pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => Self::connect(&self.path)?,
        };
        let result = f(&conn);
        let mut pool = self.readers.lock().map_err(poisoned)?;
        if pool.len() < READ_POOL {
            pool.push(conn);
        }
        result
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> StoreError {
    StoreError::Backend("store lock poisoned by a panic".to_owned())
}

fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 2);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push('?');
    }
    s
}

/// Deletes the transactions that ended before `before_ns`: one primary-key range per series
/// (the table has no index by time), the series found by stepping through the key.
fn delete_old_transactions(conn: &Connection, before_ns: i64) -> Result<usize, StoreError> {
    let mut next_series = conn
        .prepare_cached(
            "SELECT series_id FROM transactions WHERE series_id > ?1 ORDER BY series_id LIMIT 1",
        )
        .map_err(backend)?;
    let mut delete = conn
        .prepare_cached("DELETE FROM transactions WHERE series_id = ?1 AND end_ns < ?2")
        .map_err(backend)?;
    let mut deleted = 0;
    // The smallest id is found apart (ids are any i64, MIN included).
    let mut first = conn
        .prepare_cached("SELECT series_id FROM transactions ORDER BY series_id LIMIT 1")
        .map_err(backend)?;
    let mut series: Option<i64> = first
        .query_row([], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    while let Some(id) = series {
        deleted += delete.execute(params![id, before_ns]).map_err(backend)?;
        series = if id == i64::MAX {
            None
        } else {
            next_series
                .query_row([id], |r| r.get(0))
                .optional()
                .map_err(backend)?
        };
    }
    Ok(deleted)
}

fn write_histogram(
    tx: &rusqlite::Transaction<'_>,
    delta: &HistogramDelta,
) -> Result<(), StoreError> {
    let existing = tx
        .query_row(
            "SELECT count, errors, sum_us, max_us, hist, err_hist FROM histograms
             WHERE series_id = ?1 AND resolution_s = ?2 AND window_start_ms = ?3",
            params![delta.series.0, delta.resolution_s, delta.window_start_ms],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, Option<Vec<u8>>>(5)?,
                ))
            },
        )
        .optional()
        .map_err(backend)?;
    let mut merged = delta.stats.clone();
    if let Some((count, errors, sum_us, max_us, hist, err_hist)) = existing {
        merged.merge(&stats_from_row(
            count,
            errors,
            sum_us,
            max_us,
            &hist,
            err_hist.as_deref(),
        )?);
    }
    let err_blob = (merged.errors > 0).then(|| histogram::encode(&merged.error_histogram));
    tx.execute(
        "INSERT OR REPLACE INTO histograms
         (series_id, resolution_s, window_start_ms, count, errors, sum_us, max_us, hist, err_hist)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            delta.series.0,
            delta.resolution_s,
            delta.window_start_ms,
            to_i64(merged.count),
            to_i64(merged.errors),
            to_i64(merged.sum_us),
            to_i64(merged.max_us),
            histogram::encode(&merged.histogram),
            err_blob,
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn stats_from_row(
    count: i64,
    errors: i64,
    sum_us: i64,
    max_us: i64,
    hist: &[u8],
    err_hist: Option<&[u8]>,
) -> Result<LatencyStats, StoreError> {
    let corrupt = |e: histogram::CorruptHistogram| StoreError::Corrupt(e.to_string());
    Ok(LatencyStats {
        count: to_u64(count),
        errors: to_u64(errors),
        sum_us: to_u64(sum_us),
        max_us: to_u64(max_us),
        histogram: histogram::decode(hist).map_err(corrupt)?,
        error_histogram: match err_hist {
            Some(blob) => histogram::decode(blob).map_err(corrupt)?,
            None => histogram::new_histogram(),
        },
    })
}

fn span_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Span, String)> {
    let trace: Vec<u8> = r.get(0)?;
    let span: Vec<u8> = r.get(1)?;
    let parent: Option<Vec<u8>> = r.get(2)?;
    let kind: String = r.get(7)?;
    let attributes: String = r.get(12)?;
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    if trace.len() == 16 {
        trace_id.copy_from_slice(&trace);
    }
    if span.len() == 8 {
        span_id.copy_from_slice(&span);
    }
    let parent_span_id = parent.filter(|p| p.len() == 8).map(|p| {
        let mut id = [0u8; 8];
        id.copy_from_slice(&p);
        id
    });
    Ok((
        Span {
            trace_id,
            span_id,
            parent_span_id,
            service: r.get(3)?,
            environment: r.get(4)?,
            version: r.get(5)?,
            name: r.get(6)?,
            kind: SpanKind::parse(&kind).unwrap_or(SpanKind::Unspecified),
            start_ns: r.get(8)?,
            end_ns: r.get(9)?,
            error: r.get(10)?,
            transaction: r.get(11)?,
            attributes: Attributes::default(),
            reported_self_ns: None,
            unsent_children: Vec::new(),
        },
        attributes,
    ))
}

impl Store for SqliteStore {
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer.lock().map_err(poisoned)?;
        let tx = conn.transaction().map_err(backend)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO series (id, service, environment, version, txn, first_seen_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (id) DO UPDATE
                     SET first_seen_ms = min(first_seen_ms, excluded.first_seen_ms)",
                )
                .map_err(backend)?;
            for s in &batch.series {
                stmt.execute(params![
                    s.id.0,
                    s.key.service,
                    s.key.environment,
                    s.key.version,
                    s.key.transaction,
                    s.first_seen_ms
                ])
                .map_err(backend)?;
            }
        }
        for delta in &batch.histograms {
            write_histogram(&tx, delta)?;
        }
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO breakdown
                     (series_id, resolution_s, window_start_ms, operation, kind, count, total_us, self_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (series_id, resolution_s, window_start_ms, operation, kind)
                     DO UPDATE SET count = count + excluded.count,
                                   total_us = total_us + excluded.total_us,
                                   self_us = self_us + excluded.self_us",
                )
                .map_err(backend)?;
            for b in &batch.breakdown {
                stmt.execute(params![
                    b.series.0,
                    b.resolution_s,
                    b.window_start_ms,
                    b.operation,
                    b.kind.as_str(),
                    to_i64(b.count),
                    to_i64(b.total_us),
                    to_i64(b.self_us)
                ])
                .map_err(backend)?;
            }
        }
        {
            let mut stmt = tx
                .prepare_cached(
                    // A transaction delivered twice (a retried export, a replayed log) is
                    // indexed once.
                    "INSERT OR IGNORE INTO transactions
                     (end_ns, duration_us, series_id, error, trace_id, span_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(backend)?;
            for t in &batch.transactions {
                stmt.execute(params![
                    t.end_ns,
                    to_i64(t.duration_us),
                    t.series.0,
                    t.error,
                    &t.trace_id[..],
                    &t.span_id[..]
                ])
                .map_err(backend)?;
            }
        }
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO spans
                     (trace_id, span_id, parent_span_id, service, environment, version, name, kind,
                      start_ns, end_ns, error, txn, attributes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .map_err(backend)?;
            for s in &batch.spans {
                let attributes = serde_json::to_string(&s.attributes.to_json())
                    .map_err(|e| StoreError::Backend(format!("cannot encode attributes: {e}")))?;
                stmt.execute(params![
                    &s.trace_id[..],
                    &s.span_id[..],
                    s.parent_span_id.as_ref().map(|p| &p[..]),
                    s.service,
                    s.environment,
                    s.version,
                    s.name,
                    s.kind.as_str(),
                    s.start_ns,
                    s.end_ns,
                    s.error,
                    s.transaction,
                    attributes
                ])
                .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)
    }

    fn series(&self, filter: &SeriesFilter) -> Result<Vec<SeriesRecord>, StoreError> {
        self.with_reader(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, service, environment, version, txn, first_seen_ms FROM series
                     WHERE (?1 IS NULL OR service = ?1) AND (?2 IS NULL OR environment = ?2)
                       AND (?3 IS NULL OR version = ?3) AND (?4 IS NULL OR txn = ?4)
                     ORDER BY service, environment, version, txn",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(
                    params![
                        filter.service,
                        filter.environment,
                        filter.version,
                        filter.transaction
                    ],
                    |r| {
                        Ok(SeriesRecord {
                            id: SeriesId(r.get(0)?),
                            key: SeriesKey {
                                service: r.get(1)?,
                                environment: r.get(2)?,
                                version: r.get(3)?,
                                transaction: r.get(4)?,
                            },
                            first_seen_ms: r.get(5)?,
                        })
                    },
                )
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    fn histograms(
        &self,
        series: &[SeriesId],
        resolution_s: u32,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<HistogramDelta>, StoreError> {
        self.with_reader(|conn| {
            let mut out = Vec::new();
            for chunk in series.chunks(MAX_SERIES_PER_QUERY) {
                let sql = format!(
                    "SELECT series_id, window_start_ms, count, errors, sum_us, max_us, hist, err_hist
                     FROM histograms
                     WHERE resolution_s = ? AND window_start_ms >= ? AND window_start_ms < ?
                       AND series_id IN ({})",
                    placeholders(chunk.len())
                );
                let mut stmt = conn.prepare(&sql).map_err(backend)?;
                let head = [i64::from(resolution_s), from_ms, to_ms];
                let args = head.into_iter().chain(chunk.iter().map(|s| s.0));
                let mut rows = stmt.query(params_from_iter(args)).map_err(backend)?;
                while let Some(r) = rows.next().map_err(backend)? {
                    let blob: Vec<u8> = r.get(6).map_err(backend)?;
                    let err_blob: Option<Vec<u8>> = r.get(7).map_err(backend)?;
                    out.push(HistogramDelta {
                        series: SeriesId(r.get(0).map_err(backend)?),
                        resolution_s,
                        window_start_ms: r.get(1).map_err(backend)?,
                        stats: stats_from_row(
                            r.get(2).map_err(backend)?,
                            r.get(3).map_err(backend)?,
                            r.get(4).map_err(backend)?,
                            r.get(5).map_err(backend)?,
                            &blob,
                            err_blob.as_deref(),
                        )?,
                    });
                }
            }
            Ok(out)
        })
    }

    fn breakdown(
        &self,
        series: &[SeriesId],
        resolution_s: u32,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<BreakdownDelta>, StoreError> {
        self.with_reader(|conn| {
            let mut out = Vec::new();
            for chunk in series.chunks(MAX_SERIES_PER_QUERY) {
                let sql = format!(
                    "SELECT series_id, window_start_ms, operation, kind, count, total_us, self_us
                     FROM breakdown
                     WHERE resolution_s = ? AND window_start_ms >= ? AND window_start_ms < ?
                       AND series_id IN ({})",
                    placeholders(chunk.len())
                );
                let mut stmt = conn.prepare(&sql).map_err(backend)?;
                let head = [i64::from(resolution_s), from_ms, to_ms];
                let args = head.into_iter().chain(chunk.iter().map(|s| s.0));
                let rows = stmt
                    .query_map(params_from_iter(args), |r| {
                        let kind: String = r.get(3)?;
                        Ok(BreakdownDelta {
                            series: SeriesId(r.get(0)?),
                            resolution_s,
                            window_start_ms: r.get(1)?,
                            operation: r.get(2)?,
                            kind: SpanKind::parse(&kind).unwrap_or(SpanKind::Unspecified),
                            count: to_u64(r.get(4)?),
                            total_us: to_u64(r.get(5)?),
                            self_us: to_u64(r.get(6)?),
                        })
                    })
                    .map_err(backend)?;
                for row in rows {
                    out.push(row.map_err(backend)?);
                }
            }
            Ok(out)
        })
    }

    fn transactions(&self, query: &TransactionQuery) -> Result<Vec<TransactionRecord>, StoreError> {
        if query.series.is_empty() || query.limit == 0 {
            return Ok(Vec::new());
        }
        self.with_reader(|conn| {
            let mut out = Vec::new();
            for chunk in query.series.chunks(MAX_SERIES_PER_QUERY) {
                let sql = format!(
                    "SELECT series_id, end_ns, duration_us, error, trace_id, span_id
                     FROM transactions
                     WHERE end_ns >= ? AND end_ns < ? AND duration_us >= ? AND duration_us <= ?
                       AND (? < 0 OR error = ?) AND series_id IN ({})
                     ORDER BY end_ns DESC LIMIT ?",
                    placeholders(chunk.len())
                );
                let mut stmt = conn.prepare(&sql).map_err(backend)?;
                let error_filter = match query.error {
                    None => -1,
                    Some(e) => i64::from(e),
                };
                let head = [
                    query.from_ns,
                    query.to_ns,
                    to_i64(query.min_us.unwrap_or(0)),
                    to_i64(query.max_us.unwrap_or(u64::MAX)),
                    error_filter,
                    error_filter,
                ];
                let args = head
                    .into_iter()
                    .chain(chunk.iter().map(|s| s.0))
                    .chain(std::iter::once(to_i64(query.limit as u64)));
                let rows = stmt
                    .query_map(params_from_iter(args), |r| {
                        let trace: Vec<u8> = r.get(4)?;
                        let span: Vec<u8> = r.get(5)?;
                        let mut trace_id = [0u8; 16];
                        let mut span_id = [0u8; 8];
                        if trace.len() == 16 {
                            trace_id.copy_from_slice(&trace);
                        }
                        if span.len() == 8 {
                            span_id.copy_from_slice(&span);
                        }
                        Ok(TransactionRecord {
                            series: SeriesId(r.get(0)?),
                            end_ns: r.get(1)?,
                            duration_us: to_u64(r.get(2)?),
                            error: r.get(3)?,
                            trace_id,
                            span_id,
                        })
                    })
                    .map_err(backend)?;
                for row in rows {
                    out.push(row.map_err(backend)?);
                }
            }
            out.sort_by_key(|t| std::cmp::Reverse(t.end_ns));
            out.truncate(query.limit);
            Ok(out)
        })
    }

    fn trace(&self, trace_id: &TraceId) -> Result<Vec<Span>, StoreError> {
        self.with_reader(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT trace_id, span_id, parent_span_id, service, environment, version, name,
                            kind, start_ns, end_ns, error, txn, attributes
                     FROM spans WHERE trace_id = ?1",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([&trace_id[..]], span_from_row)
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (mut span, attributes) = row.map_err(backend)?;
                span.attributes = match serde_json::from_str(&attributes) {
                    Ok(serde_json::Value::Object(map)) => Attributes::Json(map),
                    _ => {
                        return Err(StoreError::Corrupt(format!(
                            "span {} has unreadable attributes",
                            crate::model::hex(&span.span_id)
                        )));
                    }
                };
                out.push(span);
            }
            Ok(out)
        })
    }

    fn enforce_retention(&self, cutoffs: &RetentionCutoffs) -> Result<RetentionReport, StoreError> {
        let conn = self.writer.lock().map_err(poisoned)?;
        let raw_ns = cutoffs.raw_before_ms.saturating_mul(1_000_000);
        let histograms = conn
            .execute(
                "DELETE FROM histograms WHERE (resolution_s = ?1 AND window_start_ms < ?2)
                                           OR (resolution_s = ?3 AND window_start_ms < ?4)",
                params![
                    cutoffs.raw_resolution_s,
                    cutoffs.raw_before_ms,
                    cutoffs.rollup_resolution_s,
                    cutoffs.rollup_before_ms
                ],
            )
            .map_err(backend)?;
        let breakdown = conn
            .execute(
                "DELETE FROM breakdown WHERE (resolution_s = ?1 AND window_start_ms < ?2)
                                          OR (resolution_s = ?3 AND window_start_ms < ?4)",
                params![
                    cutoffs.raw_resolution_s,
                    cutoffs.raw_before_ms,
                    cutoffs.rollup_resolution_s,
                    cutoffs.rollup_before_ms
                ],
            )
            .map_err(backend)?;
        let transactions = delete_old_transactions(&conn, raw_ns)?;
        let spans = conn
            .execute("DELETE FROM spans WHERE end_ns < ?1", [raw_ns])
            .map_err(backend)?;
        let deploys = super::sqlite_deploys::enforce_retention(&conn, cutoffs.deploys_before_ms())?;
        let alerts = super::sqlite_alerts::enforce_retention(&conn, cutoffs.deploys_before_ms())?;
        Ok(RetentionReport {
            histograms: histograms as u64,
            breakdown: breakdown as u64,
            transactions: transactions as u64,
            spans: spans as u64,
            deploys,
            alerts,
        })
    }

    fn record_deploy(&self, deploy: &Deploy) -> Result<Deploy, StoreError> {
        let conn = self.writer.lock().map_err(poisoned)?;
        super::sqlite_deploys::record(&conn, deploy)
    }

    fn deploys(&self, query: &DeployQuery) -> Result<Vec<Deploy>, StoreError> {
        self.with_reader(|conn| super::sqlite_deploys::list(conn, query))
    }

    fn deploy(&self, id: &str) -> Result<Option<Deploy>, StoreError> {
        self.with_reader(|conn| super::sqlite_deploys::get(conn, id))
    }

    fn uncompared_deploys(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Deploy>, StoreError> {
        self.with_reader(|conn| super::sqlite_deploys::uncompared(conn, from_ms, to_ms))
    }

    fn save_comparison(&self, deploy_id: &str, report_json: &str) -> Result<String, StoreError> {
        let conn = self.writer.lock().map_err(poisoned)?;
        super::sqlite_deploys::save_comparison(&conn, deploy_id, report_json)
    }

    fn comparison(&self, deploy_id: &str) -> Result<Option<String>, StoreError> {
        self.with_reader(|conn| super::sqlite_deploys::comparison(conn, deploy_id))
    }

    fn alert(&self, key: &str) -> Result<Option<AlertRecord>, StoreError> {
        self.with_reader(|conn| super::sqlite_alerts::alert(conn, key))
    }

    fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertRecord>, StoreError> {
        self.with_reader(|conn| super::sqlite_alerts::alerts(conn, query))
    }

    fn save_alert(&self, record: &AlertRecord, queue: &[OutboxEntry]) -> Result<(), StoreError> {
        let mut conn = self.writer.lock().map_err(poisoned)?;
        super::sqlite_alerts::save(&mut conn, record, queue)
    }

    fn due_deliveries(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.with_reader(|conn| super::sqlite_alerts::due(conn, now_ms, limit))
    }

    fn update_delivery(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        let conn = self.writer.lock().map_err(poisoned)?;
        super::sqlite_alerts::update_delivery(&conn, entry)
    }

    fn deliveries(&self, alert_key: &str) -> Result<Vec<OutboxEntry>, StoreError> {
        self.with_reader(|conn| super::sqlite_alerts::deliveries(conn, alert_key))
    }

    fn claim(&self, keys: &[String], holder: &str, lease_ms: i64) -> Result<Vec<bool>, StoreError> {
        let now_ms = crate::pipeline::now_ns() / 1_000_000;
        let mut conn = self.writer.lock().map_err(poisoned)?;
        let tx = conn.transaction().map_err(backend)?;
        let mut won = Vec::with_capacity(keys.len());
        for key in keys {
            tx.execute(
                "DELETE FROM claims WHERE key = ?1 AND claimed_ms <= ?2",
                params![key, now_ms - lease_ms],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT OR IGNORE INTO claims (key, holder, claimed_ms) VALUES (?1, ?2, ?3)",
                params![key, holder, now_ms],
            )
            .map_err(backend)?;
            let current: String = tx
                .query_row("SELECT holder FROM claims WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .map_err(backend)?;
            won.push(current == holder);
        }
        tx.commit().map_err(backend)?;
        Ok(won)
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.with_reader(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
    }
}

/// What every store does (writes adding up, retention, deploys, alerts, claims…) is checked for
/// SQLite and ClickHouse alike by `tests/store_suite.rs`; here only what is SQLite's own.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_4_transaction_index_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("headlight.db")).unwrap();
        // The layout of version 4: a rowid table and two indexes; one row sent twice.
        conn.execute_batch(
            "DROP TABLE transactions;
             CREATE TABLE transactions (end_ns INTEGER NOT NULL, duration_us INTEGER NOT NULL,
                 series_id INTEGER NOT NULL, error INTEGER NOT NULL, trace_id BLOB NOT NULL,
                 span_id BLOB NOT NULL);
             CREATE INDEX transactions_by_series ON transactions (series_id, end_ns);
             CREATE INDEX transactions_by_end ON transactions (end_ns);
             INSERT INTO series VALUES (7, 's', 'e', 'v', 't', 0);
             INSERT INTO transactions VALUES
                 (1000, 5, 7, 0, x'01010101010101010101010101010101', x'0101010101010101'),
                 (2000, 9, 7, 1, x'02020202020202020202020202020202', x'0202020202020202'),
                 (2000, 9, 7, 1, x'02020202020202020202020202020202', x'0202020202020202');
             UPDATE meta SET value = '4' WHERE key = 'schema_version';",
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(dir.path()).unwrap();
        let query = TransactionQuery {
            series: vec![SeriesId(7)],
            from_ns: 0,
            to_ns: 10_000,
            min_us: None,
            max_us: None,
            error: None,
            limit: 10,
        };
        let rows = store.transactions(&query).unwrap();
        let ends: Vec<(i64, u64, bool)> = rows
            .iter()
            .map(|t| (t.end_ns, t.duration_us, t.error))
            .collect();
        assert_eq!(
            ends,
            vec![(2000, 9, true), (1000, 5, false)],
            "the copy is indexed once"
        );
        let conn = Connection::open(dir.path().join("headlight.db")).unwrap();
        let (sql, indexes): (String, i64) = conn
            .query_row(
                "SELECT sql, (SELECT count(*) FROM sqlite_master WHERE tbl_name = 'transactions'
                              AND type = 'index' AND sql IS NOT NULL)
                 FROM sqlite_master WHERE name = 'transactions'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(sql.contains("WITHOUT ROWID"), "{sql}");
        assert_eq!(indexes, 0);
        let version: String = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION.to_string());
    }

    #[test]
    fn a_newer_schema_is_refused_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("headlight.db")).unwrap();
        conn.execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        drop(conn);
        let err = SqliteStore::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("schema version"), "{err}");
    }
}
