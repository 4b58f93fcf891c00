//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! Requests may be gzip-compressed. Malformed protobuf is `INVALID_ARGUMENT` (the codec), a
//! request over `limits.max_request_bytes` (before or after decompression) is
//! `RESOURCE_EXHAUSTED` without `RetryInfo`, so clients do not retry it.

use std::sync::Arc;

use headlight_proto::otlp::collector::trace_service_server::{TraceService, TraceServiceServer};
use headlight_proto::otlp::collector::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use http::HeaderValue;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status};

use crate::ingest::admission::RETRY_AFTER;
use crate::pipeline::Pipeline;
use tonic_types::{ErrorDetails, StatusExt as _};

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
        let _permit = self.pipeline.admit().await.map_err(|(_, message)| {
            // UNAVAILABLE with RetryInfo: the exporter keeps the data and retries it later.
            Status::with_error_details(
                Code::Unavailable,
                message,
                ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
            )
        })?;
        let pipeline = Arc::clone(&self.pipeline);
        let request = request.into_inner();
        // Validation and aggregation of a large request can take milliseconds: off the reactor.
        let response = tokio::task::spawn_blocking(move || pipeline.export(request))
            .await
            .map_err(|e| Status::internal(format!("export task failed: {e}")))?;
        Ok(Response::new(response))
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
