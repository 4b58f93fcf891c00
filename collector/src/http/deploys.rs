//! `POST/GET /api/v1/deploys`, `GET /api/v1/deploys/{id}[/comparison]` and
//! `GET /api/v1/compare`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::params::{Params, parse_duration_s};
use super::{AppState, RawQuery, blocking, now_ms};
use crate::compare::report::{self, Spec};
use crate::config::Config;
use crate::deploys::{DeployQuery, NewDeploy};
use crate::error::ApiError;

/// Most deploys one listing returns.
const MAX_DEPLOYS: u64 = 10_000;

pub(super) async fn record(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: NewDeploy = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("invalid deploy JSON: {e}")))?;
    let pipeline = state.pipeline;
    let deploy = blocking(move || pipeline.record_deploy(request)).await?;
    Ok((StatusCode::CREATED, Json(deploy)).into_response())
}

pub(super) async fn list(
    State(state): State<AppState>,
    Query(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::new(raw, &["service", "env", "from", "to", "limit"])?;
    let limit = p.positive("limit")?.unwrap_or(100);
    if limit > MAX_DEPLOYS {
        return Err(ApiError::invalid(format!(
            "query parameter `limit`: at most {MAX_DEPLOYS}"
        )));
    }
    let query = DeployQuery {
        service: p.string("service"),
        environment: p.string("env"),
        from_ms: p.time("from")?,
        to_ms: p.time("to")?,
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
    };
    let pipeline = state.pipeline;
    let deploys = blocking(move || pipeline.deploys(&query)).await?;
    Ok(Json(serde_json::json!({ "deploys": deploys })).into_response())
}

pub(super) async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(raw): RawQuery,
) -> Result<Response, ApiError> {
    Params::new(raw, &[])?;
    let pipeline = state.pipeline;
    let deploy = blocking(move || {
        pipeline
            .store()
            .deploy(&id)?
            .ok_or_else(|| ApiError::not_found(format!("no deploy with id {id:?}")))
    })
    .await?;
    Ok(Json(deploy).into_response())
}

pub(super) async fn comparison(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(raw): RawQuery,
) -> Result<Response, ApiError> {
    Params::new(raw, &[])?;
    let pipeline = state.pipeline;
    let report = blocking(move || pipeline.deploy_report(&id)).await?;
    Ok(Json(report).into_response())
}

pub(crate) const COMPARE_PARAMS: [&str; 11] = [
    "service",
    "env",
    "baseline_version",
    "canary_version",
    "from",
    "to",
    "before_from",
    "before_to",
    "after_from",
    "after_to",
    "offset",
];

fn range(p: &Params, from: &str, to: &str) -> Result<(i64, i64), ApiError> {
    let (Some(f), Some(t)) = (p.time(from)?, p.time(to)?) else {
        return Err(ApiError::invalid(format!(
            "`{from}` and `{to}` are both required"
        )));
    };
    if f >= t {
        return Err(ApiError::invalid(format!("`{from}` must be before `{to}`")));
    }
    Ok((f, t))
}

/// Parses a canary (`baseline_version` + `canary_version`, over `from`..`to`, default the last
/// hour) or period (`before_from`..`before_to` or `offset`, against `after_from`..`after_to`)
/// comparison.
pub(crate) fn spec(p: &Params, config: &Config, now: i64) -> Result<Spec, ApiError> {
    let service = p.required("service")?;
    let environment = p.string("env");
    let canary = (p.string("baseline_version"), p.string("canary_version"));
    let period = [
        "before_from",
        "before_to",
        "after_from",
        "after_to",
        "offset",
    ]
    .iter()
    .any(|k| p.string(k).is_some());
    match canary {
        (Some(baseline), Some(canary)) if !period => {
            let r = p.range(now)?;
            Ok(report::canary_spec(
                config,
                service,
                environment,
                baseline,
                canary,
                (r.from_ms, r.to_ms),
                now,
            ))
        }
        (None, None) if period => {
            if p.string("from").is_some() || p.string("to").is_some() {
                return Err(ApiError::invalid(
                    "a period comparison takes `after_from`/`after_to`, not `from`/`to`",
                ));
            }
            let after = range(p, "after_from", "after_to")?;
            let before = match p.string("offset") {
                Some(text) => {
                    if p.string("before_from").is_some() || p.string("before_to").is_some() {
                        return Err(ApiError::invalid(
                            "give either `offset` or `before_from`/`before_to`, not both",
                        ));
                    }
                    let offset_ms = parse_duration_s(&text).ok_or_else(|| {
                        ApiError::invalid(format!(
                            "query parameter `offset`: {text:?} is not a duration like 1h or 7d"
                        ))
                    })? * 1000;
                    (after.0 - offset_ms, after.1 - offset_ms)
                }
                None => range(p, "before_from", "before_to")?,
            };
            Ok(report::period_spec(
                config,
                service,
                environment,
                before,
                after,
                now,
            ))
        }
        _ => Err(ApiError::invalid(
            "give `baseline_version` and `canary_version` (canary), or `after_from`, `after_to` and `before_from`/`before_to` or `offset` (period)",
        )),
    }
}

pub(super) async fn compare(
    State(state): State<AppState>,
    Query(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::new(raw, &COMPARE_PARAMS)?;
    let spec = spec(&p, state.pipeline.config(), now_ms())?;
    let pipeline = state.pipeline;
    let report = blocking(move || pipeline.compare(spec)).await?;
    Ok(Json(report).into_response())
}
