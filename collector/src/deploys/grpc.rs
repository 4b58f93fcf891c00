//! `headlight.v1.DeployService/RecordDeploy`, served on the OTLP/gRPC port.

use std::sync::Arc;

use headlight_proto::v1::deploy_service_server::{DeployService, DeployServiceServer};
use headlight_proto::v1::{self as pb, RecordDeployRequest, RecordDeployResponse};
use tonic::{Request, Response, Status};

use super::model::{Deploy, NewDeploy};
use crate::pipeline::Pipeline;

/// The `DeployService` implementation.
#[derive(Debug, Clone)]
pub struct DeployGrpc {
    pipeline: Arc<Pipeline>,
}

impl DeployGrpc {
    /// Returns the tonic service.
    pub fn service(pipeline: Arc<Pipeline>) -> DeployServiceServer<Self> {
        DeployServiceServer::new(Self { pipeline })
    }
}

fn optional(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn positive(ms: i64) -> Option<i64> {
    (ms != 0).then_some(ms)
}

/// Converts a recorded deploy to its protobuf form (absent optional fields are empty / 0).
pub fn to_proto(d: Deploy) -> pb::Deploy {
    pb::Deploy {
        id: d.id,
        service: d.service,
        environment: d.environment,
        version: d.version,
        commit: d.commit.unwrap_or_default(),
        description: d.description.unwrap_or_default(),
        time_ms: d.time_ms,
        automatic: d.automatic,
        commit_time_ms: d.commit_time_ms.unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl DeployService for DeployGrpc {
    async fn record_deploy(
        &self,
        request: Request<RecordDeployRequest>,
    ) -> Result<Response<RecordDeployResponse>, Status> {
        let r = request.into_inner();
        let new = NewDeploy {
            service: r.service,
            version: r.version,
            environment: optional(r.environment),
            commit: optional(r.commit),
            description: optional(r.description),
            time_ms: positive(r.time_ms),
            commit_time_ms: positive(r.commit_time_ms),
        };
        let pipeline = Arc::clone(&self.pipeline);
        let deploy = tokio::task::spawn_blocking(move || pipeline.record_deploy(new))
            .await
            .map_err(|e| Status::internal(format!("deploy task failed: {e}")))??;
        Ok(Response::new(RecordDeployResponse {
            deploy: Some(to_proto(deploy)),
        }))
    }
}
