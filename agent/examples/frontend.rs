//! The calling half of a two-service example: each request calls `backend` with the trace
//! context injected, so both services' spans form one trace. See `backend.rs` for how to run
//! the pair.
//!
//! `EXAMPLE_ADDR` changes the listen address, `BACKEND_URL` where the backend is
//! (default `http://127.0.0.1:3001`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use tracing::Instrument as _;
use tracing_subscriber::prelude::*;

/// The frontend's routes; `backend` is the backend's base URL.
pub fn app(backend: String) -> Router {
    Router::new()
        .route("/checkout/{item}", get(checkout))
        .with_state(backend)
        .layer(headlight_agent::HttpLayer::new())
}

async fn checkout(
    State(backend): State<String>,
    Path(item): Path<u64>,
) -> Result<String, StatusCode> {
    let url = format!("{backend}/prices/{item}");
    let span = tracing::info_span!(
        "GET /prices/{item}",
        otel.kind = "client",
        http.request.method = "GET",
        url.full = %url,
        http.response.status_code = tracing::field::Empty,
    );
    let price = async {
        // The client span is current here, so the backend's transaction becomes its child.
        let mut headers = axum::http::HeaderMap::new();
        headlight_agent::inject_context(&mut headers);
        let response = reqwest::Client::new()
            .get(&url)
            .headers(headers)
            .send()
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "backend call failed");
                StatusCode::BAD_GATEWAY
            })?;
        tracing::Span::current().record("http.response.status_code", response.status().as_u16());
        response.text().await.map_err(|_| StatusCode::BAD_GATEWAY)
    }
    .instrument(span)
    .await?;
    Ok(format!("{{\"item\":{item},\"price_cents\":{price}}}"))
}

#[allow(dead_code)] // tests include this file as a module and use `app` only
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (layer, guard) = headlight_agent::builder()
        .service_name("frontend")
        .service_version(env!("CARGO_PKG_VERSION"))
        .build()?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with(tracing_subscriber::fmt::layer())
        .with(layer)
        .init();
    let backend =
        std::env::var("BACKEND_URL").unwrap_or_else(|_| "http://127.0.0.1:3001".to_owned());
    let addr = std::env::var("EXAMPLE_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, %backend, "frontend listening");
    axum::serve(listener, app(backend))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    drop(guard);
    Ok(())
}
