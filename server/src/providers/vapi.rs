//! Vapi: server messages; `end-of-call-report` is the call. Authentication is one of the shared
//! schemes (`X-Vapi-Secret`, a header token, or HMAC; see `tokens` and `custom_hmac`), or an
//! earshot API key on `/v0/voice/vapi/monitor`.

use serde_json::Value;

use super::payload::*;
use super::{NormalizeContext, Normalized, PayloadError, WebhookCall};
use crate::domain::conversation::{AudioSource, Role, Turn};
use crate::domain::integrations::Provider;

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
    let started = match opt_rfc3339(&root, "message.startedAt")? {
        Some(time) => Some(time),
        None => opt_rfc3339(&root, "message.call.startedAt")?,
    };
    let ended = match opt_rfc3339(&root, "message.endedAt")? {
        Some(time) => Some(time),
        None => opt_rfc3339(&root, "message.call.endedAt")?,
    };
    conversation.started_at = started;
    conversation.ended_at = ended;
    conversation.duration_ms = match (started, ended) {
        (Some(started), Some(ended)) => Some((ended - started).num_milliseconds()),
        _ => opt_f64(&root, "message.durationSeconds")?.map(seconds_to_ms),
    };
    let customer = match opt_str(&root, "message.customer.number")? {
        Some(number) => Some(number),
        None => opt_str(&root, "message.call.customer.number")?,
    };
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
        conversation.turns.push(Turn {
            role,
            content,
            start_ms,
            end_ms: spoken.map(|spoken| start_ms + spoken),
            channel: None,
            confidence: None,
        });
    }
    let mut recording = None;
    for path in [
        "message.artifact.stereoRecordingUrl",
        "message.artifact.recording.stereoUrl",
        "message.artifact.recordingUrl",
        "message.artifact.recording.mono.combinedUrl",
        "message.stereoRecordingUrl",
        "message.recordingUrl",
    ] {
        if let Some(url) = opt_str(&root, path)? {
            recording = Some(url);
            break;
        }
    }
    conversation.audio = recording.map(|url| AudioSource::Url { url, credentials: None });

    let extras = &mut conversation.extras;
    extras.summary = match opt_str(&root, "message.analysis.summary")? {
        Some(summary) => Some(summary),
        None => opt_str(&root, "message.summary")?,
    };
    extras.successful = match get(&root, "message.analysis.successEvaluation") {
        Some(Value::Bool(flag)) => Some(*flag),
        Some(Value::String(text)) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "pass" | "success" => Some(true),
            "false" | "fail" | "failure" => Some(false),
            _ => None,
        },
        _ => None,
    };
    extras.cost_usd = match opt_f64(&root, "message.cost")? {
        Some(cost) => Some(cost),
        None => opt_f64(&root, "message.call.cost")?,
    };
    extras.ended_reason = match opt_str(&root, "message.endedReason")? {
        Some(reason) => Some(reason),
        None => opt_str(&root, "message.call.endedReason")?,
    };
    extras.agent_id = opt_str(&root, "message.call.assistantId")?;
    conversation.metadata = opt_object(&root, "message.assistant.metadata")?;
    if let Some(structured) = get(&root, "message.analysis.structuredData") {
        conversation.metadata.insert("vapi_structured_data".to_owned(), structured.clone());
    }
    Ok(Normalized::Call(Box::new(WebhookCall { event, conversation, inline_audio: None })))
}
