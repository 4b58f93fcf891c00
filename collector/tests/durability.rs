//! Durability (issue 10): what the collector acknowledged survives `kill -9`.
//!
//! The `headlight` binary runs as its own process with flushes 10 minutes apart, so nothing
//! reaches the store by flushing before it is killed. `headlight loadgen` sends for 2 s and
//! counts what was acknowledged; the process gets SIGKILL; a new process on the same data dir
//! replays the write-ahead log at start. Every acknowledged transaction must then be in the
//! store, exactly; with the log turned off, the same kill loses them (so the test can fail).

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use headlight_collector::loadgen::{self, Plan, Protocol, Shape};
use headlight_collector::store::SqliteStore;

fn free_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], common::process::free_port()))
}

/// A collector process with this config; waits until it listens.
fn start(config: &Path, grpc: SocketAddr) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_headlight"))
        .args(["serve", "--config"])
        .arg(config)
        .env("HEADLIGHT_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(grpc).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "the collector exited");
        assert!(Instant::now() < deadline, "the collector did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Transactions in the store at `dir`.
fn stored_transactions(dir: &Path) -> u64 {
    common::stored_transactions(&SqliteStore::open(dir).unwrap(), 10)
}

/// Sends for 2 s, kills the collector with SIGKILL, restarts it, stops it gracefully; returns
/// (acknowledged transactions, transactions in the store, WAL segments left after the kill).
fn kill_and_restart(wal: bool) -> (u64, u64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let grpc = free_port();
    let config = dir.path().join("headlight.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[listen]\notlp_grpc = \"{grpc}\"\notlp_http = \"{}\"\nhttp = \"{}\"\n[aggregation]\nflush_interval_ms = 600000\n[compare]\nsettle_s = 3600\n[durability]\nwal = {wal}\n",
            dir.path().join("data"),
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut first = start(&config, grpc);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime
        .block_on(loadgen::run(
            Plan {
                endpoint: format!("http://{grpc}"),
                protocol: Protocol::Grpc,
                rate: Some(5_000.0),
                duration: Duration::from_secs(2),
                batch: 250,
                connections: 4,
                gzip: false,
                retry: true,
                request_deadline: Duration::from_secs(10),
                shape: Shape {
                    services: 2,
                    transactions: 4,
                    spans_per_trace: 5,
                    attributes: 3,
                    median_ms: 20.0,
                    sigma: 0.5,
                    error_ratio: 0.01,
                },
            },
            false,
        ))
        .unwrap();
    assert_eq!(report.spans_failed, 0, "{report:#?}");
    assert_eq!(report.spans_rejected, 0);
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let segments = std::fs::read_dir(data.join("wal"))
        .map(|d| d.count())
        .unwrap_or(0);

    let mut second = start(&config, grpc);
    // A graceful stop, so the second process's own (empty) state is flushed too.
    Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(second.wait().unwrap().success());
    (
        report.spans_accepted / 5,
        stored_transactions(&data),
        segments,
    )
}

#[test]
fn acknowledged_spans_survive_kill_minus_nine() {
    let (acknowledged, stored, segments) = kill_and_restart(true);
    assert!(acknowledged >= 1_000, "{acknowledged}");
    assert!(
        segments >= 1,
        "no write-ahead log segment was left by the kill"
    );
    assert_eq!(
        stored, acknowledged,
        "every acknowledged transaction is in the store"
    );
}

#[test]
fn without_the_log_the_same_kill_loses_them() {
    let (acknowledged, stored, _) = kill_and_restart(false);
    assert!(acknowledged >= 1_000, "{acknowledged}");
    assert_eq!(
        stored, 0,
        "flushes were 10 minutes apart: nothing was written before the kill"
    );
}
