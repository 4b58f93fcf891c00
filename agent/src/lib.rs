//! Headlight's in-process agent.
//!
//! It records every transaction of a service and its spans through `tracing`, and ships them to
//! a Headlight collector (or any OTLP/gRPC endpoint) from its own thread:
//!
//! - [`HeadlightLayer`]: a `tracing_subscriber::Layer` turning `tracing` spans into OTLP spans;
//! - [`HttpLayer`]: tower middleware opening one transaction span per HTTP or gRPC request,
//!   continuing the caller's W3C trace context; [`inject_context`] propagates it to the next
//!   service;
//! - a bounded queue (drop-and-count, never blocking) and an exporter on its own thread and
//!   runtime, with batching, gzip, timeouts and retries that honour `RetryInfo`;
//! - the local tail decision: the transaction span is always sent; its children are sent for
//!   errors, slow transactions and a sample, and otherwise summarized per operation.
//!
//! # Examples
//!
//! ```no_run
//! # fn main() -> Result<(), headlight_agent::InitError> {
//! // Reads OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT… and installs the global subscriber
//! // (registry + RUST_LOG filter, default `info` + the Headlight layer).
//! let _guard = headlight_agent::builder()
//!     .service_name("checkout")
//!     .service_version(env!("CARGO_PKG_VERSION"))
//!     .init()?;
//! tracing::info_span!("work", otel.kind = "server").in_scope(|| {});
//! // Dropping the guard ships what is queued (5 s at most).
//! # Ok(()) }
//! ```
//!
//! To compose with your own layers, use [`Builder::build`] and add the returned layer to your
//! `tracing_subscriber::registry()`.

mod config;
mod export;
mod http;
mod ids;
mod layer;
mod pool;
mod propagation;
mod queue;
mod record;
mod resource;
mod stats;

use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

pub use config::{
    AgentConfig, ConfigError, Env, ExportConfig, Headers, ParentRoot, ProcessEnv, Sampler,
    TailConfig, TlsFiles,
};
pub use http::{HttpLayer, HttpService, ResponseFuture};
pub use layer::HeadlightLayer;
pub use propagation::{TraceContext, inject_context};
pub use stats::{AgentStats, DropCounts, DropReason};

use export::Control;
use queue::Queue;
use stats::Counters;

/// Why the agent did not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A configuration value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The endpoint is not a valid URI.
    #[error("invalid OTLP endpoint {0}")]
    Endpoint(String),
    /// A header name or value cannot be sent over gRPC.
    #[error("invalid OTLP header {0:?}")]
    Header(String),
    /// A TLS file of an `https://` endpoint is missing, unreadable or not PEM.
    #[error("invalid {setting} file {}: {reason}", path.display())]
    Tls {
        /// The setting: its variable and builder method.
        setting: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The export thread or its runtime could not start.
    #[error("cannot start the export thread: {0}")]
    Thread(#[source] std::io::Error),
    /// Another global `tracing` subscriber is already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Returns a builder that reads the process environment.
pub fn builder() -> Builder {
    Builder::from_env(&ProcessEnv)
}

/// Starts the agent with the environment's settings and installs it as the global subscriber
/// (see [`Builder::init`]).
pub fn init() -> Result<AgentGuard, InitError> {
    builder().init()
}

/// Configures the agent: every setting starts from the standard `OTEL_*` variables (read once,
/// through [`Env`]) and the builder's calls override them.
#[derive(Debug, Clone)]
pub struct Builder {
    service_name: Option<String>,
    service_version: Option<String>,
    environment: Option<String>,
    resource: Vec<(String, String)>,
    sampler: Result<Sampler, ConfigError>,
    tail: TailConfig,
    export: Result<ExportConfig, ConfigError>,
    max_level: tracing::Level,
}

impl Builder {
    /// Starts from the variables of `env`: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`
    /// (`service.name`, `service.version`, `deployment.environment[.name]`, anything else),
    /// `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`,
    /// `OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE`, `OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE`,
    /// `OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_KEY`,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_COMPRESSION`,
    /// `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
    /// `OTEL_BSP_SCHEDULE_DELAY`. Invalid values surface as an error from `build`/`init`.
    pub fn from_env(env: &dyn Env) -> Self {
        let mut resource = Vec::new();
        let mut service_name = None;
        let mut service_version = None;
        let mut environment = None;
        let mut error = None;
        if let Some(list) = env.var("OTEL_RESOURCE_ATTRIBUTES") {
            match config::parse_resource_attributes(&list) {
                Ok(pairs) => {
                    for (key, value) in pairs {
                        match key.as_str() {
                            "service.name" => service_name = Some(value),
                            "service.version" => service_version = Some(value),
                            "deployment.environment" | "deployment.environment.name" => {
                                environment = Some(value);
                            }
                            _ => resource.push((key, value)),
                        }
                    }
                }
                Err(e) => error = Some(e),
            }
        }
        if let Some(name) = env.var("OTEL_SERVICE_NAME") {
            service_name = Some(name);
        }
        let sampler = match env.var("OTEL_TRACES_SAMPLER") {
            Some(name) => Sampler::parse(&name, env.var("OTEL_TRACES_SAMPLER_ARG").as_deref()),
            None => Ok(Sampler::ParentBased(ParentRoot::AlwaysOn)),
        };
        let export = export_from_env(env);
        let export = match error {
            Some(e) => Err(e),
            None => export,
        };
        Self {
            service_name,
            service_version,
            environment,
            resource,
            sampler,
            tail: TailConfig::default(),
            export,
            max_level: tracing::Level::INFO,
        }
    }

    /// Sets `service.name` (default: `OTEL_SERVICE_NAME`, else `unknown_service:<executable>`).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Sets `service.version`, which marks deploys (typically `env!("CARGO_PKG_VERSION")`).
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// Sets `deployment.environment.name` (`production`, `staging`…).
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Adds a resource attribute.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// Sets the collector's OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`; an `https://`
    /// endpoint is spoken to over TLS (see [`Builder::ca_file`], [`Builder::client_identity`]).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        if let Ok(export) = &mut self.export {
            export.endpoint = endpoint.into();
        }
        self
    }

    /// Trusts only the CA certificates of this PEM file for an `https://` endpoint (default:
    /// `OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE`, else the system's roots).
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        if let Ok(export) = &mut self.export {
            export.tls.ca_file = Some(path.into());
        }
        self
    }

    /// Presents this client certificate and key (PEM files) to an `https://` endpoint that
    /// requires mutual TLS (default: `OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE` and
    /// `OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_KEY`).
    pub fn client_identity(
        mut self,
        cert_file: impl Into<std::path::PathBuf>,
        key_file: impl Into<std::path::PathBuf>,
    ) -> Self {
        if let Ok(export) = &mut self.export {
            export.tls.client_cert_file = Some(cert_file.into());
            export.tls.client_key_file = Some(key_file.into());
        }
        self
    }

    /// Sets the head sampler.
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = Ok(sampler);
        self
    }

    /// Sets the most verbose level recorded (default `INFO`): spans and events below it are
    /// left out, so libraries' `debug`/`trace` spans do not become transactions.
    pub fn max_level(mut self, level: tracing::Level) -> Self {
        self.max_level = level;
        self
    }

    /// Sets the local tail decision.
    pub fn tail(mut self, tail: TailConfig) -> Self {
        self.tail = tail;
        self
    }

    /// Changes the exporter's settings (queue, batch, timeouts…).
    pub fn export(mut self, change: impl FnOnce(&mut ExportConfig)) -> Self {
        if let Ok(export) = &mut self.export {
            change(export);
        }
        self
    }

    /// Resolves the configuration without starting anything.
    pub fn config(&self) -> Result<AgentConfig, ConfigError> {
        let export = self.export.clone()?;
        let sampler = self.sampler.clone()?;
        if export.tls.client_cert_file.is_some() != export.tls.client_key_file.is_some() {
            return Err(ConfigError::Invalid {
                key: "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                message: "a client certificate and its key (OTEL_EXPORTER_OTLP_CLIENT_KEY) go \
                          together: set both or neither"
                    .to_owned(),
            });
        }
        if export.max_queue_spans == 0 || export.max_batch_spans == 0 {
            return Err(ConfigError::Invalid {
                key: "max_queue_spans",
                message: "queue and batch sizes must be positive".to_owned(),
            });
        }
        if !(0.0..=1.0).contains(&self.tail.sample_ratio) {
            return Err(ConfigError::Invalid {
                key: "tail.sample_ratio",
                message: format!("{} is not between 0 and 1", self.tail.sample_ratio),
            });
        }
        let service_name = self
            .service_name
            .clone()
            .unwrap_or_else(resource::unknown_service);
        let resource = resource::detect(
            &service_name,
            self.service_version.as_deref(),
            self.environment.as_deref(),
            &self.resource,
        );
        Ok(AgentConfig {
            service_name,
            service_version: self.service_version.clone(),
            environment: self.environment.clone(),
            resource,
            sampler,
            tail: self.tail.clone(),
            export,
        })
    }

    /// Starts the export thread and returns the layer to add to a
    /// `tracing_subscriber::registry()` with the guard that stops it.
    ///
    /// # Examples
    ///
    /// ```
    /// use tracing_subscriber::prelude::*;
    /// let (layer, guard) = headlight_agent::builder()
    ///     .service_name("billing")
    ///     .endpoint("http://127.0.0.1:4317")
    ///     .build()?;
    /// let subscriber = tracing_subscriber::registry().with(layer);
    /// tracing::subscriber::with_default(subscriber, || {
    ///     tracing::info_span!("GET /invoices", otel.kind = "server").in_scope(|| {});
    /// });
    /// assert_eq!(guard.stats().transactions_recorded, 1);
    /// # Ok::<(), headlight_agent::InitError>(())
    /// ```
    pub fn build(self) -> Result<(HeadlightLayer, AgentGuard), InitError> {
        let config = self.config()?;
        let counters = Arc::new(Counters::default());
        let queue = Arc::new(Queue::new(
            config.export.max_queue_spans,
            config.export.max_batch_spans,
            Arc::clone(&counters),
        ));
        let resource = config
            .resource
            .iter()
            .map(|(k, v)| export::string_attribute(k, v.clone()))
            .collect();
        let shutdown_timeout = config.export.shutdown_timeout;
        let (control, thread) = export::spawn(
            config.export.clone(),
            config.tail.clone(),
            resource,
            Arc::clone(&queue),
        )?;
        let layer = HeadlightLayer::new(
            Arc::clone(&queue),
            config.sampler,
            config.tail.max_children,
            self.max_level,
        );
        let guard = AgentGuard {
            control,
            thread: Some(thread),
            queue,
            shutdown_timeout,
            config,
        };
        Ok((layer, guard))
    }

    /// Starts the agent and installs the global subscriber: the registry, an `EnvFilter` from
    /// `RUST_LOG` (default `info`) and the Headlight layer. Use [`Builder::build`] to add your
    /// own layers (such as `fmt`).
    pub fn init(self) -> Result<AgentGuard, InitError> {
        use tracing_subscriber::prelude::*;
        let (layer, guard) = self.build()?;
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .try_init()
            .map_err(|_| InitError::AlreadyInstalled)?;
        Ok(guard)
    }
}

fn export_from_env(env: &dyn Env) -> Result<ExportConfig, ConfigError> {
    let mut export = ExportConfig::default();
    if let Some(endpoint) = env
        .var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| env.var("OTEL_EXPORTER_OTLP_ENDPOINT"))
    {
        export.endpoint = endpoint.trim().to_owned();
    }
    if let Some(headers) = env
        .var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
        .or_else(|| env.var("OTEL_EXPORTER_OTLP_HEADERS"))
    {
        export.headers = Headers::parse(&headers)?;
    }
    let path = |name: &str| {
        env.var(&format!("OTEL_EXPORTER_OTLP_TRACES_{name}"))
            .or_else(|| env.var(&format!("OTEL_EXPORTER_OTLP_{name}")))
            .map(|p| std::path::PathBuf::from(p.trim()))
    };
    export.tls = config::TlsFiles {
        ca_file: path("CERTIFICATE"),
        client_cert_file: path("CLIENT_CERTIFICATE"),
        client_key_file: path("CLIENT_KEY"),
    };
    if let Some(timeout) = config::parse_ms(env, "OTEL_EXPORTER_OTLP_TIMEOUT")? {
        export.timeout = timeout;
    }
    if let Some(delay) = config::parse_ms(env, "OTEL_BSP_SCHEDULE_DELAY")? {
        export.batch_timeout = delay;
    }
    if let Some(size) = config::parse_count(env, "OTEL_BSP_MAX_QUEUE_SIZE")? {
        export.max_queue_spans = size;
    }
    if let Some(size) = config::parse_count(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE")? {
        export.max_batch_spans = size;
    }
    if let Some(compression) = env.var("OTEL_EXPORTER_OTLP_COMPRESSION") {
        export.gzip = match compression.trim() {
            "gzip" => true,
            "none" => false,
            other => {
                return Err(ConfigError::Invalid {
                    key: "OTEL_EXPORTER_OTLP_COMPRESSION",
                    message: format!("{other:?} is not gzip or none"),
                });
            }
        };
    }
    Ok(export)
}

/// Keeps the agent running; dropping it ships what is queued (waiting at most the shutdown
/// timeout, default 5 s) and stops the export thread.
#[derive(Debug)]
pub struct AgentGuard {
    control: tokio::sync::mpsc::Sender<Control>,
    thread: Option<std::thread::JoinHandle<()>>,
    queue: Arc<Queue>,
    shutdown_timeout: Duration,
    config: AgentConfig,
}

impl AgentGuard {
    /// Returns the agent's counters: recorded, sent, not kept, dropped by reason, pending.
    pub fn stats(&self) -> AgentStats {
        self.queue.stats()
    }

    /// Returns the resolved configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Ships everything queued now and waits for the answer, at most `timeout`; returns
    /// whether it finished in time. Blocks the calling thread: do not call it from async code
    /// on a single-threaded runtime.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, finished) = sync_channel(1);
        if self.control.try_send(Control::Flush(done)).is_err() {
            return false;
        }
        finished.recv_timeout(timeout).is_ok()
    }

    /// Stops the agent like dropping the guard, returning the final counters.
    pub fn shutdown(mut self) -> AgentStats {
        self.stop();
        self.stats()
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let deadline = Instant::now() + self.shutdown_timeout;
        let (done, finished) = sync_channel(1);
        if self
            .control
            .try_send(Control::Shutdown(deadline, Some(done)))
            .is_ok()
            && finished
                .recv_timeout(self.shutdown_timeout + Duration::from_millis(500))
                .is_ok()
        {
            let _ = thread.join();
        }
        // Otherwise the thread is stuck in a long export; it is left to finish on its own
        // rather than blocking the application's exit.
    }
}

impl Drop for AgentGuard {
    fn drop(&mut self) {
        self.stop();
    }
}
