//! What a soak run does, and with which programs.

use std::path::PathBuf;
use std::time::Duration;

use super::agent::AgentCommand;
use super::collector::Stop;

/// Spans per loadgen trace (a transaction and four children).
pub const LOADGEN_SPANS_PER_TRACE: u64 = 5;
/// Spans per loadgen request: whole traces, so every transaction travels with its children.
pub const LOADGEN_BATCH: u64 = 500;
/// Concurrent loadgen connections, each with one request in flight.
pub const LOADGEN_CONNECTIONS: u64 = 4;
/// Loadgen services (`loadgen-0`…).
pub const LOADGEN_SERVICES: u32 = 4;
/// Spans per agent export request at most (the agent's default `max_batch_spans`).
pub const AGENT_BATCH: u64 = 512;

/// The schedule and rates of one soak run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// How long the load runs.
    pub duration: Duration,
    /// `headlight loadgen --rate`, spans per second.
    pub loadgen_rate: u64,
    /// Transactions per second of each agent process (each has 3 child spans).
    pub agent_rate: u64,
    /// One entry per agent process (`soak-agent-<i>`): how often it is restarted (`None`:
    /// never).
    pub agent_restarts: Vec<Option<Duration>>,
    /// Which agent lifetimes, `(agent, lifetime)` counted from 1, end by SIGKILL instead of a
    /// graceful stop. Such a lifetime reports `service.version` `<agent>.killed<lifetime>`, so
    /// the store counts it apart; every other lifetime of agent `i` reports `<i>.0`, like a
    /// service restarted without a new release (a fixed set of series).
    pub agent_hard_kills: Vec<(usize, usize)>,
    /// When (since the start) the collector is stopped and started again, and how.
    pub collector_stops: Vec<(Duration, Stop)>,
    /// How often the collector's resident memory is sampled.
    pub rss_every: Duration,
    /// Samples a collector lifetime needs before its memory is judged.
    pub rss_min_samples: usize,
    /// How far (a fraction) the last third's mean memory may rise above the middle third's.
    pub rss_tolerance: f64,
}

impl Plan {
    /// The 10-minute procedure: loadgen at `loadgen_rate`, three agents at 200 transactions/s
    /// restarted every 60, 75 and 90 s (three lifetimes end by SIGKILL), the collector stopped
    /// by SIGTERM at a quarter and by SIGKILL at half of `duration`, so its last lifetime is long
    /// enough for its memory to be judged after the warm-up.
    pub fn full(duration: Duration, loadgen_rate: u64) -> Self {
        Self {
            duration,
            loadgen_rate,
            agent_rate: 200,
            agent_restarts: [60, 75, 90].map(|s| Some(Duration::from_secs(s))).to_vec(),
            agent_hard_kills: vec![(1, 1), (0, 3), (2, 4)],
            collector_stops: vec![(duration / 4, Stop::Term), (duration / 2, Stop::Kill)],
            rss_every: Duration::from_secs(2),
            rss_min_samples: 120,
            rss_tolerance: 0.10,
        }
    }
}

/// The programs a soak runs.
#[derive(Debug, Clone)]
pub struct Programs {
    /// The `headlight` binary (`serve` and `loadgen`).
    pub headlight: PathBuf,
    /// How to start an agent process.
    pub agent: AgentCommand,
}
