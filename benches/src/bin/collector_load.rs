//! The collector's load benchmark (issue 9): it starts the collector (`headlight serve`, its own
//! process, a fresh data dir) and the decode-only floor (`decode_sink`, its own process), drives
//! each with `headlight loadgen`'s generator over OTLP/gRPC at fixed rates and at saturation,
//! and reads each server's CPU time (`/proc/<pid>/stat`: utime + stime) and peak RSS
//! (`/proc/<pid>/status`: `VmHWM`) from the OS. It prints one Markdown table row per run.
//!
//! Run it with `benches/collector-load.sh` (builds both in release first). Linux only.
//!
//! ```text
//! collector_load --headlight target/release/headlight --sink target/release/decode_sink \
//!     [--rates 10000,50000,0] [--duration-s 20] [--batch 512] [--connections 4]
//! ```
//!
//! A rate of 0 is saturation: each connection sends its next request when the previous one
//! is answered. The loader runs in this process, so on a small machine it competes with the
//! server for the cores at saturation; the server's CPU per span is read from the server's
//! process alone, so it is not inflated by the loader's.

#![allow(clippy::print_stdout)] // the table is the program's output

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use headlight_benches::procfs::{cpu_s, machine, status_mib};
use headlight_collector::loadgen::{self, Plan, Protocol, Report, Shape};

struct Args {
    headlight: PathBuf,
    sink: PathBuf,
    rates: Vec<f64>,
    duration: Duration,
    batch: usize,
    connections: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        headlight: PathBuf::from("target/release/headlight"),
        sink: PathBuf::from("target/release/decode_sink"),
        rates: vec![10_000.0, 50_000.0, 0.0],
        duration: Duration::from_secs(20),
        batch: 512,
        connections: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--headlight" => args.headlight = value.into(),
            "--sink" => args.sink = value.into(),
            "--rates" => {
                args.rates = value
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .context("--rates: numbers separated by commas")?;
            }
            "--duration-s" => args.duration = Duration::from_secs(value.parse()?),
            "--batch" => args.batch = value.parse()?,
            "--connections" => args.connections = value.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A server under test, killed when dropped.
struct Server {
    child: Child,
    grpc: SocketAddr,
    _data: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn collector(binary: &Path) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let grpc = free_port()?;
        let child = Command::new(binary)
            .arg("serve")
            .arg("--data-dir")
            .arg(data.path())
            .args(["--otlp-grpc", &grpc.to_string()])
            .args(["--otlp-http", &free_port()?.to_string()])
            .args(["--http", &free_port()?.to_string()])
            .env("HEADLIGHT_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Self::ready(Self {
            child,
            grpc,
            _data: Some(data),
        })
    }

    fn sink(binary: &Path) -> anyhow::Result<Self> {
        let grpc = free_port()?;
        let child = Command::new(binary)
            .arg(grpc.to_string())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Self::ready(Self {
            child,
            grpc,
            _data: None,
        })
    }

    fn ready(mut self) -> anyhow::Result<Self> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(self.grpc).is_err() {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited: {status}");
            }
            if Instant::now() > deadline {
                bail!("the server did not listen on {} within 30 s", self.grpc);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(self)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

struct Run {
    report: Report,
    cpu_s: f64,
    wall_s: f64,
    peak_rss_mib: f64,
}

fn drive(runtime: &tokio::runtime::Runtime, server: &Server, plan: Plan) -> anyhow::Result<Run> {
    // Let the server finish starting, then read its CPU.
    std::thread::sleep(Duration::from_millis(500));
    let cpu0 = cpu_s(server.pid())?;
    let t0 = Instant::now();
    let report = runtime.block_on(loadgen::run(plan, false))?;
    // The collector flushes every second: give it two to write what it was sent.
    std::thread::sleep(Duration::from_secs(2));
    let cpu1 = cpu_s(server.pid())?;
    Ok(Run {
        report,
        cpu_s: cpu1 - cpu0,
        wall_s: t0.elapsed().as_secs_f64(),
        peak_rss_mib: status_mib(server.pid(), "VmHWM:")?,
    })
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "collector_load: {}, {} s per run, batch {}, {} connections, 5 spans per trace, 3 attributes per span, OTLP/gRPC",
        machine(),
        args.duration.as_secs(),
        args.batch,
        args.connections
    );
    println!();
    println!(
        "| server | asked spans/s | accepted spans/s | accepted | failed | CPU s | CPU µs/span | cores | peak RSS MiB | export p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &rate in &args.rates {
        for which in ["decode-only floor", "collector"] {
            let server = if which == "collector" {
                Server::collector(&args.headlight)?
            } else {
                Server::sink(&args.sink)?
            };
            let plan = Plan {
                endpoint: format!("http://{}", server.grpc),
                protocol: Protocol::Grpc,
                rate: (rate > 0.0).then_some(rate),
                duration: args.duration,
                batch: args.batch,
                connections: args.connections,
                gzip: false,
                retry: true,
                request_deadline: Duration::from_secs(30),
                shape: Shape {
                    services: 4,
                    transactions: 10,
                    spans_per_trace: 5,
                    attributes: 3,
                    median_ms: 20.0,
                    sigma: 0.6,
                    error_ratio: 0.01,
                },
            };
            let run = drive(&runtime, &server, plan)?;
            let r = &run.report;
            #[allow(clippy::cast_precision_loss)]
            let per_span_us = run.cpu_s * 1e6 / (r.spans_accepted.max(1) as f64);
            println!(
                "| {which} | {} | {:.0} | {} | {} | {:.2} | {:.2} | {:.3} | {:.1} | {:.1} |",
                if rate > 0.0 {
                    format!("{rate:.0}")
                } else {
                    "saturation".to_owned()
                },
                r.accepted_per_s,
                r.spans_accepted,
                r.spans_failed,
                run.cpu_s,
                per_span_us,
                run.cpu_s / run.wall_s,
                run.peak_rss_mib,
                r.latency_ms.p99,
            );
        }
    }
    Ok(())
}
