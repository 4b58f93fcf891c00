//! The demo's webhook receiver: a real HTTP server on loopback that the collector's webhook
//! channel posts its alerts to. It keeps what it received (and appends it to a file), so the
//! demo can show the delivered alert and a test can check it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde::Serialize;
use tokio::sync::Notify;

/// The path the receiver answers on.
pub const PATH: &str = "/hooks/headlight";

/// One delivery as it arrived.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    /// `X-Headlight-Delivery`.
    pub delivery_id: Option<String>,
    /// The body, parsed.
    pub body: serde_json::Value,
}

#[derive(Debug)]
struct Inner {
    received: Mutex<Vec<Received>>,
    arrived: Notify,
    log: PathBuf,
}

/// The running receiver.
#[derive(Debug, Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Receiver {
    /// Starts a receiver on a free loopback port; it appends every delivery, one JSON per
    /// line, to `log`.
    pub async fn start(log: PathBuf) -> anyhow::Result<Self> {
        let inner = Arc::new(Inner {
            received: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            log,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen for the webhook receiver")?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route(PATH, post(receive))
            .with_state(Arc::clone(&inner));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the demo's webhook receiver stopped");
            }
        });
        Ok(Self { inner, addr })
    }

    /// The URL the webhook channel posts to.
    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until a delivery satisfies `found` (or `timeout` passes) and returns it.
    pub async fn wait_for(
        &self,
        timeout: std::time::Duration,
        found: impl Fn(&Received) -> bool,
    ) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.inner.arrived.notified();
            if let Some(r) = self.received().into_iter().find(|r| found(r)) {
                return Some(r);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let received = Received {
        delivery_id: headers
            .get("x-headlight-delivery")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    };
    let line = serde_json::to_string(&received).unwrap_or_default() + "\n";
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&inner.log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    if let Err(e) = appended {
        tracing::warn!(error = %e, path = %inner.log.display(), "cannot write the webhook log");
    }
    inner
        .received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(received);
    inner.arrived.notify_waiters();
    StatusCode::NO_CONTENT
}
