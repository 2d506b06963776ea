//! Event endpoints: where earshot sends signed Standard Webhooks (`call.processed`,
//! `call.failed`, `check.failed`, `endpoint.disabled`, `endpoint.test`), and the log of every
//! attempt. A signing secret is returned once, on creation and rotation; verify what arrives
//! with [`crate::verify_webhook`].

use std::collections::HashMap;
use std::time::Duration;

use earshot_proto::v1 as pb;

use crate::client::{Client, missing};
use crate::error::Result;

/// A new endpoint for [`EventEndpoints::create`].
///
/// ```
/// let endpoint = earshot::NewEventEndpoint::new("https://hooks.example.com/earshot")
///     .event_type("check.failed")
///     .tag("vip")
///     .header("x-team-token", "...");
/// let alerts = earshot::NewEventEndpoint::new("https://hooks.slack.com/services/T0/B0/x")
///     .slack()
///     .monitor("0193...");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewEventEndpoint(pb::CreateEventEndpointRequest);

impl NewEventEndpoint {
    pub fn new(url: impl Into<String>) -> Self {
        Self(pb::CreateEventEndpointRequest { url: url.into(), ..Default::default() })
    }

    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.0.description = description.into();
        self
    }

    /// One event type it receives; none given: every type.
    #[must_use]
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.0.event_types.push(event_type.into());
        self
    }

    /// Only calls of this provider.
    #[must_use]
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.filter().provider = provider.into();
        self
    }

    /// Only calls carrying this tag (each tag given must be there).
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.filter().tags.push(tag.into());
        self
    }

    /// Only calls whose metadata has this key with this value.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.filter().metadata.insert(key.into(), value.into());
        self
    }

    /// For `check.failed`: only this monitor's checks.
    #[must_use]
    pub fn monitor(mut self, monitor_id: impl Into<String>) -> Self {
        self.filter().monitor_id = monitor_id.into();
        self
    }

    /// `call.processed` carries the transcript's turns.
    #[must_use]
    pub fn include_transcript(mut self) -> Self {
        self.0.include_transcript = true;
        self
    }

    #[must_use]
    pub fn rate_limit_per_second(mut self, limit: u32) -> Self {
        self.0.rate_limit_per_second = limit;
        self
    }

    /// A header sent with every event (for a receiver's own auth); sealed at rest.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.headers.insert(name.into(), value.into());
        self
    }

    /// A Slack incoming webhook: sent a readable message per event, `check.failed` only
    /// unless types are given, at most one per monitor an hour unless a cooldown is given.
    #[must_use]
    pub fn slack(mut self) -> Self {
        self.0.kind = pb::EventEndpointKind::Slack as i32;
        self
    }

    /// `check.failed` at most once per monitor per `cooldown` (whole seconds; zero: every one).
    #[must_use]
    pub fn alert_cooldown(mut self, cooldown: Duration) -> Self {
        self.0.alert_cooldown_seconds = Some(u32::try_from(cooldown.as_secs()).unwrap_or(u32::MAX));
        self
    }

    fn filter(&mut self) -> &mut pb::EventFilter {
        self.0.filter.get_or_insert_with(Default::default)
    }
}

/// What [`EventEndpoints::update`] changes: only what is set here.
///
/// ```
/// let pause = earshot::EventEndpointChange::default().enabled(false);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventEndpointChange {
    values: pb::EventEndpointChange,
    paths: Vec<String>,
}

impl EventEndpointChange {
    fn set(mut self, path: &str, change: impl FnOnce(&mut pb::EventEndpointChange)) -> Self {
        change(&mut self.values);
        if !self.paths.iter().any(|known| known == path) {
            self.paths.push(path.to_owned());
        }
        self
    }

    #[must_use]
    pub fn url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.set("url", |values| values.url = url)
    }

    #[must_use]
    pub fn description(self, description: impl Into<String>) -> Self {
        let description = description.into();
        self.set("description", |values| values.description = description)
    }

    /// The event types it receives (empty: all), replacing the earlier list.
    #[must_use]
    pub fn event_types(self, event_types: Vec<String>) -> Self {
        self.set("event_types", |values| values.event_types = event_types)
    }

    /// The filter, replacing the earlier one.
    #[must_use]
    pub fn filter(self, filter: pb::EventFilter) -> Self {
        self.set("filter", |values| values.filter = Some(filter))
    }

    #[must_use]
    pub fn include_transcript(self, include: bool) -> Self {
        self.set("include_transcript", |values| values.include_transcript = include)
    }

    /// 0: no limit.
    #[must_use]
    pub fn rate_limit_per_second(self, limit: u32) -> Self {
        self.set("rate_limit_per_second", |values| values.rate_limit_per_second = limit)
    }

    /// Every static header, replacing the earlier ones (empty: none).
    #[must_use]
    pub fn headers(self, headers: HashMap<String, String>) -> Self {
        self.set("headers", |values| values.headers = headers)
    }

    /// `check.failed` at most once per monitor per `cooldown` (zero: every one).
    #[must_use]
    pub fn alert_cooldown(self, cooldown: Duration) -> Self {
        let seconds = u32::try_from(cooldown.as_secs()).unwrap_or(u32::MAX);
        self.set("alert_cooldown_seconds", |values| values.alert_cooldown_seconds = seconds)
    }

    /// Disabling fails its pending deliveries; enabling clears why it was disabled.
    #[must_use]
    pub fn enabled(self, enabled: bool) -> Self {
        self.set("enabled", |values| values.enabled = enabled)
    }
}

/// The calls of `EventEndpointService`, from [`Client::event_endpoints`].
#[derive(Debug, Clone, Copy)]
pub struct EventEndpoints<'client> {
    client: &'client Client,
}

impl Client {
    /// Event endpoint management (admin scope for changes, read scope to look).
    pub fn event_endpoints(&self) -> EventEndpoints<'_> {
        EventEndpoints { client: self }
    }
}

impl EventEndpoints<'_> {
    /// Creates an endpoint; returns it and its signing secret (`whsec_...`), shown only here.
    pub async fn create(&self, new: NewEventEndpoint) -> Result<(pb::EventEndpoint, String)> {
        let mut grpc = self.client.event_endpoints.clone();
        let response =
            self.client.unary(grpc.create_event_endpoint(self.client.request(new.0))).await?;
        Ok((response.endpoint.ok_or_else(|| missing("endpoint"))?, response.secret))
    }

    pub async fn get(&self, id: &str) -> Result<pb::EventEndpoint> {
        let mut grpc = self.client.event_endpoints.clone();
        let request = pb::GetEventEndpointRequest { id: id.to_owned() };
        let response =
            self.client.unary(grpc.get_event_endpoint(self.client.request(request))).await?;
        response.endpoint.ok_or_else(|| missing("endpoint"))
    }

    /// The organization's endpoints, oldest first.
    pub async fn list(&self) -> Result<Vec<pb::EventEndpoint>> {
        let mut grpc = self.client.event_endpoints.clone();
        let request = pb::ListEventEndpointsRequest {};
        let response =
            self.client.unary(grpc.list_event_endpoints(self.client.request(request))).await?;
        Ok(response.endpoints)
    }

    pub async fn update(&self, id: &str, change: EventEndpointChange) -> Result<pb::EventEndpoint> {
        let mut grpc = self.client.event_endpoints.clone();
        let request = pb::UpdateEventEndpointRequest {
            id: id.to_owned(),
            endpoint: Some(change.values),
            update_mask: Some(prost_types::FieldMask { paths: change.paths }),
        };
        let response =
            self.client.unary(grpc.update_event_endpoint(self.client.request(request))).await?;
        response.endpoint.ok_or_else(|| missing("endpoint"))
    }

    /// Deletes an endpoint; its pending deliveries end as failed.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let mut grpc = self.client.event_endpoints.clone();
        let request = pb::DeleteEventEndpointRequest { id: id.to_owned() };
        self.client.unary(grpc.delete_event_endpoint(self.client.request(request))).await?;
        Ok(())
    }

    /// A new signing secret, returned here only; the earlier ones keep signing for `grace`
    /// (`None`: the server's default, 24 hours).
    pub async fn rotate_secret(
        &self,
        id: &str,
        grace: Option<Duration>,
    ) -> Result<(pb::EventEndpoint, String)> {
        let mut grpc = self.client.event_endpoints.clone();
        let request = pb::RotateEventEndpointSecretRequest {
            id: id.to_owned(),
            grace_seconds: grace
                .map_or(0, |grace| u32::try_from(grace.as_secs()).unwrap_or(u32::MAX)),
        };
        let response = self
            .client
            .unary(grpc.rotate_event_endpoint_secret(self.client.request(request)))
            .await?;
        Ok((response.endpoint.ok_or_else(|| missing("endpoint"))?, response.secret))
    }

    /// Sends an `endpoint.test` event to this endpoint alone; returns its id (the
    /// `webhook-id` it arrives with).
    pub async fn send_test_event(&self, endpoint_id: &str) -> Result<String> {
        let mut grpc = self.client.event_endpoints.clone();
        let request = pb::SendTestEventRequest { endpoint_id: endpoint_id.to_owned() };
        let response =
            self.client.unary(grpc.send_test_event(self.client.request(request))).await?;
        Ok(response.event_id)
    }

    /// Delivers one event to the endpoint again (same `webhook-id`, a fresh retry schedule).
    pub async fn replay_event(&self, endpoint_id: &str, event_id: &str) -> Result<u64> {
        self.replay(pb::ReplayEventsRequest {
            endpoint_id: endpoint_id.to_owned(),
            event_id: event_id.to_owned(),
            ..Default::default()
        })
        .await
    }

    /// Delivers again every event whose delivery to the endpoint failed, created from `from`
    /// until `to` (`None`: now). Returns how many.
    pub async fn replay_failed(
        &self,
        endpoint_id: &str,
        from: std::time::SystemTime,
        to: Option<std::time::SystemTime>,
    ) -> Result<u64> {
        self.replay(pb::ReplayEventsRequest {
            endpoint_id: endpoint_id.to_owned(),
            event_id: String::new(),
            failed_from: Some(from.into()),
            failed_to: to.map(Into::into),
        })
        .await
    }

    async fn replay(&self, request: pb::ReplayEventsRequest) -> Result<u64> {
        let mut grpc = self.client.event_endpoints.clone();
        let response = self.client.unary(grpc.replay_events(self.client.request(request))).await?;
        Ok(response.replayed)
    }

    /// One page of the attempts to deliver to the endpoint, newest first; narrowed to one
    /// event and/or an outcome when given.
    pub async fn attempts(
        &self,
        endpoint_id: &str,
        event_id: Option<&str>,
        outcome: Option<pb::AttemptOutcomeFilter>,
        page_token: Option<String>,
    ) -> Result<pb::ListEventAttemptsResponse> {
        let mut grpc = self.client.event_endpoints.clone();
        let request = pb::ListEventAttemptsRequest {
            endpoint_id: endpoint_id.to_owned(),
            event_id: event_id.unwrap_or_default().to_owned(),
            outcome: outcome.unwrap_or(pb::AttemptOutcomeFilter::Unspecified) as i32,
            page_size: 0,
            page_token: page_token.unwrap_or_default(),
        };
        self.client.unary(grpc.list_event_attempts(self.client.request(request))).await
    }
}
