//! Helpers for the agent's scenario tests: a real collector on free ports, instrumented services
//! each on its own thread with its own subscriber (so two "services" share a test process), and
//! a small JSON client for the collector's API.

#![allow(dead_code)] // each test binary uses a different subset

pub mod front;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use headlight_agent::{AgentStats, Builder, TailConfig};
use headlight_collector::config::Config;
use headlight_collector::server::Server;
use serde_json::Value;
use tracing_subscriber::prelude::*;

/// A collector on free loopback ports, with its data in a temporary directory.
pub struct Collector {
    pub server: Server,
    _dir: tempfile::TempDir,
}

impl Collector {
    /// Starts a collector that stores the spans of up to 10 000 transactions per series and
    /// window, so tests can read any trace back.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        config.listen.otlp_grpc = "127.0.0.1:0".parse().unwrap();
        config.listen.otlp_http = "127.0.0.1:0".parse().unwrap();
        config.listen.http = "127.0.0.1:0".parse().unwrap();
        config.aggregation.flush_interval_ms = 100;
        config.spans.sample_per_window = 10_000;
        let server = Server::start(config).await.unwrap();
        Self { server, _dir: dir }
    }

    /// The OTLP/gRPC endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.otlp_grpc)
    }

    /// GETs `path` and asserts 200.
    pub async fn get(&self, path_and_query: &str) -> Value {
        let url = format!("http://{}{}", self.server.http, path_and_query);
        let response = reqwest::get(&url).await.unwrap();
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "GET {path_and_query}: {body}");
        body
    }

    /// Returns how many transactions the collector counted for `service` in the last hour.
    pub async fn transactions_counted(&self, service: &str) -> u64 {
        self.server.flush().await.unwrap();
        let body = self
            .get(&format!("/api/v1/latency?service={service}"))
            .await;
        body["summary"]["count"].as_u64().unwrap_or(0)
    }
}

/// A builder that ignores the process environment, pointed at `endpoint`.
pub fn agent(service: &str, endpoint: &str) -> Builder {
    Builder::from_env(&HashMap::<&str, &str>::new())
        .service_name(service)
        .service_version("1.0.0")
        .endpoint(endpoint)
}

/// Keeps every transaction's children (deterministic traces for assertions).
pub fn keep_all() -> TailConfig {
    TailConfig {
        keep_per_window: u32::MAX,
        ..TailConfig::default()
    }
}

/// An instrumented axum service on its own thread, runtime and subscriber.
pub struct Service {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<AgentStats>>,
}

impl Service {
    /// Serves `app()` on 127.0.0.1:0 with the agent built from `builder`.
    pub fn start(builder: Builder, app: impl FnOnce() -> axum::Router + Send + 'static) -> Self {
        Self::start_with(Some(builder), app)
    }

    /// Serves `app()` without any subscriber: the uninstrumented baseline.
    pub fn start_plain(app: impl FnOnce() -> axum::Router + Send + 'static) -> Self {
        Self::start_with(None, app)
    }

    fn start_with(
        builder: Option<Builder>,
        app: impl FnOnce() -> axum::Router + Send + 'static,
    ) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::sync_channel(1);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let (layer, guard) = match builder {
                Some(builder) => {
                    let (layer, guard) = builder.build().unwrap();
                    (Some(layer), Some(guard))
                }
                None => (None, None),
            };
            let _default = layer.map(|layer| {
                tracing::subscriber::set_default(tracing_subscriber::registry().with(layer))
            });
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(
                    listener,
                    app().into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
            drop(runtime);
            let Some(guard) = guard else {
                return AgentStats::default();
            };
            guard.flush(Duration::from_secs(60));
            guard.shutdown()
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The service's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving, flushes the agent and returns its final counters.
    pub fn stop(mut self) -> AgentStats {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap()
    }
}

/// Asserts the agent's conservation law: every recorded span is sent, not kept, or dropped.
pub fn assert_conserved(stats: &AgentStats) {
    assert_eq!(stats.spans_pending, 0, "{stats:?}");
    assert_eq!(stats.transactions_pending, 0, "{stats:?}");
    assert_eq!(
        stats.spans_recorded,
        stats.spans_sent + stats.spans_not_kept + stats.spans_dropped.total(),
        "{stats:?}"
    );
    assert_eq!(
        stats.transactions_recorded,
        stats.transactions_sent + stats.transactions_dropped.total(),
        "{stats:?}"
    );
}
