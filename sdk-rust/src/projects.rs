//! Projects and API keys of the caller's organization.

use earshot_proto::v1 as pb;

use crate::client::{Client, missing};
use crate::error::Result;

/// A created API key: its record and, this once, its value.
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    pub api_key: pb::ApiKey,
    /// The key itself (`es_...`); the server keeps only its hash.
    pub secret: String,
}

impl Client {
    /// Creates a project (admin scope, a key not restricted to one project).
    pub async fn create_project(&self, name: &str) -> Result<pb::Project> {
        let mut grpc = self.projects.clone();
        let request = pb::CreateProjectRequest { name: name.to_owned() };
        let response = self.unary(grpc.create_project(self.request(request))).await?;
        response.project.ok_or_else(|| missing("project"))
    }

    /// The projects the key can see.
    pub async fn list_projects(&self) -> Result<Vec<pb::Project>> {
        let mut grpc = self.projects.clone();
        let response =
            self.unary(grpc.list_projects(self.request(pb::ListProjectsRequest {}))).await?;
        Ok(response.projects)
    }

    /// Creates an API key with `scopes`, restricted to `project_id` when given.
    pub async fn create_api_key(
        &self,
        name: &str,
        scopes: &[pb::ApiKeyScope],
        project_id: Option<String>,
    ) -> Result<CreatedApiKey> {
        let mut grpc = self.projects.clone();
        let request = pb::CreateApiKeyRequest {
            name: name.to_owned(),
            scopes: scopes.iter().map(|scope| *scope as i32).collect(),
            project_id: project_id.unwrap_or_default(),
        };
        let response = self.unary(grpc.create_api_key(self.request(request))).await?;
        Ok(CreatedApiKey {
            api_key: response.api_key.ok_or_else(|| missing("api_key"))?,
            secret: response.secret,
        })
    }

    pub async fn list_api_keys(&self, include_revoked: bool) -> Result<Vec<pb::ApiKey>> {
        let mut grpc = self.projects.clone();
        let request = pb::ListApiKeysRequest { include_revoked };
        Ok(self.unary(grpc.list_api_keys(self.request(request))).await?.api_keys)
    }

    /// Revokes an API key; it stops working at once.
    pub async fn revoke_api_key(&self, id: &str) -> Result<pb::ApiKey> {
        let mut grpc = self.projects.clone();
        let request = pb::RevokeApiKeyRequest { id: id.to_owned() };
        let response = self.unary(grpc.revoke_api_key(self.request(request))).await?;
        response.api_key.ok_or_else(|| missing("api_key"))
    }
}
