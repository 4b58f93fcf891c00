//! The OTLP/gRPC listener's check: `authorization: Bearer <token>` metadata, or
//! `UNAUTHENTICATED` before any handler runs.

use tonic::service::InterceptorLayer;
use tonic::{Request, Status};

use std::sync::Arc;

use super::{Listener, Refused, Token};

/// The message of a refused call; it never contains a token.
pub const UNAUTHENTICATED: &str =
    "missing or wrong bearer token: send `authorization: Bearer <token>` metadata";

/// The interceptor of [`layer`].
#[derive(Debug, Clone)]
pub struct Bearer {
    token: Option<Token>,
    refused: Arc<Refused>,
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.token else {
            return Ok(request);
        };
        let allowed = request
            .metadata()
            .get("authorization")
            .is_some_and(|v| token.matches_bearer(v.as_bytes()));
        if allowed {
            Ok(request)
        } else {
            self.refused.add(Listener::OtlpGrpc);
            Err(Status::unauthenticated(UNAUTHENTICATED))
        }
    }
}

/// Returns a layer over the gRPC server refusing every call without `token` (`None`: lets
/// everything through), counting refusals in `refused`.
pub fn layer(token: Option<Token>, refused: Arc<Refused>) -> InterceptorLayer<Bearer> {
    InterceptorLayer::new(Bearer { token, refused })
}
