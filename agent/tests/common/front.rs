//! A real OTLP/gRPC server standing in front of the collector's pipeline: it injects faults
//! (delay, `UNAVAILABLE` + `RetryInfo`), records what it forwarded, and answers like the
//! collector. Without a pipeline it only records and acknowledges.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use headlight_collector::pipeline::Pipeline;
use headlight_proto::otlp::collector::trace_service_server::{TraceService, TraceServiceServer};
use headlight_proto::otlp::collector::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use headlight_proto::otlp::common::KeyValue;
use headlight_proto::otlp::trace::Span;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// What the front does to each request.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Forwards every request.
    None,
    /// Every request waits this long before it is forwarded.
    Slow(Duration),
    /// This share (percent) of requests is refused with UNAVAILABLE and a 20 ms RetryInfo.
    Unavailable(u64),
}

/// What the front received and forwarded.
#[derive(Debug, Default)]
pub struct Seen {
    /// How many times each span id was forwarded.
    pub times_seen: HashMap<Vec<u8>, u32>,
    /// Every forwarded span, in arrival order.
    pub spans: Vec<Span>,
    /// The resource attributes of the last request.
    pub resource: Vec<KeyValue>,
    /// The `authorization` header of the last request.
    pub authorization: Option<String>,
    /// Requests refused with UNAVAILABLE.
    pub refused: u64,
}

struct Front {
    fault: Fault,
    pipeline: Option<Arc<Pipeline>>,
    seen: Arc<Mutex<Seen>>,
    calls: Mutex<u64>,
}

#[tonic::async_trait]
impl TraceService for Front {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let call = {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            *calls
        };
        match self.fault {
            Fault::None => {}
            Fault::Slow(delay) => tokio::time::sleep(delay).await,
            Fault::Unavailable(percent) => {
                // A fixed pattern (call × a prime mod 100), so the share is deterministic.
                if (call * 7919) % 100 < percent {
                    self.seen.lock().unwrap().refused += 1;
                    return Err(Status::with_error_details(
                        Code::Unavailable,
                        "collector busy",
                        ErrorDetails::with_retry_info(Some(Duration::from_millis(20))),
                    ));
                }
            }
        }
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let request = request.into_inner();
        {
            let mut seen = self.seen.lock().unwrap();
            seen.authorization = authorization;
            for resource in &request.resource_spans {
                seen.resource = resource
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.clone())
                    .unwrap_or_default();
                for scope in &resource.scope_spans {
                    for span in &scope.spans {
                        *seen.times_seen.entry(span.span_id.clone()).or_default() += 1;
                        seen.spans.push(span.clone());
                    }
                }
            }
        }
        let Some(pipeline) = self.pipeline.clone() else {
            return Ok(Response::new(ExportTraceServiceResponse::default()));
        };
        let bytes = bytes::Bytes::from(prost::Message::encode_to_vec(&request));
        let response = tokio::task::spawn_blocking(move || pipeline.export(&bytes))
            .await
            .unwrap()
            .unwrap();
        Ok(Response::new(response))
    }
}

/// Serves a front on `listener` (on the current tokio runtime) and returns what it records.
pub fn serve_front(
    listener: tokio::net::TcpListener,
    fault: Fault,
    pipeline: Option<Arc<Pipeline>>,
) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let front = Front {
        fault,
        pipeline,
        seen: Arc::clone(&seen),
        calls: Mutex::new(0),
    };
    let service = TraceServiceServer::new(front).accept_compressed(CompressionEncoding::Gzip);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    seen
}
