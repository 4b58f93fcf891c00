//! The scale-out store: ClickHouse over its HTTP interface, shared by any number of collectors.
//!
//! Everything is append-only, so several collectors writing at once never conflict:
//!
//! - **Histograms** and **breakdown** rows are the flushes' deltas, inserted as they come; reads
//!   add them up in ClickHouse (`sum`, and `sumMap` over each histogram's buckets, stored as
//!   value and count arrays), so counts are exact however many collectors wrote a window and one
//!   row per window comes back.
//! - **Transaction index** and **spans** are plain inserts; spans are deduplicated on read by
//!   `(trace_id, span_id)` (a retried export is stored once as far as readers can tell).
//! - **Series, deploys, comparisons** are insert-if-absent by reading back the first row written
//!   for the key; **alerts** and **outbox** entries are versioned rows, the newest version read.
//! - **Claims** (leases) make one collector do each comparison, alert evaluation and delivery;
//!   see [`Store::claim`] and `docs/clickhouse.md` for the guarantee and its limits.
//!
//! The SQL runs on ClickHouse 18.16 (Debian's package) and later: plain `MergeTree` tables,
//! `String`/`Int64`/`Nullable` columns, no `LowCardinality`, `DateTime64` or query parameters.
//! Data tables are partitioned by day, so retention drops whole partitions (every version);
//! servers from 19.6 on also get a table `TTL` with the same horizons.
//!
//! With `cluster` set, the four data tables are `Distributed` over that cluster and their
//! `*_local` tables are created on every shard; the small tables (series, deploys, alerts,
//! outbox, claims) stay on the node at `url`, which every collector must use.

use std::time::Duration;

use super::clickhouse_http::{Client, Rows, bytes_lit, lit, rows};
use super::{
    BreakdownDelta, HistogramDelta, RetentionCutoffs, RetentionReport, SeriesFilter, SeriesRecord,
    Store, StoreError, TransactionQuery, TransactionRecord, WriteBatch,
};
use crate::aggregate::histogram::{self, LatencyStats};
use crate::alert::channels::Secret;
use crate::alert::store::{AlertQuery, AlertRecord, OutboxEntry};
use crate::config::ClickHouseConfig;
use crate::deploys::{Deploy, DeployQuery};
use crate::model::{Attributes, SeriesId, SeriesKey, Span, SpanKind, TraceId};

/// The schema this collector writes. Version 1 is the first; a later version adds its
/// statements to [`MIGRATIONS`] and a database written by a newer collector is refused.
const SCHEMA_VERSION: i64 = 1;
/// Most series ids in one `IN (…)` list (the query stays under `max_query_size`, 256 KiB).
const MAX_SERIES_PER_QUERY: usize = 5_000;
/// How long retention waits for its `ALTER … DELETE` mutations on the small tables.
const MUTATION_WAIT: Duration = Duration::from_secs(30);

/// The data tables: name, columns, partition key, order key.
const DATA_TABLES: [(&str, &str, &str, &str); 4] = [
    (
        "histograms",
        "series_id Int64, resolution_s UInt32, window_start_ms Int64, count UInt64,
         errors UInt64, sum_us UInt64, max_us UInt64, bucket_us Array(UInt64),
         bucket_counts Array(UInt64), err_bucket_us Array(UInt64),
         err_bucket_counts Array(UInt64)",
        "(resolution_s, toYYYYMMDD(toDateTime(intDiv(window_start_ms, 1000))))",
        "(series_id, resolution_s, window_start_ms)",
    ),
    (
        "breakdown",
        "series_id Int64, resolution_s UInt32, window_start_ms Int64, operation String,
         kind String, count UInt64, total_us UInt64, self_us UInt64",
        "(resolution_s, toYYYYMMDD(toDateTime(intDiv(window_start_ms, 1000))))",
        "(series_id, resolution_s, window_start_ms, operation, kind)",
    ),
    (
        "transactions",
        "series_id Int64, end_ns Int64, duration_us UInt64, error UInt8, trace_id String,
         span_id String",
        "toYYYYMMDD(toDateTime(intDiv(end_ns, 1000000000)))",
        "(series_id, end_ns)",
    ),
    (
        "spans",
        "trace_id String, span_id String, parent_span_id Nullable(String), service String,
         environment String, version String, name String, kind String, start_ns Int64,
         end_ns Int64, error UInt8, txn Nullable(String), attributes String",
        "toYYYYMMDD(toDateTime(intDiv(end_ns, 1000000000)))",
        "(trace_id, span_id)",
    ),
];

/// The small tables, on the node at `url`: name, columns, order key.
const META_TABLES: [(&str, &str, &str); 7] = [
    ("meta", "key String, value String, written_ns Int64", "key"),
    (
        "series",
        "id Int64, service String, environment String, version String, txn String,
         first_seen_ms Int64",
        "id",
    ),
    (
        "deploys",
        "id String, service String, environment String, version String,
         commit_id Nullable(String), description Nullable(String), time_ms Int64,
         automatic UInt8, commit_time_ms Nullable(Int64), written_ns Int64",
        "(time_ms, id)",
    ),
    (
        "comparisons",
        "deploy_id String, report String, written_ns Int64",
        "deploy_id",
    ),
    (
        "alerts",
        "key String, service String, state String, started_ms Int64,
         resolved_ms Nullable(Int64), notifications UInt32, record String, written_ns Int64",
        "key",
    ),
    (
        "outbox",
        "delivery_id String, channel String, alert_key String, state String,
         next_attempt_ms Int64, created_ms Int64, attempts UInt32, entry String,
         written_ns Int64",
        "(alert_key, delivery_id, channel)",
    ),
    (
        "claims",
        "key String, holder String, claimed_ms Int64",
        "(key, claimed_ms)",
    ),
];

/// Statements that bring a database from version `i + 1` to `i + 2` (none yet).
const MIGRATIONS: [&str; 0] = [];

/// The ClickHouse implementation of [`Store`].
#[derive(Debug)]
pub struct ClickHouseStore {
    client: Client,
    /// The node every collector talks to.
    url: String,
    /// Every shard's HTTP address (just `url` when not sharded).
    shards: Vec<String>,
    /// The database name (validated: `[A-Za-z0-9_]+`).
    db: String,
    /// Data tables are `Distributed` (their `*_local` tables hold the rows).
    sharded: bool,
    /// How long a claim waits before it reads back who won.
    pub(super) claim_settle: Duration,
    /// `(major, minor)` of the server at `url`.
    server_version: (u32, u32),
}

/// ClickHouse credentials (from `HEADLIGHT_CLICKHOUSE_USER` / `_PASSWORD`).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The user; `None` uses the server's `default` user without authentication.
    pub user: Option<String>,
    /// The password.
    pub password: Option<Secret>,
}

impl Credentials {
    /// Reads `HEADLIGHT_CLICKHOUSE_USER` and `HEADLIGHT_CLICKHOUSE_PASSWORD` through `env`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            user: env("HEADLIGHT_CLICKHOUSE_USER").filter(|u| !u.is_empty()),
            password: env("HEADLIGHT_CLICKHOUSE_PASSWORD").map(Secret::new),
        }
    }
}

pub(super) fn now_ns() -> i64 {
    crate::pipeline::now_ns()
}

fn ids(series: &[SeriesId]) -> String {
    let mut s = String::with_capacity(series.len() * 20);
    for (i, id) in series.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&id.0.to_string());
    }
    s
}

fn fixed<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    if b.len() == N {
        out.copy_from_slice(b);
    }
    out
}

/// Writes a histogram as two arrays: each recorded bucket's highest equivalent value (µs) and
/// its count; `sumMap` adds such pairs exactly, and recording each value again lands in the
/// same bucket.
fn bucket_arrays(h: &histogram::LatencyHistogram) -> (String, String) {
    let mut values = String::from("[");
    let mut counts = String::from("[");
    for (i, v) in h.iter_recorded().enumerate() {
        if i > 0 {
            values.push(',');
            counts.push(',');
        }
        values.push_str(&v.value_iterated_to().to_string());
        counts.push_str(&v.count_at_value().to_string());
    }
    values.push(']');
    counts.push(']');
    (values, counts)
}

/// Reads a `sumMap` result, `([v1,v2],[c1,c2])`, into a histogram.
fn histogram_from_sum_map(text: &str) -> Result<histogram::LatencyHistogram, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("unreadable histogram buckets {text:.80}"));
    let inner = text
        .strip_prefix("([")
        .and_then(|t| t.strip_suffix("])"))
        .ok_or_else(corrupt)?;
    let (values, counts) = inner.split_once("],[").ok_or_else(corrupt)?;
    let numbers = |list: &str| -> Result<Vec<u64>, StoreError> {
        if list.is_empty() {
            return Ok(Vec::new());
        }
        list.split(',')
            .map(|n| n.parse().map_err(|_| corrupt()))
            .collect()
    };
    let (values, counts) = (numbers(values)?, numbers(counts)?);
    if values.len() != counts.len() {
        return Err(corrupt());
    }
    let mut h = histogram::new_histogram();
    for (v, n) in values.into_iter().zip(counts) {
        histogram::record_n(&mut h, v, n);
    }
    Ok(h)
}

/// Parses `20261122` into the unix ms of that day's end (the next midnight, UTC).
fn day_end_ms(yyyymmdd: u32) -> Option<i64> {
    let month = time::Month::try_from(u8::try_from(yyyymmdd / 100 % 100).ok()?).ok()?;
    let day = u8::try_from(yyyymmdd % 100).ok()?;
    let year = i32::try_from(yyyymmdd / 10_000).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some((date.midnight().assume_utc().unix_timestamp() + 86_400) * 1000)
}

/// Reads a partition id as `system.parts` shows it: `20261122` or `(10,20261122)`.
fn parse_partition(p: &str) -> Option<(Option<u32>, u32)> {
    match p.strip_prefix('(').and_then(|p| p.strip_suffix(')')) {
        Some(inner) => {
            let (res, day) = inner.split_once(',')?;
            Some((Some(res.trim().parse().ok()?), day.trim().parse().ok()?))
        }
        None => Some((None, p.trim().parse().ok()?)),
    }
}

impl ClickHouseStore {
    /// Connects, creates the database and tables that are missing, and checks (or records) the
    /// schema version. Fails with a retryable [`StoreError::Backend`] when ClickHouse is down.
    pub fn open(config: &ClickHouseConfig, credentials: Credentials) -> Result<Self, StoreError> {
        let client = Client::new(
            Duration::from_millis(config.timeout_ms),
            credentials.user,
            credentials.password,
        )?;
        let url = config.url.trim_end_matches('/').to_owned();
        let shards = if config.cluster.is_some() {
            config
                .shard_urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect()
        } else {
            vec![url.clone()]
        };
        let mut store = Self {
            client,
            url,
            shards,
            db: config.database.clone(),
            sharded: config.cluster.is_some(),
            claim_settle: Duration::from_millis(config.claim_settle_ms),
            server_version: (0, 0),
        };
        let version = store.select(&store.url, "SELECT version()")?;
        store.server_version = rows(&version)
            .next()
            .and_then(|r| r.string(0).ok())
            .and_then(|v| {
                let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
                Some((parts.next()??, parts.next()??))
            })
            .unwrap_or((0, 0));
        store.create_schema(config.cluster.as_deref())?;
        Ok(store)
    }

    /// The server's `(major, minor)` version.
    pub fn server_version(&self) -> (u32, u32) {
        self.server_version
    }

    /// Whether tables get a `TTL` (ClickHouse 19.6 and later).
    fn has_ttl(&self) -> bool {
        self.server_version >= (19, 6)
    }

    fn create_schema(&self, cluster: Option<&str>) -> Result<(), StoreError> {
        let db = &self.db;
        for shard in &self.shards {
            self.exec(shard, &format!("CREATE DATABASE IF NOT EXISTS {db}"))?;
            for (name, columns, partition, order) in DATA_TABLES {
                let local = if self.sharded {
                    format!("{name}_local")
                } else {
                    name.to_owned()
                };
                self.exec(
                    shard,
                    &format!(
                        "CREATE TABLE IF NOT EXISTS {db}.{local} ({columns})
                         ENGINE = MergeTree PARTITION BY {partition} ORDER BY {order}"
                    ),
                )?;
            }
        }
        self.exec(&self.url, &format!("CREATE DATABASE IF NOT EXISTS {db}"))?;
        if let Some(cluster) = cluster {
            for (name, columns, _, _) in DATA_TABLES {
                self.exec(
                    &self.url,
                    &format!(
                        "CREATE TABLE IF NOT EXISTS {db}.{name} ({columns})
                         ENGINE = Distributed({cluster}, {db}, {name}_local, rand())"
                    ),
                )?;
            }
        }
        for (name, columns, order) in META_TABLES {
            self.exec(
                &self.url,
                &format!(
                    "CREATE TABLE IF NOT EXISTS {db}.{name} ({columns})
                     ENGINE = MergeTree ORDER BY {order}"
                ),
            )?;
        }
        let found = self.select(
            &self.url,
            &format!(
                "SELECT max(toInt64(value)) FROM {db}.meta WHERE key = 'schema_version'
                 HAVING count() > 0"
            ),
        )?;
        let version: Option<i64> = rows(&found).next().map(|r| r.num(0)).transpose()?;
        match version {
            None => self.set_schema_version()?,
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) if (1..SCHEMA_VERSION).contains(&v) => {
                for statement in MIGRATIONS.iter().skip(usize::try_from(v - 1).unwrap_or(0)) {
                    self.exec(&self.url, &statement.replace("{db}", db))?;
                }
                self.set_schema_version()?;
            }
            Some(v) => {
                return Err(StoreError::Corrupt(format!(
                    "clickhouse database {db} has schema version {v}; this collector reads \
                     {SCHEMA_VERSION}"
                )));
            }
        }
        Ok(())
    }

    fn set_schema_version(&self) -> Result<(), StoreError> {
        let mut r = Rows::default();
        r.str("schema_version").num(SCHEMA_VERSION).num(now_ns());
        r.end();
        self.insert("meta", "key, value, written_ns", r)
    }

    /// Sets a `TTL` on the data tables with the retention horizons (servers from 19.6); rows
    /// past it are dropped by ClickHouse's merges, partitions by [`Store::enforce_retention`].
    pub fn set_ttl(&self, ages: &RetentionAges) -> Result<bool, StoreError> {
        if !self.has_ttl() {
            return Ok(false);
        }
        let db = &self.db;
        for shard in &self.shards {
            for (name, _, _, _) in DATA_TABLES {
                let table = if self.sharded {
                    format!("{name}_local")
                } else {
                    name.to_owned()
                };
                let ttl = match name {
                    "histograms" | "breakdown" => format!(
                        "toDateTime(intDiv(window_start_ms, 1000) + if(resolution_s = {}, {}, {}))",
                        ages.raw_resolution_s, ages.raw_s, ages.rollup_s
                    ),
                    _ => format!("toDateTime(intDiv(end_ns, 1000000000) + {})", ages.raw_s),
                };
                self.exec(shard, &format!("ALTER TABLE {db}.{table} MODIFY TTL {ttl}"))?;
            }
        }
        Ok(true)
    }

    pub(super) fn db(&self) -> &str {
        &self.db
    }

    /// Runs a statement that returns nothing.
    pub(super) fn exec(&self, at: &str, sql: &str) -> Result<(), StoreError> {
        self.client
            .post(at, None, sql.as_bytes().to_vec())
            .map(|_| ())
    }

    /// Runs a query at `at`; returns the TabSeparated body.
    pub(super) fn select(&self, at: &str, sql: &str) -> Result<Vec<u8>, StoreError> {
        self.client
            .post(at, None, format!("{sql} FORMAT TabSeparated").into_bytes())
    }

    /// Runs a query on the node at `url`.
    pub(super) fn query(&self, sql: &str) -> Result<Vec<u8>, StoreError> {
        self.select(&self.url, sql)
    }

    /// Inserts TabSeparated rows into `table` of the database (on the node at `url`).
    pub(super) fn insert(&self, table: &str, columns: &str, rows: Rows) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO {}.{table} ({columns}) FORMAT TabSeparated",
            self.db
        );
        self.client
            .post(&self.url, Some(&sql), rows.into_body())
            .map(|_| ())
    }

    /// Deletes rows of a small table and waits (bounded) for the mutation to finish, so the
    /// next read does not see them.
    pub(super) fn delete_where(&self, table: &str, condition: &str) -> Result<(), StoreError> {
        let db = &self.db;
        self.exec(
            &self.url,
            &format!("ALTER TABLE {db}.{table} DELETE WHERE {condition}"),
        )?;
        let deadline = std::time::Instant::now() + MUTATION_WAIT;
        loop {
            let pending = self.query(&format!(
                "SELECT count() FROM system.mutations
                 WHERE database = {} AND table = {} AND is_done = 0",
                lit(db),
                lit(table)
            ))?;
            let n: u64 = rows(&pending).next().map_or(Ok(0), |r| r.num(0))?;
            if n == 0 {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(StoreError::Backend(format!(
                    "clickhouse: deleting from {table} did not finish within {} s",
                    MUTATION_WAIT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Drops the partitions of a data table (on every shard) whose day ended before the
    /// cut-off of their resolution; returns the rows dropped.
    fn drop_partitions(
        &self,
        name: &str,
        cutoff_ms: impl Fn(Option<u32>) -> Option<i64>,
    ) -> Result<u64, StoreError> {
        let db = &self.db;
        let table = if self.sharded {
            format!("{name}_local")
        } else {
            name.to_owned()
        };
        let mut dropped = 0;
        for shard in &self.shards {
            let parts = self.select(
                shard,
                &format!(
                    "SELECT partition, sum(rows) FROM system.parts
                     WHERE database = {} AND table = {} AND active GROUP BY partition",
                    lit(db),
                    lit(&table)
                ),
            )?;
            for r in rows(&parts) {
                let partition = r.string(0)?;
                let Some((resolution, day)) = parse_partition(&partition) else {
                    continue;
                };
                let (Some(cutoff), Some(end)) = (cutoff_ms(resolution), day_end_ms(day)) else {
                    continue;
                };
                if end <= cutoff {
                    self.exec(
                        shard,
                        &format!("ALTER TABLE {db}.{table} DROP PARTITION {partition}"),
                    )?;
                    dropped += r.num::<u64>(1)?;
                }
            }
        }
        Ok(dropped)
    }
}

/// Retention horizons as ages, for a table `TTL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionAges {
    /// Raw window width, s.
    pub raw_resolution_s: u32,
    /// Raw windows, transaction index and spans are kept this long, s.
    pub raw_s: i64,
    /// Rollups are kept this long, s.
    pub rollup_s: i64,
}

impl Store for ClickHouseStore {
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let mut series = Rows::default();
        for s in &batch.series {
            series
                .num(s.id.0)
                .str(&s.key.service)
                .str(&s.key.environment)
                .str(&s.key.version)
                .str(&s.key.transaction)
                .num(s.first_seen_ms);
            series.end();
        }
        // Series first: a reader that finds a histogram row finds its series.
        self.insert(
            "series",
            "id, service, environment, version, txn, first_seen_ms",
            series,
        )?;
        let mut hist = Rows::default();
        for h in &batch.histograms {
            let s = &h.stats;
            let (values, counts) = bucket_arrays(&s.histogram);
            let (err_values, err_counts) = bucket_arrays(&s.error_histogram);
            hist.num(h.series.0)
                .num(h.resolution_s)
                .num(h.window_start_ms)
                .num(s.count)
                .num(s.errors)
                .num(s.sum_us)
                .num(s.max_us)
                .str(&values)
                .str(&counts)
                .str(&err_values)
                .str(&err_counts);
            hist.end();
        }
        self.insert(
            "histograms",
            "series_id, resolution_s, window_start_ms, count, errors, sum_us, max_us, bucket_us,
             bucket_counts, err_bucket_us, err_bucket_counts",
            hist,
        )?;
        let mut breakdown = Rows::default();
        for b in &batch.breakdown {
            breakdown
                .num(b.series.0)
                .num(b.resolution_s)
                .num(b.window_start_ms)
                .str(&b.operation)
                .str(b.kind.as_str())
                .num(b.count)
                .num(b.total_us)
                .num(b.self_us);
            breakdown.end();
        }
        self.insert(
            "breakdown",
            "series_id, resolution_s, window_start_ms, operation, kind, count, total_us, self_us",
            breakdown,
        )?;
        let mut txns = Rows::default();
        for t in &batch.transactions {
            txns.num(t.series.0)
                .num(t.end_ns)
                .num(t.duration_us)
                .num(u8::from(t.error))
                .bytes(&t.trace_id)
                .bytes(&t.span_id);
            txns.end();
        }
        self.insert(
            "transactions",
            "series_id, end_ns, duration_us, error, trace_id, span_id",
            txns,
        )?;
        let mut spans = Rows::default();
        for s in &batch.spans {
            let attributes = serde_json::to_string(&s.attributes.to_json())
                .map_err(|e| StoreError::Backend(format!("cannot encode attributes: {e}")))?;
            spans.bytes(&s.trace_id).bytes(&s.span_id);
            match &s.parent_span_id {
                Some(p) => spans.bytes(p),
                None => spans.opt_str(None),
            };
            spans
                .str(&s.service)
                .str(&s.environment)
                .str(&s.version)
                .str(&s.name)
                .str(s.kind.as_str())
                .num(s.start_ns)
                .num(s.end_ns)
                .num(u8::from(s.error))
                .opt_str(s.transaction.as_deref())
                .str(&attributes);
            spans.end();
        }
        self.insert(
            "spans",
            "trace_id, span_id, parent_span_id, service, environment, version, name, kind,
             start_ns, end_ns, error, txn, attributes",
            spans,
        )
    }

    fn series(&self, filter: &SeriesFilter) -> Result<Vec<SeriesRecord>, StoreError> {
        let mut conditions = vec!["1".to_owned()];
        for (column, value) in [
            ("service", &filter.service),
            ("environment", &filter.environment),
            ("version", &filter.version),
            ("txn", &filter.transaction),
        ] {
            if let Some(v) = value {
                conditions.push(format!("{column} = {}", lit(v)));
            }
        }
        let body = self.query(&format!(
            "SELECT id, any(service) AS s, any(environment) AS e, any(version) AS v,
                    any(txn) AS t, min(first_seen_ms)
             FROM {}.series WHERE {} GROUP BY id ORDER BY s, e, v, t",
            self.db,
            conditions.join(" AND ")
        ))?;
        rows(&body)
            .map(|r| {
                Ok(SeriesRecord {
                    id: SeriesId(r.num(0)?),
                    key: SeriesKey {
                        service: r.string(1)?,
                        environment: r.string(2)?,
                        version: r.string(3)?,
                        transaction: r.string(4)?,
                    },
                    first_seen_ms: r.num(5)?,
                })
            })
            .collect()
    }

    fn histograms(
        &self,
        series: &[SeriesId],
        resolution_s: u32,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<HistogramDelta>, StoreError> {
        let mut out = Vec::new();
        for chunk in series.chunks(MAX_SERIES_PER_QUERY) {
            // ClickHouse merges the deltas of each window: one row per window comes back.
            let body = self.query(&format!(
                "SELECT series_id, window_start_ms, sum(count), sum(errors), sum(sum_us),
                        max(max_us), sumMap(bucket_us, bucket_counts),
                        sumMap(err_bucket_us, err_bucket_counts)
                 FROM {}.histograms
                 WHERE resolution_s = {resolution_s} AND window_start_ms >= {from_ms}
                   AND window_start_ms < {to_ms} AND series_id IN ({})
                 GROUP BY series_id, window_start_ms",
                self.db,
                ids(chunk)
            ))?;
            for r in rows(&body) {
                out.push(HistogramDelta {
                    series: SeriesId(r.num(0)?),
                    resolution_s,
                    window_start_ms: r.num(1)?,
                    stats: LatencyStats {
                        count: r.num(2)?,
                        errors: r.num(3)?,
                        sum_us: r.num(4)?,
                        max_us: r.num(5)?,
                        histogram: histogram_from_sum_map(&r.string(6)?)?,
                        error_histogram: histogram_from_sum_map(&r.string(7)?)?,
                    },
                });
            }
        }
        Ok(out)
    }

    fn breakdown(
        &self,
        series: &[SeriesId],
        resolution_s: u32,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<BreakdownDelta>, StoreError> {
        let mut out = Vec::new();
        for chunk in series.chunks(MAX_SERIES_PER_QUERY) {
            let body = self.query(&format!(
                "SELECT series_id, window_start_ms, operation, kind, sum(count), sum(total_us),
                        sum(self_us)
                 FROM {}.breakdown
                 WHERE resolution_s = {resolution_s} AND window_start_ms >= {from_ms}
                   AND window_start_ms < {to_ms} AND series_id IN ({})
                 GROUP BY series_id, window_start_ms, operation, kind",
                self.db,
                ids(chunk)
            ))?;
            for r in rows(&body) {
                out.push(BreakdownDelta {
                    series: SeriesId(r.num(0)?),
                    resolution_s,
                    window_start_ms: r.num(1)?,
                    operation: r.string(2)?,
                    kind: SpanKind::parse(&r.string(3)?).unwrap_or(SpanKind::Unspecified),
                    count: r.num(4)?,
                    total_us: r.num(5)?,
                    self_us: r.num(6)?,
                });
            }
        }
        Ok(out)
    }

    fn transactions(&self, query: &TransactionQuery) -> Result<Vec<TransactionRecord>, StoreError> {
        if query.series.is_empty() || query.limit == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for chunk in query.series.chunks(MAX_SERIES_PER_QUERY) {
            let mut conditions = vec![
                format!("end_ns >= {} AND end_ns < {}", query.from_ns, query.to_ns),
                format!("series_id IN ({})", ids(chunk)),
            ];
            if let Some(min) = query.min_us {
                conditions.push(format!("duration_us >= {min}"));
            }
            if let Some(max) = query.max_us {
                conditions.push(format!("duration_us <= {max}"));
            }
            if let Some(e) = query.error {
                conditions.push(format!("error = {}", u8::from(e)));
            }
            let body = self.query(&format!(
                "SELECT series_id, end_ns, duration_us, error, trace_id, span_id
                 FROM {}.transactions WHERE {} ORDER BY end_ns DESC LIMIT {}",
                self.db,
                conditions.join(" AND "),
                query.limit
            ))?;
            for r in rows(&body) {
                out.push(TransactionRecord {
                    series: SeriesId(r.num(0)?),
                    end_ns: r.num(1)?,
                    duration_us: r.num(2)?,
                    error: r.num::<u8>(3)? != 0,
                    trace_id: fixed(&r.bytes(4)?),
                    span_id: fixed(&r.bytes(5)?),
                });
            }
        }
        out.sort_by_key(|t| std::cmp::Reverse(t.end_ns));
        out.truncate(query.limit);
        Ok(out)
    }

    fn trace(&self, trace_id: &TraceId) -> Result<Vec<Span>, StoreError> {
        let body = self.query(&format!(
            "SELECT trace_id, span_id, parent_span_id, service, environment, version, name, kind,
                    start_ns, end_ns, error, txn, attributes
             FROM {}.spans WHERE trace_id = {} LIMIT 1 BY span_id",
            self.db,
            bytes_lit(trace_id)
        ))?;
        let mut out = Vec::new();
        // `LIMIT 1 BY` runs per shard too; copies on two shards are dropped here.
        let mut seen = std::collections::BTreeSet::new();
        for r in rows(&body) {
            let span_id = fixed(&r.bytes(1)?);
            if !seen.insert(span_id) {
                continue;
            }
            let attributes = match serde_json::from_str(&r.string(12)?) {
                Ok(serde_json::Value::Object(map)) => Attributes::Json(map),
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "span {} has unreadable attributes",
                        crate::model::hex(&span_id)
                    )));
                }
            };
            let parent = if r.is_null(2)? {
                None
            } else {
                Some(fixed(&r.bytes(2)?))
            };
            out.push(Span {
                trace_id: fixed(&r.bytes(0)?),
                span_id,
                parent_span_id: parent,
                service: r.string(3)?.into(),
                environment: r.string(4)?.into(),
                version: r.string(5)?.into(),
                name: r.string(6)?.into(),
                kind: SpanKind::parse(&r.string(7)?).unwrap_or(SpanKind::Unspecified),
                start_ns: r.num(8)?,
                end_ns: r.num(9)?,
                error: r.num::<u8>(10)? != 0,
                transaction: r.opt_string(11)?.map(Into::into),
                attributes,
                reported_self_ns: None,
                unsent_children: Vec::new(),
            });
        }
        Ok(out)
    }

    fn enforce_retention(&self, cutoffs: &RetentionCutoffs) -> Result<RetentionReport, StoreError> {
        let by_resolution = |resolution: Option<u32>| match resolution {
            Some(r) if r == cutoffs.raw_resolution_s => Some(cutoffs.raw_before_ms),
            Some(r) if r == cutoffs.rollup_resolution_s => Some(cutoffs.rollup_before_ms),
            _ => None,
        };
        let raw = |_: Option<u32>| Some(cutoffs.raw_before_ms);
        Ok(RetentionReport {
            histograms: self.drop_partitions("histograms", by_resolution)?,
            breakdown: self.drop_partitions("breakdown", by_resolution)?,
            transactions: self.drop_partitions("transactions", raw)?,
            spans: self.drop_partitions("spans", raw)?,
            deploys: super::clickhouse_meta::deploys_retention(self, cutoffs.deploys_before_ms())?,
            alerts: super::clickhouse_meta::alerts_retention(self, cutoffs.deploys_before_ms())?,
        })
    }

    fn record_deploy(&self, deploy: &Deploy) -> Result<Deploy, StoreError> {
        super::clickhouse_meta::record_deploy(self, deploy)
    }

    fn deploys(&self, query: &DeployQuery) -> Result<Vec<Deploy>, StoreError> {
        super::clickhouse_meta::deploys(self, query)
    }

    fn deploy(&self, id: &str) -> Result<Option<Deploy>, StoreError> {
        super::clickhouse_meta::deploy(self, id)
    }

    fn uncompared_deploys(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Deploy>, StoreError> {
        super::clickhouse_meta::uncompared(self, from_ms, to_ms)
    }

    fn save_comparison(&self, deploy_id: &str, report_json: &str) -> Result<String, StoreError> {
        super::clickhouse_meta::save_comparison(self, deploy_id, report_json)
    }

    fn comparison(&self, deploy_id: &str) -> Result<Option<String>, StoreError> {
        super::clickhouse_meta::comparison(self, deploy_id)
    }

    fn alert(&self, key: &str) -> Result<Option<AlertRecord>, StoreError> {
        super::clickhouse_meta::alert(self, key)
    }

    fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertRecord>, StoreError> {
        super::clickhouse_meta::alerts(self, query)
    }

    fn save_alert(&self, record: &AlertRecord, queue: &[OutboxEntry]) -> Result<(), StoreError> {
        super::clickhouse_meta::save_alert(self, record, queue)
    }

    fn due_deliveries(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        super::clickhouse_meta::due(self, now_ms, limit)
    }

    fn update_delivery(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        super::clickhouse_meta::update_delivery(self, entry)
    }

    fn deliveries(&self, alert_key: &str) -> Result<Vec<OutboxEntry>, StoreError> {
        super::clickhouse_meta::deliveries(self, alert_key)
    }

    fn claim(&self, keys: &[String], holder: &str, lease_ms: i64) -> Result<Vec<bool>, StoreError> {
        super::clickhouse_meta::claim(self, keys, holder, lease_ms)
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.query("SELECT 1").map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_arrays_round_trip_exactly() {
        let mut stats = LatencyStats::default();
        for us in [1, 7, 999, 1_000, 1_234, 50_000, 3_600_000_000] {
            stats.record(us, false);
            stats.record(us, false);
        }
        let (values, counts) = bucket_arrays(&stats.histogram);
        let back = histogram_from_sum_map(&format!("({values},{counts})")).unwrap();
        assert_eq!(back, stats.histogram);
        let empty = histogram_from_sum_map("([],[])").unwrap();
        assert_eq!(empty.len(), 0);
        assert!(histogram_from_sum_map("([1],[])").is_err());
    }

    #[test]
    fn partitions_and_days_are_read() {
        assert_eq!(
            parse_partition("(10,20261122)"),
            Some((Some(10), 20_261_122))
        );
        assert_eq!(parse_partition("20261122"), Some((None, 20_261_122)));
        assert_eq!(parse_partition("junk"), None);
        // 1970-01-02 ends at the start of 1970-01-03.
        assert_eq!(day_end_ms(19_700_102), Some(2 * 86_400_000));
        assert_eq!(day_end_ms(19_701_399), None);
    }
}
