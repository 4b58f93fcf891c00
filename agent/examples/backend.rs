//! The called half of a two-service example: `frontend` calls this service, and the trace
//! continues here through the W3C `traceparent` header.
//!
//! ```text
//! cargo run --release -p headlight-collector -- serve &                # collector
//! cargo run -p headlight-agent --example backend &                      # 127.0.0.1:3001
//! cargo run -p headlight-agent --example frontend &                     # 127.0.0.1:3000
//! curl 127.0.0.1:3000/checkout/7
//! curl '127.0.0.1:8080/api/v1/transactions?service=frontend'           # take a trace_id…
//! curl 127.0.0.1:8080/api/v1/traces/<trace_id>                         # …one tree, two services
//! ```
//!
//! `EXAMPLE_ADDR` changes the listen address.

use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use tracing::Instrument as _;
use tracing_subscriber::prelude::*;

/// The backend's routes, wrapped in the agent's HTTP layer.
pub fn app() -> Router {
    Router::new()
        .route("/prices/{item}", get(price))
        .layer(headlight_agent::HttpLayer::new())
}

async fn price(Path(item): Path<u64>) -> String {
    async { tokio::time::sleep(Duration::from_micros(300)).await }
        .instrument(tracing::info_span!(
            "SELECT prices",
            otel.kind = "client",
            db.system.name = "postgresql",
            item = item,
        ))
        .await;
    format!("{}", item * 100 + 99)
}

#[allow(dead_code)] // tests include this file as a module and use `app` only
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (layer, guard) = headlight_agent::builder()
        .service_name("backend")
        .service_version(env!("CARGO_PKG_VERSION"))
        .build()?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with(tracing_subscriber::fmt::layer())
        .with(layer)
        .init();
    let addr = std::env::var("EXAMPLE_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, "backend listening");
    axum::serve(listener, app())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    drop(guard);
    Ok(())
}
