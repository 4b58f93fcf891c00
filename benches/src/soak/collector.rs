//! The soak's collector: `headlight serve` as its own process on fixed loopback ports (so the
//! clients find it again after each restart), one data dir for all its lifetimes (the write-ahead
//! log on, the default), stopped with SIGTERM or SIGKILL, its resident memory sampled.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::super::procfs;
use super::child::{kill, wait_or_kill};

/// How a collector lifetime ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: the collector stops its listeners and flushes to the store.
    Term,
    /// SIGKILL: only the write-ahead log keeps what was acknowledged.
    Kill,
}

impl Stop {
    /// `"SIGTERM"` or `"SIGKILL"`.
    pub fn signal(self) -> &'static str {
        match self {
            Self::Term => "SIGTERM",
            Self::Kill => "SIGKILL",
        }
    }
}

/// The addresses and files every lifetime shares.
#[derive(Debug)]
pub struct Setup {
    /// OTLP/gRPC listener.
    pub grpc: SocketAddr,
    /// HTTP API listener.
    pub http: SocketAddr,
    /// The data dir (store and write-ahead log).
    pub data_dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl Setup {
    /// Picks free loopback ports and writes the config into `dir`.
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        let data_dir = dir.join("data");
        let (grpc, otlp_http, http) = (free_port()?, free_port()?, free_port()?);
        let config = dir.join("headlight.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {data_dir:?}\n[listen]\notlp_grpc = \"{grpc}\"\notlp_http = \"{otlp_http}\"\nhttp = \"{http}\"\n[durability]\nwal = true\n"
            ),
        )?;
        Ok(Self {
            grpc,
            http,
            data_dir,
            config,
            log: dir.join("collector.log"),
        })
    }

    /// The base URL of the HTTP API.
    pub fn api(&self) -> String {
        format!("http://{}", self.http)
    }
}

/// One sample of the collector's resident memory.
#[derive(Debug, Clone, Copy)]
pub struct RssSample {
    /// Seconds since the lifetime started.
    pub t_s: f64,
    /// `VmRSS`, MiB.
    pub mib: f64,
    /// `VmHWM` (the peak so far), MiB.
    pub peak_mib: f64,
    /// `RssAnon` (heap and stacks, no file pages), MiB.
    pub anon_mib: f64,
}

/// A collector lifetime: the running process and its memory samples.
#[derive(Debug)]
pub struct Collector {
    child: Child,
    started: Instant,
    /// Memory samples so far.
    pub rss: Vec<RssSample>,
}

/// What a finished lifetime leaves for the report.
#[derive(Debug, Clone)]
pub struct Lifetime {
    /// 1-based.
    pub number: usize,
    /// How it ended.
    pub stop: Stop,
    /// Seconds it ran.
    pub duration_s: f64,
    /// Seconds from the start (or restart) command to the HTTP API answering `/readyz`.
    pub ready_s: f64,
    /// Memory samples.
    pub rss: Vec<RssSample>,
    /// `VmHWM` just before the stop, MiB.
    pub peak_mib: f64,
}

impl Collector {
    /// Starts `headlight serve` and waits (at most `timeout`) until `/readyz` answers 200;
    /// returns it and how long that took.
    pub fn start(
        headlight: &Path,
        setup: &Setup,
        runtime: &tokio::runtime::Runtime,
        timeout: Duration,
    ) -> anyhow::Result<(Self, Duration)> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&setup.log)?;
        let started = Instant::now();
        let mut child = Command::new(headlight)
            .arg("serve")
            .arg("--config")
            .arg(&setup.config)
            .env("HEADLIGHT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", headlight.display()))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let url = format!("{}/readyz", setup.api());
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the collector exited at start ({status}); its log:\n{}",
                    std::fs::read_to_string(&setup.log).unwrap_or_default()
                );
            }
            let ready = runtime.block_on(async {
                client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            });
            if ready {
                break;
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the collector was not ready within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let ready = started.elapsed();
        Ok((
            Self {
                child,
                started,
                rss: Vec::new(),
            },
            ready,
        ))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Records the resident memory now.
    pub fn sample(&mut self) -> anyhow::Result<()> {
        self.rss.push(RssSample {
            t_s: self.started.elapsed().as_secs_f64(),
            mib: procfs::status_mib(self.pid(), "VmRSS:")?,
            peak_mib: procfs::status_mib(self.pid(), "VmHWM:")?,
            anon_mib: procfs::status_mib(self.pid(), "RssAnon:")?,
        });
        Ok(())
    }

    /// Fails if the process has exited on its own.
    pub fn check_alive(&mut self, setup: &Setup) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the collector exited by itself ({status}); its log:\n{}",
                std::fs::read_to_string(&setup.log).unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Stops the process with `stop`, waiting at most `timeout` for a graceful exit.
    pub fn stop(
        mut self,
        stop: Stop,
        number: usize,
        ready: Duration,
        timeout: Duration,
    ) -> anyhow::Result<Lifetime> {
        let peak_mib = procfs::status_mib(self.pid(), "VmHWM:")?;
        let duration_s = self.started.elapsed().as_secs_f64();
        match stop {
            Stop::Kill => {
                self.child.kill()?;
                self.child.wait()?;
            }
            Stop::Term => {
                let status = Command::new("kill")
                    .args(["-TERM", &self.pid().to_string()])
                    .status()
                    .context("cannot run kill -TERM")?;
                if !status.success() {
                    bail!("kill -TERM {} failed", self.pid());
                }
                let Some(status) = wait_or_kill(&mut self.child, timeout)? else {
                    bail!("the collector did not stop within {timeout:?} of SIGTERM");
                };
                if !status.success() {
                    bail!("the collector's graceful stop failed: {status}");
                }
            }
        }
        Ok(Lifetime {
            number,
            stop,
            duration_s,
            ready_s: ready.as_secs_f64(),
            rss: std::mem::take(&mut self.rss),
            peak_mib,
        })
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Whether a lifetime's memory stayed flat: the mean of the last third of its samples is at
/// most `tolerance` (a fraction) above the mean of the middle third. `None` when the lifetime
/// has fewer than `min_samples` samples (too short to say).
pub fn rss_flat(rss: &[RssSample], min_samples: usize, tolerance: f64) -> Option<(f64, f64, bool)> {
    if rss.len() < min_samples.max(3) {
        return None;
    }
    let third = rss.len() / 3;
    let mean = |s: &[RssSample]| {
        #[allow(clippy::cast_precision_loss)]
        let n = s.len() as f64;
        s.iter().map(|x| x.mib).sum::<f64>() / n
    };
    let middle = mean(&rss[third..2 * third]);
    let last = mean(&rss[2 * third..]);
    Some((middle, last, last <= middle * (1.0 + tolerance)))
}
