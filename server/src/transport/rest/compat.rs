//! JSON mirrors of the gRPC API in the shapes existing voice-monitoring clients speak
//! (shared/reference/compat-api.md): `POST /v0/conversations/ingest` and
//! `POST /v0/find_datapoints`. Same domain functions, same API keys.
//!
//! Validation errors answer 422 with FastAPI's `{"detail": [{"loc", "msg", "type"}]}`, every
//! problem named by its path in the body; other errors carry `detail` as a message beside the
//! usual `error` object.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{error_object, status_for};
use super::{RestState, presented_key};
use crate::domain::ingest::IngestRequest;
use crate::domain::parse_id;
use crate::error::{Error, FieldViolation};
use crate::model::auth::Principal;
use crate::model::conversation::Source;
use crate::model::conversation_json::{self, JsonConversation, parse_time};
use crate::model::datapoints::{DatapointQuery, DatapointView};

/// An error in the compat shape.
#[derive(Debug)]
pub struct CompatError(Error);

impl From<Error> for CompatError {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

impl IntoResponse for CompatError {
    fn into_response(self) -> Response {
        let error = self.0;
        error.log_if_internal();
        match &error {
            Error::InvalidArgument(violations) => {
                let detail: Vec<Value> = violations.iter().map(violation_detail).collect();
                (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "detail": detail })))
                    .into_response()
            }
            _ => {
                let body =
                    json!({ "detail": error.public_message(), "error": error_object(&error) });
                (status_for(error.code()), Json(body)).into_response()
            }
        }
    }
}

/// `conversations[0].audio.inline_b64` -> `["body", "conversations", 0, "audio", "inline_b64"]`.
fn field_location(field: &str) -> Vec<Value> {
    let mut location = vec![Value::from("body")];
    for part in field.split('.') {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            location.push(Value::from(&rest[..open]));
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                let inside = &rest[1..close];
                location
                    .push(inside.parse::<u64>().map_or_else(|_| Value::from(inside), Value::from));
                rest = &rest[close + 1..];
            }
        } else if !rest.is_empty() {
            location.push(Value::from(rest));
        }
    }
    location
}

fn violation_detail(violation: &FieldViolation) -> Value {
    json!({"loc": field_location(&violation.field), "msg": violation.description, "type": "value_error"})
}

fn require_json(headers: &HeaderMap) -> Result<(), Box<Response>> {
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    let message = format!("Content-Type must be application/json, not {:?}", content_type);
    let body = json!({"detail": message, "error": {"code": "invalid_argument", "message": message, "field_violations": []}});
    Err(Box::new((StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(body)).into_response()))
}

/// Parses JSON, naming the field of a type error by its path.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, CompatError> {
    conversation_json::parse(body).map_err(CompatError)
}

#[derive(Debug, Deserialize)]
struct IngestBody {
    project_id: Option<String>,
    mut_id: Option<String>,
    conversations: Vec<JsonConversation>,
}

/// The request's API key, checked before its body is read (an anonymous request costs no body
/// read), then the body within the route's limit.
async fn authenticated_body(
    state: &RestState,
    request: Request<Body>,
) -> Result<(Principal, Bytes), Response> {
    require_json(request.headers()).map_err(|response| *response)?;
    let principal = state
        .domain
        .authenticate(presented_key(request.headers()))
        .await
        .map_err(|error| CompatError(error).into_response())?;
    let body = Bytes::from_request(request, state).await.map_err(IntoResponse::into_response)?;
    Ok((principal, body))
}

/// `POST /v0/conversations/ingest`.
pub async fn ingest(State(state): State<RestState>, request: Request<Body>) -> Response {
    let (principal, body) = match authenticated_body(&state, request).await {
        Ok(authenticated) => authenticated,
        Err(response) => return response,
    };
    match ingest_inner(&state, &principal, &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn ingest_inner(
    state: &RestState,
    principal: &Principal,
    body: &[u8],
) -> Result<Response, CompatError> {
    let parsed: IngestBody = parse_body(body)?;
    let project_id = parsed
        .project_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .map(|id| parse_id("project_id", id))
        .transpose()?;
    let mut violations = Vec::new();
    let mut conversations = Vec::with_capacity(parsed.conversations.len());
    for (index, conversation) in parsed.conversations.into_iter().enumerate() {
        match conversation_json::conversation_input(
            &format!("conversations[{index}]"),
            conversation,
        ) {
            Ok(input) => conversations.push(input),
            Err(error) => violations.extend(error.field_violations().iter().cloned()),
        }
    }
    if !violations.is_empty() {
        return Err(CompatError(Error::InvalidArgument(violations)));
    }
    let ingested = state
        .domain
        .ingest_conversations(
            principal,
            IngestRequest { project_id, conversations, mut_id: parsed.mut_id, source: Source::Sdk },
        )
        .await?;
    let conversations: Vec<Value> = ingested
        .iter()
        .map(|item| {
            json!({
                "call_id": item.call_id,
                "context_token": item.context_token,
                "ingest_id": item.ingest_id,
                "duplicate": item.duplicate,
            })
        })
        .collect();
    Ok((StatusCode::OK, Json(json!({"status": "accepted", "conversations": conversations})))
        .into_response())
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct FindBody {
    project_id: Option<String>,
    context_token: Option<String>,
    tags: Option<Vec<String>>,
    from_date: Option<String>,
    to_date: Option<String>,
    search_value: Option<String>,
    /// Calls with an unresolved issue (Okareo's name).
    issues_only: Option<bool>,
    /// Calls on which the check of this name is an unresolved issue.
    failed_check: Option<String>,
    /// Calls this monitor matched; `filter_group_id` is Okareo's name for it.
    monitor_id: Option<String>,
    filter_group_id: Option<String>,
    /// The provider's verdicts (SearchDatapoints `successful`, `sentiment`, `outcome`).
    successful: Option<bool>,
    sentiment: Option<String>,
    outcome: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// The deepest offset `find_datapoints` pages to: each page skips that many rows, so deeper pages
/// cost more; time ranges reach the rest.
const MAX_OFFSET: usize = 100_000;

/// `POST /v0/find_datapoints`.
pub async fn find_datapoints(State(state): State<RestState>, request: Request<Body>) -> Response {
    let (principal, body) = match authenticated_body(&state, request).await {
        Ok(authenticated) => authenticated,
        Err(response) => return response,
    };
    match find_inner(&state, &principal, &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn find_inner(
    state: &RestState,
    principal: &Principal,
    body: &[u8],
) -> Result<Response, CompatError> {
    let parsed: FindBody = if body.iter().all(u8::is_ascii_whitespace) {
        FindBody::default()
    } else {
        parse_body(body)?
    };
    let query = DatapointQuery {
        project_id: parsed
            .project_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .map(|id| parse_id("project_id", id))
            .transpose()?,
        context_token: parsed.context_token.filter(|token| !token.is_empty()),
        tags_all: parsed.tags.unwrap_or_default(),
        from: parsed
            .from_date
            .as_deref()
            .map(|value| parse_time("from_date", value))
            .transpose()?,
        to: parsed.to_date.as_deref().map(|value| parse_time("to_date", value)).transpose()?,
        text_contains: parsed.search_value.filter(|text| !text.is_empty()),
        issues_only: parsed.issues_only.unwrap_or(false),
        failed_check: parsed.failed_check.filter(|name| !name.is_empty()),
        monitor_id: match (parsed.monitor_id.as_deref(), parsed.filter_group_id.as_deref()) {
            (Some(id), _) if !id.is_empty() => Some(parse_id("monitor_id", id)?),
            (_, Some(id)) if !id.is_empty() => Some(parse_id("filter_group_id", id)?),
            _ => None,
        },
        successful: parsed.successful,
        sentiment: parsed.sentiment.filter(|text| !text.is_empty()),
        outcome: parsed.outcome.filter(|text| !text.is_empty()),
        page_size: parsed.limit.unwrap_or(100),
        offset: match parsed.offset.unwrap_or(0) {
            offset if offset <= MAX_OFFSET => offset,
            _ => {
                return Err(CompatError(Error::invalid(
                    "offset",
                    format!("at most {MAX_OFFSET}; narrow the search with from_date and to_date"),
                )));
            }
        },
        ..DatapointQuery::default()
    };
    // Named as this body names them.
    let page =
        state.domain.search_datapoints(principal, query).await.map_err(|error| match error {
            Error::InvalidArgument(violations) => Error::InvalidArgument(
                violations
                    .into_iter()
                    .map(|violation| FieldViolation {
                        field: violation
                            .field
                            .replacen("text_contains", "search_value", 1)
                            .replacen("tags_all", "tags", 1),
                        description: violation.description,
                    })
                    .collect(),
            ),
            other => other,
        })?;
    let list: Vec<Value> = page.datapoints.iter().map(datapoint_json).collect();
    Ok((StatusCode::OK, Json(Value::Array(list))).into_response())
}

/// A datapoint in the list-item shape existing clients read.
fn datapoint_json(view: &DatapointView) -> Value {
    let datapoint = &view.datapoint;
    let mut model_metadata = json!({
        "source_platform": datapoint.provider,
        "call_id": datapoint.call_id,
        "transcript_source": datapoint.transcript_source.as_str(),
        "speaker_labels_estimated": datapoint.speaker_labels_estimated,
        "metrics": datapoint.metrics,
    });
    if let Some(audio) = &view.audio {
        model_metadata["voice_file_id"] = json!(audio.id);
        model_metadata["audio"] = json!({
            "content_type": audio.content_type,
            "size_bytes": audio.size_bytes,
            "sha256": audio.sha256,
            "duration_ms": audio.duration_ms,
            "channels": audio.channels,
            "sample_rate_hz": audio.sample_rate_hz,
        });
    }
    let turns: Vec<Value> = datapoint
        .turns
        .iter()
        .map(|turn| {
            let mut item = json!({"role": turn.role.as_str(), "content": turn.content, "timestamp_ms": turn.start_ms});
            if let Some(end_ms) = turn.end_ms {
                item["end_ms"] = json!(end_ms);
            }
            if let Some(channel) = turn.channel {
                item["channel"] = json!(channel);
            }
            if let Some(confidence) = turn.confidence {
                item["confidence"] = json!(confidence);
            }
            if turn.unrecognized {
                item["unrecognized"] = json!(true);
            }
            item
        })
        .collect();
    json!({
        "id": datapoint.id,
        "project_id": datapoint.project_id,
        "context_token": datapoint.context_token,
        "tags": datapoint.tags,
        "input": turns,
        "input_datetime": datapoint.started_at.unwrap_or(datapoint.created_at).to_rfc3339(),
        "result": datapoint.analysis.summary,
        "time_created": datapoint.created_at.to_rfc3339(),
        "source": datapoint.source.as_str(),
        "provider": datapoint.provider,
        "model_metadata": model_metadata,
        "user_metadata": datapoint.metadata,
        "cost": datapoint.analysis.cost_usd,
        "latency": datapoint.metrics.response_latency_p50_ms,
        "status": "done",
        "check_values": view.check_results.iter().map(check_value_json).collect::<Vec<_>>(),
        "failed_checks": view.failed_checks(),
    })
}

/// A check result in Okareo's `CheckValueItem` shape, with the version, origin and resolution.
fn check_value_json(result: &crate::model::checks::CheckResult) -> Value {
    let value = &result.value;
    json!({
        "name": value.name,
        "value": value.value,
        "value_type": value.value_type.as_str(),
        "check_id": value.check_id,
        "check_version": value.check_version,
        "is_issue": value.is_issue,
        "explanation": value.explanation,
        "origin": result.origin.as_str(),
        "resolved_time": result.resolved_at.map(|time| time.to_rfc3339()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_become_fastapi_locations() {
        assert_eq!(
            field_location("conversations[0].audio.inline_b64"),
            vec![
                json!("body"),
                json!("conversations"),
                json!(0),
                json!("audio"),
                json!("inline_b64")
            ]
        );
        assert_eq!(field_location("project_id"), vec![json!("body"), json!("project_id")]);
        assert_eq!(
            field_location("conversations[2].transcript[5].role"),
            vec![
                json!("body"),
                json!("conversations"),
                json!(2),
                json!("transcript"),
                json!(5),
                json!("role")
            ]
        );
    }

    #[test]
    fn type_errors_name_the_field() {
        let body = br#"{"conversations": [{"call_id": "c", "transcript": [{"role": "user", "content": 5}]}]}"#;
        let error = parse_body::<IngestBody>(body).unwrap_err().0;
        assert_eq!(error.field_violations()[0].field, "conversations[0].transcript[0].content");
        let missing =
            parse_body::<IngestBody>(br#"{"conversations": [{"transcript": []}]}"#).unwrap_err().0;
        assert_eq!(missing.field_violations()[0].field, "conversations[0].call_id");
        let unknown =
            parse_body::<IngestBody>(br#"{"conversations": [{"call_id": "c", "transcipt": []}]}"#)
                .unwrap_err()
                .0;
        assert_eq!(unknown.field_violations()[0].field, "conversations[0].transcipt");
        let malformed = parse_body::<IngestBody>(br#"{"conversations": [}"#).unwrap_err().0;
        assert!(malformed.field_violations()[0].description.starts_with("malformed JSON"));
    }
}
