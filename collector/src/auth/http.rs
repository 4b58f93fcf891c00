//! The HTTP listeners' checks: `Authorization: Bearer <token>` on OTLP/HTTP, and on the API
//! and `/metrics` a bearer token or a UI session cookie from `POST /login`. `/healthz`,
//! `/readyz` and `/login` stay open.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http_body_util::{BodyExt as _, Limited};
use prost::Message as _;

use super::{ApiAuth, Listener, Refused, Token};
use crate::error::{ApiError, ErrorCode};

/// The UI session cookie's name.
pub const SESSION_COOKIE: &str = "headlight_session";
/// Largest `POST /login` body, bytes.
const MAX_LOGIN_BYTES: usize = 4096;
/// Paths open without a token: health checks and the login page.
const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/login"];

/// The message of a refused request; it never contains a token.
pub const UNAUTHENTICATED: &str =
    "missing or wrong bearer token: send `Authorization: Bearer <token>`";

fn presents(token: &Token, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| token.matches_bearer(v.as_bytes()))
}

/// Puts `router` (OTLP/HTTP) behind the ingest token: a request without it is answered `401`
/// with a `google.rpc.Status` body (`UNAUTHENTICATED`) in the request's encoding, and counted
/// in `refused`.
pub fn require_ingest_token(router: Router, token: Option<Token>, refused: Arc<Refused>) -> Router {
    match token {
        None => router,
        Some(token) => router.layer(middleware::from_fn_with_state(
            (Arc::new(token), refused),
            check_ingest,
        )),
    }
}

async fn check_ingest(
    State((token, refused)): State<(Arc<Token>, Arc<Refused>)>,
    request: Request,
    next: Next,
) -> Response {
    if presents(&token, request.headers()) {
        return next.run(request).await;
    }
    refused.add(Listener::OtlpHttp);
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    let code = tonic::Code::Unauthenticated as i32;
    let (content_type, body) = if json {
        let body = serde_json::json!({ "code": code, "message": UNAUTHENTICATED });
        ("application/json", body.to_string().into_bytes())
    } else {
        let status = tonic_types::Status {
            code,
            message: UNAUTHENTICATED.to_owned(),
            details: Vec::new(),
        };
        ("application/x-protobuf", status.encode_to_vec())
    };
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::CONTENT_TYPE, content_type),
            (header::WWW_AUTHENTICATE, "Bearer"),
        ],
        body,
    )
        .into_response()
}

/// Puts the API/UI `router` behind the API token, adding `GET`/`POST /login`. Without the
/// token or a live session, `/api/*` and `/metrics` answer `401` JSON, other pages redirect
/// to `/login`; those refusals and wrong logins are counted in `refused`.
pub fn require_api_token(
    router: Router,
    auth: Option<Arc<ApiAuth>>,
    refused: Arc<Refused>,
) -> Router {
    let Some(auth) = auth else {
        return router;
    };
    let state = (auth, refused);
    let login = Router::new()
        .route("/login", get(login_page).post(login))
        .with_state(state.clone());
    router
        .merge(login)
        .layer(middleware::from_fn_with_state(state, check_api))
}

/// The state of the API/UI checks.
type ApiState = (Arc<ApiAuth>, Arc<Refused>);

fn session_cookie(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

async fn check_api(
    State((auth, refused)): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let now = Instant::now();
    if OPEN_PATHS.contains(&path)
        || presents(&auth.token, request.headers())
        || session_cookie(request.headers()).any(|id| auth.sessions.is_live(id, now))
    {
        return next.run(request).await;
    }
    refused.add(Listener::Http);
    if path.starts_with("/api/") || path == "/metrics" {
        let mut response = ApiError {
            code: ErrorCode::Unauthenticated,
            message: UNAUTHENTICATED.to_owned(),
        }
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    Redirect::to("/login").into_response()
}

const LOGIN_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Headlight: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto}
input{width:100%;box-sizing:border-box;margin:.5rem 0;padding:.4rem}p.error{color:#b00}</style>
</head><body><h1>Headlight</h1>{{ERROR}}
<form method="post" action="/login"><label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button></form></body></html>
"#;

fn page(status: StatusCode, error: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        LOGIN_PAGE.replace("{{ERROR}}", error),
    )
        .into_response()
}

/// `GET /login`: the login form.
async fn login_page() -> Response {
    page(StatusCode::OK, "")
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space, `%XX` a byte).
fn form_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(0));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// `POST /login` with the form field `token`: a session cookie and a redirect to `/`, or the
/// form again with `401`.
async fn login(State((auth, refused)): State<ApiState>, body: Body) -> Response {
    let Ok(collected) = Limited::new(body, MAX_LOGIN_BYTES).collect().await else {
        return page(
            StatusCode::BAD_REQUEST,
            r#"<p class="error">Invalid form.</p>"#,
        );
    };
    let body = collected.to_bytes();
    let text = String::from_utf8_lossy(&body);
    let presented = text
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "token")
        .map(|(_, value)| form_decode(value));
    let valid = presented.is_some_and(|t| auth.token.matches(t.trim_ascii()));
    if !valid {
        refused.add(Listener::Http);
        tracing::info!("ui login refused: wrong token");
        return page(
            StatusCode::UNAUTHORIZED,
            r#"<p class="error">Wrong token.</p>"#,
        );
    }
    let id = match auth.sessions.create(Instant::now()) {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "cannot create a ui session");
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"<p class="error">Cannot create a session; see the collector's log.</p>"#,
            );
        }
    };
    let cookie = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        super::sessions::SESSION_TTL.as_secs(),
        if auth.secure_cookie { "; Secure" } else { "" }
    );
    let mut response = Redirect::to("/").into_response();
    match header::HeaderValue::from_str(&cookie) {
        Ok(mut value) => {
            value.set_sensitive(true);
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        Err(_) => return page(StatusCode::INTERNAL_SERVER_ERROR, ""),
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_decoded() {
        assert_eq!(form_decode("a+b%21c"), b"a b!c");
        assert_eq!(form_decode("100%"), b"100%");
        assert_eq!(form_decode("%4"), b"%4");
        assert_eq!(form_decode("%zz"), b"%zz");
    }
}
