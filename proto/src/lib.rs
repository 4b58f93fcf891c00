//! Headlight's protobuf surface.
//!
//! - [`v1`]: package `headlight.v1`, our own API (`DeployService.RecordDeploy`).
//! - [`otlp`]: the OpenTelemetry protocol trace types, re-exported from `opentelemetry-proto` so
//!   every Headlight crate speaks the same OTLP version, plus the `TraceService` server stub
//!   generated with Headlight's [`codec::StrictProstCodec`].
//!
//! Code is generated at build time by `protox` + `tonic-prost-build`: no system `protoc` needed.

pub mod codec;

/// Package `headlight.v1`: deploy markers over gRPC.
#[allow(missing_debug_implementations, clippy::all, clippy::pedantic)] // generated code
pub mod v1 {
    tonic::include_proto!("headlight.v1");
}

/// The OTLP trace types.
pub mod otlp {
    pub use opentelemetry_proto::tonic::common::v1 as common;
    pub use opentelemetry_proto::tonic::resource::v1 as resource;
    pub use opentelemetry_proto::tonic::trace::v1 as trace;

    /// `opentelemetry.proto.collector.trace.v1`: the export request and response, and the
    /// `TraceService` server stub that decodes with [`StrictProstCodec`](crate::codec::StrictProstCodec).
    pub mod collector {
        pub use opentelemetry_proto::tonic::collector::trace::v1::{
            ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
        };

        #[allow(missing_debug_implementations, clippy::all, clippy::pedantic)] // generated code
        mod generated {
            tonic::include_proto!("opentelemetry.proto.collector.trace.v1");
        }
        pub use generated::trace_service_client;
        pub use generated::trace_service_server;
    }
}
