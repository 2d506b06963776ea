//! IntegrationService over gRPC.

use std::collections::BTreeMap;

use earshot_proto::v1 as pb;
use earshot_proto::v1::integration_service_server::IntegrationService;
use tonic::{Request, Response, Status};

use super::auth::authenticate;
use super::convert;
use crate::crypto::SecretValue;
use crate::domain::{Domain, parse_id};
use crate::model::integrations::{Integration, IntegrationUpdate, NewIntegration};

#[derive(Clone, Debug)]
pub struct IntegrationApi {
    pub domain: Domain,
}

impl IntegrationApi {
    fn encode(&self, integration: &Integration) -> pb::Integration {
        convert::integration(integration, self.domain.webhook_url(integration))
    }
}

fn secrets(map: std::collections::HashMap<String, String>) -> BTreeMap<String, SecretValue> {
    map.into_iter().map(|(name, value)| (name, SecretValue::new(value))).collect()
}

#[tonic::async_trait]
impl IntegrationService for IntegrationApi {
    async fn create_integration(
        &self,
        request: Request<pb::CreateIntegrationRequest>,
    ) -> Result<Response<pb::CreateIntegrationResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let new = NewIntegration {
            project_id: parse_id("project_id", &request.project_id)?,
            provider: convert::provider_from_proto(request.provider)?,
            display_name: request.display_name,
            auth_type: convert::auth_type_from_proto(request.webhook_auth_type)?,
            secrets: secrets(request.secrets),
            options: convert::options_from_proto(request.options)?,
        };
        let integration = self.domain.create_integration(&principal, new).await?;
        Ok(Response::new(pb::CreateIntegrationResponse {
            integration: Some(self.encode(&integration)),
        }))
    }

    async fn get_integration(
        &self,
        request: Request<pb::GetIntegrationRequest>,
    ) -> Result<Response<pb::GetIntegrationResponse>, Status> {
        let principal = authenticate(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let integration = self.domain.get_integration(&principal, id).await?;
        Ok(Response::new(pb::GetIntegrationResponse {
            integration: Some(self.encode(&integration)),
        }))
    }

    async fn list_integrations(
        &self,
        request: Request<pb::ListIntegrationsRequest>,
    ) -> Result<Response<pb::ListIntegrationsResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let project_id = parse_id("project_id", &request.project_id)?;
        let provider = convert::provider_from_proto(request.provider)?;
        let page = self
            .domain
            .list_integrations(
                &principal,
                project_id,
                provider,
                request.page_size,
                &request.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListIntegrationsResponse {
            integrations: page
                .integrations
                .iter()
                .map(|integration| self.encode(integration))
                .collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn update_integration(
        &self,
        request: Request<pb::UpdateIntegrationRequest>,
    ) -> Result<Response<pb::UpdateIntegrationResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let id = parse_id("id", &request.id)?;
        let options = request
            .options
            .map(|options| convert::options_from_proto(Some(options)))
            .transpose()?;
        let update = IntegrationUpdate { display_name: request.display_name, options };
        let integration = self.domain.update_integration(&principal, id, update).await?;
        Ok(Response::new(pb::UpdateIntegrationResponse {
            integration: Some(self.encode(&integration)),
        }))
    }

    async fn rotate_secrets(
        &self,
        request: Request<pb::RotateSecretsRequest>,
    ) -> Result<Response<pb::RotateSecretsResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let id = parse_id("id", &request.id)?;
        let grace_period = request
            .grace_period
            .map(|duration| convert::duration_from_proto("grace_period", duration))
            .transpose()?;
        let integration = self
            .domain
            .rotate_secrets(&principal, id, secrets(request.secrets), grace_period)
            .await?;
        Ok(Response::new(pb::RotateSecretsResponse {
            integration: Some(self.encode(&integration)),
        }))
    }

    async fn update_status(
        &self,
        request: Request<pb::UpdateStatusRequest>,
    ) -> Result<Response<pb::UpdateStatusResponse>, Status> {
        let principal = authenticate(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let status = convert::status_from_proto(request.get_ref().status)?;
        let integration = self.domain.set_integration_status(&principal, id, status).await?;
        Ok(Response::new(pb::UpdateStatusResponse { integration: Some(self.encode(&integration)) }))
    }

    async fn delete_integration(
        &self,
        request: Request<pb::DeleteIntegrationRequest>,
    ) -> Result<Response<pb::DeleteIntegrationResponse>, Status> {
        let principal = authenticate(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.domain.delete_integration(&principal, id).await?;
        Ok(Response::new(pb::DeleteIntegrationResponse {}))
    }

    async fn list_webhook_deliveries(
        &self,
        request: Request<pb::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<pb::ListWebhookDeliveriesResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let page = self
            .domain
            .list_webhook_deliveries(
                &principal,
                parse_id("integration_id", &request.integration_id)?,
                convert::delivery_verdict_from_proto(request.verdict)?,
                usize::try_from(request.page_size.max(0)).unwrap_or(0),
                &request.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListWebhookDeliveriesResponse {
            deliveries: page.deliveries.iter().map(convert::webhook_delivery).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn replay_webhook_delivery(
        &self,
        request: Request<pb::ReplayWebhookDeliveryRequest>,
    ) -> Result<Response<pb::ReplayWebhookDeliveryResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let delivery = crate::domain::webhooks::replay(
            &self.domain,
            &principal,
            parse_id("integration_id", &request.integration_id)?,
            parse_id("delivery_id", &request.delivery_id)?,
        )
        .await?;
        Ok(Response::new(pb::ReplayWebhookDeliveryResponse {
            delivery: Some(convert::webhook_delivery(&delivery)),
        }))
    }
}
