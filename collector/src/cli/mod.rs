//! The `headlight` command line: `serve`, and the client commands `deploy`, `compare` and
//! `gate` that talk to a running collector's HTTP API.

pub(crate) mod client;
pub(crate) mod table;

pub use client::{EXIT_INSUFFICIENT_DATA, EXIT_REGRESSION, run_client};

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

/// Headlight: a lightweight APM that tells you whether a deploy made your service slower.
#[derive(Debug, Parser)]
#[command(name = "headlight", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the collector: OTLP ingest (gRPC and HTTP), the embedded store, the query API.
    Serve(ServeArgs),
    /// Records a deploy marker (prints its id).
    Deploy(DeployArgs),
    /// Prints a comparison: a deploy's before/after, canary vs baseline, or period vs period.
    /// Exits 0 with no regression, 3 on a regression, 4 with insufficient data.
    Compare(CompareArgs),
    /// Waits until a deploy's after-window is complete, then prints its comparison and exits
    /// like `compare` (4 also when the timeout passes first).
    Gate(GateArgs),
    /// The whole story in about two minutes: a collector, two instrumented services with
    /// traffic, a deploy that regresses, a canary that is fine, the comparisons, the alert and
    /// the charts; then the UI until Ctrl-C.
    Demo(DemoArgs),
    /// Sends OTLP traffic at a fixed rate or at saturation and reports what was accepted,
    /// rejected and failed, the achieved rate and the export latency.
    Loadgen(LoadgenArgs),
}

/// `headlight loadgen`.
#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// The collector's OTLP listener: the gRPC one (4317) or, with `--protocol http`, the HTTP
    /// one (4318).
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    pub endpoint: String,
    /// The transport.
    #[arg(long, value_enum, default_value = "grpc")]
    pub protocol: crate::loadgen::Protocol,
    /// Spans per second over all connections; 0 sends as fast as the collector answers.
    #[arg(long, default_value_t = 10_000.0)]
    pub rate: f64,
    /// How long to send, e.g. `30s` or `10m`.
    #[arg(long, default_value = "30s")]
    pub duration: String,
    /// Spans per request (rounded up to whole traces).
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// Concurrent connections, each with one request in flight.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Services (`loadgen-0`, `loadgen-1`…).
    #[arg(long, default_value_t = 4)]
    pub services: u32,
    /// Transactions per service (`GET /route/0`…).
    #[arg(long, default_value_t = 10)]
    pub transactions: u32,
    /// Spans per trace: the transaction and its children.
    #[arg(long, default_value_t = 5)]
    pub spans_per_trace: u32,
    /// Attributes per span.
    #[arg(long, default_value_t = 3)]
    pub attributes: u32,
    /// Median transaction duration, ms (log-normal).
    #[arg(long, default_value_t = 20.0)]
    pub latency_median_ms: f64,
    /// Shape (sigma) of the log-normal durations.
    #[arg(long, default_value_t = 0.6)]
    pub latency_sigma: f64,
    /// Share of failed transactions, 0..1.
    #[arg(long, default_value_t = 0.01)]
    pub error_ratio: f64,
    /// Compress the requests with gzip.
    #[arg(long)]
    pub gzip: bool,
    /// Do not retry retryable failures (UNAVAILABLE, 503…); count them as failed.
    #[arg(long)]
    pub no_retry: bool,
    /// Prints the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl LoadgenArgs {
    /// The plan these arguments describe.
    pub fn plan(&self) -> anyhow::Result<crate::loadgen::Plan> {
        let duration = crate::http::params::parse_duration_s(&self.duration)
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--duration {:?}: not a duration like 30s or 10m",
                    self.duration
                )
            })?;
        if !(0.0..=1.0).contains(&self.error_ratio) {
            anyhow::bail!("--error-ratio must be within 0..1");
        }
        if !(self.latency_median_ms > 0.0 && self.latency_sigma >= 0.0) {
            anyhow::bail!("--latency-median-ms must be positive and --latency-sigma not negative");
        }
        if self.services == 0 || self.transactions == 0 || self.spans_per_trace == 0 {
            anyhow::bail!("--services, --transactions and --spans-per-trace must be at least 1");
        }
        Ok(crate::loadgen::Plan {
            endpoint: self.endpoint.clone(),
            protocol: self.protocol,
            rate: (self.rate > 0.0).then_some(self.rate),
            duration: std::time::Duration::from_secs(duration.unsigned_abs()),
            batch: self.batch,
            connections: self.connections,
            gzip: self.gzip,
            retry: !self.no_retry,
            request_deadline: std::time::Duration::from_secs(30),
            shape: crate::loadgen::Shape {
                services: self.services,
                transactions: self.transactions,
                spans_per_trace: self.spans_per_trace,
                attributes: self.attributes,
                median_ms: self.latency_median_ms,
                sigma: self.latency_sigma,
                error_ratio: self.error_ratio,
            },
        })
    }
}

/// `headlight demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Ends after the story instead of serving the UI until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// Where the charts, the summary, the webhook log and the configuration go.
    #[arg(long, default_value = "headlight-demo")]
    pub out: PathBuf,
}

/// Where the collector's API is.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The collector's HTTP API.
    #[arg(long, env = "HEADLIGHT_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The API token, sent as `Authorization: Bearer`; read from `HEADLIGHT_API_TOKEN` (a
    /// flag's value would show in the process list, so prefer the variable).
    #[arg(long, env = "HEADLIGHT_API_TOKEN", hide_env_values = true)]
    pub token: Option<ApiToken>,
    /// PEM CA certificates an `https://` collector's certificate must chain to (instead of the
    /// system's roots).
    #[arg(long, env = "HEADLIGHT_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for a collector requiring mutual TLS (`[tls] client_ca_file`);
    /// goes with `--client-key`.
    #[arg(long, env = "HEADLIGHT_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's PEM private key.
    #[arg(long, env = "HEADLIGHT_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

/// The API token of the client commands; `Debug` never shows it.
#[derive(Clone)]
pub struct ApiToken(pub String);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl std::str::FromStr for ApiToken {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// `headlight deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// `service.name` of the deployed service.
    #[arg(long)]
    pub service: String,
    /// The deployed `service.version`.
    #[arg(long)]
    pub version: String,
    /// `deployment.environment` [default: default].
    #[arg(long)]
    pub env: Option<String>,
    /// VCS commit of the deployed version.
    #[arg(long)]
    pub commit: Option<String>,
    /// Free text, e.g. the change log line.
    #[arg(long)]
    pub description: Option<String>,
    /// Deploy time: unix ms or RFC 3339 [default: now, the collector's clock].
    #[arg(long)]
    pub time: Option<String>,
    /// Commit time: unix ms or RFC 3339 (for lead time).
    #[arg(long)]
    pub commit_time: Option<String>,
    /// Prints the recorded deploy as JSON instead of its id.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `headlight compare`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["deploy", "service"])))]
pub struct CompareArgs {
    /// A deploy's before/after comparison.
    #[arg(long, conflicts_with_all = ["service", "env"])]
    pub deploy: Option<String>,
    /// The service, for a canary or period comparison.
    #[arg(long)]
    pub service: Option<String>,
    /// Only this environment [default: all].
    #[arg(long)]
    pub env: Option<String>,
    /// Canary: the baseline version.
    #[arg(long, requires = "canary_version", requires = "service")]
    pub baseline_version: Option<String>,
    /// Canary: the canary version.
    #[arg(long, requires = "baseline_version")]
    pub canary_version: Option<String>,
    /// Canary: the time range, `FROM..TO` (unix ms or RFC 3339) [default: the last hour].
    #[arg(long, requires = "baseline_version")]
    pub range: Option<String>,
    /// Period: the earlier period, `FROM..TO`.
    #[arg(long, requires = "after", conflicts_with_all = ["baseline_version", "offset"])]
    pub before: Option<String>,
    /// Period: the later period, `FROM..TO`.
    #[arg(long, requires = "service", conflicts_with = "baseline_version")]
    pub after: Option<String>,
    /// Period: the earlier period is the later one moved back by this, e.g. `7d` or `24h`.
    #[arg(long, requires = "after")]
    pub offset: Option<String>,
    /// Prints the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `headlight gate`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// The deploy to wait for.
    #[arg(long)]
    pub deploy: String,
    /// Longest wait, e.g. `30m` or `900` (s); exits 4 if the verdict is still pending.
    #[arg(long, default_value = "30m")]
    pub timeout: String,
    /// How often to ask, e.g. `10s`.
    #[arg(long, default_value = "5s")]
    pub poll: String,
    /// Prints the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `headlight serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file; unknown keys are refused. Flags below override it.
    #[arg(long, env = "HEADLIGHT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the embedded store keeps its data [default: ./headlight-data].
    #[arg(long, env = "HEADLIGHT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address [default: 127.0.0.1:4317].
    #[arg(long, env = "HEADLIGHT_OTLP_GRPC")]
    pub otlp_grpc: Option<SocketAddr>,
    /// OTLP/HTTP listen address [default: 127.0.0.1:4318].
    #[arg(long, env = "HEADLIGHT_OTLP_HTTP")]
    pub otlp_http: Option<SocketAddr>,
    /// API and UI listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "HEADLIGHT_HTTP")]
    pub http: Option<SocketAddr>,
    /// The store: `sqlite` or `clickhouse` (`[storage] backend`) [default: sqlite].
    #[arg(long, env = "HEADLIGHT_STORAGE")]
    pub storage: Option<crate::config::Backend>,
    /// ClickHouse's HTTP URL (`[storage.clickhouse] url`) [default: http://127.0.0.1:8123].
    /// The user and password come from `HEADLIGHT_CLICKHOUSE_USER` and
    /// `HEADLIGHT_CLICKHOUSE_PASSWORD`.
    #[arg(long, env = "HEADLIGHT_CLICKHOUSE_URL")]
    pub clickhouse_url: Option<String>,
    /// ClickHouse database (`[storage.clickhouse] database`) [default: headlight].
    #[arg(long, env = "HEADLIGHT_CLICKHOUSE_DATABASE")]
    pub clickhouse_database: Option<String>,
}

impl ServeArgs {
    /// Builds the configuration: the file (or defaults), then the flags.
    pub fn config(&self) -> Result<Config, crate::config::ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(d) = &self.data_dir {
            config.data_dir.clone_from(d);
        }
        if let Some(a) = self.otlp_grpc {
            config.listen.otlp_grpc = a;
        }
        if let Some(a) = self.otlp_http {
            config.listen.otlp_http = a;
        }
        if let Some(a) = self.http {
            config.listen.http = a;
        }
        if let Some(b) = self.storage {
            config.storage.backend = b;
        }
        if let Some(u) = &self.clickhouse_url {
            config.storage.clickhouse.url.clone_from(u);
        }
        if let Some(d) = &self.clickhouse_database {
            config.storage.clickhouse.database.clone_from(d);
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::{Cli, Command};
    use crate::config::Backend;

    #[test]
    fn storage_flags_choose_and_address_clickhouse() {
        let cli = Cli::try_parse_from([
            "headlight",
            "serve",
            "--storage",
            "clickhouse",
            "--clickhouse-url",
            "http://ch.internal:8123",
            "--clickhouse-database",
            "apm",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        let config = args.config().unwrap();
        assert_eq!(config.storage.backend, Backend::Clickhouse);
        assert_eq!(config.storage.clickhouse.url, "http://ch.internal:8123");
        assert_eq!(config.storage.clickhouse.database, "apm");
        assert!(Cli::try_parse_from(["headlight", "serve", "--storage", "postgres"]).is_err());
        let bad = Cli::try_parse_from([
            "headlight",
            "serve",
            "--storage",
            "clickhouse",
            "--clickhouse-database",
            "a b",
        ])
        .unwrap();
        let Command::Serve(args) = bad.command else {
            panic!("not serve");
        };
        let err = args.config().unwrap_err();
        assert!(
            err.to_string().contains("storage.clickhouse.database"),
            "{err}"
        );
    }
}
