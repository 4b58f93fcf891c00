//! Real `clickhouse-server` processes for the tests: each in a temp dir, on free loopback ports,
//! killed on drop. A test fails (never skips) when the server cannot start: `scripts/test`
//! installs Debian's `clickhouse-server`.

use super::process::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use headlight_collector::config::{Backend, ClickHouseConfig, Config};

/// One running server.
#[derive(Debug)]
pub struct ClickHouse {
    child: Child,
    dir: tempfile::TempDir,
    /// Which shard of the layout it runs.
    n: u16,
    /// `http://127.0.0.1:<http_port>`.
    pub url: String,
}

fn binary() -> PathBuf {
    for candidate in ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("clickhouse-server is not installed (scripts/test installs Debian's package)");
}

/// The shipped two-shard layout, whose files the test servers run from.
const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/clickhouse-2shards");

/// Returns `text` with `from` replaced by `to`, which must occur.
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{DEPLOY}: {from:?} not found");
    text.replace(from, to)
}

impl ClickHouse {
    /// Starts one server (shard 1 of the shipped layout, alone).
    pub fn start() -> Self {
        let tcp = free_port();
        Self::launch(1, [tcp, free_port()])
    }

    /// Starts the shipped two-shard layout (`deploy/clickhouse-2shards/`) on free ports:
    /// shard 1 (the node collectors talk to) and shard 2.
    pub fn start_two_shards() -> (Self, Self) {
        let tcp = [free_port(), free_port()];
        let second = Self::launch(2, tcp);
        (Self::launch(1, tcp), second)
    }

    /// Runs `shard{n}.xml` of the layout in a temp dir, its ports replaced by free ones and
    /// the cluster's shards by `cluster_tcp`.
    fn launch(n: u16, cluster_tcp: [u16; 2]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let http_port = free_port();
        let tcp_port = cluster_tcp[usize::from(n - 1)];
        std::fs::create_dir_all(dir.path().join(format!("shard{n}"))).unwrap();
        std::fs::copy(format!("{DEPLOY}/users.xml"), dir.path().join("users.xml")).unwrap();
        let mut config = std::fs::read_to_string(format!("{DEPLOY}/shard{n}.xml")).unwrap();
        config = replace(&config, "@DATA@", &root);
        config = replace(
            &config,
            &format!("<http_port>{}</http_port>", 8122 + n),
            &format!("<http_port>{http_port}</http_port>"),
        );
        config = replace(
            &config,
            &format!("<tcp_port>{}</tcp_port>", 8999 + n),
            &format!("<tcp_port>{tcp_port}</tcp_port>"),
        );
        config = replace(
            &config,
            &format!(
                "<interserver_http_port>{}</interserver_http_port>",
                9008 + n
            ),
            &format!(
                "<interserver_http_port>{}</interserver_http_port>",
                free_port()
            ),
        );
        for (i, port) in cluster_tcp.iter().enumerate() {
            config = replace(
                &config,
                &format!("<port>{}</port>", 9000 + i),
                &format!("<port>{port}</port>"),
            );
        }
        let path = dir.path().join("config.xml");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(binary())
            .arg(format!("--config-file={}", path.display()))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run clickhouse-server");
        let mut server = Self {
            child,
            dir,
            n,
            url: format!("http://127.0.0.1:{http_port}"),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let ping = format!("{}/ping", self.url);
        loop {
            if http::request(&ping, "GET", "").is_ok_and(|(_, body)| body == "Ok.\n") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let log =
                    std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
                panic!("clickhouse-server exited with {status}: {log}");
            }
            assert!(
                Instant::now() < deadline,
                "clickhouse-server did not answer /ping within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A store config for database `database` on this server.
    pub fn store_config(&self, database: &str) -> ClickHouseConfig {
        ClickHouseConfig {
            url: self.url.clone(),
            database: database.to_owned(),
            claim_settle_ms: 200,
            ..ClickHouseConfig::default()
        }
    }

    /// Runs a statement; returns the body (panics on an error).
    pub fn sql(&self, sql: &str) -> String {
        let (status, body) = http::request(&self.url, "POST", sql).unwrap();
        assert!(status.contains(" 200 "), "{sql}: {status} {body}");
        body
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sets `config` to use ClickHouse `store`.
pub fn use_clickhouse(config: &mut Config, store: ClickHouseConfig) {
    config.storage.backend = Backend::Clickhouse;
    config.storage.clickhouse = store;
}

mod http {
    /// One HTTP/1.0 request over a plain TCP stream (no runtime needed): the status line and
    /// the body.
    pub fn request(url: &str, method: &str, body: &str) -> std::io::Result<(String, String)> {
        use std::io::{Read as _, Write as _};
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut stream = std::net::TcpStream::connect(host)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
        write!(
            stream,
            "{method} /{path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.lines().next().unwrap_or_default().to_owned();
        Ok((status, body.to_owned()))
    }
}
