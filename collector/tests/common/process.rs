//! Real servers the tests run as programs (Debian packages that `scripts/test` installs):
//! found on `PATH` or in `/usr/bin`, started on a free loopback port, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The program `name` from `PATH` or `/usr/bin`; panics (the test fails, it does not skip)
/// naming the Debian `package` to install when it is missing.
pub fn binary(name: &str, package: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([Path::new("/usr/bin").join(name)])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed: this test runs the real program. Install Debian's \
                 package (`apt-get install -y {package}`, which scripts/test does) and run it again"
            )
        })
}

/// A free loopback port (free when picked: bind it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server, killed when dropped; its stderr goes to a log file.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    log: PathBuf,
}

impl Process {
    /// What the program wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary` with `args(port)` on a free loopback port, its stderr in `log`, and waits up
/// to 20 s until `GET /-/ready` answers 200 (Prometheus and Alertmanager both have it). The
/// port is free when picked but another process may take it first, so three ports are tried.
pub async fn start_ready(binary: &Path, args: impl Fn(u16) -> Vec<String>, log: &Path) -> Process {
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let child = std::process::Command::new(binary)
            .args(args(port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut process = Process {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log: log.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = process.child.try_wait() {
                break;
            }
            if let Ok(response) = client.get(format!("{}/-/ready", process.url)).send().await
                && response.status().is_success()
            {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        failures.push(format!("not ready on port {port}:\n{}", process.log()));
    }
    panic!(
        "{} did not start:\n{}",
        binary.display(),
        failures.join("\n")
    );
}

/// `headlight deploy --service shop --version 2 --url <url>`, the environment's
/// `HEADLIGHT_API_TOKEN` and `HEADLIGHT_CA_FILE` removed (the caller sets what it tests).
pub fn deploy_shop(url: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_headlight"));
    command
        .args([
            "deploy",
            "--service",
            "shop",
            "--version",
            "2",
            "--url",
            url,
        ])
        .env_remove("HEADLIGHT_API_TOKEN")
        .env_remove("HEADLIGHT_CA_FILE");
    command
}
