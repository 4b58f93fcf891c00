//! The collector's configuration: one TOML file, typed, with defaults.
//!
//! Unknown keys are refused (`deny_unknown_fields`) and every value is checked by
//! [`Config::validate`] before anything starts, so a typo never silently falls back to a default.
//! Durations carry their unit in the key (`_ms`, `_s`, `_h`, `_days`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration was refused; the message names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type…).
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key.
        message: String,
    },
    /// A value is out of its allowed range.
    #[error("invalid config value `{key}`: {reason}")]
    Invalid {
        /// The dotted key, e.g. `limits.max_request_bytes`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The whole collector configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded store keeps its files; default `./headlight-data`.
    pub data_dir: PathBuf,
    /// The listening addresses.
    pub listen: ListenConfig,
    /// Windows, retention and the series cap.
    pub aggregation: AggregationConfig,
    /// Which spans are stored beside the exact counts.
    pub spans: SpanRetentionConfig,
    /// Ingest limits and validation.
    pub limits: LimitsConfig,
    /// Query defaults.
    pub query: QueryConfig,
    /// Deploy comparisons: windows and thresholds.
    pub compare: CompareConfig,
    /// Alert rules and notification channels.
    pub alerts: crate::alert::rules::AlertsConfig,
    /// `GET /metrics`.
    pub metrics: MetricsConfig,
    /// Which store the collector uses.
    pub storage: StorageConfig,
    /// What survives a crash.
    pub durability: DurabilityConfig,
    /// Optional bearer tokens for ingest, the API and the UI.
    pub auth: AuthConfig,
    /// TLS on all three listeners (`[tls]`); absent (the default): plaintext.
    pub tls: Option<TlsConfig>,
}

/// TLS for the three listeners (`[tls]`): OTLP/gRPC, OTLP/HTTP and the API/UI all serve the same
/// certificate. The files are PEM and read once at start-up; the collector refuses to start
/// with a message naming the key and the file if one is missing, unreadable or invalid, or if
/// the key does not belong to the certificate.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM, leaf first), e.g. `/etc/headlight/tls.crt`.
    pub cert_file: PathBuf,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to. When set, every listener
    /// requires a client certificate signed by one of them (mutual TLS); default unset: no
    /// client certificate is asked for.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// What survives a crash (`[durability]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DurabilityConfig {
    /// Log every accepted export request to `data_dir/wal/` and sync it to disk before
    /// answering, so what was acknowledged survives `kill -9` (ingest/wal.rs); default true.
    /// False: a crash loses what arrived since the last flush.
    pub wal: bool,
}

impl Default for DurabilityConfig {
    fn default() -> Self {
        Self { wal: true }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("headlight-data"),
            listen: ListenConfig::default(),
            aggregation: AggregationConfig::default(),
            spans: SpanRetentionConfig::default(),
            limits: LimitsConfig::default(),
            query: QueryConfig::default(),
            compare: CompareConfig::default(),
            alerts: crate::alert::rules::AlertsConfig::default(),
            metrics: MetricsConfig::default(),
            storage: StorageConfig::default(),
            durability: DurabilityConfig::default(),
            auth: AuthConfig::default(),
            tls: None,
        }
    }
}

/// Optional bearer-token authentication (`[auth]`). The tokens themselves are read from the
/// environment variables named here, never from this file; a variable left unset turns its
/// check off.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The variable holding the token OTLP exporters send on both OTLP listeners (gRPC
    /// `authorization` metadata, HTTP `Authorization` header); default
    /// `HEADLIGHT_INGEST_TOKEN`.
    pub ingest_token_env: String,
    /// The variable holding the token of the API, `/metrics` and the UI login; default
    /// `HEADLIGHT_API_TOKEN`.
    pub api_token_env: String,
    /// Lets a token protect a non-loopback listener although it travels in plaintext (no
    /// `[tls]`); default false: the collector refuses to start instead.
    pub allow_plaintext: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            ingest_token_env: "HEADLIGHT_INGEST_TOKEN".to_owned(),
            api_token_env: "HEADLIGHT_API_TOKEN".to_owned(),
            allow_plaintext: false,
        }
    }
}

/// Which store the collector uses (`[storage]`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `"sqlite"` (the default: one file in `data_dir`) or `"clickhouse"` (many collectors,
    /// one store; see `docs/clickhouse.md`).
    pub backend: Backend,
    /// The ClickHouse connection, used when `backend = "clickhouse"`. The user and password
    /// come from `HEADLIGHT_CLICKHOUSE_USER` and `HEADLIGHT_CLICKHOUSE_PASSWORD`.
    pub clickhouse: ClickHouseConfig,
}

/// A storage backend.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded SQLite store.
    #[default]
    Sqlite,
    /// A ClickHouse server or cluster over HTTP.
    Clickhouse,
}

/// The ClickHouse connection (`[storage.clickhouse]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// The HTTP interface every collector talks to; default `http://127.0.0.1:8123`.
    pub url: String,
    /// The database, created if missing (`[A-Za-z0-9_]+`); default `headlight`.
    pub database: String,
    /// Timeout of one request, in ms; default 10000.
    pub timeout_ms: u64,
    /// How long a claim waits before reading back who won, in ms: must exceed an insert's
    /// latency plus the collectors' clock skew; default 500.
    pub claim_settle_ms: u64,
    /// A `remote_servers` cluster of the server at `url`: when set, the data tables are
    /// `Distributed` over it; default none.
    pub cluster: Option<String>,
    /// With `cluster`: the HTTP interface of every shard, where the `*_local` tables are
    /// created and retention drops partitions.
    pub shard_urls: Vec<String>,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".to_owned(),
            database: "headlight".to_owned(),
            timeout_ms: 10_000,
            claim_settle_ms: 500,
            cluster: None,
            shard_urls: Vec::new(),
        }
    }
}

impl ClickHouseConfig {
    /// Checks the values; the error names the key.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        };
        let identifier =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let http = |u: &str| u.starts_with("http://") && u.len() > "http://".len();
        if !http(&self.url) {
            return Err(invalid(
                "storage.clickhouse.url",
                "must be an http:// URL (TLS is not supported; use loopback or a local proxy)",
            ));
        }
        if !identifier(&self.database) {
            return Err(invalid(
                "storage.clickhouse.database",
                "must be letters, digits and underscores",
            ));
        }
        if !(100..=600_000).contains(&self.timeout_ms) {
            return Err(invalid(
                "storage.clickhouse.timeout_ms",
                "must be within 100..=600000",
            ));
        }
        if !(10..=60_000).contains(&self.claim_settle_ms) {
            return Err(invalid(
                "storage.clickhouse.claim_settle_ms",
                "must be within 10..=60000",
            ));
        }
        match &self.cluster {
            Some(c) if !identifier(c) => Err(invalid(
                "storage.clickhouse.cluster",
                "must be letters, digits and underscores",
            )),
            Some(_) if self.shard_urls.is_empty() || !self.shard_urls.iter().all(|u| http(u)) => {
                Err(invalid(
                    "storage.clickhouse.shard_urls",
                    "must list every shard's http:// URL when cluster is set",
                ))
            }
            None if !self.shard_urls.is_empty() => Err(invalid(
                "storage.clickhouse.shard_urls",
                "is only read with storage.clickhouse.cluster",
            )),
            _ => Ok(()),
        }
    }
}

/// Listening addresses. Port 0 picks a free port (the bound address is logged).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// OTLP/gRPC (`TraceService/Export`, `DeployService`); default `127.0.0.1:4317`.
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP (`POST /v1/traces`); default `127.0.0.1:4318`.
    pub otlp_http: SocketAddr,
    /// The JSON API and UI; default `127.0.0.1:8080`.
    pub http: SocketAddr,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            otlp_grpc: SocketAddr::from(([127, 0, 0, 1], 4317)),
            otlp_http: SocketAddr::from(([127, 0, 0, 1], 4318)),
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

/// Histogram windows, retention and cardinality.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AggregationConfig {
    /// Width of a raw histogram window in seconds; default 10.
    pub window_s: u32,
    /// Width of a rollup window in seconds, a multiple of `window_s`; default 60.
    pub rollup_window_s: u32,
    /// How long raw windows, the transaction index and stored spans are kept; default 24 h.
    pub raw_retention_h: u32,
    /// How long rollup windows are kept; default 30 days.
    pub rollup_retention_days: u32,
    /// Distinct transaction names per service before new ones go to the series `other`;
    /// default 1000.
    pub max_transactions_per_service: u32,
    /// How often aggregated data is written to the store, in ms; default 1000.
    pub flush_interval_ms: u64,
    /// How long a child span waits for its transaction span to arrive, in ms; default 15000.
    pub orphan_wait_ms: u64,
    /// Most child spans held while waiting for their transaction; default 100000.
    pub max_pending_spans: usize,
}

impl Default for AggregationConfig {
    fn default() -> Self {
        Self {
            window_s: 10,
            rollup_window_s: 60,
            raw_retention_h: 24,
            rollup_retention_days: 30,
            max_transactions_per_service: 1000,
            flush_interval_ms: 1000,
            orphan_wait_ms: 15_000,
            max_pending_spans: 100_000,
        }
    }
}

impl AggregationConfig {
    /// Raw window width in ms.
    pub fn window_ms(&self) -> i64 {
        i64::from(self.window_s) * 1000
    }

    /// Rollup window width in ms.
    pub fn rollup_window_ms(&self) -> i64 {
        i64::from(self.rollup_window_s) * 1000
    }

    /// Raw retention in ms.
    pub fn raw_retention_ms(&self) -> i64 {
        i64::from(self.raw_retention_h) * 3_600_000
    }

    /// Rollup retention in ms.
    pub fn rollup_retention_ms(&self) -> i64 {
        i64::from(self.rollup_retention_days) * 86_400_000
    }
}

/// Which spans are stored (design.md §3): every span of an error transaction, of a transaction
/// slower than its series' running p95, and of a sample of the rest. All are counted.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SpanRetentionConfig {
    /// Transactions per series and raw window whose spans are stored whatever they look like;
    /// default 5.
    pub sample_per_window: u32,
    /// Store spans of transactions slower than the series' running p95; default true.
    pub keep_slow: bool,
    /// Store spans of error transactions; default true.
    pub keep_errors: bool,
}

impl Default for SpanRetentionConfig {
    fn default() -> Self {
        Self {
            sample_per_window: 5,
            keep_slow: true,
            keep_errors: true,
        }
    }
}

/// Limits on what one request may carry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body, after decompression, in bytes; default 8 MiB.
    pub max_request_bytes: usize,
    /// Longest accepted span, in ms; longer spans are rejected as absurd; default 1 h (the
    /// histograms' range).
    pub max_span_duration_ms: u64,
    /// How far in the future a span may end, in ms (clock skew); default 10 min.
    pub max_future_skew_ms: u64,
    /// Most spans in one export request; a request with more is refused as too large
    /// (`RESOURCE_EXHAUSTED`, HTTP 413) and nothing of it is accepted; default 100 000.
    pub max_spans_per_request: usize,
    /// Concurrent requests (HTTP/2 streams) per OTLP/gRPC connection, advertised to clients in
    /// the connection's settings; default 16.
    pub max_streams_per_connection: u32,
    /// Most attributes kept per stored span; extra ones are dropped; default 128.
    pub max_attributes_per_span: usize,
    /// Longest attribute value kept, in bytes; longer ones are truncated; default 4096.
    pub max_attribute_value_bytes: usize,
    /// Export requests converted and aggregated at once; more wait up to 250 ms, then are
    /// refused (`UNAVAILABLE` + `RetryInfo`, HTTP 503 + `Retry-After`); default 8.
    pub max_concurrent_exports: usize,
    /// Spans accepted but not yet written to the store above which requests are refused the
    /// same way (the store is behind or failing); default 500 000.
    pub max_buffered_spans: u64,
    /// Resident memory of the process, MiB, above which requests are refused the same way;
    /// 0 = no limit; default 1024.
    pub memory_limit_mib: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 8 * 1024 * 1024,
            max_span_duration_ms: 3_600_000,
            max_future_skew_ms: 600_000,
            max_spans_per_request: 100_000,
            max_streams_per_connection: 16,
            max_attributes_per_span: 128,
            max_attribute_value_bytes: 4096,
            max_concurrent_exports: 8,
            max_buffered_spans: 500_000,
            memory_limit_mib: 1024,
        }
    }
}

/// Query defaults.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Apdex threshold T in ms when a query gives none; default 500.
    pub apdex_t_ms: f64,
    /// Most rows `GET /api/v1/transactions` returns; default 10000.
    pub max_transactions: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            apdex_t_ms: 500.0,
            max_transactions: 10_000,
        }
    }
}

/// `GET /metrics` (Prometheus).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Most series with their own RED metrics; the transactions of further series are counted
    /// in one line labelled `overflow="true"`; default 10000 (0: only that line).
    pub max_series: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { max_series: 10_000 }
    }
}

/// Deploy comparisons (design.md §5).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CompareConfig {
    /// Length of the before- and after-windows of a deploy, in seconds; default 900 (15 min).
    pub window_s: u32,
    /// Time after a deploy excluded from its after-window (restarts, cold caches), in seconds;
    /// default 120.
    pub warmup_s: u32,
    /// How long after the after-window ends the comparison waits for late data before it is
    /// computed and stored, in seconds; default 30 (covers the flush interval and children
    /// waiting for their transaction).
    pub settle_s: u32,
    /// Record a deploy marker, flagged automatic, when a service reports a `service.version`
    /// it has not reported before; default true.
    pub automatic_deploys: bool,
    /// The statistical thresholds.
    pub thresholds: crate::compare::engine::Settings,
}

impl Default for CompareConfig {
    fn default() -> Self {
        Self {
            window_s: 900,
            warmup_s: 120,
            settle_s: 30,
            automatic_deploys: true,
            thresholds: crate::compare::engine::Settings::default(),
        }
    }
}

impl CompareConfig {
    /// Window length, ms.
    pub fn window_ms(&self) -> i64 {
        i64::from(self.window_s) * 1000
    }

    /// Warm-up, ms.
    pub fn warmup_ms(&self) -> i64 {
        i64::from(self.warmup_s) * 1000
    }

    /// Settle time, ms.
    pub fn settle_ms(&self) -> i64 {
        i64::from(self.settle_s) * 1000
    }
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<inline>"),
            message: e.message().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value's range; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let a = &self.aggregation;
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        };
        if a.window_s == 0 || !86_400_u32.is_multiple_of(a.window_s) {
            return Err(invalid(
                "aggregation.window_s",
                "must divide a day evenly (e.g. 10)",
            ));
        }
        if a.rollup_window_s < a.window_s || !a.rollup_window_s.is_multiple_of(a.window_s) {
            return Err(invalid(
                "aggregation.rollup_window_s",
                "must be a multiple of aggregation.window_s",
            ));
        }
        if !86_400_u32.is_multiple_of(a.rollup_window_s) {
            return Err(invalid(
                "aggregation.rollup_window_s",
                "must divide a day evenly",
            ));
        }
        if a.raw_retention_h == 0 {
            return Err(invalid("aggregation.raw_retention_h", "must be at least 1"));
        }
        if u64::from(a.rollup_retention_days) * 24 < u64::from(a.raw_retention_h) {
            return Err(invalid(
                "aggregation.rollup_retention_days",
                "must cover at least aggregation.raw_retention_h",
            ));
        }
        if a.max_transactions_per_service == 0 {
            return Err(invalid(
                "aggregation.max_transactions_per_service",
                "must be at least 1",
            ));
        }
        if !(10..=600_000).contains(&a.flush_interval_ms) {
            return Err(invalid(
                "aggregation.flush_interval_ms",
                "must be within 10..=600000",
            ));
        }
        if a.max_pending_spans == 0 {
            return Err(invalid(
                "aggregation.max_pending_spans",
                "must be at least 1",
            ));
        }
        let l = &self.limits;
        if l.max_request_bytes < 1024 {
            return Err(invalid("limits.max_request_bytes", "must be at least 1024"));
        }
        if !(1..=4096).contains(&l.max_concurrent_exports) {
            return Err(invalid(
                "limits.max_concurrent_exports",
                "must be within 1..=4096",
            ));
        }
        if l.max_buffered_spans == 0 {
            return Err(invalid("limits.max_buffered_spans", "must be at least 1"));
        }
        if l.max_spans_per_request == 0 {
            return Err(invalid(
                "limits.max_spans_per_request",
                "must be at least 1",
            ));
        }
        if !(1..=1024).contains(&l.max_streams_per_connection) {
            return Err(invalid(
                "limits.max_streams_per_connection",
                "must be within 1..=1024",
            ));
        }
        if l.memory_limit_mib != 0 && l.memory_limit_mib < 64 {
            return Err(invalid(
                "limits.memory_limit_mib",
                "must be 0 (no limit) or at least 64",
            ));
        }
        if l.max_span_duration_ms == 0 || l.max_span_duration_ms > 3_600_000 {
            return Err(invalid(
                "limits.max_span_duration_ms",
                "must be within 1..=3600000 (the histograms' range)",
            ));
        }
        if !(self.query.apdex_t_ms > 0.0 && self.query.apdex_t_ms.is_finite()) {
            return Err(invalid("query.apdex_t_ms", "must be a positive number"));
        }
        if self.query.max_transactions == 0 {
            return Err(invalid("query.max_transactions", "must be at least 1"));
        }
        let c = &self.compare;
        if c.window_s < a.window_s || c.window_s > 7 * 86_400 {
            return Err(invalid(
                "compare.window_s",
                "must be within aggregation.window_s..=604800",
            ));
        }
        if c.warmup_s > 86_400 {
            return Err(invalid("compare.warmup_s", "must be at most 86400"));
        }
        if u64::from(c.settle_s) * 1000 < a.flush_interval_ms || c.settle_s > 3600 {
            return Err(invalid(
                "compare.settle_s",
                "must cover aggregation.flush_interval_ms and be at most 3600",
            ));
        }
        if let Err(reason) = c.thresholds.validate() {
            return Err(ConfigError::Invalid {
                key: "compare.thresholds",
                reason,
            });
        }
        let variable =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !variable(&self.auth.ingest_token_env) {
            return Err(invalid(
                "auth.ingest_token_env",
                "must be an environment variable name (letters, digits, underscores)",
            ));
        }
        if !variable(&self.auth.api_token_env) {
            return Err(invalid(
                "auth.api_token_env",
                "must be an environment variable name (letters, digits, underscores)",
            ));
        }
        if self.storage.backend == Backend::Clickhouse {
            self.storage.clickhouse.validate()?;
        }
        if let Err(reason) = self.alerts.rules() {
            return Err(ConfigError::Invalid {
                key: "alerts",
                reason,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen.otlp_grpc.port(), 4317);
        assert_eq!(config.listen.otlp_http.port(), 4318);
        assert_eq!(config.listen.http.port(), 8080);
        assert_eq!(config.data_dir, PathBuf::from("headlight-data"));
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = Config::from_toml("[aggregation]\nwindow_secs = 10\n").unwrap_err();
        assert!(err.to_string().contains("window_secs"), "{err}");
        let err = Config::from_toml("colour = 'red'\n").unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let err = Config::from_toml("[aggregation]\nwindow_s = 7\n").unwrap_err();
        assert!(err.to_string().contains("aggregation.window_s"), "{err}");
        let err = Config::from_toml("[aggregation]\nrollup_window_s = 15\n").unwrap_err();
        assert!(
            err.to_string().contains("aggregation.rollup_window_s"),
            "{err}"
        );
        let err = Config::from_toml("[compare.thresholds]\nfdr = 0\n").unwrap_err();
        assert!(err.to_string().contains("compare.thresholds"), "{err}");
        assert!(err.to_string().contains("fdr"), "{err}");
        let err = Config::from_toml("[compare.thresholds]\nfdr_pct = 1\n").unwrap_err();
        assert!(err.to_string().contains("fdr_pct"), "{err}");
        let err = Config::from_toml("[compare]\nwindow_s = 1\n").unwrap_err();
        assert!(err.to_string().contains("compare.window_s"), "{err}");
        let err = Config::from_toml("[limits]\nmax_span_duration_ms = 7200000\n").unwrap_err();
        assert!(
            err.to_string().contains("limits.max_span_duration_ms"),
            "{err}"
        );
    }

    #[test]
    fn the_storage_backend_is_chosen_and_checked() {
        assert_eq!(Config::default().storage.backend, Backend::Sqlite);
        let config = Config::from_toml(
            "[storage]\nbackend = 'clickhouse'\n[storage.clickhouse]\nurl = 'http://ch:8123'\n\
             database = 'apm'\n",
        )
        .unwrap();
        assert_eq!(config.storage.backend, Backend::Clickhouse);
        assert_eq!(config.storage.clickhouse.database, "apm");
        let err = Config::from_toml("[storage]\nbackend = 'postgres'\n").unwrap_err();
        assert!(err.to_string().contains("postgres"), "{err}");
        let err = Config::from_toml("[storage.clickhouse]\npassword = 'x'\n").unwrap_err();
        assert!(err.to_string().contains("password"), "{err}");
        let err = Config::from_toml(
            "[storage]\nbackend = 'clickhouse'\n[storage.clickhouse]\ndatabase = 'a;drop'\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("storage.clickhouse.database"),
            "{err}"
        );
        let err = Config::from_toml(
            "[storage]\nbackend = 'clickhouse'\n[storage.clickhouse]\ncluster = 'two'\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("storage.clickhouse.shard_urls"),
            "{err}"
        );
    }

    #[test]
    fn auth_names_variables_not_tokens() {
        let config =
            Config::from_toml("[auth]\ningest_token_env = 'INGEST'\nallow_plaintext = true\n")
                .unwrap();
        assert_eq!(config.auth.ingest_token_env, "INGEST");
        assert_eq!(config.auth.api_token_env, "HEADLIGHT_API_TOKEN");
        assert!(config.auth.allow_plaintext);
        let err = Config::from_toml("[auth]\ntoken = 's3cret'\n").unwrap_err();
        assert!(err.to_string().contains("token"), "{err}");
        let err = Config::from_toml("[auth]\napi_token_env = 'a b'\n").unwrap_err();
        assert!(err.to_string().contains("auth.api_token_env"), "{err}");
    }

    #[test]
    fn tls_is_off_by_default_and_its_keys_are_checked() {
        assert_eq!(Config::from_toml("").unwrap().tls, None);
        let config = Config::from_toml("[tls]\ncert_file = 'a.crt'\nkey_file = 'a.key'\n").unwrap();
        let tls = config.tls.unwrap();
        assert_eq!(tls.cert_file, PathBuf::from("a.crt"));
        assert_eq!(tls.client_ca_file, None);
        let err = Config::from_toml("[tls]\ncert_file = 'a.crt'\n").unwrap_err();
        assert!(err.to_string().contains("key_file"), "{err}");
        let err =
            Config::from_toml("[tls]\ncert_file = 'a'\nkey_file = 'b'\nca = 'c'\n").unwrap_err();
        assert!(err.to_string().contains("ca"), "{err}");
    }

    #[test]
    fn values_are_read() {
        let config = Config::from_toml(
            "data_dir = '/tmp/x'\n[listen]\nhttp = '127.0.0.1:0'\n[spans]\nsample_per_window = 9\n",
        )
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.listen.http.port(), 0);
        assert_eq!(config.spans.sample_per_window, 9);
    }
}
