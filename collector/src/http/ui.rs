//! The web UI: the entry page at `/` and its embedded files under `/assets/`
//! (`headlight-dashboards`).

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// `GET /`: the entry page, with the collector's OTLP addresses filled in for the empty state.
pub(crate) async fn index(State(state): State<AppState>) -> Response {
    let listen = &state.pipeline.config().listen;
    let page = headlight_dashboards::INDEX_HTML
        .replace("{{OTLP_GRPC}}", &listen.otlp_grpc.to_string())
        .replace("{{OTLP_HTTP}}", &listen.otlp_http.to_string());
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        page,
    )
        .into_response()
}

/// `GET /assets/{path}`: one embedded file, or 404.
pub(crate) async fn asset(Path(path): Path<String>) -> Response {
    match headlight_dashboards::asset(&path) {
        Some((content_type, body)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no UI file {path:?}"),
        )
            .into_response(),
    }
}
