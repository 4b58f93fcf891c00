//! Runs the collector: the three listeners, the flusher and the retention pass.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::alert::channels::{self, Channel};
use crate::auth::Auth;
use crate::config::{Backend, Config};
use crate::http::{AppState, app};
use crate::ingest;
use crate::pipeline::Pipeline;
use crate::store::{ClickHouseStore, Credentials, RetentionAges, SqliteStore, Store, StoreError};
use crate::tls::{ServerTls, TlsListener};

/// How long [`Server::shutdown`] waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often deploys whose after-window completed get their comparison computed and stored.
const SETTLE_EVERY: Duration = Duration::from_secs(5);
/// How often the outbox is looked at for due deliveries.
const DELIVER_EVERY: Duration = Duration::from_secs(1);
/// How often the retention pass runs.
const RETENTION_EVERY: Duration = Duration::from_secs(600);

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// An alert channel could not be set up (a missing secret variable, a bad URL…).
    #[error("invalid alert channel: {0}")]
    Channel(String),
    /// The `[auth]` settings were refused (a token on a non-loopback plaintext listener…).
    #[error("invalid auth settings: {0}")]
    Auth(#[from] crate::auth::AuthError),
    /// The `[tls]` files were refused (missing, not PEM, a key that does not match…).
    #[error("invalid tls settings: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// A running collector. Dropping it without [`Server::shutdown`] stops the listeners but skips
/// the final flush.
#[derive(Debug)]
pub struct Server {
    /// The bound OTLP/gRPC address.
    pub otlp_grpc: SocketAddr,
    /// The bound OTLP/HTTP address.
    pub otlp_http: SocketAddr,
    /// The bound API/UI address.
    pub http: SocketAddr,
    pipeline: Arc<Pipeline>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// Serves `router` on `listener` until `stop`, letting in-flight requests finish.
fn serve_http<L>(
    listener: L,
    router: axum::Router,
    stop: watch::Receiver<bool>,
    what: &'static str,
) -> JoinHandle<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stopped(stop))
            .await
        {
            tracing::error!(error = %e, listener = what, "http server failed");
        }
    })
}

/// Serves `router` on `listener` (bound to `addr`, listener `what`), over TLS when `tls` is set.
fn serve_http_maybe_tls(
    (listener, addr, what): (TcpListener, SocketAddr, &'static str),
    tls: Option<&ServerTls>,
    router: axum::Router,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, StartError> {
    Ok(match tls {
        None => serve_http(listener, router, stop, what),
        Some(tls) => {
            let listener = TlsListener::new(listener, tls.http(), what)
                .map_err(|source| StartError::Bind { what, addr, source })?;
            serve_http(listener, router, stop, what)
        }
    })
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    // Ends when the flag turns true or the sender is gone.
    let _ = stop.wait_for(|s| *s).await;
}

impl Server {
    /// Opens the configured store (`[storage]`: the embedded SQLite store in
    /// `config.data_dir`, or ClickHouse with its credentials from the environment) and starts
    /// the collector.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let store = open_store(&config, &|key| std::env::var(key).ok()).await?;
        Self::start_with_store(config, store).await
    }

    /// Starts the collector over a given store; alert channels read their secrets from the
    /// process environment.
    pub async fn start_with_store(
        config: Config,
        store: Arc<dyn Store>,
    ) -> Result<Self, StartError> {
        Self::start_with_env(config, store, &|key| std::env::var(key).ok()).await
    }

    /// Starts the collector over a given store, reading the alert channels' secrets and the
    /// `[auth]` tokens through `env` (tests pass a map; the binary the process environment).
    pub async fn start_with_env(
        config: Config,
        store: Arc<dyn Store>,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Self, StartError> {
        let channels: Vec<Box<dyn Channel>> = config
            .alerts
            .channels
            .iter()
            .map(|c| channels::build(c, env))
            .collect::<Result<_, _>>()
            .map_err(StartError::Channel)?;
        let rules = config.alerts.rules().map_err(StartError::Channel)?;
        let tls = config.tls.as_ref().map(ServerTls::load).transpose()?;
        let auth = Auth::from_env(&config.auth, &config.listen, tls.is_some(), env)?;
        let holder: Arc<str> = Arc::from(holder_id());
        let config = Arc::new(config);
        let pipeline = {
            let config = Arc::clone(&config);
            // The write-ahead log a crash left is written to the store before anything listens.
            tokio::task::spawn_blocking(move || {
                let pipeline = Pipeline::new(config, store)?;
                pipeline.recover()?;
                Ok::<_, StoreError>(pipeline)
            })
            .await
            .map_err(|e| StoreError::Backend(format!("startup task failed: {e}")))??
        };
        let pipeline = Arc::new(pipeline);
        let grpc_listener = bind("otlp_grpc", config.listen.otlp_grpc).await?;
        let otlp_http_listener = bind("otlp_http", config.listen.otlp_http).await?;
        let http_listener = bind("http", config.listen.http).await?;
        let local = |l: &TcpListener, what, addr| {
            l.local_addr()
                .map_err(|source| StartError::Bind { what, addr, source })
        };
        let otlp_grpc = local(&grpc_listener, "otlp_grpc", config.listen.otlp_grpc)?;
        let otlp_http = local(&otlp_http_listener, "otlp_http", config.listen.otlp_http)?;
        let http = local(&http_listener, "http", config.listen.http)?;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let mut grpc = tonic::transport::Server::builder()
            .max_concurrent_streams(config.limits.max_streams_per_connection);
        if let Some(tls) = &tls {
            grpc = grpc
                .tls_config(tls.grpc())
                .map_err(|e| crate::tls::TlsError::Setup(e.to_string()))?;
        }
        let grpc = grpc
            .layer(crate::auth::grpc::layer(
                auth.ingest.clone(),
                Arc::clone(&auth.refused),
            ))
            .layer(ingest::grpc::RefusalLayer::new(Arc::clone(&pipeline)))
            .add_service(ingest::grpc::OtlpGrpc::service(Arc::clone(&pipeline)))
            .add_service(crate::deploys::grpc::DeployGrpc::service(Arc::clone(
                &pipeline,
            )))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(grpc_listener),
                stopped(stop_rx.clone()),
            );
        tasks.push(tokio::spawn(async move {
            if let Err(e) = grpc.await {
                tracing::error!(error = %e, "otlp grpc server failed");
            }
        }));
        let otlp_router = crate::auth::http::require_ingest_token(
            ingest::http::router(Arc::clone(&pipeline)),
            auth.ingest.clone(),
            Arc::clone(&auth.refused),
        );
        tasks.push(serve_http_maybe_tls(
            (otlp_http_listener, otlp_http, "otlp_http"),
            tls.as_ref(),
            otlp_router,
            stop_rx.clone(),
        )?);
        let api = crate::auth::http::require_api_token(
            app(AppState {
                pipeline: Arc::clone(&pipeline),
                auth_refused: Arc::clone(&auth.refused),
            }),
            auth.api.clone(),
            Arc::clone(&auth.refused),
        );
        tasks.push(serve_http_maybe_tls(
            (http_listener, http, "http"),
            tls.as_ref(),
            api,
            stop_rx.clone(),
        )?);
        let p = Arc::clone(&pipeline);
        let flush_every = Duration::from_millis(config.aggregation.flush_interval_ms);
        tasks.push(tokio::spawn(periodically(
            flush_every,
            stop_rx.clone(),
            "store write failed; batch kept for retry",
            move || p.flush(),
            |()| {},
        )));
        let p = Arc::clone(&pipeline);
        let h = Arc::clone(&holder);
        tasks.push(tokio::spawn(periodically(
            SETTLE_EVERY,
            stop_rx.clone(),
            "deploy comparisons failed; retrying",
            move || p.settle_deploys(&h),
            |n| {
                if n > 0 {
                    tracing::info!(comparisons = n, "deploy comparisons stored");
                }
            },
        )));
        if !rules.is_empty() {
            let p = Arc::clone(&pipeline);
            let evaluate_every = Duration::from_secs(u64::from(config.alerts.evaluate_every_s));
            let period_ms = i64::from(config.alerts.evaluate_every_s) * 1000;
            let h = Arc::clone(&holder);
            tasks.push(tokio::spawn(periodically(
                evaluate_every,
                stop_rx.clone(),
                "alert evaluation failed; retrying",
                move || {
                    let now_ms = crate::pipeline::now_ns() / 1_000_000;
                    if !holds_period(p.store().as_ref(), "evaluate", period_ms, now_ms, &h)? {
                        return Ok(crate::alert::evaluate::Evaluation::default());
                    }
                    crate::alert::evaluate::evaluate(p.store().as_ref(), p.config(), &rules, now_ms)
                },
                |e| {
                    if e != crate::alert::evaluate::Evaluation::default() {
                        tracing::info!(fired = ?e.fired, resolved = ?e.resolved, renotified = ?e.renotified, "alerts");
                    }
                },
            )));
        }
        tasks.push(tokio::spawn(delivery_loop(
            Arc::clone(&pipeline),
            channels,
            Arc::clone(&holder),
            stop_rx.clone(),
        )));
        let p = Arc::clone(&pipeline);
        let h = Arc::clone(&holder);
        tasks.push(tokio::spawn(periodically(
            RETENTION_EVERY,
            stop_rx,
            "retention pass failed",
            move || {
                let every_ms = RETENTION_EVERY.as_millis() as i64;
                let now_ms = crate::pipeline::now_ns() / 1_000_000;
                if !holds_period(p.store().as_ref(), "retention", every_ms, now_ms, &h)? {
                    return Ok(crate::store::RetentionReport::default());
                }
                p.enforce_retention()
            },
            |report| tracing::debug!(?report, "retention pass"),
        )));
        tracing::info!(%otlp_grpc, %otlp_http, %http, ingest_token = auth.ingest.is_some(), api_token = auth.api.is_some(), tls = tls.is_some(), mutual_tls = tls.as_ref().is_some_and(ServerTls::mutual), data_dir = %config.data_dir.display(), "headlight collector listening");
        Ok(Self {
            otlp_grpc,
            otlp_http,
            http,
            pipeline,
            stop,
            tasks,
        })
    }

    /// The pipeline, for in-process callers (tests, the demo).
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// Writes everything aggregated so far to the store now.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let pipeline = Arc::clone(&self.pipeline);
        tokio::task::spawn_blocking(move || pipeline.flush())
            .await
            .map_err(|e| StoreError::Backend(format!("flush task failed: {e}")))?
    }

    /// Stops accepting data, lets in-flight requests finish, and flushes to the store.
    pub async fn shutdown(mut self) -> Result<(), StoreError> {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut self.tasks);
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        // Listeners end on the stop flag; in-flight requests get one bounded grace period.
        let drained = async {
            for task in tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
            tracing::warn!("requests still running after the grace period; aborting them");
        }
        for abort in aborts {
            abort.abort();
        }
        self.flush().await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn delivery_loop(
    pipeline: Arc<Pipeline>,
    channels: Vec<Box<dyn Channel>>,
    holder: Arc<str>,
    stop: watch::Receiver<bool>,
) {
    let give_up_ms = i64::from(pipeline.config().alerts.give_up_after_s) * 1000;
    let mut ticker = tokio::time::interval(DELIVER_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stopped(stop.clone()) => return,
        }
        let now = || crate::pipeline::now_ns() / 1_000_000;
        // The claim waits for the store (ClickHouse settles claims): off the async workers.
        let (store, h) = (Arc::clone(pipeline.store()), Arc::clone(&holder));
        let claimed = tokio::task::spawn_blocking(move || {
            crate::alert::outbox::claim_due(store.as_ref(), now(), &h)
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Backend(format!("outbox task failed: {e}"))));
        let pass = match claimed {
            Ok(entries) if entries.is_empty() => continue,
            Ok(entries) => {
                crate::alert::outbox::deliver(
                    pipeline.store().as_ref(),
                    &channels,
                    entries,
                    now,
                    give_up_ms,
                )
                .await
            }
            Err(e) => Err(e),
        };
        match pass {
            Ok(pass) if pass == crate::alert::outbox::Pass::default() => {}
            Ok(pass) => tracing::info!(?pass, "alert deliveries"),
            Err(e) => tracing::warn!(error = %e, "the outbox cannot be read; retrying"),
        }
    }
}

/// Opens the store `config.storage` names; ClickHouse credentials are read through `env`
/// (`HEADLIGHT_CLICKHOUSE_USER`, `HEADLIGHT_CLICKHOUSE_PASSWORD`).
pub async fn open_store(
    config: &Config,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match config.storage.backend {
        Backend::Sqlite => {
            let dir = config.data_dir.clone();
            Arc::new(
                tokio::task::spawn_blocking(move || SqliteStore::open(&dir))
                    .await
                    .map_err(|e| StoreError::Backend(format!("store open task failed: {e}")))??,
            )
        }
        Backend::Clickhouse => {
            let ch = config.storage.clickhouse.clone();
            let credentials = Credentials::from_env(env);
            let a = &config.aggregation;
            let ages = RetentionAges {
                raw_resolution_s: a.window_s,
                raw_s: a.raw_retention_ms() / 1000,
                rollup_s: a.rollup_retention_ms() / 1000,
            };
            let store = tokio::task::spawn_blocking(move || {
                let store = ClickHouseStore::open(&ch, credentials)?;
                store.set_ttl(&ages)?;
                Ok::<_, StoreError>(store)
            })
            .await
            .map_err(|e| StoreError::Backend(format!("store open task failed: {e}")))??;
            tracing::info!(url = %config.storage.clickhouse.url, database = %config.storage.clickhouse.database, version = ?store.server_version(), "clickhouse store");
            Arc::new(store)
        }
    };
    Ok(store)
}

/// Claims the wall-clock period of `period_ms` holding `now_ms` for periodic work `what`: one
/// collector of those sharing the store does it per period (periods of the wall clock, so
/// collectors started at different times agree on them).
fn holds_period(
    store: &dyn Store,
    what: &str,
    period_ms: i64,
    now_ms: i64,
    holder: &str,
) -> Result<bool, StoreError> {
    let key = format!("{what}/{}", now_ms.div_euclid(period_ms.max(1)));
    Ok(store
        .claim(&[key], holder, period_ms)?
        .first()
        .copied()
        .unwrap_or(false))
}

/// A name for this collector in claims: unique per process and server.
fn holder_id() -> String {
    static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{}-{n}", std::process::id(), crate::pipeline::now_ns())
}

/// Runs `work` on a blocking thread every `every` (missed ticks delayed, not bunched) until the
/// stop flag; `done` sees each success, a failure is logged with `failure` and retried at the
/// next tick.
async fn periodically<T, E>(
    every: Duration,
    stop: watch::Receiver<bool>,
    failure: &'static str,
    work: impl Fn() -> Result<T, E> + Send + Sync + 'static,
    done: impl Fn(T),
) where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let work = Arc::new(work);
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stopped(stop.clone()) => return,
        }
        let w = Arc::clone(&work);
        match tokio::task::spawn_blocking(move || w()).await {
            Ok(Ok(value)) => done(value),
            Ok(Err(e)) => tracing::warn!(error = %e, "{failure}"),
            Err(e) => tracing::error!(error = %e, "{failure}: the task panicked"),
        }
    }
}
