//! Deploy markers (design.md §3): the points in time a before/after comparison pivots on.
//!
//! - [`model`]: the [`Deploy`] record, what a client sends to create one, and validation.
//! - [`grpc`]: `headlight.v1.DeployService/RecordDeploy` on the OTLP/gRPC port.
//!
//! Markers come from `POST /api/v1/deploys`, the gRPC service, `headlight deploy`, or
//! automatically when a service reports a `service.version` it has not reported before.

pub mod grpc;
pub mod model;
pub mod versions;

pub use model::{Deploy, DeployQuery, NewDeploy};
