//! Managing provider integrations: where a voice platform posts finished calls, and how earshot
//! checks that a post is genuine. Secret values go in and never come back.

use std::collections::HashMap;
use std::time::Duration;

use earshot_proto::v1 as pb;

use crate::client::{Client, missing};
use crate::error::Result;

/// A new integration for [`Integrations::create`].
///
/// ```
/// use earshot::{NewIntegration, Provider};
///
/// let retell = NewIntegration::new(Provider::Retell)
///     .display_name("Support agent")
///     .secret("api_key", "key_...");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NewIntegration(pb::CreateIntegrationRequest);

impl NewIntegration {
    pub fn new(provider: pb::Provider) -> Self {
        Self(pb::CreateIntegrationRequest { provider: provider as i32, ..Default::default() })
    }

    /// Defaults to the client's project.
    #[must_use]
    pub fn project_id(mut self, project_id: impl Into<String>) -> Self {
        self.0.project_id = project_id.into();
        self
    }

    #[must_use]
    pub fn display_name(mut self, display_name: impl Into<String>) -> Self {
        self.0.display_name = display_name.into();
        self
    }

    /// How webhook requests authenticate; defaults to the provider's usual way.
    #[must_use]
    pub fn auth_type(mut self, auth_type: pb::WebhookAuthType) -> Self {
        self.0.webhook_auth_type = auth_type as i32;
        self
    }

    /// One secret, named as the auth type expects (`auth_token` for Twilio, `api_key` for
    /// Retell, ...; see `proto/earshot/v1/integrations.proto`).
    #[must_use]
    pub fn secret(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.secrets.insert(name.into(), value.into());
        self
    }

    #[must_use]
    pub fn options(mut self, options: pb::IntegrationOptions) -> Self {
        self.0.options = Some(options);
        self
    }
}

/// The calls of `IntegrationService`, from [`Client::integrations`].
#[derive(Debug, Clone, Copy)]
pub struct Integrations<'client> {
    client: &'client Client,
}

impl Client {
    /// Integration management (admin scope for changes).
    pub fn integrations(&self) -> Integrations<'_> {
        Integrations { client: self }
    }
}

impl Integrations<'_> {
    /// Creates an integration; its `webhook_url` is what to configure at the provider.
    pub async fn create(&self, new: NewIntegration) -> Result<pb::Integration> {
        let mut request = new.0;
        if request.project_id.is_empty() {
            request.project_id = self.client.project_or_default(None);
        }
        let mut grpc = self.client.integrations.clone();
        let response =
            self.client.unary(grpc.create_integration(self.client.request(request))).await?;
        response.integration.ok_or_else(|| missing("integration"))
    }

    pub async fn get(&self, id: &str) -> Result<pb::Integration> {
        let mut grpc = self.client.integrations.clone();
        let request = pb::GetIntegrationRequest { id: id.to_owned() };
        let response =
            self.client.unary(grpc.get_integration(self.client.request(request))).await?;
        response.integration.ok_or_else(|| missing("integration"))
    }

    /// One page of a project's integrations (the client's project when `None`), oldest first,
    /// optionally of one provider.
    pub async fn list(
        &self,
        project_id: Option<String>,
        provider: Option<pb::Provider>,
        page_token: Option<String>,
    ) -> Result<pb::ListIntegrationsResponse> {
        let mut grpc = self.client.integrations.clone();
        let request = pb::ListIntegrationsRequest {
            project_id: self.client.project_or_default(project_id),
            page_size: 0,
            page_token: page_token.unwrap_or_default(),
            provider: provider.unwrap_or(pb::Provider::Unspecified) as i32,
        };
        self.client.unary(grpc.list_integrations(self.client.request(request))).await
    }

    /// Replaces the display name and/or the options (as a whole).
    pub async fn update(
        &self,
        id: &str,
        display_name: Option<String>,
        options: Option<pb::IntegrationOptions>,
    ) -> Result<pb::Integration> {
        let mut grpc = self.client.integrations.clone();
        let request = pb::UpdateIntegrationRequest { id: id.to_owned(), display_name, options };
        let response =
            self.client.unary(grpc.update_integration(self.client.request(request))).await?;
        response.integration.ok_or_else(|| missing("integration"))
    }

    /// Makes `secrets` current. The replaced secrets stay valid for `grace` (`None` takes the
    /// server default of 24 hours; zero ends them at once).
    pub async fn rotate(
        &self,
        id: &str,
        secrets: HashMap<String, String>,
        grace: Option<Duration>,
    ) -> Result<pb::Integration> {
        let mut grpc = self.client.integrations.clone();
        let request = pb::RotateSecretsRequest {
            id: id.to_owned(),
            secrets,
            grace_period: grace.map(|grace| prost_types::Duration {
                seconds: i64::try_from(grace.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(grace.subsec_nanos()).unwrap_or(0),
            }),
        };
        let response = self.client.unary(grpc.rotate_secrets(self.client.request(request))).await?;
        response.integration.ok_or_else(|| missing("integration"))
    }

    /// Enables or disables an integration; a disabled one answers 404 to its webhooks.
    pub async fn set_status(
        &self,
        id: &str,
        status: pb::IntegrationStatus,
    ) -> Result<pb::Integration> {
        let mut grpc = self.client.integrations.clone();
        let request = pb::UpdateStatusRequest { id: id.to_owned(), status: status as i32 };
        let response = self.client.unary(grpc.update_status(self.client.request(request))).await?;
        response.integration.ok_or_else(|| missing("integration"))
    }

    /// Deletes an integration and its sealed secrets.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let mut grpc = self.client.integrations.clone();
        let request = pb::DeleteIntegrationRequest { id: id.to_owned() };
        self.client.unary(grpc.delete_integration(self.client.request(request))).await?;
        Ok(())
    }

    /// One page of the requests that reached an integration's webhook, newest first.
    pub async fn deliveries(
        &self,
        integration_id: &str,
        verdict: Option<pb::DeliveryVerdict>,
        page_token: Option<String>,
    ) -> Result<pb::ListWebhookDeliveriesResponse> {
        let mut grpc = self.client.integrations.clone();
        let request = pb::ListWebhookDeliveriesRequest {
            integration_id: integration_id.to_owned(),
            page_size: 0,
            page_token: page_token.unwrap_or_default(),
            verdict: verdict.unwrap_or(pb::DeliveryVerdict::Unspecified) as i32,
        };
        self.client.unary(grpc.list_webhook_deliveries(self.client.request(request))).await
    }

    /// Runs a stored delivery through admission again (after fixing a secret, say).
    pub async fn replay(
        &self,
        integration_id: &str,
        delivery_id: &str,
    ) -> Result<pb::WebhookDelivery> {
        let mut grpc = self.client.integrations.clone();
        let request = pb::ReplayWebhookDeliveryRequest {
            integration_id: integration_id.to_owned(),
            delivery_id: delivery_id.to_owned(),
        };
        let response =
            self.client.unary(grpc.replay_webhook_delivery(self.client.request(request))).await?;
        response.delivery.ok_or_else(|| missing("delivery"))
    }
}
