//! Vapi: server messages; `end-of-call-report` is the call. Authentication is one of the shared
//! schemes (`X-Vapi-Secret`, a header token, or HMAC; see `tokens` and `custom_hmac`), or an
//! earshot API key on `/v0/voice/vapi/monitor`.

use serde_json::Value;

use super::payload::*;
use super::{NormalizeContext, Normalized, PayloadError, WebhookCall};
use crate::model::conversation::{AudioSource, Role, Turn};
use crate::model::integrations::Provider;

pub fn normalize(context: &NormalizeContext<'_>, body: &[u8]) -> Result<Normalized, PayloadError> {
    let root = parse_json(body)?;
    if get(&root, "message").is_none() {
        return Err(PayloadError::new("message", "is required"));
    }
    let event = required_str(&root, "message.type")?;
    if event != "end-of-call-report" {
        return Ok(Normalized::Ignored { event });
    }
    let call_id = required_str(&root, "message.call.id")?;
    let mut conversation = super::conversation(Provider::Vapi, call_id, context.first_turn());
    let started = first(&root, &["message.startedAt", "message.call.startedAt"], opt_rfc3339)?;
    let ended = first(&root, &["message.endedAt", "message.call.endedAt"], opt_rfc3339)?;
    conversation.started_at = started;
    conversation.ended_at = ended;
    conversation.duration_ms = match (started, ended) {
        (Some(started), Some(ended)) => Some((ended - started).num_milliseconds()),
        _ => opt_f64(&root, "message.durationSeconds")?.map(seconds_to_ms),
    };
    let customer =
        first(&root, &["message.customer.number", "message.call.customer.number"], opt_str)?;
    let ours = opt_str(&root, "message.phoneNumber.number")?;
    let call_type = opt_str(&root, "message.call.type")?;
    let (direction, from, to) = match call_type.as_deref() {
        Some("outboundPhoneCall") => (Some("outbound"), ours, customer),
        Some("inboundPhoneCall") => (Some("inbound"), customer, ours),
        Some("webCall") => (Some("web"), customer, ours),
        _ => (None, customer, ours),
    };
    conversation.direction = direction.map(str::to_owned);
    conversation.from_number = from;
    conversation.to_number = to;

    let (messages_path, messages) = match opt_array(&root, "message.artifact.messages")? {
        [] => ("message.messages", opt_array(&root, "message.messages")?),
        messages => ("message.artifact.messages", messages),
    };
    for (index, message) in messages.iter().enumerate() {
        let field = |name: &str| format!("{messages_path}[{index}].{name}");
        let role = match message.get("role").and_then(Value::as_str) {
            Some("bot" | "assistant") => Role::Assistant,
            Some("user") => Role::User,
            Some(_) => continue,
            None => return Err(PayloadError::new(field("role"), "is required")),
        };
        let content = match message.get("message") {
            Some(Value::String(content)) => content.clone(),
            _ => return Err(PayloadError::new(field("message"), "must be a string")),
        };
        let start_ms =
            message.get("secondsFromStart").and_then(Value::as_f64).map_or(0, seconds_to_ms);
        let spoken = match (
            message.get("time").and_then(Value::as_f64),
            message.get("endTime").and_then(Value::as_f64),
        ) {
            (Some(time), Some(end)) if end >= time => Some((end - time).round() as i64),
            _ => None,
        };
        if content.trim().is_empty() {
            continue;
        }
        conversation.turns.push(Turn::said(
            role,
            content,
            start_ms,
            spoken.map(|spoken| start_ms + spoken),
        ));
    }
    let recording = first(
        &root,
        &[
            "message.artifact.stereoRecordingUrl",
            "message.artifact.recording.stereoUrl",
            "message.artifact.recordingUrl",
            "message.artifact.recording.mono.combinedUrl",
            "message.stereoRecordingUrl",
            "message.recordingUrl",
        ],
        opt_str,
    )?;
    conversation.audio = recording.map(|url| AudioSource::Url { url, credentials: None });

    let extras = &mut conversation.extras;
    extras.summary = first(&root, &["message.analysis.summary", "message.summary"], opt_str)?;
    extras.successful = match get(&root, "message.analysis.successEvaluation") {
        Some(Value::Bool(flag)) => Some(*flag),
        Some(Value::String(text)) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "pass" | "success" => Some(true),
            "false" | "fail" | "failure" => Some(false),
            _ => None,
        },
        _ => None,
    };
    extras.outcome = match get(&root, "message.analysis.successEvaluation") {
        Some(Value::String(text)) if !text.trim().is_empty() => Some(text.trim().to_owned()),
        Some(value @ (Value::Bool(_) | Value::Number(_))) => Some(value.to_string()),
        _ => None,
    };
    extras.raw = get(&root, "message.analysis").filter(|value| value.is_object()).cloned();
    extras.cost_usd = first(&root, &["message.cost", "message.call.cost"], opt_f64)?;
    extras.ended_reason =
        first(&root, &["message.endedReason", "message.call.endedReason"], opt_str)?;
    extras.agent_id = opt_str(&root, "message.call.assistantId")?;
    conversation.metadata = opt_object(&root, "message.assistant.metadata")?;
    if let Some(structured) = get(&root, "message.analysis.structuredData") {
        conversation.metadata.insert("vapi_structured_data".to_owned(), structured.clone());
    }
    Ok(Normalized::Call(Box::new(WebhookCall { event, conversation, inline_audio: None })))
}
