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
    Store, StoreError, TransactionQuery, TransactionRecord, WriteBatch, span_groups,
    transaction_blocks,
};
use crate::aggregate::histogram::{self, LatencyStats};
use crate::alert::store::{AlertQuery, AlertRecord, OutboxEntry};
use crate::deploys::{Deploy, DeployQuery};
use crate::model::{Attributes, SeriesId, SeriesKey, Span, SpanKind, TraceId};

/// Version 2 added `deploys` and `comparisons`, version 3 `alerts` and `outbox`, version 4
/// `claims`, version 5 clustered the transaction index by (series, end); version 6 keeps the
/// transaction index in blocks (`transaction_blocks.rs`) and the spans in groups by trace
/// (`span_groups.rs`). Older files are upgraded in place: the new tables are created and the
/// old rows move ([`upgrade_transactions_to_blocks`], [`upgrade_spans_to_groups`]).
const SCHEMA_VERSION: i64 = 6;

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
CREATE TABLE IF NOT EXISTS transaction_blocks (
    id INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    first_end_ns INTEGER NOT NULL,
    last_end_ns INTEGER NOT NULL,
    count INTEGER NOT NULL,
    records BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS transaction_blocks_by_series
    ON transaction_blocks (series_id, last_end_ns);
CREATE TABLE IF NOT EXISTS span_groups (
    id INTEGER PRIMARY KEY,
    trace_id BLOB NOT NULL,
    end_ns INTEGER NOT NULL,
    count INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS span_groups_by_trace ON span_groups (trace_id);
CREATE INDEX IF NOT EXISTS span_groups_by_end ON span_groups (end_ns);
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
        let mut writer = Self::connect(&path)?;
        // FULL on the writer: a commit is synced before it returns, so once a flush's batch is
        // committed the collector's own log segment for it can go without a power loss undoing
        // the commit (README "Durability"). One sync per flush, not per request.
        writer
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
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
            Some(Ok(1..=5)) => {
                let tx = writer.transaction().map_err(backend)?;
                upgrade_transactions_to_blocks(&tx)?;
                upgrade_spans_to_groups(&tx)?;
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                    [SCHEMA_VERSION.to_string()],
                )
                .map_err(backend)?;
                tx.commit().map_err(backend)?;
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
        // Readers never commit; the writer turns to FULL in `open`. busy_timeout covers the
        // retention pass.
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

/// Moves the rows of an old table (if it exists) into their new form, `batch` rows at a time
/// (`select` reads them, `read` converts a row, `write` stores a batch), and drops it.
fn move_old_rows<T>(
    tx: &rusqlite::Transaction<'_>,
    (table, select): (&str, &str),
    batch: usize,
    read: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    write: impl Fn(&Connection, &mut Vec<T>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    if !table_exists(tx, table)? {
        return Ok(());
    }
    {
        let mut stmt = tx.prepare(select).map_err(backend)?;
        let mut rows = stmt.query([]).map_err(backend)?;
        let mut moved: Vec<T> = Vec::with_capacity(batch);
        while let Some(row) = rows.next().map_err(backend)? {
            if moved.len() == batch {
                write(tx, &mut moved)?;
                moved.clear();
            }
            moved.push(read(row).map_err(backend)?);
        }
        write(tx, &mut moved)?;
    }
    tx.execute_batch(&format!("DROP TABLE {table};"))
        .map_err(backend)
}

/// Moves the rows of the transaction index of versions 1–5 (a `transactions` table, one row
/// per transaction, the same columns in every version) into blocks, 100 000 at a time (a slot
/// cut by a batch's end is two blocks: readers take any number per slot).
fn upgrade_transactions_to_blocks(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    let select = "SELECT series_id, end_ns, duration_us, error, trace_id, span_id
                  FROM transactions ORDER BY series_id, end_ns, span_id";
    move_old_rows(
        tx,
        ("transactions", select),
        100_000,
        transaction_from_row,
        |conn, records| {
            // Versions 1–4 could hold a transaction twice; the copies are adjacent here.
            records.dedup_by_key(|t| (t.series, t.end_ns, t.span_id));
            insert_transaction_blocks(conn, records)
        },
    )
}

fn transaction_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TransactionRecord> {
    let trace: Vec<u8> = r.get(4)?;
    let span: Vec<u8> = r.get(5)?;
    Ok(TransactionRecord {
        series: SeriesId(r.get(0)?),
        end_ns: r.get(1)?,
        duration_us: to_u64(r.get(2)?),
        error: r.get(3)?,
        trace_id: trace.try_into().unwrap_or_default(),
        span_id: span.try_into().unwrap_or_default(),
    })
}

fn insert_transaction_blocks(
    conn: &Connection,
    transactions: &[TransactionRecord],
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO transaction_blocks (series_id, first_end_ns, last_end_ns, count, records)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(backend)?;
    for block in transaction_blocks::blocks(transactions) {
        stmt.execute(params![
            block.series.0,
            block.first_end_ns,
            block.last_end_ns,
            to_i64(block.count as u64),
            block.data
        ])
        .map_err(backend)?;
    }
    Ok(())
}

fn insert_span_groups(conn: &Connection, spans: &[Span]) -> Result<(), StoreError> {
    let groups = span_groups::groups(spans);
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO span_groups (trace_id, end_ns, count, data) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(backend)?;
    for group in groups {
        stmt.execute(params![
            &group.trace_id[..],
            group.end_ns,
            to_i64(group.count as u64),
            group.data
        ])
        .map_err(backend)?;
    }
    Ok(())
}

/// Moves the spans of versions 1–5 (a `spans` table, one row per span) into groups, 20 000 at
/// a time (a trace cut by a batch's end is two groups: readers take any number per trace).
fn upgrade_spans_to_groups(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    let select = "SELECT trace_id, span_id, parent_span_id, service, environment, version, name,
                         kind, start_ns, end_ns, error, txn, attributes
                  FROM spans ORDER BY trace_id";
    let read = |row: &rusqlite::Row<'_>| {
        let (mut span, attributes) = span_from_row(row)?;
        // Unreadable attributes (never written so) do not stop the upgrade.
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&attributes) {
            span.attributes = Attributes::Json(map);
        }
        Ok(span)
    };
    move_old_rows(tx, ("spans", select), 20_000, read, |conn, spans| {
        insert_span_groups(conn, spans)
    })
}

fn table_exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get(0),
    )
    .map_err(backend)
}

/// Deletes the blocks of the transaction index whose newest transaction ended before
/// `before_ns`, one index range per series (the series found by stepping through the index);
/// returns how many transactions they held.
fn delete_old_transactions(conn: &Connection, before_ns: i64) -> Result<u64, StoreError> {
    let mut next_series = conn
        .prepare_cached(
            "SELECT series_id FROM transaction_blocks WHERE series_id > ?1
             ORDER BY series_id LIMIT 1",
        )
        .map_err(backend)?;
    let mut delete = conn
        .prepare_cached(
            "DELETE FROM transaction_blocks WHERE series_id = ?1 AND last_end_ns < ?2
             RETURNING count",
        )
        .map_err(backend)?;
    let mut deleted = 0;
    // The smallest id is found apart (ids are any i64, MIN included).
    let mut first = conn
        .prepare_cached("SELECT series_id FROM transaction_blocks ORDER BY series_id LIMIT 1")
        .map_err(backend)?;
    let mut series: Option<i64> = first
        .query_row([], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    while let Some(id) = series {
        let counts = delete
            .query_map(params![id, before_ns], |r| r.get::<_, i64>(0))
            .map_err(backend)?;
        for count in counts {
            deleted += to_u64(count.map_err(backend)?);
        }
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
        insert_transaction_blocks(&tx, &batch.transactions)?;
        insert_span_groups(&tx, &batch.spans)?;
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
        let min_us = query.min_us.unwrap_or(0);
        let max_us = query.max_us.unwrap_or(u64::MAX);
        self.with_reader(|conn| {
            let mut newest = transaction_blocks::Newest::new(query.limit);
            for chunk in query.series.chunks(MAX_SERIES_PER_QUERY) {
                // Blocks newest first, so the scan ends once `limit` newer transactions are
                // kept.
                let sql = format!(
                    "SELECT series_id, last_end_ns, records FROM transaction_blocks
                     WHERE last_end_ns >= ? AND first_end_ns < ? AND series_id IN ({})
                     ORDER BY last_end_ns DESC",
                    placeholders(chunk.len())
                );
                let mut stmt = conn.prepare(&sql).map_err(backend)?;
                let args = [query.from_ns, query.to_ns]
                    .into_iter()
                    .chain(chunk.iter().map(|s| s.0));
                let mut rows = stmt.query(params_from_iter(args)).map_err(backend)?;
                while let Some(row) = rows.next().map_err(backend)? {
                    let last_end_ns: i64 = row.get(1).map_err(backend)?;
                    if !newest.wants(last_end_ns) {
                        break;
                    }
                    let series = SeriesId(row.get(0).map_err(backend)?);
                    let data = row.get_ref(2).map_err(backend)?.as_blob().map_err(|e| {
                        StoreError::Corrupt(format!("transaction index block: {e}"))
                    })?;
                    let records = transaction_blocks::decode(series, data)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    for t in records.filter(|t| {
                        (query.from_ns..query.to_ns).contains(&t.end_ns)
                            && (min_us..=max_us).contains(&t.duration_us)
                            && query.error.is_none_or(|e| e == t.error)
                    }) {
                        newest.offer(t);
                    }
                }
            }
            Ok(newest.finish())
        })
    }

    fn trace(&self, trace_id: &TraceId) -> Result<Vec<Span>, StoreError> {
        self.with_reader(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT data FROM span_groups WHERE trace_id = ?1 ORDER BY id")
                .map_err(backend)?;
            let mut rows = stmt.query([&trace_id[..]]).map_err(backend)?;
            let (mut seen, mut out) = (std::collections::HashSet::new(), Vec::new());
            while let Some(row) = rows.next().map_err(backend)? {
                let data =
                    row.get_ref(0).map_err(backend)?.as_blob().map_err(|e| {
                        StoreError::Corrupt(format!("stored spans of a trace: {e}"))
                    })?;
                span_groups::decode_into(*trace_id, data, &mut seen, &mut out).map_err(|e| {
                    StoreError::Corrupt(format!(
                        "stored spans of trace {}: {e}",
                        crate::model::hex(trace_id)
                    ))
                })?;
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
        let spans: i64 = conn
            .prepare_cached("DELETE FROM span_groups WHERE end_ns < ?1 RETURNING count")
            .and_then(|mut stmt| {
                stmt.query_map([raw_ns], |r| r.get::<_, i64>(0))?
                    .sum::<rusqlite::Result<i64>>()
            })
            .map_err(backend)?;
        let deploys = super::sqlite_deploys::enforce_retention(&conn, cutoffs.deploys_before_ms())?;
        let alerts = super::sqlite_alerts::enforce_retention(&conn, cutoffs.deploys_before_ms())?;
        Ok(RetentionReport {
            histograms: histograms as u64,
            breakdown: breakdown as u64,
            transactions,
            spans: to_u64(spans),
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

    /// Writes a transaction index of an older version and the spans table of versions 1–5,
    /// opens the store, and returns what it lists for series 7 and the version then recorded.
    fn upgrade(old_index: &str, version: i64) -> (Vec<(i64, u64, bool)>, String) {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("headlight.db")).unwrap();
        conn.execute_batch(&format!(
            "DROP TABLE transaction_blocks;
             DROP TABLE span_groups;
             {old_index}
             CREATE TABLE spans (trace_id BLOB NOT NULL, span_id BLOB NOT NULL,
                 parent_span_id BLOB, service TEXT NOT NULL, environment TEXT NOT NULL,
                 version TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
                 start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, error INTEGER NOT NULL,
                 txn TEXT, attributes TEXT NOT NULL, PRIMARY KEY (trace_id, span_id))
                 WITHOUT ROWID;
             CREATE INDEX spans_by_end ON spans (end_ns);
             INSERT INTO spans VALUES
                 (x'02020202020202020202020202020202', x'0202020202020202', NULL, 's', 'e', 'v',
                  'GET /a', 'server', 1000, 2000, 1, 'GET /a', '{{\"http.route\":\"/a\"}}'),
                 (x'02020202020202020202020202020202', x'0505050505050505', x'0202020202020202',
                  's', 'e', 'v', 'SELECT', 'client', 1100, 1900, 0, NULL, '{{}}'),
                 (x'09090909090909090909090909090909', x'0909090909090909', NULL, 's', 'e', 'v',
                  'GET /b', 'server', 1000, 2000, 0, 'GET /b', '{{}}');
             INSERT INTO series VALUES (7, 's', 'e', 'v', 't', 0);
             INSERT INTO transactions (end_ns, duration_us, series_id, error, trace_id, span_id)
             VALUES (1000, 5, 7, 0, x'01010101010101010101010101010101', x'0101010101010101'),
                    (2000, 9, 7, 1, x'02020202020202020202020202020202', x'0202020202020202'),
                    (25000000000, 3, 7, 0, x'03030303030303030303030303030303',
                     x'0303030303030303'),
                    (2000, 4, 8, 0, x'04040404040404040404040404040404', x'0404040404040404');
             UPDATE meta SET value = '{version}' WHERE key = 'schema_version';"
        ))
        .unwrap();
        if version < 5 {
            // One row sent twice, which version 4 kept twice.
            conn.execute_batch(
                "INSERT INTO transactions VALUES
                 (2000, 9, 7, 1, x'02020202020202020202020202020202', x'0202020202020202');",
            )
            .unwrap();
        }
        drop(conn);
        let store = SqliteStore::open(dir.path()).unwrap();
        let query = TransactionQuery {
            series: vec![SeriesId(7)],
            from_ns: 0,
            to_ns: i64::MAX,
            min_us: None,
            max_us: None,
            error: None,
            limit: 10,
        };
        let rows = store
            .transactions(&query)
            .unwrap()
            .iter()
            .map(|t| (t.end_ns, t.duration_us, t.error))
            .collect();
        let trace: Vec<(u8, Option<u8>, String, bool, serde_json::Value)> = store
            .trace(&[2; 16])
            .unwrap()
            .into_iter()
            .map(|s| {
                (
                    s.span_id[0],
                    s.parent_span_id.map(|p| p[0]),
                    s.name.to_string(),
                    s.error,
                    serde_json::Value::Object(s.attributes.into_json()),
                )
            })
            .collect();
        assert_eq!(
            trace,
            vec![
                (
                    2,
                    None,
                    "GET /a".into(),
                    true,
                    serde_json::json!({"http.route": "/a"})
                ),
                (5, Some(2), "SELECT".into(), false, serde_json::json!({})),
            ]
        );
        assert_eq!(store.trace(&[9; 16]).unwrap().len(), 1);
        let conn = Connection::open(dir.path().join("headlight.db")).unwrap();
        let old_tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master
                 WHERE tbl_name = 'transactions' OR tbl_name = 'spans'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            old_tables, 0,
            "the old tables are dropped with their indexes"
        );
        let version = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (rows, version)
    }

    #[test]
    fn older_transaction_indexes_and_spans_are_upgraded_in_place() {
        let expected = vec![
            (25_000_000_000, 3, false),
            (2000, 9, true),
            (1000, 5, false),
        ];
        // Version 4: a rowid table and two indexes.
        let (rows, version) = upgrade(
            "CREATE TABLE transactions (end_ns INTEGER NOT NULL, duration_us INTEGER NOT NULL,
                 series_id INTEGER NOT NULL, error INTEGER NOT NULL, trace_id BLOB NOT NULL,
                 span_id BLOB NOT NULL);
             CREATE INDEX transactions_by_series ON transactions (series_id, end_ns);
             CREATE INDEX transactions_by_end ON transactions (end_ns);",
            4,
        );
        assert_eq!(rows, expected, "the copy is indexed once");
        assert_eq!(version, SCHEMA_VERSION.to_string());
        // Version 5: clustered by (series, end, span).
        let (rows, version) = upgrade(
            "CREATE TABLE transactions (series_id INTEGER NOT NULL, end_ns INTEGER NOT NULL,
                 span_id BLOB NOT NULL, duration_us INTEGER NOT NULL, error INTEGER NOT NULL,
                 trace_id BLOB NOT NULL, PRIMARY KEY (series_id, end_ns, span_id)) WITHOUT ROWID;",
            5,
        );
        assert_eq!(rows, expected);
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

    #[test]
    fn the_writer_syncs_each_commit_and_readers_do_not_need_to() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let synchronous = |conn: &Connection| -> i64 {
            conn.query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap()
        };
        // 2 = FULL: a flush's commit is on disk before its log segment is retired.
        assert_eq!(synchronous(&store.writer.lock().unwrap()), 2);
        store
            .with_reader(|conn| {
                assert_eq!(synchronous(conn), 1, "NORMAL");
                Ok(())
            })
            .unwrap();
    }
}
