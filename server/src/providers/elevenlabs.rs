//! ElevenLabs Agents: `post_call_transcription`, `post_call_audio` and `call_initiation_failure`,
//! signed with `ElevenLabs-Signature`.

use super::signature::{check_window, constant_time_eq, header, hmac_sha256};
use super::{AuthFailure, WebhookRequest};

/// The oldest signature accepted, in seconds (the SDKs' tolerance).
const MAX_AGE_SECONDS: i64 = 30 * 60;
/// The SDKs accept any future timestamp; earshot allows five minutes of clock skew, no more.
const MAX_AHEAD_SECONDS: i64 = 5 * 60;

/// Checks `ElevenLabs-Signature: t=<seconds>,v0=<hex>`, the hex HMAC-SHA256 under the webhook
/// secret of `<t>.<raw body>`, at most 30 minutes old and 5 minutes ahead.
pub fn verify(secret: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
    let value = header(request.headers, "elevenlabs-signature")
        .filter(|value| !value.is_empty())
        .ok_or(AuthFailure::MissingSignature)?;
    let mut timestamp = None;
    let mut signature = None;
    for part in value.split(',') {
        if let Some(rest) = part.trim().strip_prefix("t=") {
            timestamp = Some(rest);
        } else if part.trim().starts_with("v0=") {
            signature = Some(part.trim());
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(AuthFailure::MalformedSignature);
    };
    let seconds: i64 = timestamp.parse().map_err(|_| AuthFailure::MalformedSignature)?;
    let expected = sign(secret, request.body, timestamp);
    if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        return Err(AuthFailure::SignatureMismatch);
    }
    check_window(seconds, request.now.timestamp(), MAX_AGE_SECONDS, MAX_AHEAD_SECONDS)
}

/// The `v0=<hex>` part ElevenLabs sends for `body` at `timestamp` (seconds, as sent).
pub fn sign(secret: &str, body: &[u8], timestamp: &str) -> String {
    let mac = hmac_sha256(secret.as_bytes(), &[timestamp.as_bytes(), b".", body]);
    format!("v0={}", data_encoding::HEXLOWER.encode(&mac))
}

/// `post_call_transcription` is the call; `post_call_audio` carries its MP3 (base64), merged
/// into the same datapoint by conversation id; `call_initiation_failure` is recorded as a failed
/// call. Other types are ignored.
pub fn normalize(
    context: &super::NormalizeContext<'_>,
    body: &[u8],
) -> Result<super::Normalized, super::PayloadError> {
    use super::payload::*;
    use super::{Normalized, PayloadError, WebhookCall};
    use crate::model::conversation::{Role, Turn};
    use serde_json::Value;

    let root = parse_json(body)?;
    let event = required_str(&root, "type")?;
    if !matches!(
        event.as_str(),
        "post_call_transcription" | "post_call_audio" | "call_initiation_failure"
    ) {
        return Ok(Normalized::Ignored { event });
    }
    if get(&root, "data").is_none() {
        return Err(PayloadError::new("data", "is required"));
    }
    let call_id = required_str(&root, "data.conversation_id")?;
    let mut conversation = super::conversation(
        crate::model::integrations::Provider::Elevenlabs,
        call_id,
        context.first_turn(),
    );
    conversation.extras.agent_id = opt_str(&root, "data.agent_id")?;
    let mut inline_audio = None;
    match event.as_str() {
        "post_call_audio" => {
            let encoded = required_str(&root, "data.full_audio")?;
            let audio = data_encoding::BASE64.decode(encoded.as_bytes()).map_err(|error| {
                PayloadError::new("data.full_audio", format!("is not valid base64: {error}"))
            })?;
            inline_audio = Some(audio);
            // The transcript comes in post_call_transcription, in either order: this event
            // only attaches the recording, and never starts a transcription of its own.
            conversation.diarization = false;
        }
        "call_initiation_failure" => {
            let reason =
                opt_str(&root, "data.failure_reason")?.unwrap_or_else(|| "unknown".to_owned());
            conversation.extras.successful = Some(false);
            conversation.extras.ended_reason = Some(format!("call_initiation_failure: {reason}"));
            conversation.diarization = false;
            if let Some(metadata) = get(&root, "data.metadata") {
                conversation.metadata.insert("elevenlabs_failure".to_owned(), metadata.clone());
            }
        }
        _ => {
            let started = opt_f64(&root, "data.metadata.start_time_unix_secs")?;
            let duration = opt_f64(&root, "data.metadata.call_duration_secs")?;
            conversation.started_at = started
                .map(|seconds| from_seconds("data.metadata.start_time_unix_secs", seconds))
                .transpose()?;
            conversation.duration_ms = duration.map(seconds_to_ms);
            conversation.ended_at = match (started, duration) {
                (Some(started), Some(duration)) => {
                    Some(from_seconds("data.metadata.call_duration_secs", started + duration)?)
                }
                _ => None,
            };
            let direction = opt_str(&root, "data.metadata.phone_call.direction")?;
            let external = opt_str(&root, "data.metadata.phone_call.external_number")?;
            let agent = opt_str(&root, "data.metadata.phone_call.agent_number")?;
            (conversation.from_number, conversation.to_number) = match direction.as_deref() {
                Some("outbound") => (agent, external),
                _ => (external, agent),
            };
            conversation.direction = direction;
            for (index, entry) in opt_array(&root, "data.transcript")?.iter().enumerate() {
                let role = match entry.get("role").and_then(Value::as_str) {
                    Some("agent") => Role::Assistant,
                    Some("user") => Role::User,
                    Some(_) => continue,
                    None => {
                        return Err(PayloadError::new(
                            format!("data.transcript[{index}].role"),
                            "is required",
                        ));
                    }
                };
                let content = match entry.get("message") {
                    Some(Value::String(message)) if !message.trim().is_empty() => message.clone(),
                    Some(Value::String(_) | Value::Null) | None => continue,
                    Some(_) => {
                        return Err(PayloadError::new(
                            format!("data.transcript[{index}].message"),
                            "must be a string",
                        ));
                    }
                };
                let start_ms =
                    entry.get("time_in_call_secs").and_then(Value::as_f64).map_or(0, seconds_to_ms);
                conversation.turns.push(Turn::said(role, content, start_ms, None));
            }
            let extras = &mut conversation.extras;
            extras.summary = opt_str(&root, "data.analysis.transcript_summary")?;
            extras.successful = opt_bool(&root, "data.analysis.call_successful")?;
            extras.outcome = opt_str(&root, "data.analysis.call_successful").ok().flatten();
            extras.raw = super::payload::get(&root, "data.analysis")
                .filter(|value| value.is_object())
                .cloned();
            // `cost` is in ElevenLabs credits; only `cost_fiat` is money.
            extras.cost_usd = opt_f64(&root, "data.metadata.cost_fiat")?;
            extras.ended_reason = opt_str(&root, "data.metadata.termination_reason")?;
            conversation.metadata =
                opt_object(&root, "data.conversation_initiation_client_data.dynamic_variables")?;
        }
    }
    Ok(Normalized::Call(Box::new(WebhookCall { event, conversation, inline_audio })))
}
