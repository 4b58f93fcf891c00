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

/// A size-limited tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `kib` KiB. The tests run as root (CI installs packages with apt-get);
    /// a machine where `mount` is refused fails here, saying so, rather than skipping.
    fn mount(kib: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs (needs root): {status}"
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes zeros into `name` until the disk is full.
    fn fill(&self, name: &str) {
        use std::io::Write as _;
        let mut file = std::fs::File::create(self.path().join(name)).unwrap();
        let chunk = vec![0u8; 4096];
        for _ in 0..100_000 {
            if file
                .write_all(&chunk)
                .and_then(|()| file.sync_all())
                .is_err()
            {
                return;
            }
        }
        panic!("the disk never filled");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_retryable_refusal_and_loses_nothing_acknowledged() {
    use common::otlp::{now_ns, request, server_span};
    use headlight_collector::metrics::reasons::Reason as _;
    use headlight_proto::otlp::collector::trace_service_client::TraceServiceClient;
    use tonic_types::StatusExt as _;

    let disk = SmallDisk::mount(4096);
    let config = common::test_config(&disk.path().join("data"));
    assert!(
        config.durability.wal,
        "the write-ahead log is on by default"
    );
    let server = headlight_collector::server::Server::start(config)
        .await
        .unwrap();
    let mut client = TraceServiceClient::connect(format!("http://{}", server.otlp_grpc))
        .await
        .unwrap();
    let end = now_ns() - 1_000_000_000;
    // 200 spans (12 KiB) need more than the space the log's current segment already has: a
    // record that fits in blocks a segment owns (its first page, or a recycled segment's) is
    // written on a full disk too.
    let spans = |first: u8| -> Vec<_> {
        (first..first + 200)
            .map(|i| server_span(i, "GET /full", end, 2_000_000))
            .collect()
    };

    // The disk is full: the log cannot take the request, so it is refused as retryable and
    // nothing of it is accepted.
    disk.fill("filler");
    let refused = client.export(request("disk", spans(1))).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.get_details_retry_info().is_some(), "{refused:?}");
    let counters = server.pipeline().counters();
    assert_eq!(
        counters
            .spans_accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // Space again: the client's retry is accepted, and it is what the store holds.
    std::fs::remove_file(disk.path().join("filler")).unwrap();
    let response = client.export(request("disk", spans(1))).await.unwrap();
    assert!(response.into_inner().partial_success.is_none());
    // The disk fills once more before the flush: the store write fails and is retried, the
    // collector keeps serving, and once there is space everything acknowledged is written.
    disk.fill("filler");
    assert!(
        server.flush().await.is_err(),
        "a store write on a full disk fails"
    );
    std::fs::remove_file(disk.path().join("filler")).unwrap();
    server.flush().await.unwrap();
    assert_eq!(
        common::stored_transactions(server.pipeline().store().as_ref(), 10),
        200,
        "every acknowledged transaction is stored, once"
    );
    let refusals: u64 = counters
        .grpc_refused
        .counts()
        .filter(|(reason, _)| reason.label() == "log_unwritable")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        refusals, 1,
        "counted in headlight_export_requests_refused_total"
    );

    // The flush kept the written segment as a spare to overwrite later. On a full disk a
    // request that needs new space is refused, and the refusal gives the spare's space back,
    // so the client's retry is accepted without anything else freeing the disk.
    let spares = || {
        std::fs::read_dir(disk.path().join("data/wal"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("spare".as_ref()))
            .count()
    };
    assert_eq!(spares(), 1, "the written segment is kept for reuse");
    disk.fill("filler");
    let refused = client.export(request("disk", spans(2))).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert_eq!(spares(), 0, "the refusal deleted the spare");
    client.export(request("disk", spans(2))).await.unwrap();
    std::fs::remove_file(disk.path().join("filler")).unwrap();
    server.shutdown().await.unwrap();
}
