//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! Requests may be gzip-compressed. Malformed protobuf is `INVALID_ARGUMENT` (the codec), a
//! request over `limits.max_request_bytes` (before or after decompression) is
//! `RESOURCE_EXHAUSTED` without `RetryInfo`, so clients do not retry it. [`RefusalLayer`]
//! counts those refusals, which tonic answers before the handler runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use headlight_proto::otlp::collector::trace_service_server::{TraceService, TraceServiceServer};
use headlight_proto::otlp::collector::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use http::HeaderValue;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status};

use super::refusal::Refusal;
use crate::ingest::admission::RETRY_AFTER;
use crate::pipeline::Pipeline;
use tonic_types::{ErrorDetails, StatusExt as _};

/// The path of `TraceService/Export`.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The `TraceService` implementation.
#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    pipeline: Arc<Pipeline>,
}

impl OtlpGrpc {
    /// Returns the tonic service, accepting gzip and limited to `limits.max_request_bytes`.
    pub fn service(pipeline: Arc<Pipeline>) -> TraceServiceServer<Self> {
        let limit = pipeline.config().limits.max_request_bytes;
        TraceServiceServer::new(Self { pipeline })
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limit)
    }
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let permit = self
            .pipeline
            .admit()
            .await
            .map_err(|(why, message)| self.retry_later(why, message))?;
        let pipeline = Arc::clone(&self.pipeline);
        let request = request.into_inner();
        // Validation and aggregation of a large request can take milliseconds: off the reactor.
        // The slot is held until the spans are applied, even if the client gives up first.
        let response = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pipeline.export(request)
        })
        .await
        .map_err(|e| Status::internal(format!("export task failed: {e}")))?
        .map_err(|e| self.retry_later(Refusal::LogUnwritable, e.to_string()))?;
        Ok(Response::new(response))
    }
}

impl OtlpGrpc {
    /// Counts a refusal and answers `UNAVAILABLE` with `RetryInfo`: the exporter keeps the data
    /// and sends it again after the delay.
    fn retry_later(&self, why: Refusal, message: String) -> Status {
        self.pipeline.counters().grpc_refused.add(why, 1);
        Status::with_error_details(
            Code::Unavailable,
            message,
            ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
        )
    }
}

/// Rewrites tonic's `OUT_OF_RANGE` for an over-long request frame to `RESOURCE_EXHAUSTED`, the
/// code OTLP uses for "too large" (tonic already uses it when decompression exceeds the limit).
pub fn oversize_to_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let out_of_range = HeaderValue::from(Code::OutOfRange as i32);
    let headers = response.headers_mut();
    if headers.get(Status::GRPC_STATUS) == Some(&out_of_range)
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| {
                m.contains("message%20length%20too%20large")
                    || m.contains("message length too large")
            })
    {
        headers.insert(
            Status::GRPC_STATUS,
            HeaderValue::from(Code::ResourceExhausted as i32),
        );
    }
    response
}

/// A tower layer over the gRPC server: applies [`oversize_to_resource_exhausted`] and counts the
/// `TraceService/Export` requests refused before the handler (malformed, too large, an
/// unsupported encoding) in the pipeline's `grpc_refused`.
#[derive(Debug, Clone)]
pub struct RefusalLayer {
    pipeline: Arc<Pipeline>,
}

impl RefusalLayer {
    /// Returns the layer counting into `pipeline`'s counters.
    pub fn new(pipeline: Arc<Pipeline>) -> Self {
        Self { pipeline }
    }
}

impl<S> tower::Layer<S> for RefusalLayer {
    type Service = Refusals<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Refusals {
            inner,
            pipeline: Arc::clone(&self.pipeline),
        }
    }
}

/// The service of [`RefusalLayer`].
#[derive(Debug, Clone)]
pub struct Refusals<S> {
    inner: S,
    pipeline: Arc<Pipeline>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Refusals<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let pipeline = (request.uri().path() == EXPORT_PATH).then(|| Arc::clone(&self.pipeline));
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = oversize_to_resource_exhausted(response.await?);
            if let Some(pipeline) = pipeline
                && let Some(refusal) = refusal(&response)
            {
                pipeline.counters().grpc_refused.add(refusal, 1);
            }
            Ok(response)
        })
    }
}

/// Why tonic refused an export request, from the status of its (trailers-only) answer. The
/// export handler itself never answers these codes.
fn refusal<B>(response: &http::Response<B>) -> Option<Refusal> {
    let code = response.headers().get(Status::GRPC_STATUS)?.to_str().ok()?;
    match Code::from_i32(code.parse().ok()?) {
        Code::InvalidArgument => Some(Refusal::Malformed),
        Code::ResourceExhausted => Some(Refusal::TooLarge),
        Code::Unimplemented => Some(Refusal::UnsupportedMediaType),
        _ => None,
    }
}
