//! `GET /api/v1/alerts` and `GET /api/v1/dora`.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};

use super::params::Params;
use super::{AppState, RawQuery, blocking, now_ms};
use crate::alert::dora::dora;
use crate::alert::model::AlertState;
use crate::alert::outbox::summary;
use crate::alert::store::AlertQuery;
use crate::compare::report::{Report, Status};
use crate::deploys::DeployQuery;
use crate::error::ApiError;

/// Most alerts one listing returns.
const MAX_ALERTS: u64 = 1_000;
/// The default DORA range: the last 30 days.
const DORA_RANGE_MS: i64 = 30 * 86_400_000;

pub(super) async fn alerts(
    State(state): State<AppState>,
    Query(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::new(raw, &["service", "state", "from", "to", "limit"])?;
    let limit = p.positive("limit")?.unwrap_or(100);
    if limit > MAX_ALERTS {
        return Err(ApiError::invalid(format!(
            "query parameter `limit`: at most {MAX_ALERTS}"
        )));
    }
    let state_filter = match p.string("state").as_deref() {
        None => None,
        Some("firing") => Some(AlertState::Firing),
        Some("resolved") => Some(AlertState::Resolved),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "query parameter `state`: {other:?} is not `firing` or `resolved`"
            )));
        }
    };
    let query = AlertQuery {
        service: p.string("service"),
        state: state_filter,
        from_ms: p.time("from")?,
        to_ms: p.time("to")?,
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
    };
    let pipeline = state.pipeline;
    let body = blocking(move || {
        let store = pipeline.store();
        let mut out = Vec::new();
        for record in store.alerts(&query)? {
            let deliveries: Vec<serde_json::Value> = store
                .deliveries(&record.alert.key)?
                .iter()
                .map(summary)
                .collect();
            let mut alert = serde_json::to_value(&record.alert).map_err(|e| ApiError {
                code: crate::error::ErrorCode::Internal,
                message: e.to_string(),
            })?;
            alert["last_notified_ms"] = record.last_notified_ms.into();
            alert["deliveries"] = deliveries.into();
            out.push(alert);
        }
        Ok(serde_json::json!({ "alerts": out }))
    })
    .await?;
    Ok(Json(body).into_response())
}

pub(super) async fn dora_metrics(
    State(state): State<AppState>,
    Query(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::new(raw, &["service", "from", "to"])?;
    let service = p.required("service")?;
    let to_ms = p.time("to")?.unwrap_or_else(now_ms);
    let from_ms = p.time("from")?.unwrap_or(to_ms - DORA_RANGE_MS);
    if from_ms >= to_ms {
        return Err(ApiError::invalid("`from` must be before `to`"));
    }
    let pipeline = state.pipeline;
    let body = blocking(move || {
        let store = pipeline.store();
        let c = &pipeline.config().compare;
        let recorded = pipeline.deploys(&DeployQuery {
            service: Some(service.clone()),
            environment: None,
            from_ms: Some(from_ms),
            to_ms: Some(to_ms),
            limit: usize::MAX,
        })?;
        let mut deploys = Vec::new();
        for d in recorded {
            let verdict = match store.comparison(&d.id)? {
                Some(text) => serde_json::from_str::<Report>(&text)
                    .ok()
                    .filter(|r| r.status == Status::Ready)
                    .and_then(|r| r.verdict),
                None => None,
            };
            deploys.push((d, verdict));
        }
        let alerts: Vec<_> = store
            .alerts(&AlertQuery {
                service: Some(service.clone()),
                from_ms: Some(from_ms),
                to_ms: Some(to_ms + c.warmup_ms() + c.window_ms()),
                limit: usize::MAX,
                ..AlertQuery::default()
            })?
            .into_iter()
            .map(|r| r.alert)
            .collect();
        Ok(dora(
            &service,
            (from_ms, to_ms),
            &deploys,
            &alerts,
            c.warmup_ms() + c.window_ms(),
        ))
    })
    .await?;
    Ok(Json(body).into_response())
}
