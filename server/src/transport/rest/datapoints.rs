//! JSON routes of the data lifecycle: export as JSON Lines, deletion, and the recording of a
//! call over plain HTTP (the link an export gives). Errors have the usual
//! `{"error": {"code", "message", "field_violations"}}` body.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{RestState, presented_key};
use crate::domain::lifecycle::{DeleteRequest, audio_url};
use crate::domain::parse_id;
use crate::error::Error;
use crate::model::auth::Principal;
use crate::model::conversation::Source;
use crate::model::conversation_json::{self, parse_time};
use crate::model::datapoints::{DatapointQuery, DatapointView};

/// A search filter in JSON: the fields of `SearchDatapointsRequest`, times in RFC 3339.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FilterBody {
    project_id: Option<String>,
    context_token: Option<String>,
    call_id: Option<String>,
    /// webhook | sdk | api
    source: Option<String>,
    provider: Option<String>,
    tags_any: Vec<String>,
    tags_all: Vec<String>,
    metadata_equals: BTreeMap<String, String>,
    start_time: Option<String>,
    end_time: Option<String>,
    text_contains: Option<String>,
    integration_id: Option<String>,
}

impl FilterBody {
    fn query(self) -> Result<DatapointQuery, Error> {
        let text = |value: Option<String>| value.filter(|value| !value.is_empty());
        Ok(DatapointQuery {
            project_id: text(self.project_id)
                .map(|id| parse_id("filter.project_id", &id))
                .transpose()?,
            context_token: text(self.context_token),
            call_id: text(self.call_id),
            source: match text(self.source) {
                None => None,
                Some(name) => Some(Source::parse(&name).ok_or_else(|| {
                    Error::invalid("filter.source", "must be webhook, sdk or api")
                })?),
            },
            provider: text(self.provider),
            tags_any: self.tags_any,
            tags_all: self.tags_all,
            metadata_equals: self.metadata_equals.into_iter().collect(),
            from: text(self.start_time)
                .map(|value| parse_time("filter.start_time", &value))
                .transpose()?,
            to: text(self.end_time)
                .map(|value| parse_time("filter.end_time", &value))
                .transpose()?,
            text_contains: text(self.text_contains),
            integration_id: text(self.integration_id)
                .map(|id| parse_id("filter.integration_id", &id))
                .transpose()?,
            ..DatapointQuery::default()
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ExportBody {
    filter: FilterBody,
    include_audio_links: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct DeleteBody {
    datapoint_ids: Vec<String>,
    filter: FilterBody,
}

/// The API key of the request, then its JSON body (empty reads as `{}`).
async fn authenticated_json<T: serde::de::DeserializeOwned + Default>(
    state: &RestState,
    request: Request<Body>,
) -> Result<(Principal, T), ApiError> {
    let principal = state.domain.authenticate(presented_key(request.headers())).await?;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| Error::invalid("body", rejection.body_text()))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((principal, T::default()));
    }
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(Error::invalid("content-type", "must be application/json").into());
    }
    Ok((principal, conversation_json::parse(&body)?))
}

/// `POST /v0/datapoints/export`: `{"filter": {...}, "include_audio_links": bool}`, answered with
/// every matching datapoint as JSON Lines (`application/x-ndjson`), newest call first. A
/// failure part way ends the body early, so an incomplete download cannot pass for a
/// complete one.
pub async fn export(State(state): State<RestState>, request: Request<Body>) -> Response {
    match export_inner(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn export_inner(state: &RestState, request: Request<Body>) -> Result<Response, ApiError> {
    let (principal, body): (Principal, ExportBody) = authenticated_json(state, request).await?;
    let links = body.include_audio_links;
    let query = body.filter.query()?;
    let base = state.domain.settings.public_base_url.clone();
    let views = state.domain.export_datapoints(principal, query).await?;
    let lines = views.map(move |view| {
        let view = view.map_err(|error| {
            error.log_if_internal();
            std::io::Error::other(error.public_message())
        })?;
        let link = match (&view.audio, links) {
            (Some(_), true) => Some(audio_url(&base, view.datapoint.id)),
            _ => None,
        };
        let mut line =
            serde_json::to_vec(&export_json(&view, link)).map_err(std::io::Error::other)?;
        line.push(b'\n');
        Ok::<_, std::io::Error>(Bytes::from(line))
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"))],
        Body::from_stream(lines),
    )
        .into_response())
}

/// `POST /v0/datapoints/delete`: `{"datapoint_ids": [...]}` or `{"filter": {...}}`, answered
/// with the audit record of the deletion.
pub async fn delete(
    State(state): State<RestState>,
    request: Request<Body>,
) -> Result<impl IntoResponse, ApiError> {
    let (principal, body): (Principal, DeleteBody) = authenticated_json(&state, request).await?;
    let datapoint_ids = body
        .datapoint_ids
        .iter()
        .enumerate()
        .map(|(index, id)| parse_id(&format!("datapoint_ids[{index}]"), id))
        .collect::<Result<Vec<_>, _>>()?;
    let filter = body.filter.query()?;
    let deletion =
        state.domain.delete_datapoints(&principal, DeleteRequest { datapoint_ids, filter }).await?;
    Ok(Json(json!({
        "deletion": {
            "id": deletion.id,
            "project_id": deletion.project_id,
            "actor": deletion.actor,
            "reason": deletion.reason.as_str(),
            "filter": deletion.filter,
            "request_time": deletion.requested_at.to_rfc3339(),
            "finish_time": deletion.finished_at.map(|time| time.to_rfc3339()),
            "removed": deletion.removed,
        }
    })))
}

/// `GET /v0/datapoints/{id}`: everything stored of one call, as an export line (with the
/// recording's link when it has one): what the `links.datapoint` of an event points at.
pub async fn get(
    State(state): State<RestState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let principal = state.domain.authenticate(presented_key(&headers)).await?;
    let id = parse_id("id", &id)?;
    let view = state.domain.get_datapoint(&principal, id).await?;
    let link = view.audio.as_ref().map(|_| audio_url(&state.domain.settings.public_base_url, id));
    Ok(Json(export_json(&view, link)))
}

/// `GET /v0/datapoints/{id}/audio`: the stored recording, with its content type and length.
pub async fn audio(
    State(state): State<RestState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = state.domain.authenticate(presented_key(&headers)).await?;
    let id = parse_id("id", &id)?;
    let view = state.domain.get_datapoint(&principal, id).await?;
    let audio = view
        .audio
        .ok_or_else(|| Error::not_found(format!("datapoint {id} has no stored audio")))?;
    let stream = state.domain.blobs.stream(&audio.blob_key).await?;
    let body = Body::from_stream(stream.map(|chunk| {
        chunk.map_err(|error| {
            error.log_if_internal();
            std::io::Error::other(error.public_message())
        })
    }));
    let content_type = HeaderValue::from_str(&audio.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_LENGTH, HeaderValue::from(audio.size_bytes)),
        ],
        body,
    )
        .into_response())
}

/// One exported datapoint: everything stored of the call.
pub(crate) fn export_json(view: &DatapointView, audio_url: Option<String>) -> Value {
    let datapoint = &view.datapoint;
    let mut line = json!({
        "id": datapoint.id,
        "project_id": datapoint.project_id,
        "provider": datapoint.provider,
        "call_id": datapoint.call_id,
        "context_token": datapoint.context_token,
        "source": datapoint.source.as_str(),
        "transcript_source": datapoint.transcript_source.as_str(),
        "speaker_labels_estimated": datapoint.speaker_labels_estimated,
        "turns": datapoint.turns,
        "start_time": datapoint.started_at.map(|time| time.to_rfc3339()),
        "end_time": datapoint.ended_at.map(|time| time.to_rfc3339()),
        "duration_ms": datapoint.duration_ms,
        "from_number": datapoint.from_number,
        "to_number": datapoint.to_number,
        "direction": datapoint.direction,
        "analysis": datapoint.analysis,
        "tags": datapoint.tags,
        "metadata": datapoint.metadata,
        "metrics": datapoint.metrics,
        "create_time": datapoint.created_at.to_rfc3339(),
        "update_time": datapoint.updated_at.to_rfc3339(),
        "integration_id": datapoint.integration_id,
        "audio": view.audio.as_ref().map(|audio| json!({
            "id": audio.id,
            "sha256": audio.sha256,
            "content_type": audio.content_type,
            "size_bytes": audio.size_bytes,
            "duration_ms": audio.duration_ms,
            "channels": audio.channels,
            "sample_rate_hz": audio.sample_rate_hz,
        })),
    });
    if let Some(url) = audio_url {
        line["audio_url"] = Value::from(url);
    }
    line
}
