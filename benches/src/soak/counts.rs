//! What reached the collector, read two ways: the transaction counts a user sees through the
//! API (`GET /api/v1/latency`, from the stored histograms), and the stored transaction index
//! (each transaction with its trace and span id) read from the SQLite file after the collector
//! stopped, which tells distinct transactions from duplicates.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use headlight_collector::model::SeriesId;
use headlight_collector::store::transaction_blocks;
use serde_json::Value;

/// Records of the stored transaction index for one (service, version).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexRows {
    /// Records.
    pub rows: u64,
    /// Distinct (trace id, span id): each transaction once.
    pub distinct: u64,
}

impl IndexRows {
    /// Rows beyond the first for the same transaction (an at-least-once replay or retry).
    pub fn duplicates(self) -> u64 {
        self.rows - self.distinct
    }
}

impl std::ops::AddAssign for IndexRows {
    fn add_assign(&mut self, other: Self) {
        self.rows += other.rows;
        self.distinct += other.distinct;
    }
}

/// A transaction: its trace id and span id.
type TransactionId = ([u8; 16], [u8; 8]);

/// Reads the transaction index of the store in `data_dir` (the collector must be stopped),
/// per (service, version): its blocks (`transaction_blocks`), each record decoded.
pub fn index_rows(data_dir: &Path) -> anyhow::Result<HashMap<(String, String), IndexRows>> {
    let path = data_dir.join("headlight.db");
    let conn = rusqlite::Connection::open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut rows: HashMap<(String, String), u64> = HashMap::new();
    let mut distinct: HashMap<(String, String), HashSet<TransactionId>> = HashMap::new();
    let mut statement = conn.prepare(
        "SELECT s.service, s.version, b.series_id, b.records FROM transaction_blocks b \
         JOIN series s ON s.id = b.series_id",
    )?;
    let mut blocks = statement.query([])?;
    while let Some(block) = blocks.next()? {
        let key = (block.get::<_, String>(0)?, block.get::<_, String>(1)?);
        let series = SeriesId(block.get(2)?);
        let records = transaction_blocks::decode(series, block.get_ref(3)?.as_blob()?)?;
        let seen = distinct.entry(key.clone()).or_default();
        let n = rows.entry(key).or_default();
        for record in records {
            *n += 1;
            seen.insert((record.trace_id, record.span_id));
        }
    }
    Ok(rows
        .into_iter()
        .map(|(key, rows)| {
            let distinct = distinct.get(&key).map_or(0, |d| d.len() as u64);
            (key, IndexRows { rows, distinct })
        })
        .collect())
}

/// A small client for the collector's HTTP API.
#[derive(Debug)]
pub struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    /// A client for the API at `base` (`http://host:port`).
    pub fn new(base: String) -> anyhow::Result<Self> {
        Ok(Self {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    fn get(&self, runtime: &tokio::runtime::Runtime, path: &str) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        runtime.block_on(async {
            let response = self
                .client
                .get(&url)
                .send()
                .await
                .with_context(|| format!("GET {url}"))?;
            let status = response.status();
            let body = response.text().await?;
            if !status.is_success() {
                bail!("GET {url}: {status}: {body}");
            }
            Ok(body)
        })
    }

    /// Transactions stored for `service` (and `version`, if given) ending within
    /// `from_ms..to_ms`: the `summary.count` of `GET /api/v1/latency`.
    pub fn transactions(
        &self,
        runtime: &tokio::runtime::Runtime,
        service: &str,
        version: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> anyhow::Result<u64> {
        let version = version.map_or(String::new(), |v| format!("&version={v}"));
        let body = self.get(
            runtime,
            &format!("/api/v1/latency?service={service}{version}&from={from_ms}&to={to_ms}"),
        )?;
        let value: Value = serde_json::from_str(&body)?;
        value["summary"]["count"]
            .as_u64()
            .with_context(|| format!("no summary.count in {body}"))
    }

    /// One unlabelled sample of `/metrics`.
    pub fn metric(&self, runtime: &tokio::runtime::Runtime, name: &str) -> anyhow::Result<f64> {
        let body = self.get(runtime, "/metrics")?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .with_context(|| format!("no {name} in /metrics"))
    }

    /// Waits (at most `timeout`) until the collector holds nothing unwritten: no transaction
    /// waiting for the store, no child span waiting for its transaction, twice in a row one
    /// flush apart. Returns whether it settled.
    pub fn settle(&self, runtime: &tokio::runtime::Runtime, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut quiet = 0;
        while Instant::now() < deadline {
            let idle = [
                "headlight_unflushed_transactions",
                "headlight_pending_child_spans",
            ]
            .iter()
            .all(|m| self.metric(runtime, m).is_ok_and(|v| v == 0.0));
            quiet = if idle { quiet + 1 } else { 0 };
            if quiet >= 2 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1500));
        }
        false
    }
}
