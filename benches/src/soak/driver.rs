//! The soak run: starts the collector, the loadgen and the agents, restarts them on schedule,
//! samples the collector's memory, and at the end settles, counts and checks.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::agent::{AgentEnd, AgentLifetime, AgentProcess};
use super::check::{self, AgentRun, LoadgenTally, Row, Stored};
use super::child::{kill, wait_or_kill};
use super::collector::{Collector, Lifetime, Setup, Stop, rss_flat};
use super::counts::{Api, IndexRows, index_rows};
use super::plan::{
    LOADGEN_BATCH, LOADGEN_CONNECTIONS, LOADGEN_SERVICES, LOADGEN_SPANS_PER_TRACE, Plan, Programs,
};

/// How long the collector may take to be ready, and to stop after SIGTERM.
const COLLECTOR_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an agent may take to stop after its stdin closed (its shutdown waits 5 s at most).
const AGENT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The driver's tick.
const TICK: Duration = Duration::from_millis(250);

/// What a soak run found.
#[derive(Debug)]
pub struct Outcome {
    /// The conservation table, one row per source.
    pub rows: Vec<Row>,
    /// The collector's lifetimes.
    pub lifetimes: Vec<Lifetime>,
    /// Agent lifetimes (graceful and killed).
    pub agent_lifetimes: usize,
    /// Agent lifetimes ended by SIGKILL.
    pub agent_kills: usize,
    /// The loadgen's tally.
    pub loadgen: LoadgenTally,
    /// Whether the collector settled (nothing unwritten) before the counts were read.
    pub settled: bool,
    /// Every violation: conservation, memory, settling.
    pub violations: Vec<String>,
}

impl Outcome {
    /// The report: the conservation table and the memory per collector lifetime, Markdown.
    pub fn render(&self, plan: &Plan) -> String {
        let mut out = check::render(&self.rows);
        out.push('\n');
        out.push_str(
            "| collector lifetime | ended by | ran s | ready after s | RSS samples | RSS first / min / max MiB | middle third / last third mean MiB | peak (VmHWM) at last sample / at stop MiB | flat |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        for l in &self.lifetimes {
            let first = l.rss.first().map_or(0.0, |s| s.mib);
            let min = l.rss.iter().map(|s| s.mib).fold(f64::INFINITY, f64::min);
            let max = l.rss.iter().map(|s| s.mib).fold(0.0, f64::max);
            let flat = rss_flat(&l.rss, plan.rss_min_samples, plan.rss_tolerance);
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.1} | {} | {first:.1} / {min:.1} / {max:.1} | {} | {:.1} / {:.1} | {} |",
                l.number,
                l.stop.signal(),
                l.duration_s,
                l.ready_s,
                l.rss.len(),
                flat.map_or("–".to_owned(), |(m, t, _)| format!("{m:.1} / {t:.1}")),
                l.rss.last().map_or(0.0, |s| s.peak_mib),
                l.peak_mib,
                match flat {
                    None => "too short to judge",
                    Some((_, _, true)) => "yes",
                    Some((_, _, false)) => "**NO**",
                }
            );
        }
        // One sample every 30 s.
        let step = usize::try_from(30_000 / plan.rss_every.as_millis().max(1))
            .unwrap_or(1)
            .max(1);
        for l in &self.lifetimes {
            let every: Vec<String> = l
                .rss
                .iter()
                .step_by(step)
                .map(|s| format!("{:.0}", s.mib))
                .collect();
            let anon: Vec<String> = l
                .rss
                .iter()
                .step_by(step)
                .map(|s| format!("{:.0}", s.anon_mib))
                .collect();
            let _ = writeln!(
                out,
                "\ncollector lifetime {}, every 30 s from its start: VmRSS {} MiB; RssAnon {} MiB",
                l.number,
                every.join(" "),
                anon.join(" ")
            );
        }
        let _ = writeln!(
            out,
            "\nloadgen retries: {}; loadgen failures: {}; agent lifetimes {} ({} ended by SIGKILL); settled before counting: {}",
            self.loadgen.retries,
            self.loadgen.failures,
            self.agent_lifetimes,
            self.agent_kills,
            self.settled
        );
        out
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The `service.version` of lifetime `lifetime` (from 1) of agent `agent`: its own for a
/// lifetime that will be killed, else the agent's one version.
fn version(plan: &Plan, agent: usize, lifetime: usize) -> String {
    if plan.agent_hard_kills.contains(&(agent, lifetime)) {
        format!("{agent}.killed{lifetime}")
    } else {
        format!("{agent}.0")
    }
}

/// An agent lifetime with when it started and ended, seconds since the run's start.
struct Timed {
    lifetime: AgentLifetime,
    from_s: f64,
    to_s: f64,
}

/// One agent's slot: its running process and the schedule of its restarts.
struct Slot {
    service: String,
    process: Option<AgentProcess>,
    lifetime: usize,
    started_s: f64,
    every: Option<Duration>,
    next: Option<Instant>,
}

/// The loadgen process, its stdout gathered by a thread.
struct Loadgen {
    child: std::process::Child,
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Loadgen {
    fn start(
        programs: &Programs,
        plan: &Plan,
        endpoint: &str,
        log: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(&programs.headlight)
            .arg("loadgen")
            .args(["--endpoint", endpoint])
            .args(["--rate", &plan.loadgen_rate.to_string()])
            .args([
                "--duration",
                &format!("{}s", plan.duration.as_secs().max(1)),
            ])
            .args(["--batch", &LOADGEN_BATCH.to_string()])
            .args(["--connections", &LOADGEN_CONNECTIONS.to_string()])
            .args(["--services", &LOADGEN_SERVICES.to_string()])
            .args(["--spans-per-trace", &LOADGEN_SPANS_PER_TRACE.to_string()])
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("cannot start headlight loadgen")?;
        let mut stdout = child.stdout.take().context("no loadgen stdout")?;
        let stdout = std::thread::spawn(move || {
            let mut out = String::new();
            let _ = stdout.read_to_string(&mut out);
            out
        });
        Ok(Self {
            child,
            stdout: Some(stdout),
        })
    }

    /// Waits for the report (at most `timeout`).
    fn finish(mut self, timeout: Duration, log: &std::path::Path) -> anyhow::Result<LoadgenTally> {
        let Some(status) = wait_or_kill(&mut self.child, timeout)? else {
            bail!("headlight loadgen did not finish within {timeout:?}");
        };
        let out = self
            .stdout
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        if !status.success() {
            bail!(
                "headlight loadgen failed ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        let report: Value = serde_json::from_str(&out)
            .with_context(|| format!("the loadgen's report is not JSON: {out}"))?;
        LoadgenTally::from_json(&report)
    }
}

impl Drop for Loadgen {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Runs the soak `plan` with `programs`, printing progress lines to stderr, and returns what
/// it found. Errors are failures to run it (a program that does not start); what the run
/// found wrong is in [`Outcome::violations`].
#[allow(clippy::print_stderr, clippy::too_many_lines)] // progress; one timeline reads best whole
pub fn run(plan: &Plan, programs: &Programs) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let setup = Setup::new(dir.path())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let api = Api::new(setup.api())?;
    let endpoint = format!("http://{}", setup.grpc);
    let from_ms = unix_ms() - 600_000;
    let t0 = Instant::now();
    let since = |i: Instant| i.duration_since(t0).as_secs_f64();

    let (mut collector, mut ready) =
        Collector::start(&programs.headlight, &setup, &runtime, COLLECTOR_TIMEOUT)?;
    let mut lifetimes = Vec::new();
    let mut kills_at: Vec<f64> = Vec::new();
    let loadgen_log = dir.path().join("loadgen.log");
    let loadgen = Loadgen::start(programs, plan, &endpoint, &loadgen_log)?;

    let mut slots: Vec<Slot> = Vec::new();
    for (i, every) in plan.agent_restarts.iter().enumerate() {
        let service = format!("soak-agent-{i}");
        let process = AgentProcess::start(
            &programs.agent,
            &service,
            &version(plan, i, 1),
            &endpoint,
            plan.agent_rate,
        )?;
        slots.push(Slot {
            service,
            process: Some(process),
            lifetime: 1,
            started_s: 0.0,
            every: *every,
            next: every.map(|e| t0 + e),
        });
    }
    let mut finished: Vec<Timed> = Vec::new();
    let mut stops = plan.collector_stops.clone();
    stops.sort_by_key(|(at, _)| *at);
    let mut stops = stops.into_iter().peekable();
    let mut next_rss = t0;
    let end = t0 + plan.duration;
    eprintln!(
        "soak: collector on {endpoint}, {} agents, {} s",
        slots.len(),
        plan.duration.as_secs()
    );

    while Instant::now() < end {
        let now = Instant::now();
        collector.check_alive(&setup)?;
        if now >= next_rss {
            collector.sample()?;
            next_rss += plan.rss_every;
        }
        if let Some((at, stop)) = stops.peek().copied()
            && now >= t0 + at
        {
            stops.next();
            let number = lifetimes.len() + 1;
            eprintln!(
                "soak: {:.0} s: collector lifetime {number} ends by {}",
                since(now),
                stop.signal()
            );
            lifetimes.push(collector.stop(stop, number, ready, COLLECTOR_TIMEOUT)?);
            if stop == Stop::Kill {
                kills_at.push(since(now));
            }
            (collector, ready) =
                Collector::start(&programs.headlight, &setup, &runtime, COLLECTOR_TIMEOUT)?;
            eprintln!(
                "soak: collector lifetime {} ready after {:.1} s",
                number + 1,
                ready.as_secs_f64()
            );
            next_rss = Instant::now();
        }
        for (i, slot) in slots.iter_mut().enumerate() {
            if let Some(process) = slot.process.as_mut()
                && !process.running()
            {
                bail!(
                    "agent {} lifetime {} exited by itself",
                    slot.service,
                    slot.lifetime
                );
            }
            let Some(due) = slot.next else { continue };
            if now < due {
                continue;
            }
            let how = if plan.agent_hard_kills.contains(&(i, slot.lifetime)) {
                AgentEnd::Killed
            } else {
                AgentEnd::Graceful
            };
            if let Some(process) = slot.process.take() {
                let lifetime = process.stop(how, AGENT_STOP_TIMEOUT)?;
                eprintln!(
                    "soak: {:.0} s: {} {} stopped ({how:?})",
                    since(now),
                    lifetime.service,
                    lifetime.version
                );
                finished.push(Timed {
                    lifetime,
                    from_s: slot.started_s,
                    to_s: since(Instant::now()),
                });
            }
            slot.lifetime += 1;
            slot.started_s = since(Instant::now());
            slot.process = Some(AgentProcess::start(
                &programs.agent,
                &slot.service,
                &version(plan, i, slot.lifetime),
                &endpoint,
                plan.agent_rate,
            )?);
            slot.next = slot.every.map(|e| Instant::now() + e);
        }
        std::thread::sleep(TICK);
    }

    eprintln!("soak: load ends; stopping the agents and waiting for the loadgen");
    for slot in &mut slots {
        if let Some(process) = slot.process.take() {
            let lifetime = process.stop(AgentEnd::Graceful, AGENT_STOP_TIMEOUT)?;
            finished.push(Timed {
                lifetime,
                from_s: slot.started_s,
                to_s: since(Instant::now()),
            });
        }
    }
    // The loadgen retries a request for 30 s at most.
    let tally = loadgen.finish(Duration::from_secs(120), &loadgen_log)?;
    let settled = api.settle(&runtime, Duration::from_secs(60));
    collector.sample()?;

    let to_ms = unix_ms() + 600_000;
    let mut loadgen_stored = Stored::default();
    for s in 0..LOADGEN_SERVICES {
        loadgen_stored.api +=
            api.transactions(&runtime, &format!("loadgen-{s}"), None, from_ms, to_ms)?;
    }
    // Each (service, version): the graceful lifetimes of an agent share one, a killed lifetime
    // has its own.
    let mut versions: Vec<(String, String)> = finished
        .iter()
        .map(|t| (t.lifetime.service.clone(), t.lifetime.version.clone()))
        .collect();
    versions.sort();
    versions.dedup();
    let mut agent_api = HashMap::new();
    for (service, version) in &versions {
        let n = api.transactions(&runtime, service, Some(version), from_ms, to_ms)?;
        agent_api.insert((service.clone(), version.clone()), n);
    }
    let number = lifetimes.len() + 1;
    lifetimes.push(collector.stop(Stop::Term, number, ready, COLLECTOR_TIMEOUT)?);
    let index = index_rows(&setup.data_dir)?;
    let index_of = |service: &str, version: Option<&str>| {
        let mut total = IndexRows::default();
        for ((s, v), rows) in &index {
            if s == service && version.is_none_or(|version| version == v) {
                total += *rows;
            }
        }
        total
    };
    for s in 0..LOADGEN_SERVICES {
        loadgen_stored.index += index_of(&format!("loadgen-{s}"), None);
    }

    let kills_between =
        |from: f64, to: f64| kills_at.iter().filter(|&&k| k >= from && k <= to).count() as u64;
    let mut rows = vec![check::loadgen(
        &tally,
        loadgen_stored,
        plan.loadgen_rate,
        kills_at.len() as u64,
    )];
    for (service, version) in &versions {
        let group: Vec<&Timed> = finished
            .iter()
            .filter(|t| &t.lifetime.service == service && &t.lifetime.version == version)
            .collect();
        let from = group.iter().map(|t| t.from_s).fold(f64::INFINITY, f64::min);
        let to = group.iter().map(|t| t.to_s).fold(0.0, f64::max);
        let run = AgentRun {
            lifetimes: group.iter().map(|t| t.lifetime.clone()).collect(),
            collector_kills: kills_between(from, to),
            stored: Stored {
                api: agent_api
                    .get(&(service.clone(), version.clone()))
                    .copied()
                    .unwrap_or(0),
                index: index_of(service, Some(version)),
            },
        };
        rows.push(check::agent(&run, plan.agent_rate));
    }

    let mut violations: Vec<String> = rows
        .iter()
        .flat_map(|r| r.violations.iter().cloned())
        .collect();
    if !settled {
        violations.push("the collector did not settle (unwritten transactions or pending child spans) within 60 s".to_owned());
    }
    for l in &lifetimes {
        if let Some((middle, last, false)) =
            rss_flat(&l.rss, plan.rss_min_samples, plan.rss_tolerance)
        {
            violations.push(format!(
                "collector lifetime {}: memory grew from {middle:.1} MiB (middle third) to {last:.1} MiB (last third), over {:.0} %",
                l.number,
                plan.rss_tolerance * 100.0
            ));
        }
    }
    let agent_kills = finished
        .iter()
        .filter(|t| t.lifetime.end == AgentEnd::Killed)
        .count();
    Ok(Outcome {
        rows,
        lifetimes,
        agent_lifetimes: finished.len(),
        agent_kills,
        loadgen: tally,
        settled,
        violations,
    })
}
