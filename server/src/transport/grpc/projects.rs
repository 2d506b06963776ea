//! ProjectService over gRPC.

use earshot_proto::v1 as pb;
use earshot_proto::v1::project_service_server::ProjectService;
use tonic::{Request, Response, Status};

use super::auth::authenticate;
use super::convert;
use crate::domain::auth::NewApiKey;
use crate::domain::{Domain, parse_id};

#[derive(Clone, Debug)]
pub struct ProjectApi {
    pub domain: Domain,
}

#[tonic::async_trait]
impl ProjectService for ProjectApi {
    async fn create_project(
        &self,
        request: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::CreateProjectResponse>, Status> {
        let principal = authenticate(&request)?;
        let project = self.domain.create_project(&principal, &request.get_ref().name).await?;
        Ok(Response::new(pb::CreateProjectResponse { project: Some(convert::project(&project)) }))
    }

    async fn list_projects(
        &self,
        request: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, Status> {
        let principal = authenticate(&request)?;
        let projects = self.domain.list_projects(&principal).await?;
        Ok(Response::new(pb::ListProjectsResponse {
            projects: projects.iter().map(convert::project).collect(),
        }))
    }

    async fn set_project_retention(
        &self,
        request: Request<pb::SetProjectRetentionRequest>,
    ) -> Result<Response<pb::SetProjectRetentionResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let project_id = crate::domain::parse_id("project_id", &request.project_id)?;
        let retention = request.retention.unwrap_or_default();
        let retention = crate::model::projects::Retention {
            datapoint_days: retention.datapoint_days,
            audio_days: retention.audio_days,
            delivery_body_days: retention.delivery_body_days,
            delivery_days: retention.delivery_days,
        };
        let project = self.domain.set_project_retention(&principal, project_id, retention).await?;
        Ok(Response::new(pb::SetProjectRetentionResponse {
            project: Some(convert::project(&project)),
        }))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let scopes = request
            .scopes
            .iter()
            .enumerate()
            .map(|(index, scope)| convert::scope_from_proto(&format!("scopes[{index}]"), *scope))
            .collect::<Result<Vec<_>, _>>()?;
        let project_id = if request.project_id.is_empty() {
            None
        } else {
            Some(parse_id("project_id", &request.project_id)?)
        };
        let created = self
            .domain
            .create_api_key(&principal, NewApiKey { name: request.name, scopes, project_id })
            .await?;
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(convert::api_key(&created.record)),
            secret: created.value.expose().to_owned(),
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let principal = authenticate(&request)?;
        let keys = self.domain.list_api_keys(&principal, request.get_ref().include_revoked).await?;
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: keys.iter().map(convert::api_key).collect(),
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let principal = authenticate(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let key = self.domain.revoke_api_key(&principal, id).await?;
        Ok(Response::new(pb::RevokeApiKeyResponse { api_key: Some(convert::api_key(&key)) }))
    }
}
