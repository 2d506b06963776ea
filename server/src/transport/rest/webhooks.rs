//! `POST /v0/voice/{provider}/monitor/{public_id}`: provider webhooks. The body is read here
//! with the route's own limit (larger for ElevenLabs, whose audio event carries a whole MP3),
//! then `providers::intake` decides; this file only maps its verdict to HTTP.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::RestState;
use super::error::ApiError;
use crate::error::Error;
use crate::providers::intake::{self, Incoming, Verdict};

/// Bodies above this are refused with 413 (the ElevenLabs route allows `ELEVENLABS_MAX_BODY`).
const MAX_BODY: usize = 1 << 20;
const ELEVENLABS_MAX_BODY: usize = 64 << 20;

pub async fn receive(
    State(state): State<RestState>,
    Path((provider, public_id)): Path<(String, String)>,
    request: Request<Body>,
) -> Response {
    let (parts, body) = request.into_parts();
    let limit = if provider == "elevenlabs" { ELEVENLABS_MAX_BODY } else { MAX_BODY };
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("the body exceeds {limit} bytes"),
        );
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |value| value.as_str());
    let url = format!("{}{path_and_query}", state.domain.settings.public_base_url);
    let incoming = Incoming {
        provider: &provider,
        public_id: &public_id,
        url: &url,
        headers: &parts.headers,
        body: &body,
    };
    let verdict = intake::receive(&state.domain, incoming).await;
    tracing::info!(provider = %provider, public_id = %public_id, verdict = verdict_name(&verdict), "webhook");
    match verdict {
        Verdict::NotFound => ApiError(Error::not_found("no active integration at this URL")).into_response(),
        Verdict::UnsupportedMediaType { expected } => error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            &format!("content-type must be {expected}"),
        ),
        Verdict::Unauthorized(failure) => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": "unauthenticated", "reason": failure.code(), "message": failure.message()}})),
        )
            .into_response(),
        Verdict::Malformed(problem) => {
            ApiError(Error::invalid(problem.field, problem.reason)).into_response()
        }
        Verdict::Ignored { event } => {
            (StatusCode::OK, Json(json!({"status": "ignored", "event": event}))).into_response()
        }
        Verdict::Duplicate { call_id, ingest_id } => (
            StatusCode::OK,
            Json(json!({"status": "duplicate", "call_id": call_id, "ingest_id": ingest_id.to_string()})),
        )
            .into_response(),
        Verdict::Accepted { call_id, ingest_id } => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "accepted", "call_id": call_id, "ingest_id": ingest_id.to_string()})),
        )
            .into_response(),
        Verdict::Failed(failure) => ApiError(failure).into_response(),
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

fn verdict_name(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::NotFound => "not_found",
        Verdict::UnsupportedMediaType { .. } => "unsupported_media_type",
        Verdict::Unauthorized(failure) => failure.code(),
        Verdict::Malformed(_) => "malformed",
        Verdict::Ignored { .. } => "ignored",
        Verdict::Duplicate { .. } => "duplicate",
        Verdict::Accepted { .. } => "accepted",
        Verdict::Failed(error) => error.code().as_str(),
    }
}
