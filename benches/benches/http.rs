//! An axum service's throughput with and without the agent, in the same process: rounds of a
//! fixed duration alternate the uninstrumented service (no `HttpLayer`, no subscriber) and the
//! instrumented one (`HttpLayer` + registry + `HeadlightLayer`, exporting over OTLP/gRPC to an
//! in-process sink that decodes and discards), and the table gives requests per second for each
//! and their ratio.
//!
//! Two services, each with two routes, `/users/{id}` (with a "SELECT users" child span) and
//! `/health`, requested alternately:
//!
//! - `cpu`: the child span does a tiny bit of CPU work (about a microsecond) instead of I/O, so
//!   the server thread is saturated and the agent's cost shows fully in the throughput;
//! - `example`: `agent/examples/axum_service.rs`'s `app()` as it is: the child span waits
//!   200–800 µs on a tokio timer, as a database would, so throughput is latency-bound. Its
//!   router always carries the `HttpLayer`: uninstrumented means no subscriber (the layer's
//!   spans are disabled callsites).
//!
//! Threads are fixed and the same in both setups: the server is a current-thread runtime on
//! its own thread, the client (hyper, HTTP/1.1 keep-alive, 16 connections, closed loop) a
//! current-thread runtime on the main thread. The instrumented setup adds the agent's export
//! thread and the sink's thread, as a real deployment adds the exporter and the collector.
//! A fresh agent is started for each instrumented round and stopped after it. Under each round
//! the bench prints every thread's CPU time and run-queue wait per request (from
//! `/proc/self/task/*/schedstat`), to show where the time went.
//!
//! Run: `cargo bench -p headlight-benches --bench http` (options: `--rounds N`, default 5;
//! `--round-ms MS`, default 3000). Without `--bench` (as `cargo test --benches` runs it) it
//! makes one short round of each, as a smoke test.

#[allow(dead_code)] // only `app` is used; the file is also a runnable example
#[path = "../../agent/examples/axum_service.rs"]
mod axum_service;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use bytes::Bytes;
use headlight_agent::AgentStats;
use headlight_benches::sink::Sink;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use tracing::{Dispatch, Instrument as _};
use tracing_subscriber::prelude::*;

/// Client connections, each sending its next request when the previous answer is read.
const CONNECTIONS: usize = 16;
/// Requests one connection sends in a round at most (the round's duration ends it first).
const MAX_REQUESTS_PER_CONNECTION: u64 = 10_000_000;
/// How long one request may take before the round fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Cpu,
    Example,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Example => "example",
        }
    }

    fn router(self, instrumented: bool) -> Router {
        match (self, instrumented) {
            (Self::Cpu, false) => cpu_routes(),
            (Self::Cpu, true) => cpu_routes().layer(headlight_agent::HttpLayer::new()),
            (Self::Example, _) => axum_service::app(),
        }
    }
}

/// The `cpu` service: the example's routes with CPU work in place of the database wait.
fn cpu_routes() -> Router {
    Router::new()
        .route("/users/{id}", get(cpu_user))
        .route("/health", get(|| async { "ok" }))
}

async fn cpu_user(Path(id): Path<u64>) -> String {
    let name = async { lookup(id) }
        .instrument(tracing::info_span!(
            "SELECT users",
            otel.kind = "client",
            db.system.name = "sqlite",
            db.query.text = "SELECT name FROM users WHERE id = ?",
            user.id = id,
        ))
        .await;
    format!("{{\"id\":{id},\"name\":\"{name}\"}}")
}

/// Stands in for a query answered from memory: about a microsecond of hashing.
fn lookup(id: u64) -> String {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for i in 0..512 {
        hash = (hash ^ std::hint::black_box(id + i)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("user-{hash:x}")
}

/// The request paths, cycled: `/users/{id}` and `/health` alternately (never id 13, which the
/// example answers with a 500).
fn paths() -> Vec<String> {
    (1..=12)
        .flat_map(|id| [format!("/users/{id}"), "/health".to_owned()])
        .collect()
}

struct Round {
    requests: u64,
    elapsed: Duration,
    agent: Option<AgentStats>,
    /// Scheduler figures of the round's threads, by role.
    threads: Vec<(&'static str, Sched)>,
}

impl Round {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Serves `service` on a new thread for `duration` of closed-loop load from `client`.
fn round(
    client: &tokio::runtime::Runtime,
    sink: &Sink,
    service: Service,
    instrumented: bool,
    duration: Duration,
) -> anyhow::Result<Round> {
    let agent = if instrumented {
        let (layer, guard) = headlight_agent::builder()
            .service_name("bench-http")
            .endpoint(sink.endpoint())
            .build()?;

        Some((
            Dispatch::new(tracing_subscriber::registry().with(layer)),
            guard,
        ))
    } else {
        None
    };
    round_with(client, service, agent, duration)
}

fn round_with(
    client: &tokio::runtime::Runtime,
    service: Service,
    agent: Option<(Dispatch, headlight_agent::AgentGuard)>,
    duration: Duration,
) -> anyhow::Result<Round> {
    let instrumented = agent.is_some();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let router = service.router(instrumented);
    let dispatch = agent.as_ref().map(|(dispatch, _)| dispatch.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::Builder::new()
        .name("http-server".to_owned())
        .spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let serve = async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let serve = axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                );
                // Not graceful: the round is over, open connections are dropped.
                tokio::select! {
                    served = serve => served?,
                    _ = stopped => {}
                }
                anyhow::Ok(())
            };
            match dispatch {
                Some(dispatch) => {
                    tracing::dispatcher::with_default(&dispatch, || runtime.block_on(serve))
                }
                None => runtime.block_on(serve),
            }
        })?;
    let before = sched();
    let load = client.block_on(load(addr, Instant::now() + duration));
    let threads = sched_delta(&before, &sched());
    let _ = stop.send(());
    let served = server
        .join()
        .map_err(|_| anyhow::anyhow!("the server thread panicked"))?;
    let (requests, elapsed) = load?;
    served?;
    let agent = agent.map(|(dispatch, guard)| {
        drop(dispatch);
        guard.shutdown()
    });
    // The next round starts from its own subscriber alone (see the agent bench).
    tracing::callsite::rebuild_interest_cache();
    Ok(Round {
        requests,
        elapsed,
        agent,
        threads,
    })
}

/// Sends requests on [`CONNECTIONS`] keep-alive connections until `deadline`; returns the
/// answers received and the time from the first request to the last answer.
async fn load(addr: SocketAddr, deadline: Instant) -> anyhow::Result<(u64, Duration)> {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for connection in 0..CONNECTIONS {
        let paths = paths();
        tasks.spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            let driver = tokio::spawn(conn);
            let mut sent = 0;
            while sent < MAX_REQUESTS_PER_CONNECTION && Instant::now() < deadline {
                let path = &paths[(connection + sent as usize) % paths.len()];
                let request = http::Request::get(path.as_str())
                    .header(http::header::HOST, "127.0.0.1")
                    .body(Empty::<Bytes>::new())?;
                let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
                    let response = sender.send_request(request).await?;
                    let status = response.status();
                    response.into_body().collect().await?;
                    anyhow::Ok(status)
                })
                .await
                .context("request timed out")??;
                anyhow::ensure!(answer.is_success(), "{path} answered {answer}");
                sent += 1;
            }
            drop(sender);
            driver.abort();
            anyhow::Ok(sent)
        });
    }
    let mut requests = 0;
    while let Some(done) = tasks.join_next().await {
        requests += done??;
    }
    Ok((requests, start.elapsed()))
}

/// Time a thread spent on a CPU and waiting for one, in nanoseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Sched {
    run_ns: u64,
    wait_ns: u64,
}

/// Reads `/proc/self/task/*/schedstat`: per thread id, its role (by thread name) and times.
/// Empty where the kernel does not keep scheduler statistics.
fn sched() -> HashMap<u64, (&'static str, Sched)> {
    let mut threads = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("schedstat")),
        ) else {
            continue;
        };
        let role = match name.trim() {
            "http-server" => "server",
            // Linux keeps the first 15 bytes of a thread's name.
            "headlight-expor" => "export",
            "otlp-sink" => "sink",
            _ if tid == u64::from(std::process::id()) => "client",
            _ => "other",
        };
        let mut fields = stat.split_whitespace().map(|f| f.parse().unwrap_or(0));
        let run_ns = fields.next().unwrap_or(0);
        let wait_ns = fields.next().unwrap_or(0);
        threads.insert(tid, (role, Sched { run_ns, wait_ns }));
    }
    threads
}

/// Sums by role what each thread accrued between two [`sched`] snapshots.
fn sched_delta(
    before: &HashMap<u64, (&'static str, Sched)>,
    after: &HashMap<u64, (&'static str, Sched)>,
) -> Vec<(&'static str, Sched)> {
    let mut roles: Vec<(&'static str, Sched)> = ["server", "client", "export", "sink", "other"]
        .into_iter()
        .map(|role| (role, Sched::default()))
        .collect();
    for (tid, (role, now)) in after {
        let then = before.get(tid).map(|(_, s)| *s).unwrap_or_default();
        if let Some((_, total)) = roles.iter_mut().find(|(r, _)| r == role) {
            total.run_ns += now.run_ns.saturating_sub(then.run_ns);
            total.wait_ns += now.wait_ns.saturating_sub(then.wait_ns);
        }
    }
    roles
}

struct Options {
    rounds: usize,
    round: Duration,
}

impl Options {
    fn parse() -> anyhow::Result<Self> {
        let args: Vec<String> = std::env::args().collect();
        let value = |name: &str| -> anyhow::Result<Option<u64>> {
            args.iter()
                .position(|a| a == name)
                .map(|i| {
                    args.get(i + 1)
                        .with_context(|| format!("{name} needs a value"))?
                        .parse()
                        .with_context(|| format!("{name} needs a number"))
                })
                .transpose()
        };
        if !args.iter().any(|a| a == "--bench") {
            return Ok(Self {
                rounds: 1,
                round: Duration::from_millis(200),
            });
        }
        Ok(Self {
            rounds: value("--rounds")?.unwrap_or(5) as usize,
            round: Duration::from_millis(value("--round-ms")?.unwrap_or(3000)),
        })
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[allow(clippy::print_stdout)] // the bench's output is its table
fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let sink = Sink::start()?;
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!(
        "{CONNECTIONS} connections, rounds of {} ms, server and client one thread each",
        options.round.as_millis()
    );
    println!("service  round  setup          requests   req/s");
    for service in [Service::Cpu, Service::Example] {
        // Warm-up, discarded: connections, allocator, caches, the agent's first export.
        let warm_up = options.round.min(Duration::from_secs(1));
        round(&client, &sink, service, false, warm_up)?;
        round(&client, &sink, service, true, warm_up)?;
        let mut plain = Vec::new();
        let mut instrumented = Vec::new();
        let mut agent = AgentStats::default();
        for r in 0..options.rounds {
            // Alternate which setup goes first, so drift in the machine's load spreads evenly.
            let order = if r % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for with_agent in order {
                let result = round(&client, &sink, service, with_agent, options.round)?;
                println!(
                    "{:<8} {:>5}  {:<13} {:>9} {:>8.0}",
                    service.name(),
                    r + 1,
                    if with_agent {
                        "instrumented"
                    } else {
                        "uninstrumented"
                    },
                    result.requests,
                    result.per_second()
                );
                let per_request = |ns: u64| ns as f64 / 1e3 / result.requests.max(1) as f64;
                let threads: Vec<String> = result
                    .threads
                    .iter()
                    .filter(|(_, s)| s.run_ns > 0)
                    .map(|(role, s)| {
                        format!(
                            "{role} {:.1}/{:.1}",
                            per_request(s.run_ns),
                            per_request(s.wait_ns)
                        )
                    })
                    .collect();
                println!("{:>30}cpu/wait µs per request: {}", "", threads.join(", "));
                if let Some(stats) = result.agent {
                    agent += stats;
                    instrumented.push(result.per_second());
                } else {
                    plain.push(result.per_second());
                }
            }
        }
        let (plain, instrumented) = (median(plain), median(instrumented));
        println!(
            "{}: median req/s uninstrumented {plain:.0}, instrumented {instrumented:.0}, ratio {:.1} %",
            service.name(),
            100.0 * instrumented / plain
        );
        println!("{}: agent {agent}", service.name());
    }
    println!(
        "sink: {} spans in {} requests",
        sink.spans(),
        sink.requests()
    );
    Ok(())
}
