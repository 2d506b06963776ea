//! EventEndpointService over gRPC.

use earshot_proto::v1 as pb;
use earshot_proto::v1::event_endpoint_service_server::EventEndpointService;
use tonic::{Request, Response, Status};

use super::auth::authenticate;
use super::convert::{time_from_proto, timestamp};
use crate::domain::events::{EndpointChange, EndpointInput};
use crate::domain::{Domain, parse_id};
use crate::error::Violations;
use crate::model::events::{
    AttemptFilter, AttemptRecord, Endpoint, EndpointKind, EventFilter, Replay,
};

/// The fields of `EventEndpointChange` an update_mask may name.
const CHANGEABLE: [&str; 9] = [
    "url",
    "description",
    "event_types",
    "filter",
    "include_transcript",
    "rate_limit_per_second",
    "headers",
    "enabled",
    "alert_cooldown_seconds",
];

#[derive(Clone, Debug)]
pub struct EventEndpointApi {
    pub domain: Domain,
}

fn endpoint(endpoint: &Endpoint) -> pb::EventEndpoint {
    let filter = &endpoint.filter;
    pb::EventEndpoint {
        id: endpoint.id.to_string(),
        url: endpoint.url.clone(),
        description: endpoint.description.clone(),
        event_types: endpoint.event_types.clone(),
        filter: Some(pb::EventFilter {
            provider: filter.provider.clone().unwrap_or_default(),
            tags: filter.tags.clone(),
            metadata: filter.metadata.clone().into_iter().collect(),
            monitor_id: filter.monitor_id.map(|id| id.to_string()).unwrap_or_default(),
        }),
        include_transcript: endpoint.include_transcript,
        rate_limit_per_second: endpoint.rate_limit_per_second.unwrap_or(0),
        enabled: endpoint.enabled,
        disabled_reason: endpoint.disabled_reason.clone(),
        header_names: endpoint.header_names.clone(),
        sent: endpoint.sent,
        failed: endpoint.failed,
        last_success_at: endpoint.last_success_at.map(timestamp),
        last_failure_at: endpoint.last_failure_at.map(timestamp),
        created_at: Some(timestamp(endpoint.created_at)),
        updated_at: Some(timestamp(endpoint.updated_at)),
        active_secrets: u32::try_from(endpoint.active_secrets).unwrap_or(u32::MAX),
        kind: match endpoint.kind {
            EndpointKind::Webhook => pb::EventEndpointKind::Webhook,
            EndpointKind::Slack => pb::EventEndpointKind::Slack,
        } as i32,
        alert_cooldown_seconds: endpoint.alert_cooldown_seconds,
    }
}

fn attempt(attempt: &AttemptRecord) -> pb::EventAttempt {
    pb::EventAttempt {
        id: attempt.id.to_string(),
        event_id: attempt.event_id.clone(),
        endpoint_id: attempt.endpoint_id.to_string(),
        event_type: attempt.event_type.clone(),
        attempted_at: Some(timestamp(attempt.attempted_at)),
        http_status: attempt.http_status.map_or(0, u32::from),
        latency_ms: attempt.latency_ms,
        response_excerpt: attempt.response_excerpt.clone(),
        error: attempt.error.clone(),
    }
}

fn filter(filter: Option<pb::EventFilter>) -> Result<EventFilter, Status> {
    let filter = filter.unwrap_or_default();
    Ok(EventFilter {
        provider: Some(filter.provider).filter(|provider| !provider.is_empty()),
        tags: filter.tags,
        metadata: filter.metadata.into_iter().collect(),
        monitor_id: if filter.monitor_id.is_empty() {
            None
        } else {
            Some(parse_id("filter.monitor_id", &filter.monitor_id)?)
        },
    })
}

#[tonic::async_trait]
impl EventEndpointService for EventEndpointApi {
    async fn create_event_endpoint(
        &self,
        request: Request<pb::CreateEventEndpointRequest>,
    ) -> Result<Response<pb::CreateEventEndpointResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let input = EndpointInput {
            url: request.url,
            description: request.description,
            event_types: request.event_types,
            filter: filter(request.filter)?,
            include_transcript: request.include_transcript,
            rate_limit_per_second: request.rate_limit_per_second,
            headers: request.headers.into_iter().collect(),
            kind: match pb::EventEndpointKind::try_from(request.kind) {
                Ok(pb::EventEndpointKind::Unspecified | pb::EventEndpointKind::Webhook) => {
                    EndpointKind::Webhook
                }
                Ok(pb::EventEndpointKind::Slack) => EndpointKind::Slack,
                Err(_) => {
                    return Err(crate::error::Error::invalid(
                        "kind",
                        format!("unknown value {}", request.kind),
                    )
                    .into());
                }
            },
            alert_cooldown_seconds: request.alert_cooldown_seconds,
        };
        let (created, secret) = self.domain.create_event_endpoint(&principal, input).await?;
        Ok(Response::new(pb::CreateEventEndpointResponse {
            endpoint: Some(endpoint(&created)),
            secret,
        }))
    }

    async fn get_event_endpoint(
        &self,
        request: Request<pb::GetEventEndpointRequest>,
    ) -> Result<Response<pb::GetEventEndpointResponse>, Status> {
        let principal = authenticate(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let found = self.domain.get_event_endpoint(&principal, id).await?;
        Ok(Response::new(pb::GetEventEndpointResponse { endpoint: Some(endpoint(&found)) }))
    }

    async fn list_event_endpoints(
        &self,
        request: Request<pb::ListEventEndpointsRequest>,
    ) -> Result<Response<pb::ListEventEndpointsResponse>, Status> {
        let principal = authenticate(&request)?;
        let endpoints = self.domain.list_event_endpoints(&principal).await?;
        Ok(Response::new(pb::ListEventEndpointsResponse {
            endpoints: endpoints.iter().map(endpoint).collect(),
        }))
    }

    async fn delete_event_endpoint(
        &self,
        request: Request<pb::DeleteEventEndpointRequest>,
    ) -> Result<Response<pb::DeleteEventEndpointResponse>, Status> {
        let principal = authenticate(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.domain.delete_event_endpoint(&principal, id).await?;
        Ok(Response::new(pb::DeleteEventEndpointResponse {}))
    }

    async fn rotate_event_endpoint_secret(
        &self,
        request: Request<pb::RotateEventEndpointSecretRequest>,
    ) -> Result<Response<pb::RotateEventEndpointSecretResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let id = parse_id("id", &request.id)?;
        let grace = (request.grace_seconds > 0)
            .then(|| chrono::Duration::seconds(i64::from(request.grace_seconds)));
        let (rotated, secret) =
            self.domain.rotate_event_endpoint_secret(&principal, id, grace).await?;
        Ok(Response::new(pb::RotateEventEndpointSecretResponse {
            endpoint: Some(endpoint(&rotated)),
            secret,
        }))
    }

    async fn list_event_attempts(
        &self,
        request: Request<pb::ListEventAttemptsRequest>,
    ) -> Result<Response<pb::ListEventAttemptsResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let endpoint_id = parse_id("endpoint_id", &request.endpoint_id)?;
        let page_size = usize::try_from(request.page_size).unwrap_or(usize::MAX);
        let succeeded = match pb::AttemptOutcomeFilter::try_from(request.outcome) {
            Ok(pb::AttemptOutcomeFilter::Unspecified) => None,
            Ok(pb::AttemptOutcomeFilter::Succeeded) => Some(true),
            Ok(pb::AttemptOutcomeFilter::Failed) => Some(false),
            Err(_) => {
                return Err(crate::error::Error::invalid(
                    "outcome",
                    format!("unknown value {}", request.outcome),
                )
                .into());
            }
        };
        let filter = AttemptFilter {
            event_id: Some(request.event_id).filter(|id| !id.is_empty()),
            succeeded,
        };
        let (attempts, next) = self
            .domain
            .list_event_attempts(&principal, endpoint_id, &filter, page_size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListEventAttemptsResponse {
            attempts: attempts.iter().map(attempt).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn update_event_endpoint(
        &self,
        request: Request<pb::UpdateEventEndpointRequest>,
    ) -> Result<Response<pb::UpdateEventEndpointResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let id = parse_id("id", &request.id)?;
        let paths = request.update_mask.map(|mask| mask.paths).unwrap_or_default();
        let mut violations = Violations::new();
        for (index, path) in paths.iter().enumerate() {
            if !CHANGEABLE.contains(&path.as_str()) {
                violations.add(
                    format!("update_mask.paths[{index}]"),
                    format!("unknown; one of {}", CHANGEABLE.join(", ")),
                );
            }
        }
        violations.into_result()?;
        let given = |name: &str| paths.iter().any(|path| path == name);
        let values = request.endpoint.unwrap_or_default();
        let change = EndpointChange {
            url: given("url").then_some(values.url),
            description: given("description").then_some(values.description),
            event_types: given("event_types").then_some(values.event_types),
            filter: if given("filter") { Some(filter(values.filter)?) } else { None },
            include_transcript: given("include_transcript").then_some(values.include_transcript),
            rate_limit_per_second: given("rate_limit_per_second")
                .then_some(values.rate_limit_per_second),
            headers: given("headers").then(|| values.headers.into_iter().collect()),
            enabled: given("enabled").then_some(values.enabled),
            alert_cooldown_seconds: given("alert_cooldown_seconds")
                .then_some(values.alert_cooldown_seconds),
        };
        let updated = self.domain.update_event_endpoint(&principal, id, change).await?;
        Ok(Response::new(pb::UpdateEventEndpointResponse { endpoint: Some(endpoint(&updated)) }))
    }

    async fn send_test_event(
        &self,
        request: Request<pb::SendTestEventRequest>,
    ) -> Result<Response<pb::SendTestEventResponse>, Status> {
        let principal = authenticate(&request)?;
        let endpoint_id = parse_id("endpoint_id", &request.get_ref().endpoint_id)?;
        let event_id = self.domain.send_test_event(&principal, endpoint_id).await?;
        Ok(Response::new(pb::SendTestEventResponse { event_id }))
    }

    async fn replay_events(
        &self,
        request: Request<pb::ReplayEventsRequest>,
    ) -> Result<Response<pb::ReplayEventsResponse>, Status> {
        let principal = authenticate(&request)?;
        let request = request.into_inner();
        let endpoint_id = parse_id("endpoint_id", &request.endpoint_id)?;
        let replay = match (request.event_id.is_empty(), request.failed_from) {
            (false, None) if request.failed_to.is_none() => Replay::Event(request.event_id),
            (false, _) => {
                return Err(crate::error::Error::invalid(
                    "event_id",
                    "give one event, or a window (failed_from, failed_to), not both",
                )
                .into());
            }
            (true, None) => {
                return Err(crate::error::Error::invalid(
                    "failed_from",
                    "required when no event_id is given",
                )
                .into());
            }
            (true, Some(from)) => {
                let from = time_from_proto("failed_from", from)?;
                let to = match request.failed_to {
                    Some(to) => time_from_proto("failed_to", to)?,
                    None => self.domain.clock.now() + chrono::Duration::milliseconds(1),
                };
                Replay::FailedBetween(from, to)
            }
        };
        let replayed = self.domain.replay_events(&principal, endpoint_id, replay).await?;
        Ok(Response::new(pb::ReplayEventsResponse { replayed }))
    }
}
