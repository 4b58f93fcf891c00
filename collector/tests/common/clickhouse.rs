//! Real `clickhouse-server` processes for the tests: each in a temp dir, on free loopback ports,
//! killed on drop. A test fails (never skips) when the server cannot start: `scripts/test`
//! installs Debian's `clickhouse-server`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use headlight_collector::config::{Backend, ClickHouseConfig, Config};

/// One running server.
#[derive(Debug)]
pub struct ClickHouse {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:<http_port>`.
    pub url: String,
    /// Its native TCP port (what `remote_servers` entries name).
    pub tcp_port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn binary() -> PathBuf {
    for candidate in ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("clickhouse-server is not installed (scripts/test installs Debian's package)");
}

/// Writes a `remote_servers` section: cluster `name` with one shard per TCP port, each on
/// 127.0.0.1.
pub fn cluster_xml(name: &str, tcp_ports: &[u16]) -> String {
    let shards: String = tcp_ports
        .iter()
        .map(|p| {
            format!("<shard><replica><host>127.0.0.1</host><port>{p}</port></replica></shard>")
        })
        .collect();
    format!("<remote_servers><{name}>{shards}</{name}></remote_servers>")
}

impl ClickHouse {
    /// Starts a server with no cluster.
    pub fn start() -> Self {
        Self::start_with(free_port(), "")
    }

    /// Starts a server on `tcp_port` with `extra` XML inside `<yandex>` (e.g. a cluster).
    pub fn start_with(tcp_port: u16, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let http_port = free_port();
        let interserver = free_port();
        std::fs::write(
            dir.path().join("users.xml"),
            "<?xml version=\"1.0\"?><yandex><profiles><default></default></profiles>\
             <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip>\
             </networks><profile>default</profile><quota>default</quota></default></users>\
             <quotas><default></default></quotas></yandex>",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("config.xml"),
            format!(
                "<?xml version=\"1.0\"?><yandex>\
                 <logger><level>warning</level><log>{root}/server.log</log>\
                 <errorlog>{root}/error.log</errorlog></logger>\
                 <http_port>{http_port}</http_port><tcp_port>{tcp_port}</tcp_port>\
                 <interserver_http_port>{interserver}</interserver_http_port>\
                 <listen_host>127.0.0.1</listen_host>\
                 <path>{root}/data/</path><tmp_path>{root}/tmp/</tmp_path>\
                 <user_files_path>{root}/user_files/</user_files_path>\
                 <format_schema_path>{root}/format_schemas/</format_schema_path>\
                 <mark_cache_size>5368709120</mark_cache_size>\
                 <users_config>{root}/users.xml</users_config>\
                 <default_profile>default</default_profile>\
                 <default_database>default</default_database>\
                 <timezone>UTC</timezone>{extra}</yandex>"
            ),
        )
        .unwrap();
        let child = Command::new(binary())
            .arg(format!("--config-file={root}/config.xml"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run clickhouse-server");
        let mut server = Self {
            child,
            dir,
            url: format!("http://127.0.0.1:{http_port}"),
            tcp_port,
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
