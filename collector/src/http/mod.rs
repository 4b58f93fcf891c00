//! The JSON API, health endpoints and UI on the HTTP port (default `127.0.0.1:8080`).
//!
//! [`app`] builds the router from the shared state, so tests drive it with `.oneshot()` or a
//! real listener alike.

mod alerts;
mod charts;
pub(crate) mod deploys;
mod metrics;
pub mod params;
mod ui;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::error::ApiError;
use crate::model;
use crate::pipeline::{Pipeline, now_ns};
use crate::query;
use crate::query::range::{self, Windows};
use crate::store::SeriesFilter;
use params::Params;

/// What the HTTP handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The pipeline (and through it the store and the configuration).
    pub pipeline: Arc<Pipeline>,
    /// Requests refused for a missing or wrong token, shown in `/metrics`.
    pub auth_refused: Arc<crate::auth::Refused>,
}

pub(crate) type RawQuery = Query<Vec<(String, String)>>;

const SVG: crate::render::Format = crate::render::Format::Svg;
const PNG: crate::render::Format = crate::render::Format::Png;

/// Returns the API router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(ui::index))
        .route("/assets/{*path}", get(ui::asset))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/services", get(services))
        .route("/api/v1/latency", get(latency))
        .route("/api/v1/histogram", get(histogram))
        .route("/api/v1/transactions", get(transactions))
        .route("/api/v1/traces/{trace_id}", get(trace))
        .route("/api/v1/breakdown", get(breakdown))
        .route("/api/v1/heatmap", get(heatmap))
        .route(
            "/api/v1/heatmap.svg",
            get(|s, q| charts::heatmap_image(s, q, SVG)),
        )
        .route(
            "/api/v1/heatmap.png",
            get(|s, q| charts::heatmap_image(s, q, PNG)),
        )
        .route(
            "/api/v1/latency.svg",
            get(|s, q| charts::latency_image(s, q, SVG)),
        )
        .route(
            "/api/v1/latency.png",
            get(|s, q| charts::latency_image(s, q, PNG)),
        )
        .route(
            "/api/v1/deploys/{id}/comparison.svg",
            get(|s, id, q| charts::comparison_image(s, id, q, SVG)),
        )
        .route(
            "/api/v1/deploys/{id}/comparison.png",
            get(|s, id, q| charts::comparison_image(s, id, q, PNG)),
        )
        .route("/api/v1/deploys", get(deploys::list).post(deploys::record))
        .route("/api/v1/deploys/{id}", get(deploys::one))
        .route("/api/v1/deploys/{id}/comparison", get(deploys::comparison))
        .route("/api/v1/compare", get(deploys::compare))
        .route("/api/v1/alerts", get(alerts::alerts))
        .route("/api/v1/dora", get(alerts::dora_metrics))
        .fallback(not_found)
        .with_state(state)
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError {
        code: crate::error::ErrorCode::Internal,
        message: format!("query task failed: {e}"),
    })?
}

pub(crate) fn now_ms() -> i64 {
    now_ns() / 1_000_000
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; the API is under /api/v1 (see the README)")
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    let pipeline = Arc::clone(&state.pipeline);
    let result = blocking(move || {
        pipeline.store().ping()?;
        if pipeline.has_unwritten_batch() {
            return Err(ApiError {
                code: crate::error::ErrorCode::Unavailable,
                message: "the store is refusing writes; data is held in memory and retried".into(),
            });
        }
        Ok(())
    })
    .await;
    match result {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => e.into_response(),
    }
}

async fn services(
    State(state): State<AppState>,
    Query(raw): RawQuery,
) -> Result<Response, ApiError> {
    Params::new(raw, &[])?;
    let pipeline = state.pipeline;
    let body = blocking(move || {
        query::services(
            pipeline.store().as_ref(),
            pipeline.config(),
            pipeline.agent_drops(),
        )
    })
    .await?;
    Ok(Json(body).into_response())
}

pub(crate) const FILTER: [&str; 6] = ["service", "transaction", "env", "version", "from", "to"];

async fn latency(
    State(state): State<AppState>,
    Query(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (filter, windows, step_ms, apdex_t_ms) = latency_request(state.pipeline.config(), raw)?;
    let pipeline = state.pipeline;
    let body = blocking(move || {
        query::latency(
            pipeline.store().as_ref(),
            &filter,
            &windows,
            step_ms,
            apdex_t_ms,
        )
    })
    .await?;
    Ok(Json(body).into_response())
}

/// Parses the parameters of `GET /api/v1/latency`: the filter, the windows and step, and the
/// Apdex threshold in ms.
pub(crate) fn latency_request(
    config: &crate::config::Config,
    raw: Vec<(String, String)>,
) -> Result<(SeriesFilter, Windows, i64, f64), ApiError> {
    let allowed: Vec<&str> = FILTER
        .iter()
        .copied()
        .chain(["step", "apdex_t_ms"])
        .collect();
    let p = Params::new(raw, &allowed)?;
    let apdex_t_ms = p
        .non_negative("apdex_t_ms")?
        .unwrap_or(config.query.apdex_t_ms);
    if apdex_t_ms <= 0.0 {
        return Err(ApiError::invalid(
            "query parameter `apdex_t_ms` must be above 0",
        ));
    }
    let (windows, step_ms) = trend_windows(&p, config, 10_000)?;
    Ok((p.filter(), windows, step_ms, apdex_t_ms))
}

/// Parses `from`, `to` and `step` of a trend: the windows answering the range and the step
/// between points (a whole number of windows); at most `max_points` points.
pub(crate) fn trend_windows(
    p: &Params,
    config: &crate::config::Config,
    max_points: i64,
) -> Result<(Windows, i64), ApiError> {
    let now = now_ms();
    let step = p.seconds("step")?.map(|s| s * 1000);
    let windows = p.range(now)?.windows(&config.aggregation, now, step);
    let step_ms = range::step_ms(&windows, step);
    if (windows.to_ms - windows.from_ms) / step_ms > max_points {
        return Err(ApiError::invalid(
            "too many points: use a larger `step` or a shorter range",
        ));
    }
    Ok((windows, step_ms))
}

/// Parses the filter and the range (aligned to windows) shared by `histogram` and `breakdown`.
pub(crate) fn filter_and_windows(
    config: &crate::config::Config,
    raw: Vec<(String, String)>,
) -> Result<(SeriesFilter, Windows), ApiError> {
    let p = Params::new(raw, &FILTER)?;
    let now = now_ms();
    let windows = p.range(now)?.windows(&config.aggregation, now, None);
    Ok((p.filter(), windows))
}

async fn histogram(
    State(state): State<AppState>,
    Query(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (filter, windows) = filter_and_windows(state.pipeline.config(), raw)?;
    let pipeline = state.pipeline;
    let body =
        blocking(move || query::histogram(pipeline.store().as_ref(), &filter, &windows)).await?;
    Ok(Json(body).into_response())
}

async fn transactions(
    State(state): State<AppState>,
    Query(raw): RawQuery,
) -> Result<Response, ApiError> {
    let search = transaction_search(state.pipeline.config(), raw)?;
    let pipeline = state.pipeline;
    let body = blocking(move || query::transactions(pipeline.store().as_ref(), &search)).await?;
    Ok(Json(body).into_response())
}

/// Parses the parameters of `GET /api/v1/transactions`.
pub(crate) fn transaction_search(
    config: &crate::config::Config,
    raw: Vec<(String, String)>,
) -> Result<query::TransactionSearch, ApiError> {
    let allowed: Vec<&str> = FILTER
        .iter()
        .copied()
        .chain(["min_ms", "max_ms", "errors", "limit"])
        .collect();
    let p = Params::new(raw, &allowed)?;
    let max = config.query.max_transactions;
    let limit = p.positive("limit")?.unwrap_or(100);
    if limit > max as u64 {
        return Err(ApiError::invalid(format!(
            "query parameter `limit`: at most {max} (query.max_transactions)"
        )));
    }
    let search = query::TransactionSearch {
        filter: p.filter(),
        range: p.range(now_ms())?,
        min_ms: p.non_negative("min_ms")?,
        max_ms: p.non_negative("max_ms")?,
        error: p.boolean("errors")?,
        limit: usize::try_from(limit).unwrap_or(max),
    };
    if let (Some(min), Some(max)) = (search.min_ms, search.max_ms)
        && min > max
    {
        return Err(ApiError::invalid("`min_ms` must not be above `max_ms`"));
    }
    Ok(search)
}

async fn trace(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
    Query(raw): RawQuery,
) -> Result<Response, ApiError> {
    Params::new(raw, &[])?;
    let id = model::parse_hex::<16>(&trace_id)
        .ok_or_else(|| ApiError::invalid(format!("trace id {trace_id:?} is not 32 hex digits")))?;
    let pipeline = state.pipeline;
    let body = blocking(move || query::trace(pipeline.store().as_ref(), &id)).await?;
    Ok(Json(body).into_response())
}

async fn breakdown(
    State(state): State<AppState>,
    Query(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (filter, windows) = filter_and_windows(state.pipeline.config(), raw)?;
    let pipeline = state.pipeline;
    let body =
        blocking(move || query::breakdown(pipeline.store().as_ref(), &filter, &windows)).await?;
    Ok(Json(body).into_response())
}

/// Most hitmap columns and rows one request may ask for.
const MAX_HEATMAP_COLUMNS: i64 = 2_000;
const MAX_HEATMAP_ROWS: u64 = 500;

/// Parses the hitmap's parameters: the filter, the range and column step, the y axis.
pub(crate) fn heatmap_request(
    config: &crate::config::Config,
    p: &Params,
) -> Result<(SeriesFilter, Windows, i64, query::heatmap::YAxis), ApiError> {
    use query::heatmap::{Scale, YAxis};
    let now = now_ms();
    let range = p.range(now)?;
    let step = p.seconds("x_step_s")?.map(|s| s * 1000);
    let windows = range.windows(&config.aggregation, now, step);
    let wanted = step.unwrap_or((windows.to_ms - windows.from_ms) / 120);
    let step_ms = range::step_ms(&windows, Some(wanted));
    if (windows.to_ms - windows.from_ms) / step_ms > MAX_HEATMAP_COLUMNS {
        return Err(ApiError::invalid(format!(
            "too many columns (at most {MAX_HEATMAP_COLUMNS}): use a larger `x_step_s` or a shorter range"
        )));
    }
    let buckets = p.positive("y_buckets")?.unwrap_or(40);
    if buckets > MAX_HEATMAP_ROWS {
        return Err(ApiError::invalid(format!(
            "query parameter `y_buckets`: at most {MAX_HEATMAP_ROWS}"
        )));
    }
    let scale = match p.string("y_scale").as_deref() {
        None | Some("log") => Scale::Log,
        Some("linear") => Scale::Linear,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "query parameter `y_scale`: {other:?} is not `log` or `linear`"
            )));
        }
    };
    let axis = YAxis {
        scale,
        buckets: usize::try_from(buckets).unwrap_or(40),
        min_ms: p.non_negative("y_min_ms")?,
        max_ms: p.non_negative("y_max_ms")?,
    };
    Ok((p.filter(), windows, step_ms, axis))
}

/// The hitmap's parameters: the filter, and the x and y axes.
pub(crate) const HEATMAP_PARAMS: [&str; 11] = [
    "service",
    "transaction",
    "env",
    "version",
    "from",
    "to",
    "x_step_s",
    "y_buckets",
    "y_scale",
    "y_min_ms",
    "y_max_ms",
];

async fn heatmap(
    State(state): State<AppState>,
    Query(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::new(raw, &HEATMAP_PARAMS)?;
    let (filter, windows, step_ms, axis) = heatmap_request(state.pipeline.config(), &p)?;
    let pipeline = state.pipeline;
    let body = blocking(move || {
        query::heatmap::heatmap(pipeline.store().as_ref(), &filter, &windows, step_ms, &axis)
    })
    .await?;
    Ok(Json(body).into_response())
}
