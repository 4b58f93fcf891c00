//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! Requests may be gzip-compressed. Malformed protobuf is `INVALID_ARGUMENT` (the pipeline), a
//! request over `limits.max_request_bytes` (before or after decompression) is
//! `RESOURCE_EXHAUSTED` without `RetryInfo`, so clients do not retry it. [`RefusalLayer`]
//! counts those refusals, which tonic answers before the handler runs.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use headlight_proto::codec::RawRequestCodec;
use headlight_proto::otlp::collector::ExportTraceServiceResponse;
use http::HeaderValue;
use tonic::codec::{CompressionEncoding, EnabledCompressionEncodings};
use tonic::codegen::{Body, BoxFuture, StdError};
use tonic::{Code, Request, Response, Status};

use super::refusal::Refusal;
use crate::ingest::admission::RETRY_AFTER;
use crate::ingest::convert::Refused;
use crate::pipeline::{ExportError, Pipeline};
use tonic_types::{ErrorDetails, StatusExt as _};

/// The gRPC service name of OTLP traces.
const SERVICE_NAME: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
/// The path of `TraceService/Export`.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The `TraceService` server. Each request's bytes go to the pipeline undecoded, which reads
/// them in place (`ingest::convert`), so it is written out here rather than generated: the
/// generated stub would decode into `prost`'s owned types first.
#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    pipeline: Arc<Pipeline>,
    /// gzip, accepted and sent.
    encodings: EnabledCompressionEncodings,
    /// `limits.max_request_bytes`.
    limit: usize,
}

impl OtlpGrpc {
    /// Returns the service, accepting gzip and limited to `limits.max_request_bytes`.
    pub fn service(pipeline: Arc<Pipeline>) -> Self {
        let mut encodings = EnabledCompressionEncodings::default();
        encodings.enable(CompressionEncoding::Gzip);
        let limit = pipeline.config().limits.max_request_bytes;
        Self {
            pipeline,
            encodings,
            limit,
        }
    }

    async fn export(
        &self,
        request: Request<Bytes>,
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
            pipeline.export(&request)
        })
        .await
        .map_err(|e| Status::internal(format!("export task failed: {e}")))?;
        match response {
            Ok(response) => Ok(Response::new(response)),
            // Counted by [`RefusalLayer`] from the status.
            Err(ExportError::Refused(e @ Refused::Malformed(_))) => {
                Err(Status::invalid_argument(e.to_string()))
            }
            Err(ExportError::Refused(e @ Refused::TooManySpans(_))) => {
                Err(Status::resource_exhausted(e.to_string()))
            }
            Err(ExportError::Durability(e)) => {
                Err(self.retry_later(Refusal::LogUnwritable, e.to_string()))
            }
        }
    }
}

impl tonic::server::NamedService for OtlpGrpc {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> tower::Service<http::Request<B>> for OtlpGrpc
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let (encodings, limit) = (self.encodings, self.limit);
        let method = Export(self.clone());
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(RawRequestCodec::<ExportTraceServiceResponse>::default())
                    .apply_compression_config(encodings, encodings)
                    .apply_max_message_size_config(Some(limit), None);
            Ok(grpc.unary(method, request).await)
        })
    }
}

/// `TraceService/Export` as tonic's unary handler.
struct Export(OtlpGrpc);

impl tonic::server::UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.export(request).await })
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
