//! A minimal axum service instrumented with the Headlight agent: two routes, one with a
//! database-like child span.
//!
//! Run it against a local collector:
//!
//! ```text
//! cargo run --release -p headlight-collector -- serve &          # OTLP on 127.0.0.1:4317
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 \
//!   cargo run -p headlight-agent --example axum_service            # serves 127.0.0.1:3000
//! curl 127.0.0.1:3000/users/42; curl 127.0.0.1:3000/users/13      # 13 fails with a 500
//! curl '127.0.0.1:8080/api/v1/latency?service=users'
//! ```
//!
//! `EXAMPLE_ADDR` changes the listen address.

use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use tracing::Instrument as _;
use tracing_subscriber::prelude::*;

/// The service's routes, wrapped in the agent's HTTP layer.
pub fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(user))
        .route("/health", get(|| async { "ok" }))
        .layer(headlight_agent::HttpLayer::new())
}

/// Looks a user up; id 13 is a failing row.
async fn user(Path(id): Path<u64>) -> Result<String, StatusCode> {
    let row = query_user(id)
        .instrument(tracing::info_span!(
            "SELECT users",
            otel.kind = "client",
            db.system.name = "sqlite",
            db.query.text = "SELECT name FROM users WHERE id = ?",
            user.id = id,
        ))
        .await;
    match row {
        Ok(name) => Ok(format!("{{\"id\":{id},\"name\":\"{name}\"}}")),
        Err(message) => {
            tracing::error!(error = message, user.id = id, "user lookup failed");
            Err(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// Stands in for a database round trip: a short wait, and a failure for id 13.
async fn query_user(id: u64) -> Result<String, &'static str> {
    tokio::time::sleep(Duration::from_micros(200 + id % 7 * 100)).await;
    if id == 13 {
        return Err("row is locked");
    }
    Ok(format!("user-{id}"))
}

#[allow(dead_code)] // tests include this file as a module and use `app` only
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (layer, guard) = headlight_agent::builder()
        .service_name("users")
        .service_version(env!("CARGO_PKG_VERSION"))
        .build()?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with(tracing_subscriber::fmt::layer())
        .with(layer)
        .init();
    let addr = std::env::var("EXAMPLE_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, "users service listening");
    axum::serve(
        listener,
        app().into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    drop(guard); // ships what is queued
    Ok(())
}
