//! OTLP ingest: gRPC (`TraceService/Export`) and HTTP (`POST /v1/traces`), both into the
//! [`Pipeline`](crate::pipeline::Pipeline).

pub mod admission;
pub mod agent;
pub mod convert;
pub mod grpc;
pub mod http;
pub mod refusal;
pub mod wal;
pub mod wire;
