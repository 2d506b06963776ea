//! Provider webhooks. `POST /v0/voice/{provider}/monitor/{public_id}` hands each request to
//! `domain::webhooks` in two steps (before and after reading the body, so that unknown ids,
//! refused addresses and rate-limited senders cost no body read) and maps its verdict to HTTP.
//! `POST /v0/voice/vapi/monitor` takes Vapi's end-of-call reports with an earshot API key.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::RestState;
use super::error::ApiError;
use super::presented_key;
use crate::domain::Domain;
use crate::domain::webhooks::{self, Verdict};
use crate::error::Error;
use crate::model::auth::Scope;

pub async fn receive(
    State(state): State<RestState>,
    Path((provider, public_id)): Path<(String, String)>,
    request: Request<Body>,
) -> Response {
    let domain = &state.domain;
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(webhooks::UNKNOWN_PEER, |ConnectInfo(address)| address.ip());
    let client =
        webhooks::client_address(peer, &parts.headers, &domain.settings.webhooks.trusted_proxies);
    let verdict = match webhooks::open(domain, &provider, &public_id, client).await {
        Err(verdict) => verdict,
        Ok(opened) => {
            let limit = opened.body_limit(domain);
            match axum::body::to_bytes(body, limit).await {
                Err(_) => opened.too_large(domain, limit).await,
                Ok(body) => {
                    let path_and_query =
                        parts.uri.path_and_query().map_or("/", |value| value.as_str());
                    let url = format!("{}{path_and_query}", domain.settings.public_base_url);
                    let request =
                        webhooks::Request { url: &url, headers: &parts.headers, body: &body };
                    opened.receive(domain, request).await
                }
            }
        }
    };
    // Debug formatting escapes what the path carried (a percent-encoded CR/LF would otherwise
    // forge a log line).
    if verdict.is_routine() {
        tracing::debug!(provider = ?provider, public_id = ?public_id, verdict = verdict.code(), "webhook");
    } else {
        tracing::info!(provider = ?provider, public_id = ?public_id, verdict = verdict.code(), "webhook");
    }
    domain.metrics.webhook_request(&provider, verdict.code());
    respond(verdict)
}

fn respond(verdict: Verdict) -> Response {
    let status =
        StatusCode::from_u16(verdict.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match verdict {
        Verdict::NotFound => {
            ApiError(Error::not_found(verdict.message())).into_response()
        }
        Verdict::Malformed(problem) => {
            ApiError(Error::invalid(problem.field, problem.reason)).into_response()
        }
        Verdict::Failed(failure) => ApiError(failure).into_response(),
        Verdict::Unauthorized(failure) => (
            status,
            Json(json!({"error": {"code": "unauthenticated", "reason": failure.code(), "message": failure.message()}})),
        )
            .into_response(),
        Verdict::RateLimited { retry_after } => {
            let seconds = crate::domain::retry_after_seconds(retry_after);
            let mut response = error(status, verdict.code(), &verdict.message());
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
        Verdict::Forbidden
        | Verdict::PayloadTooLarge { .. }
        | Verdict::UnsupportedMediaType { .. } => {
            error(status, verdict.code(), &verdict.message())
        }
        Verdict::Ignored { event } => {
            (status, Json(json!({"status": "ignored", "event": event}))).into_response()
        }
        Verdict::Duplicate { call_id, ingest_id } => {
            (status, Json(Stored { call_id: &call_id, ingest_id, status: "duplicate" }))
                .into_response()
        }
        Verdict::Accepted { call_id, ingest_id } => {
            (status, Json(Stored { call_id: &call_id, ingest_id, status: "accepted" }))
                .into_response()
        }
    }
}

/// The answer to a call stored, now or before: written without building a JSON value, its
/// fields in the order `json!` gives them.
#[derive(serde::Serialize)]
struct Stored<'a> {
    call_id: &'a str,
    ingest_id: uuid::Uuid,
    status: &'static str,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

#[derive(Debug, serde::Deserialize)]
pub struct VapiQuery {
    project_id: Option<String>,
}

/// `POST /v0/voice/vapi/monitor`: a Vapi server URL authenticated with an earshot API key
/// (`api-key` header, or `Authorization: Bearer`) that may ingest; the project is the key's,
/// or `?project_id=` for keys of the whole organization.
pub async fn receive_vapi(
    State(state): State<RestState>,
    Query(query): Query<VapiQuery>,
    request: Request<Body>,
) -> Response {
    match receive_vapi_inner(&state.domain, query, request).await {
        Ok(verdict) => {
            if verdict.is_routine() {
                tracing::debug!(provider = "vapi", verdict = verdict.code(), "webhook");
            } else {
                tracing::info!(provider = "vapi", verdict = verdict.code(), "webhook");
            }
            state.domain.metrics.webhook_request("vapi", verdict.code());
            respond(verdict)
        }
        Err(error) => ApiError(error).into_response(),
    }
}

async fn receive_vapi_inner(
    domain: &Domain,
    query: VapiQuery,
    request: Request<Body>,
) -> Result<Verdict, Error> {
    let (parts, body) = request.into_parts();
    let principal = domain.authenticate(presented_key(&parts.headers)).await?;
    principal.require(Scope::Ingest)?;
    let requested = query
        .project_id
        .as_deref()
        .map(|id| crate::domain::parse_id("project_id", id))
        .transpose()?;
    let project = domain.ingest_project(&principal, requested).await?;
    let limit = domain.settings.webhooks.max_body_bytes;
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        return Ok(Verdict::PayloadTooLarge { limit });
    };
    let url = parts.uri.to_string();
    Ok(webhooks::receive_with_api_key(domain, &principal, project, &parts.headers, &url, &body)
        .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored call's answer, written from a struct, is the JSON senders always got.
    #[tokio::test]
    async fn stored_calls_are_answered_with_their_call_and_ingest() {
        let ingest_id = uuid::Uuid::now_v7();
        for (verdict, status, code) in [
            (Verdict::Accepted { call_id: "c\"1".into(), ingest_id }, 202, "accepted"),
            (Verdict::Duplicate { call_id: "c\"1".into(), ingest_id }, 200, "duplicate"),
        ] {
            let response = respond(verdict);
            assert_eq!(response.status().as_u16(), status);
            let body = axum::body::to_bytes(response.into_body(), 1 << 10).await.unwrap();
            let expected =
                json!({"status": code, "call_id": "c\"1", "ingest_id": ingest_id.to_string()});
            assert_eq!(body, expected.to_string());
        }
    }
}
