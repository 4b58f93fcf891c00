//! OTLP/HTTP: `POST /v1/traces` with a protobuf (`application/x-protobuf`) or JSON
//! (`application/json`) body, optionally `Content-Encoding: gzip`.
//!
//! Answers in the request's encoding: `200` with an `ExportTraceServiceResponse` (partial
//! success when spans were rejected), `400` for a malformed body, `413` over
//! `limits.max_request_bytes` (compressed or decompressed), `415` for another content type or
//! encoding; errors carry a `google.rpc.Status` body as the OTLP specification asks.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use headlight_proto::otlp::collector::ExportTraceServiceRequest;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prost::Message;

use super::refusal::Refusal;
use crate::ingest::admission::RETRY_AFTER;
use crate::ingest::convert::Refused;
use crate::pipeline::{ExportError, Pipeline};

/// The encoding of a request body, and so of its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// Returns the OTLP/HTTP router.
pub fn router(pipeline: Arc<Pipeline>) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .with_state(pipeline)
}

fn status_body(format: Format, status: StatusCode, code: tonic::Code, message: String) -> Response {
    let body = match format {
        Format::Protobuf => tonic_types::Status {
            code: code as i32,
            message,
            details: Vec::new(),
        }
        .encode_to_vec(),
        Format::Json => serde_json::json!({ "code": code as i32, "message": message })
            .to_string()
            .into_bytes(),
    };
    (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}

/// Counts a refused request and answers it: `400` malformed, `413` too large, `415` unsupported.
fn refuse(pipeline: &Pipeline, refusal: Refusal, format: Format, message: String) -> Response {
    pipeline.counters().http_refused.add(refusal, 1);
    let (status, code) = match refusal {
        Refusal::Malformed => (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument),
        Refusal::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            tonic::Code::ResourceExhausted,
        ),
        Refusal::UnsupportedMediaType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tonic::Code::InvalidArgument,
        ),
        Refusal::Busy | Refusal::StoreBehind | Refusal::MemoryLimit | Refusal::LogUnwritable => {
            // The exporter keeps the data and sends it again after the delay.
            let mut response = status_body(
                format,
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
                message,
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(RETRY_AFTER.as_secs()),
            );
            return response;
        }
    };
    status_body(format, status, code, message)
}

async fn export(State(pipeline): State<Arc<Pipeline>>, headers: HeaderMap, body: Body) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let format = match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Format::Protobuf,
        "application/json" => Format::Json,
        _ => {
            return refuse(
                &pipeline,
                Refusal::UnsupportedMediaType,
                Format::Json,
                format!(
                    "unsupported content type {content_type:?}: use application/x-protobuf or application/json"
                ),
            );
        }
    };
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return refuse(
                &pipeline,
                Refusal::UnsupportedMediaType,
                format,
                format!("unsupported content encoding {other:?}: use gzip or none"),
            );
        }
    };
    // Admission control before the body is read, so a refused request costs no memory.
    let permit = match pipeline.admit().await {
        Ok(permit) => permit,
        Err((why, message)) => return refuse(&pipeline, why, format, message),
    };
    let limit = pipeline.config().limits.max_request_bytes;
    let too_large = |what: &str| {
        refuse(
            &pipeline,
            Refusal::TooLarge,
            format,
            format!(
                "request body {what} exceeds the limit of {limit} bytes (limits.max_request_bytes)"
            ),
        )
    };
    let raw = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return too_large("size"),
        Err(e) => {
            return refuse(
                &pipeline,
                Refusal::Malformed,
                format,
                format!("cannot read request body: {e}"),
            );
        }
    };
    let decoded: Bytes = if gzip {
        let mut out = Vec::new();
        let mut decoder = flate2::read::GzDecoder::new(&raw[..]).take(limit as u64 + 1);
        #[allow(clippy::disallowed_methods)] // capped by `take` just above
        let read = decoder.read_to_end(&mut out);
        match read {
            Ok(_) if out.len() > limit => return too_large("after decompression"),
            Ok(_) => Bytes::from(out),
            Err(e) => {
                return refuse(
                    &pipeline,
                    Refusal::Malformed,
                    format,
                    format!("invalid gzip body: {e}"),
                );
            }
        }
    } else {
        raw
    };
    // Protobuf is read in place by the pipeline; JSON becomes the same protobuf first.
    let request = match format {
        Format::Protobuf => decoded,
        Format::Json => match serde_json::from_slice::<ExportTraceServiceRequest>(&decoded) {
            Ok(request) => Bytes::from(request.encode_to_vec()),
            Err(e) => {
                let message = format!("malformed json: {e}");
                return refuse(&pipeline, Refusal::Malformed, format, message);
            }
        },
    };
    let response = match tokio::task::spawn_blocking({
        let pipeline = Arc::clone(&pipeline);
        // The slot is held until the spans are applied, even if the client gives up first.
        move || {
            let _permit = permit;
            pipeline.export(&request)
        }
    })
    .await
    {
        Ok(Ok(response)) => response,
        Ok(Err(ExportError::Refused(e @ Refused::Malformed(_)))) => {
            return refuse(&pipeline, Refusal::Malformed, format, e.to_string());
        }
        Ok(Err(ExportError::Refused(e @ Refused::TooManySpans(_)))) => {
            return refuse(&pipeline, Refusal::TooLarge, format, e.to_string());
        }
        Ok(Err(ExportError::Durability(e))) => {
            return refuse(&pipeline, Refusal::LogUnwritable, format, e.to_string());
        }
        Err(e) => {
            return status_body(
                format,
                StatusCode::INTERNAL_SERVER_ERROR,
                tonic::Code::Internal,
                format!("export task failed: {e}"),
            );
        }
    };
    let body = match format {
        Format::Protobuf => response.encode_to_vec(),
        Format::Json => serde_json::to_vec(&response).unwrap_or_default(),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}
