//! Python values to JSON and back, and the client's messages as the dictionaries the Python
//! package returns.

use earshot::proto as pb;
use earshot::{FieldViolation, struct_to_json};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Value, json};

/// A Python value as JSON: `None`, `bool`, `int`, `float`, `str`, `list`, `tuple` and `dict`
/// with string keys; anything with `isoformat()` (a `datetime`) becomes its ISO 8601 text. Other
/// types are refused, naming the path (`conversations[0].metadata.when`).
pub fn to_json(value: &Bound<'_, PyAny>, path: &str) -> Result<Value, FieldViolation> {
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(text) = value.cast::<PyString>() {
        return text
            .to_cow()
            .map(|text| Value::String(text.into_owned()))
            .map_err(|_| FieldViolation::new(path, "must be valid UTF-8 text"));
    }
    // bool before int: Python's bool is an int.
    if let Ok(flag) = value.cast::<PyBool>() {
        return Ok(Value::Bool(flag.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(number) = value.extract::<i64>() {
            return Ok(Value::from(number));
        }
        if let Ok(number) = value.extract::<u64>() {
            return Ok(Value::from(number));
        }
        return Err(FieldViolation::new(path, "is an integer too large for JSON"));
    }
    if let Ok(number) = value.cast::<PyFloat>() {
        return serde_json::Number::from_f64(number.value())
            .map(Value::Number)
            .ok_or_else(|| FieldViolation::new(path, "must be a finite number"));
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut map = Map::with_capacity(dict.len());
        for (key, item) in dict.iter() {
            let key: String = key
                .extract()
                .map_err(|_| FieldViolation::new(path, "must be a dict with string keys"))?;
            let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            map.insert(key, to_json(&item, &child)?);
        }
        return Ok(Value::Object(map));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for (index, item) in
            value.try_iter().map_err(|_| FieldViolation::new(path, "unreadable list"))?.enumerate()
        {
            let item = item.map_err(|_| FieldViolation::new(path, "unreadable list"))?;
            items.push(to_json(&item, &format!("{path}[{index}]"))?);
        }
        return Ok(Value::Array(items));
    }
    if let Ok(isoformat) = value.getattr("isoformat")
        && let Ok(text) = isoformat.call0().and_then(|text| text.extract::<String>())
    {
        return Ok(Value::String(text));
    }
    let type_name = value
        .get_type()
        .name()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| "object".to_owned());
    Err(FieldViolation::new(
        path,
        format!("must be None, bool, int, float, str, list or dict, not {type_name}"),
    ))
}

/// JSON as Python values (`dict`, `list`, `str`, `int`, `float`, `bool`, `None`).
pub fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(flag) => PyBool::new(py, *flag).to_owned().into_any(),
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                integer.into_pyobject(py)?.into_any()
            } else if let Some(integer) = number.as_u64() {
                integer.into_pyobject(py)?.into_any()
            } else {
                number.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(text) => PyString::new(py, text).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, to_python(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// A time as RFC 3339 text, as the JSON API writes it.
fn time(timestamp: Option<&prost_types::Timestamp>) -> Value {
    timestamp
        .and_then(|timestamp| {
            chrono::DateTime::from_timestamp(
                timestamp.seconds,
                u32::try_from(timestamp.nanos).ok()?,
            )
        })
        .map_or(Value::Null, |time| Value::String(time.to_rfc3339()))
}

fn role(value: i32) -> &'static str {
    match pb::Role::try_from(value) {
        Ok(pb::Role::User) => "user",
        Ok(pb::Role::Assistant) => "assistant",
        Ok(pb::Role::System) => "system",
        Ok(pb::Role::Tool) => "tool",
        _ => "unknown",
    }
}

fn source(value: i32) -> &'static str {
    match pb::Source::try_from(value) {
        Ok(pb::Source::Webhook) => "webhook",
        Ok(pb::Source::Sdk) => "sdk",
        Ok(pb::Source::Api) => "api",
        _ => "unknown",
    }
}

pub fn source_from_name(name: &str) -> Option<pb::Source> {
    match name {
        "webhook" => Some(pb::Source::Webhook),
        "sdk" => Some(pb::Source::Sdk),
        "api" => Some(pb::Source::Api),
        _ => None,
    }
}

fn transcript_source(value: i32) -> &'static str {
    match pb::TranscriptSource::try_from(value) {
        Ok(pb::TranscriptSource::Provider) => "provider",
        Ok(pb::TranscriptSource::Client) => "client",
        Ok(pb::TranscriptSource::Asr) => "asr",
        Ok(pb::TranscriptSource::None) => "none",
        _ => "unknown",
    }
}

/// The snake_case name of a protobuf enum value, without its prefix
/// (`INGEST_STATE_AWAITING_TRANSCRIPTION` -> `awaiting_transcription`).
fn enum_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix).unwrap_or(full).to_ascii_lowercase()
}

pub fn ingest_response(response: pb::IngestConversationsResponse) -> Value {
    json!({
        "status": response.status,
        "conversations": response.conversations.into_iter().map(|conversation| json!({
            "call_id": conversation.call_id,
            "context_token": conversation.context_token,
            "ingest_id": conversation.ingest_id,
            "duplicate": conversation.duplicate,
        })).collect::<Vec<_>>(),
    })
}

pub fn upload(response: &pb::UploadAudioResponse) -> Value {
    json!({
        "audio_id": response.audio_id,
        "voice_file_id": response.audio_id,
        "sha256": response.sha256,
        "size_bytes": response.size_bytes,
        "content_type": response.content_type,
    })
}

pub fn ingest_status(status: pb::IngestStatus) -> Value {
    let state = pb::IngestState::try_from(status.state).unwrap_or(pb::IngestState::Unspecified);
    json!({
        "ingest_id": status.ingest_id,
        "project_id": status.project_id,
        "call_id": status.call_id,
        "context_token": status.context_token,
        "state": enum_name(state.as_str_name(), "INGEST_STATE_"),
        "datapoint_id": non_empty(status.datapoint_id),
        "error": non_empty(status.error),
        "attempts": status.attempts,
        "next_attempt_time": time(status.next_attempt_time.as_ref()),
        "create_time": time(status.create_time.as_ref()),
        "update_time": time(status.update_time.as_ref()),
    })
}

fn non_empty(text: String) -> Value {
    if text.is_empty() { Value::Null } else { Value::String(text) }
}

/// A datapoint with the keys of the `find_datapoints` list items existing clients read (`id`,
/// `project_id`, `context_token`, `tags`, `input`, `input_datetime`, `result`, `time_created`,
/// `source`, `provider`, `model_metadata`, `user_metadata`, `cost`, `latency`, `status`), plus
/// the full call: `call_id`, `turns`, `audio`, `analysis`, `metrics`, times and numbers.
pub fn datapoint(datapoint: pb::Datapoint) -> Value {
    let turns: Vec<Value> = datapoint
        .turns
        .iter()
        .map(|turn| {
            json!({
                "role": role(turn.role),
                "content": turn.content,
                "start_ms": turn.start_ms,
                "end_ms": turn.end_ms,
                "channel": turn.channel,
                "confidence": turn.confidence,
                "unrecognized": turn.unrecognized,
            })
        })
        .collect();
    let input: Vec<Value> = datapoint
        .turns
        .iter()
        .map(|turn| json!({"role": role(turn.role), "content": turn.content, "timestamp_ms": turn.start_ms}))
        .collect();
    let audio = datapoint.audio.as_ref().map(|audio| {
        json!({
            "audio_id": audio.audio_id,
            "sha256": audio.sha256,
            "content_type": audio.content_type,
            "size_bytes": audio.size_bytes,
            "duration_ms": audio.duration_ms,
            "channels": audio.channels,
            "sample_rate_hz": audio.sample_rate_hz,
        })
    });
    let analysis = datapoint.analysis.clone().unwrap_or_default();
    let metrics = datapoint.metrics.clone().unwrap_or_default();
    let metrics_json = json!({
        "roles": metrics.roles.iter().map(|role_metrics| json!({
            "role": role(role_metrics.role),
            "turn_count": role_metrics.turn_count,
            "talk_time_ms": role_metrics.talk_time_ms,
            "word_count": role_metrics.word_count,
        })).collect::<Vec<_>>(),
        "response_latency_p50_ms": metrics.response_latency_p50_ms,
        "response_latency_p95_ms": metrics.response_latency_p95_ms,
        "words_per_minute": metrics.words_per_minute,
        "longest_monologue_ms": metrics.longest_monologue_ms,
        "overlap_count": metrics.overlap_count,
        "overlap_ms": metrics.overlap_ms,
        "speech_coverage": metrics.speech_coverage,
    });
    let mut model_metadata = json!({
        "source_platform": datapoint.provider,
        "call_id": datapoint.call_id,
        "transcript_source": transcript_source(datapoint.transcript_source),
    });
    if let Some(audio) = &datapoint.audio {
        model_metadata["voice_file_id"] = json!(audio.audio_id);
    }
    let start_time = time(datapoint.start_time.as_ref());
    let create_time = time(datapoint.create_time.as_ref());
    let user_metadata = datapoint.metadata.map_or_else(
        || Value::Object(Map::new()),
        |metadata| Value::Object(struct_to_json(metadata)),
    );
    json!({
        "id": datapoint.id,
        "project_id": datapoint.project_id,
        "context_token": datapoint.context_token,
        "call_id": datapoint.call_id,
        "integration_id": Some(&datapoint.integration_id).filter(|id| !id.is_empty()),
        "tags": datapoint.tags,
        "input": input,
        "input_datetime": if start_time.is_null() { &create_time } else { &start_time },
        "result": analysis.summary,
        "time_created": create_time,
        "time_updated": time(datapoint.update_time.as_ref()),
        "source": source(datapoint.source),
        "provider": datapoint.provider,
        "model_metadata": model_metadata,
        "user_metadata": user_metadata,
        "cost": datapoint.cost_usd,
        "latency": metrics.response_latency_p50_ms,
        "status": "done",
        "turns": turns,
        "transcript_source": transcript_source(datapoint.transcript_source),
        "speaker_labels_estimated": datapoint.speaker_labels_estimated,
        "audio": audio,
        "start_time": start_time,
        "end_time": time(datapoint.end_time.as_ref()),
        "duration_ms": datapoint.duration_ms,
        "from_number": datapoint.from_number,
        "to_number": datapoint.to_number,
        "direction": datapoint.direction,
        "analysis": {
            "summary": analysis.summary,
            "sentiment": analysis.sentiment,
            "successful": analysis.successful,
            "ended_reason": analysis.ended_reason,
            "agent_id": analysis.agent_id,
            "outcome": Some(&analysis.outcome).filter(|outcome| !outcome.is_empty()),
            "raw": analysis.raw.map(|raw| Value::Object(struct_to_json(raw))),
        },
        "metrics": metrics_json,
        "check_values": datapoint.check_values.iter().map(check_value).collect::<Vec<_>>(),
        "failed_checks": datapoint.failed_checks,
    })
}

/// A check result in Okareo's `CheckValueItem` shape, with the version, origin and resolution.
fn check_value(value: &pb::CheckValue) -> Value {
    use pb::check_value::Value as Measured;
    json!({
        "name": value.name,
        "value": match &value.value {
            Some(Measured::NumberValue(number)) => json!(number),
            Some(Measured::BoolValue(flag)) => json!(flag),
            Some(Measured::TextValue(text)) => json!(text),
            None => Value::Null,
        },
        "value_type": value.value_type,
        "check_id": value.check_id,
        "check_version": value.check_version,
        "is_issue": value.is_issue,
        "explanation": value.explanation,
        "origin": value.origin,
        "resolved_time": time(value.resolve_time.as_ref()),
    })
}

pub fn check(check: &pb::Check) -> Value {
    let rule = check.rule.clone().unwrap_or_default();
    json!({
        "id": check.id,
        "name": check.name,
        "description": check.description,
        "version": check.version,
        "measure": rule.measure,
        "comparator": rule.comparator,
        "threshold": Some(&rule.threshold).filter(|threshold| !threshold.is_empty()),
        "phrase": Some(&rule.phrase).filter(|phrase| !phrase.is_empty()),
        "time_created": time(check.create_time.as_ref()),
        "time_updated": time(check.update_time.as_ref()),
    })
}

pub fn monitor(monitor: &pb::Monitor) -> Value {
    let filter = monitor.filter.clone().unwrap_or_default();
    json!({
        "id": monitor.id,
        "name": monitor.name,
        "description": monitor.description,
        "filter": {
            "project_id": Some(&filter.project_id).filter(|id| !id.is_empty()),
            "provider": Some(&filter.provider).filter(|provider| !provider.is_empty()),
            "tags": filter.tags_all,
            "tags_any": filter.tags_any,
            "metadata": filter.metadata_equals,
            "search_value": Some(&filter.text_contains).filter(|text| !text.is_empty()),
            "integration_id": Some(&filter.integration_id).filter(|id| !id.is_empty()),
            "successful": filter.successful,
            "sentiment": Some(&filter.sentiment).filter(|text| !text.is_empty()),
            "outcome": Some(&filter.outcome).filter(|text| !text.is_empty()),
        },
        "checks": monitor.checks.iter().map(check).collect::<Vec<_>>(),
        "version": monitor.version,
        "time_created": time(monitor.create_time.as_ref()),
        "time_updated": time(monitor.update_time.as_ref()),
    })
}

pub fn backfill(backfill: &pb::Backfill) -> Value {
    json!({
        "id": backfill.id,
        "monitor_id": backfill.monitor_id,
        "state": backfill.state,
        "from_date": time(backfill.start_time.as_ref()),
        "to_date": time(backfill.end_time.as_ref()),
        "total": backfill.total,
        "processed": backfill.processed,
        "matched": backfill.matched,
        "issues": backfill.issues,
        "error": Some(&backfill.error).filter(|error| !error.is_empty()),
        "time_created": time(backfill.create_time.as_ref()),
        "time_updated": time(backfill.update_time.as_ref()),
        "time_finished": time(backfill.finish_time.as_ref()),
    })
}

/// A monitor's summary: each bucket as Okareo's `DatapointSummaryItem` (`group`, `datapoints`,
/// `issues`) with the issue rate and Okareo's `average_metrics` (check name to mean) beside
/// each check's figures.
pub fn monitor_summary(summary: &pb::GetMonitorSummaryResponse) -> Value {
    let bucket = |bucket: &pb::SummaryBucket| {
        let averages: serde_json::Map<String, Value> = bucket
            .checks
            .iter()
            .filter_map(|check| Some((check.name.clone(), json!(check.mean?))))
            .collect();
        json!({
            "group": time(bucket.start_time.as_ref()),
            "datapoints": bucket.datapoints,
            "issues": bucket.issues,
            "issue_rate": bucket.issue_rate,
            "average_metrics": averages,
            "failed_checks": bucket.failed_checks,
            "checks": bucket.checks.iter().map(|check| json!({
                "check_id": check.check_id,
                "name": check.name,
                "datapoints": check.datapoints,
                "issues": check.issues,
                "mean": check.mean,
            })).collect::<Vec<_>>(),
        })
    };
    json!({
        "buckets": summary.buckets.iter().map(bucket).collect::<Vec<_>>(),
        "total": summary.total.as_ref().map(bucket),
    })
}

pub fn integration(integration: pb::Integration) -> Value {
    let provider =
        pb::Provider::try_from(integration.provider).unwrap_or(pb::Provider::Unspecified);
    let auth_type = pb::WebhookAuthType::try_from(integration.webhook_auth_type)
        .unwrap_or(pb::WebhookAuthType::Unspecified);
    let status = pb::IntegrationStatus::try_from(integration.status)
        .unwrap_or(pb::IntegrationStatus::Unspecified);
    let secrets: Vec<Value> = integration
        .secret_summary
        .map(|summary| summary.secrets)
        .unwrap_or_default()
        .into_iter()
        .map(|secret| {
            let state =
                pb::SecretState::try_from(secret.state).unwrap_or(pb::SecretState::Unspecified);
            json!({
                "name": secret.name,
                "last4": secret.last4,
                "state": enum_name(state.as_str_name(), "SECRET_STATE_"),
                "create_time": time(secret.create_time.as_ref()),
                "expire_time": time(secret.expire_time.as_ref()),
            })
        })
        .collect();
    let options = integration.options.unwrap_or_default();
    json!({
        "id": integration.id,
        "project_id": integration.project_id,
        "provider": enum_name(provider.as_str_name(), "PROVIDER_"),
        "display_name": integration.display_name,
        "public_id": integration.public_id,
        "webhook_auth_type": enum_name(auth_type.as_str_name(), "WEBHOOK_AUTH_TYPE_"),
        "status": enum_name(status.as_str_name(), "INTEGRATION_STATUS_"),
        "webhook_url": integration.webhook_url,
        "secrets": secrets,
        "options": {
            "ip_allowlist": options.ip_allowlist,
            "rate_limit_per_minute": options.rate_limit_per_minute,
        },
        "request_count": integration.request_count,
        "create_time": time(integration.create_time.as_ref()),
        "update_time": time(integration.update_time.as_ref()),
        "last_used_time": time(integration.last_used_time.as_ref()),
        "last_validated_time": time(integration.last_validated_time.as_ref()),
    })
}

pub fn delivery(delivery: pb::WebhookDelivery) -> Value {
    let verdict =
        pb::DeliveryVerdict::try_from(delivery.verdict).unwrap_or(pb::DeliveryVerdict::Unspecified);
    json!({
        "id": delivery.id,
        "integration_id": delivery.integration_id,
        "receive_time": time(delivery.receive_time.as_ref()),
        "verdict": enum_name(verdict.as_str_name(), "DELIVERY_VERDICT_"),
        "http_status": delivery.http_status,
        "event_type": delivery.event_type,
        "call_id": delivery.call_id,
        "body_sha256": delivery.body_sha256,
        "error": non_empty(delivery.error),
        "error_message": non_empty(delivery.error_message),
        "ingest_id": non_empty(delivery.ingest_id),
        "replayable": delivery.replayable,
        "authenticated": delivery.authenticated,
    })
}

pub fn project(project: &pb::Project) -> Value {
    let retention = project.retention.unwrap_or_default();
    json!({
        "id": project.id,
        "name": project.name,
        "create_time": time(project.create_time.as_ref()),
        "retention": {
            "datapoint_days": retention.datapoint_days,
            "audio_days": retention.audio_days,
            "delivery_body_days": retention.delivery_body_days,
            "delivery_days": retention.delivery_days,
        },
    })
}

pub fn deletion(deletion: pb::Deletion) -> Value {
    let removed = deletion.removed.unwrap_or_default();
    json!({
        "id": deletion.id,
        "project_id": Some(deletion.project_id).filter(|id| !id.is_empty()),
        "actor": deletion.actor,
        "reason": deletion.reason,
        "filter": deletion.filter.map_or(Value::Null, |filter| Value::Object(struct_to_json(filter))),
        "request_time": time(deletion.request_time.as_ref()),
        "finish_time": time(deletion.finish_time.as_ref()),
        "removed": {
            "datapoints": removed.datapoints,
            "ingests": removed.ingests,
            "delivery_bodies": removed.delivery_bodies,
            "recordings": removed.recordings,
        },
    })
}

pub fn api_key(key: pb::ApiKey) -> Value {
    let scopes: Vec<String> = key
        .scopes
        .iter()
        .map(|scope| {
            let scope = pb::ApiKeyScope::try_from(*scope).unwrap_or(pb::ApiKeyScope::Unspecified);
            enum_name(scope.as_str_name(), "API_KEY_SCOPE_")
        })
        .collect();
    json!({
        "id": key.id,
        "name": key.name,
        "scopes": scopes,
        "project_id": non_empty(key.project_id),
        "key_prefix": key.key_prefix,
        "create_time": time(key.create_time.as_ref()),
        "revoke_time": time(key.revoke_time.as_ref()),
        "last_used_time": time(key.last_used_time.as_ref()),
    })
}

/// A provider by its lowercase name (`retell`), as the Python API spells it.
pub fn provider_from_name(name: &str) -> Option<pb::Provider> {
    pb::Provider::from_str_name(&format!("PROVIDER_{}", name.to_ascii_uppercase()))
        .filter(|provider| *provider != pb::Provider::Unspecified)
}

pub fn auth_type_from_name(name: &str) -> Option<pb::WebhookAuthType> {
    pb::WebhookAuthType::from_str_name(&format!("WEBHOOK_AUTH_TYPE_{}", name.to_ascii_uppercase()))
        .filter(|auth_type| *auth_type != pb::WebhookAuthType::Unspecified)
}

pub fn scope_from_name(name: &str) -> Option<pb::ApiKeyScope> {
    pb::ApiKeyScope::from_str_name(&format!("API_KEY_SCOPE_{}", name.to_ascii_uppercase()))
        .filter(|scope| *scope != pb::ApiKeyScope::Unspecified)
}

pub fn verdict_from_name(name: &str) -> Option<pb::DeliveryVerdict> {
    pb::DeliveryVerdict::from_str_name(&format!("DELIVERY_VERDICT_{}", name.to_ascii_uppercase()))
        .filter(|verdict| *verdict != pb::DeliveryVerdict::Unspecified)
}

pub fn event_endpoint(endpoint: &pb::EventEndpoint) -> Value {
    let filter = endpoint.filter.clone().unwrap_or_default();
    let kind = pb::EventEndpointKind::try_from(endpoint.kind)
        .unwrap_or(pb::EventEndpointKind::Unspecified);
    json!({
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "kind": match kind {
            pb::EventEndpointKind::Slack => "slack",
            _ => "webhook",
        },
        "event_types": endpoint.event_types,
        "filter": {
            "provider": filter.provider,
            "tags": filter.tags,
            "metadata": filter.metadata,
            "monitor_id": filter.monitor_id,
        },
        "include_transcript": endpoint.include_transcript,
        "rate_limit_per_second": endpoint.rate_limit_per_second,
        "alert_cooldown_seconds": endpoint.alert_cooldown_seconds,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "header_names": endpoint.header_names,
        "sent": endpoint.sent,
        "failed": endpoint.failed,
        "last_success_time": time(endpoint.last_success_at.as_ref()),
        "last_failure_time": time(endpoint.last_failure_at.as_ref()),
        "create_time": time(endpoint.created_at.as_ref()),
        "update_time": time(endpoint.updated_at.as_ref()),
        "active_secrets": endpoint.active_secrets,
    })
}

pub fn event_attempt(attempt: &pb::EventAttempt) -> Value {
    json!({
        "id": attempt.id,
        "event_id": attempt.event_id,
        "endpoint_id": attempt.endpoint_id,
        "event_type": attempt.event_type,
        "attempt_time": time(attempt.attempted_at.as_ref()),
        "http_status": attempt.http_status,
        "latency_ms": attempt.latency_ms,
        "response_excerpt": attempt.response_excerpt,
        "error": attempt.error,
    })
}
