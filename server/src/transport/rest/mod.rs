//! Plain-HTTP routes: health, readiness, and the JSON mirrors of the gRPC API.

pub mod compat;
pub mod error;
pub mod webhooks;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::domain::Domain;
use error::ApiError;

#[derive(Clone, Debug)]
pub struct RestState {
    pub domain: Domain,
    /// False once shutdown has begun, so load balancers stop sending traffic.
    pub accepting: Arc<AtomicBool>,
}

pub fn router(state: RestState, max_request_bytes: usize) -> Router {
    // Webhook bodies are read with their own limits (see `webhooks`).
    let webhooks = Router::new()
        .route("/v0/voice/vapi/monitor", post(webhooks::receive_vapi))
        .route("/v0/voice/{provider}/monitor/{public_id}", post(webhooks::receive))
        .layer(axum::extract::DefaultBodyLimit::disable());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v0/projects", get(list_projects))
        .route("/v0/conversations/ingest", post(compat::ingest))
        .route("/v0/find_datapoints", post(compat::find_datapoints))
        .layer(axum::extract::DefaultBodyLimit::max(max_request_bytes))
        .merge(webhooks)
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<RestState>) -> impl IntoResponse {
    if !state.accepting.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    match state.domain.storage.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(error) => {
            tracing::warn!(error = %error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// The API key the request presents (rule in `domain::auth::presented_key`).
pub fn presented_key(headers: &HeaderMap) -> &str {
    let header = |name| headers.get(name).and_then(|value| value.to_str().ok());
    crate::domain::auth::presented_key(header("api-key"), header("authorization"))
}

/// `GET /v0/projects`: the JSON shape existing clients expect, answered with 201 as the hosted
/// API does (its SDK checks for 201 when validating a key).
async fn list_projects(
    State(state): State<RestState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let principal = state.domain.authenticate(presented_key(&headers)).await?;
    let projects = state.domain.list_projects(&principal).await?;
    let body: Vec<_> = projects
        .iter()
        .map(|project| {
            serde_json::json!({
                "id": project.id,
                "name": project.name,
                "onboarding_status": "complete",
                "tags": [],
            })
        })
        .collect();
    Ok((StatusCode::CREATED, Json(body)))
}

/// Unknown paths: a JSON 404 (gRPC clients read an HTTP 404 as UNIMPLEMENTED).
pub async fn not_found() -> impl IntoResponse {
    ApiError(crate::Error::not_found("no such route"))
}
