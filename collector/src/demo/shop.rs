//! The demo's two services, `shop-frontend` and `shop-checkout`: real axum servers on loopback,
//! instrumented with the headlight agent exactly as an application would be (its `HttpLayer`
//! around the router, `tracing` spans for the child operations, the trace context injected into
//! the calls from one to the other).
//!
//! Both run inside the demo's process, yet each must report as its own service with its own
//! version, so each instance gets its own thread, its own current-thread runtime and its own
//! `tracing` dispatcher (`registry` + the agent's layer), set as that thread's default: every
//! span its handlers open goes to its agent and to no other.

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use tokio::sync::oneshot;
use tracing::Instrument as _;
use tracing_subscriber::prelude::*;

use crate::random::{chance, log_normal_ms};

/// The frontend's name.
pub const FRONTEND: &str = "shop-frontend";
/// The checkout service's name.
pub const CHECKOUT: &str = "shop-checkout";
/// The route whose child operation gets slower in checkout's second version.
pub const SLOW_ROUTE: &str = "POST /orders";
/// The child operation that gets slower.
pub const SLOW_OPERATION: &str = "SELECT inventory";
/// How much slower it gets in the second version (a missing index), median ms.
const SLOW_OPERATION_ADDED_MS: f64 = 22.0;

/// What a service instance is.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `service.name`.
    pub service: &'static str,
    /// `service.version`.
    pub version: &'static str,
    /// Whether `SELECT inventory` has lost its index (checkout's second version).
    pub slow_inventory: bool,
}

/// Where the frontend finds the checkout service: switched at the deploy, as a load balancer
/// would.
pub type CheckoutUrl = Arc<RwLock<String>>;

/// A running service instance.
#[derive(Debug)]
pub struct Instance {
    /// What it is.
    pub spec: Spec,
    /// Its HTTP address.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    agent: Option<headlight_agent::AgentGuard>,
}

impl Instance {
    /// Starts an instance whose agent ships to the collector's OTLP/gRPC `endpoint`. The
    /// frontend calls checkout at `checkout`.
    pub fn start(spec: Spec, endpoint: &str, checkout: &CheckoutUrl) -> anyhow::Result<Self> {
        // The demo's agents ignore the OTEL_* variables of the shell it runs in: they report
        // to the demo's own collector.
        let no_variables = std::collections::HashMap::<String, String>::new();
        let (layer, agent) = headlight_agent::Builder::from_env(&no_variables)
            .service_name(spec.service)
            .service_version(spec.version)
            .environment("demo")
            .endpoint(endpoint)
            .build()
            .with_context(|| format!("cannot start the agent of {}", spec.service))?;
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .with_context(|| format!("cannot listen for {}", spec.service))?;
        let addr = listener.local_addr()?;
        let app = match spec.service {
            FRONTEND => frontend(Arc::clone(checkout)),
            _ => checkout_app(spec.slow_inventory),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("{}-{}", spec.service, spec.version))
            .spawn(move || -> anyhow::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                tracing::dispatcher::with_default(&dispatch, || {
                    runtime.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(listener)?;
                        axum::serve(listener, app)
                            .with_graceful_shutdown(async {
                                let _ = stopped.await;
                            })
                            .await?;
                        Ok(())
                    })
                })
            })
            .context("cannot start a service thread")?;
        Ok(Self {
            spec,
            addr,
            stop: Some(stop),
            thread: Some(thread),
            agent: Some(agent),
        })
    }

    /// The base URL of the instance.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving (in-flight requests finish), then ships what the agent holds; returns the
    /// agent's final counts. Blocks: call it from a blocking task.
    pub fn stop(mut self) -> anyhow::Result<headlight_agent::AgentStats> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("{} panicked", self.spec.service))??;
        }
        let agent = self.agent.take().context("the agent was already stopped")?;
        Ok(agent.shutdown())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Sleeps for a log-normal time with the given median inside a child span.
async fn operation(span: tracing::Span, median_ms: f64, sigma: f64) {
    let ms = log_normal_ms(median_ms, sigma);
    tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0))
        .instrument(span)
        .await;
}

fn db(statement: &'static str, system: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db",
        otel.name = statement,
        otel.kind = "client",
        db.system.name = system
    )
}

// ---- shop-checkout ----

fn checkout_app(slow_inventory: bool) -> Router {
    Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(order))
        .with_state(slow_inventory)
        .layer(headlight_agent::HttpLayer::new())
}

async fn create_order(State(slow_inventory): State<bool>) -> Result<String, StatusCode> {
    let inventory_ms = if slow_inventory {
        4.0 + SLOW_OPERATION_ADDED_MS
    } else {
        4.0
    };
    operation(db(SLOW_OPERATION, "postgresql"), inventory_ms, 0.3).await;
    // The payment gateway: usually quick, now and then very slow, and 1 % of charges fail.
    let slow = chance(0.01);
    let charge = tracing::info_span!(
        "POST /charge",
        otel.kind = "client",
        server.address = "payments.example",
        error = tracing::field::Empty
    );
    operation(charge.clone(), if slow { 150.0 } else { 9.0 }, 0.4).await;
    if chance(0.01) {
        charge.record("error", "payment gateway answered 503");
        return Err(StatusCode::BAD_GATEWAY);
    }
    operation(db("INSERT orders", "postgresql"), 3.0, 0.3).await;
    Ok("{\"status\":\"created\"}".to_owned())
}

async fn order(Path(id): Path<u64>) -> String {
    operation(db("SELECT orders", "postgresql"), 3.0, 0.35).await;
    format!("{{\"id\":{id},\"status\":\"shipped\"}}")
}

// ---- shop-frontend ----

#[derive(Clone)]
struct Frontend {
    checkout: CheckoutUrl,
    http: reqwest::Client,
}

fn frontend(checkout: CheckoutUrl) -> Router {
    let state = Frontend {
        checkout,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default(),
    };
    Router::new()
        .route("/products/{id}", get(product))
        .route("/cart", get(cart))
        .route("/checkout", post(place_order))
        .route("/orders/{id}", get(order_status))
        .with_state(state)
        .layer(headlight_agent::HttpLayer::new())
}

async fn product(Path(id): Path<u64>) -> Result<String, StatusCode> {
    operation(db("SELECT products", "postgresql"), 6.0, 0.4).await;
    if chance(0.005) {
        tracing::error!(product = id, "product row is corrupt");
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    operation(tracing::info_span!("render product"), 2.0, 0.3).await;
    Ok(format!("{{\"id\":{id}}}"))
}

async fn cart() -> String {
    operation(db("GET cart", "redis"), 1.0, 0.3).await;
    "{\"items\":3}".to_owned()
}

/// Calls checkout with the trace context, inside a client span.
async fn call_checkout(
    state: &Frontend,
    method: reqwest::Method,
    path: String,
) -> Result<String, StatusCode> {
    let base = state
        .checkout
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let span = tracing::info_span!(
        "call",
        otel.name = format!("{method} {}", path_template(&path)),
        otel.kind = "client",
        http.request.method = %method,
        server.address = CHECKOUT,
        http.response.status_code = tracing::field::Empty,
        error = tracing::field::Empty,
    );
    async {
        let mut headers = HeaderMap::new();
        headlight_agent::inject_context(&mut headers);
        let response = state
            .http
            .request(method, format!("{base}{path}"))
            .headers(headers)
            .send()
            .await
            .map_err(|e| {
                tracing::Span::current().record("error", e.to_string());
                StatusCode::BAD_GATEWAY
            })?;
        let status = response.status();
        tracing::Span::current().record("http.response.status_code", status.as_u16());
        if !status.is_success() {
            tracing::Span::current().record("error", format!("{CHECKOUT} answered {status}"));
            return Err(StatusCode::BAD_GATEWAY);
        }
        response.text().await.map_err(|_| StatusCode::BAD_GATEWAY)
    }
    .instrument(span)
    .await
}

/// `/orders/42` → `/orders/{id}`: the client span's name stays one operation.
fn path_template(path: &str) -> &str {
    if path.starts_with("/orders/") {
        "/orders/{id}"
    } else {
        path
    }
}

async fn place_order(State(state): State<Frontend>) -> Result<String, StatusCode> {
    call_checkout(&state, reqwest::Method::POST, "/orders".to_owned()).await
}

async fn order_status(
    State(state): State<Frontend>,
    Path(id): Path<u64>,
) -> Result<String, StatusCode> {
    call_checkout(&state, reqwest::Method::GET, format!("/orders/{id}")).await
}
