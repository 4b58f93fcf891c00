//! Server-side charts: `GET /api/v1/heatmap.svg|.png`, `GET /api/v1/latency.svg|.png`,
//! `GET /api/v1/deploys/{id}/comparison.svg|.png`.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::params::Params;
use super::{AppState, FILTER, HEATMAP_PARAMS, RawQuery, blocking, heatmap_request, trend_windows};
use crate::compare::report;
use crate::deploys::DeployQuery;
use crate::error::{ApiError, ErrorCode};
use crate::pipeline::Pipeline;
use crate::query::{self, range::Windows};
use crate::render::{self, Format, Marker};
use crate::store::SeriesFilter;

const SIZE: [&str; 2] = ["width", "height"];
/// Largest width or height, px.
const MAX_SIDE: u64 = 4000;

fn size(p: &Params, default: (u32, u32)) -> Result<(u32, u32), ApiError> {
    let side = |key: &str, d: u32| -> Result<u32, ApiError> {
        match p.positive(key)? {
            None => Ok(d),
            Some(v) if (100..=MAX_SIDE).contains(&v) => Ok(u32::try_from(v).unwrap_or(d)),
            Some(_) => Err(ApiError::invalid(format!(
                "query parameter `{key}`: must be within 100..={MAX_SIDE}"
            ))),
        }
    };
    Ok((side("width", default.0)?, side("height", default.1)?))
}

fn params(raw: Vec<(String, String)>, base: &[&str], extra: &[&str]) -> Result<Params, ApiError> {
    let allowed: Vec<&str> = base
        .iter()
        .chain(SIZE.iter())
        .chain(extra)
        .copied()
        .collect();
    Params::new(raw, &allowed)
}

fn image(format: Format, bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, format.content_type())], bytes).into_response()
}

fn rendered(r: Result<Vec<u8>, render::RenderError>) -> Result<Vec<u8>, ApiError> {
    r.map_err(|e| ApiError {
        code: ErrorCode::Internal,
        message: e.to_string(),
    })
}

/// The deploys of the filter's service (and environment) inside the windows, as markers; none
/// without a service.
fn markers(
    pipeline: &Pipeline,
    filter: &SeriesFilter,
    windows: &Windows,
) -> Result<Vec<Marker>, ApiError> {
    let Some(service) = &filter.service else {
        return Ok(Vec::new());
    };
    Ok(pipeline
        .deploys(&DeployQuery {
            service: Some(service.clone()),
            environment: filter.environment.clone(),
            from_ms: Some(windows.from_ms),
            to_ms: Some(windows.to_ms),
            limit: 1000,
        })?
        .into_iter()
        .map(|d| Marker {
            time_ms: d.time_ms,
            label: d.version,
        })
        .collect())
}

fn title(filter: &SeriesFilter, what: &str) -> String {
    match (&filter.service, &filter.transaction) {
        (Some(s), Some(t)) => format!("{what}: {s} · {t}"),
        (Some(s), None) => format!("{what}: {s}"),
        _ => what.to_owned(),
    }
}

/// `GET /api/v1/heatmap.svg|png`.
pub(super) async fn heatmap_image(
    State(state): State<AppState>,
    Query(raw): RawQuery,
    format: Format,
) -> Result<Response, ApiError> {
    let p = params(raw, &HEATMAP_PARAMS, &[])?;
    let (filter, windows, step_ms, axis) = heatmap_request(state.pipeline.config(), &p)?;
    let size = size(&p, (900, 320))?;
    let pipeline = state.pipeline;
    let bytes = blocking(move || {
        let data =
            query::heatmap::heatmap(pipeline.store().as_ref(), &filter, &windows, step_ms, &axis)?;
        let markers = markers(&pipeline, &filter, &windows)?;
        rendered(render::heatmap_chart(
            &title(&filter, "hitmap"),
            &data,
            &markers,
            format,
            size,
        ))
    })
    .await?;
    Ok(image(format, bytes))
}

/// `GET /api/v1/latency.svg|png`.
pub(super) async fn latency_image(
    State(state): State<AppState>,
    Query(raw): RawQuery,
    format: Format,
) -> Result<Response, ApiError> {
    let p = params(raw, &FILTER, &["step"])?;
    let size = size(&p, (900, 420))?;
    let config = std::sync::Arc::clone(state.pipeline.config());
    let (windows, step_ms) = trend_windows(&p, &config, 2_000)?;
    let filter = p.filter();
    let pipeline = state.pipeline;
    let bytes = blocking(move || {
        let data = query::latency(
            pipeline.store().as_ref(),
            &filter,
            &windows,
            step_ms,
            config.query.apdex_t_ms,
        )?;
        let markers = markers(&pipeline, &filter, &windows)?;
        rendered(render::latency_chart(
            &title(&filter, "latency"),
            &data,
            &markers,
            format,
            size,
        ))
    })
    .await?;
    Ok(image(format, bytes))
}

/// `GET /api/v1/deploys/{id}/comparison.svg|png`.
pub(super) async fn comparison_image(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(raw): RawQuery,
    format: Format,
) -> Result<Response, ApiError> {
    let p = params(raw, &["transaction"], &[])?;
    let size = size(&p, (900, 360))?;
    let wanted = p.string("transaction");
    let pipeline = state.pipeline;
    let bytes = blocking(move || {
        let report = pipeline.deploy_report(&id)?;
        if report.status == report::Status::Pending {
            return Err(ApiError::not_found(format!(
                "the comparison of deploy {id} is pending until {} (unix ms)",
                report.ready_at_ms
            )));
        }
        let transaction = match wanted {
            Some(t) => t,
            None => report
                .transactions
                .first()
                .map(|t| t.transaction.clone())
                .ok_or_else(|| ApiError::not_found("the comparison has no transactions"))?,
        };
        let inputs = report::load(pipeline.store().as_ref(), &report.window)?;
        let input = inputs
            .iter()
            .find(|i| i.transaction == transaction)
            .ok_or_else(|| {
                ApiError::not_found(format!("no transaction {transaction:?} in the comparison"))
            })?;
        let title = format!("{} · {transaction}: before vs after", report.window.service);
        rendered(render::comparison_chart(
            &title,
            &input.before.stats,
            &input.after.stats,
            ("before", "after"),
            format,
            size,
        ))
    })
    .await?;
    Ok(image(format, bytes))
}
