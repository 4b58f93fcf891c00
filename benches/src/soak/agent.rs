//! The soak's agent processes: each creates transactions at a steady rate through the real
//! `headlight-agent` (tracing layer, bounded queue, export thread) and reports what it did on
//! stdout, one JSON object per line, so the driver can account for every transaction:
//!
//! - `{"announced": N}` before each tick's transactions are created: at any moment the process
//!   has created at most the last announced total (what a `kill -9` leaves is bounded by it);
//! - `{"stats": {…}}` once a second: the agent's counters (`AgentStats`);
//! - `{"created": N, "final": {…}}` after a graceful stop (stdin closed): the counters after the
//!   agent's shutdown, which ships or counts as dropped everything still queued.
//!
//! The process side ([`main_from_env`]) runs in `benches/src/bin/soak_agent.rs` and, for the
//! short soak test, in the collector's test binary; the driver side is [`AgentProcess`].

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use headlight_agent::{AgentStats, DropReason, Sampler};
use serde_json::{Value, json};

use super::child::{kill, wait_or_kill};
use tracing_subscriber::prelude::*;

/// `service.name` of the agent process.
pub const ENV_SERVICE: &str = "HEADLIGHT_SOAK_AGENT_SERVICE";
/// `service.version`: one per process lifetime, so the store counts each lifetime apart.
pub const ENV_VERSION: &str = "HEADLIGHT_SOAK_AGENT_VERSION";
/// The collector's OTLP/gRPC endpoint, `http://host:port`.
pub const ENV_ENDPOINT: &str = "HEADLIGHT_SOAK_AGENT_ENDPOINT";
/// Transactions per second.
pub const ENV_RATE: &str = "HEADLIGHT_SOAK_AGENT_RATE";

/// Child spans per transaction.
const CHILDREN: usize = 3;
/// Transaction names per agent.
const ROUTES: usize = 4;
/// Creation ticks per second.
const TICKS_PER_S: u32 = 10;

fn env(key: &str) -> anyhow::Result<String> {
    std::env::var(key).with_context(|| format!("{key} is not set: the soak driver sets it"))
}

/// The agent's counters as JSON (the field names of [`AgentStats`]; drops by reason name).
pub fn stats_json(stats: &AgentStats) -> Value {
    let by_reason = |counts: headlight_agent::DropCounts| {
        DropReason::ALL
            .into_iter()
            .map(|r| (r.as_str().to_owned(), json!(counts.get(r))))
            .collect::<serde_json::Map<_, _>>()
    };
    json!({
        "spans_recorded": stats.spans_recorded,
        "transactions_recorded": stats.transactions_recorded,
        "spans_sent": stats.spans_sent,
        "transactions_sent": stats.transactions_sent,
        "spans_not_kept": stats.spans_not_kept,
        "spans_dropped": by_reason(stats.spans_dropped),
        "transactions_dropped": by_reason(stats.transactions_dropped),
        "spans_pending": stats.spans_pending,
        "transactions_pending": stats.transactions_pending,
        "export_requests": stats.export_requests,
        "export_retries": stats.export_retries,
    })
}

#[allow(clippy::print_stdout)] // stdout is the report the driver reads
fn report(line: &Value) {
    println!("{line}");
}

/// Creates one transaction: a SERVER span with [`CHILDREN`] CLIENT children, ended at once.
fn transaction(n: u64) {
    let route = format!("/soak/{}", n % ROUTES as u64);
    let root = tracing::info_span!(
        "request",
        otel.kind = "server",
        http.request.method = "GET",
        http.route = route.as_str(),
    );
    let _entered = root.enter();
    for c in 0..CHILDREN {
        let child = tracing::info_span!(
            "query",
            otel.kind = "client",
            db.system.name = "sqlite",
            step = c
        );
        drop(child.enter());
    }
}

/// Runs an agent process as the driver asked through the environment ([`ENV_SERVICE`]…) until
/// its stdin closes, then shuts the agent down and prints the final counters.
pub fn main_from_env() -> anyhow::Result<()> {
    let service = env(ENV_SERVICE)?;
    let version = env(ENV_VERSION)?;
    let endpoint = env(ENV_ENDPOINT)?;
    let rate: u64 = env(ENV_RATE)?
        .parse()
        .with_context(|| format!("{ENV_RATE}: transactions per second"))?;
    let (layer, guard) = headlight_agent::builder()
        .service_name(service)
        .service_version(version)
        .endpoint(endpoint)
        .sampler(Sampler::AlwaysOn)
        .build()?;
    tracing_subscriber::registry().with(layer).init();

    // Closing stdin is the graceful stop.
    let stop = Arc::new(AtomicBool::new(false));
    let stdin_closed = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        stdin_closed.store(true, Ordering::SeqCst);
    });

    let per_tick = rate.div_ceil(u64::from(TICKS_PER_S));
    let tick = Duration::from_secs(1) / TICKS_PER_S;
    let mut created = 0u64;
    let mut next = Instant::now();
    let mut next_stats = next + Duration::from_secs(1);
    while !stop.load(Ordering::SeqCst) {
        report(&json!({ "announced": created + per_tick }));
        for _ in 0..per_tick {
            transaction(created);
            created += 1;
        }
        if Instant::now() >= next_stats {
            report(&json!({ "stats": stats_json(&guard.stats()) }));
            next_stats += Duration::from_secs(1);
        }
        next += tick;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let last = guard.shutdown();
    report(&json!({ "created": created, "final": stats_json(&last) }));
    Ok(())
}

/// How the driver starts an agent process: a program and its arguments (the environment
/// variables above are added).
#[derive(Debug, Clone)]
pub struct AgentCommand {
    /// The program: `soak_agent`, or a test binary that runs [`main_from_env`].
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

/// What one agent process reported so far.
#[derive(Debug, Default, Clone)]
pub struct Reported {
    /// The last `announced` total: an upper bound of what it created.
    pub announced: u64,
    /// The last `stats` line.
    pub stats: Option<Value>,
    /// What it created, from its final line.
    pub created: Option<u64>,
    /// Its final counters.
    pub last: Option<Value>,
}

/// One lifetime of an agent process, driven by the soak.
#[derive(Debug)]
pub struct AgentProcess {
    /// `service.name`.
    pub service: String,
    /// `service.version` of this lifetime.
    pub version: String,
    child: Child,
    stdin: Option<ChildStdin>,
    reported: Arc<Mutex<Reported>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// How a lifetime ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentEnd {
    /// Stdin closed; the agent shipped or counted what it held and reported.
    Graceful,
    /// SIGKILL: what it held is lost, and its last counters are the last `stats` line.
    Killed,
}

/// A finished lifetime and what it reported.
#[derive(Debug, Clone)]
pub struct AgentLifetime {
    /// `service.name`.
    pub service: String,
    /// `service.version`.
    pub version: String,
    /// How it ended.
    pub end: AgentEnd,
    /// What it reported.
    pub reported: Reported,
}

impl AgentProcess {
    /// Starts an agent process for `service`/`version` sending to `endpoint`.
    pub fn start(
        command: &AgentCommand,
        service: &str,
        version: &str,
        endpoint: &str,
        rate: u64,
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .env(ENV_SERVICE, service)
            .env(ENV_VERSION, version)
            .env(ENV_ENDPOINT, endpoint)
            .env(ENV_RATE, rate.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", command.program.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let reported = Arc::new(Mutex::new(Reported::default()));
        let into = Arc::clone(&reported);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // A test binary also prints its harness's lines; a line cut by a kill is skipped.
                let Ok(value) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let mut r = into.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(n) = value.get("announced").and_then(Value::as_u64) {
                    r.announced = n;
                }
                if let Some(stats) = value.get("stats") {
                    r.stats = Some(stats.clone());
                }
                if let Some(n) = value.get("created").and_then(Value::as_u64) {
                    r.created = Some(n);
                    r.last = value.get("final").cloned();
                }
            }
        });
        Ok(Self {
            service: service.to_owned(),
            version: version.to_owned(),
            stdin: child.stdin.take(),
            child,
            reported,
            reader: Some(reader),
        })
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the process (gracefully: closes its stdin and waits up to `timeout` for its final
    /// line; or with SIGKILL) and returns what it reported.
    pub fn stop(mut self, end: AgentEnd, timeout: Duration) -> anyhow::Result<AgentLifetime> {
        match end {
            AgentEnd::Graceful => {
                drop(self.stdin.take());
                if wait_or_kill(&mut self.child, timeout)?.is_none() {
                    bail!(
                        "agent {} {} did not stop within {timeout:?} of its stdin closing",
                        self.service,
                        self.version
                    );
                }
            }
            AgentEnd::Killed => {
                self.child.kill()?;
                self.child.wait()?;
            }
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let reported = self
            .reported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if end == AgentEnd::Graceful && reported.created.is_none() {
            bail!(
                "agent {} {} exited without its final line",
                self.service,
                self.version
            );
        }
        Ok(AgentLifetime {
            service: self.service.clone(),
            version: self.version.clone(),
            end,
            reported,
        })
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
