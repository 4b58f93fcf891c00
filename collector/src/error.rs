//! One error-code enum for every surface: mapped to HTTP statuses and gRPC codes alike.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

/// What kind of failure a request met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed or a parameter is invalid.
    InvalidArgument,
    /// The thing asked for does not exist.
    NotFound,
    /// The request is over a size limit; retrying will not help.
    ResourceExhausted,
    /// The collector cannot serve now (store down, overloaded); retry later.
    Unavailable,
    /// A bug or an unexpected failure.
    Internal,
    /// The request carries no valid token or session (`[auth]`).
    Unauthenticated,
}

impl ErrorCode {
    /// The HTTP status.
    pub fn http_status(self) -> StatusCode {
        match self {
            Self::InvalidArgument => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
        }
    }

    /// The gRPC code.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            Self::InvalidArgument => tonic::Code::InvalidArgument,
            Self::NotFound => tonic::Code::NotFound,
            Self::ResourceExhausted => tonic::Code::ResourceExhausted,
            Self::Unavailable => tonic::Code::Unavailable,
            Self::Internal => tonic::Code::Internal,
            Self::Unauthenticated => tonic::Code::Unauthenticated,
        }
    }

    /// The snake_case name used in JSON error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::NotFound => "not_found",
            Self::ResourceExhausted => "resource_exhausted",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::Unauthenticated => "unauthenticated",
        }
    }
}

/// An error answered to an API client: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The kind of failure.
    pub code: ErrorCode,
    /// A lowercase message a person can act on.
    pub message: String,
}

impl ApiError {
    /// An `InvalidArgument` error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidArgument,
            message: message.into(),
        }
    }

    /// A `NotFound` error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::NotFound,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self {
            code: ErrorCode::Unavailable,
            message: e.to_string(),
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        tonic::Status::new(e.code.grpc_code(), e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code.as_str(), "message": self.message }
        });
        (self.code.http_status(), axum::Json(body)).into_response()
    }
}
