//! Retell AI: `call_ended` / `call_analyzed` events signed with `x-retell-signature`.

use super::signature::{check_window, constant_time_eq, header, hmac_sha256};
use super::{AuthFailure, WebhookRequest};

/// How far a signature's timestamp may be from now, either way, in milliseconds.
const TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// Checks `x-retell-signature: v=<ms>,d=<hex>`, where the digest is HMAC-SHA256 under the API key
/// of the raw body followed by the timestamp, and the timestamp is within five minutes of now.
pub fn verify(api_key: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
    let value = header(request.headers, "x-retell-signature")
        .filter(|value| !value.is_empty())
        .ok_or(AuthFailure::MissingSignature)?;
    let (timestamp, digest) = value
        .strip_prefix("v=")
        .and_then(|rest| rest.split_once(",d="))
        .filter(|(timestamp, digest)| {
            !timestamp.is_empty()
                && timestamp.bytes().all(|byte| byte.is_ascii_digit())
                && digest.len() == 64
                && digest.bytes().all(|byte| byte.is_ascii_hexdigit())
        })
        .ok_or(AuthFailure::MalformedSignature)?;
    let timestamp_ms: i64 = timestamp.parse().map_err(|_| AuthFailure::MalformedSignature)?;
    let expected = sign(api_key, request.body, timestamp);
    if !constant_time_eq(expected.as_bytes(), digest.to_ascii_lowercase().as_bytes()) {
        return Err(AuthFailure::SignatureMismatch);
    }
    check_window(timestamp_ms, request.now.timestamp_millis(), TOLERANCE_MS, TOLERANCE_MS)
}

/// The hex digest Retell sends for `body` at `timestamp_ms`.
pub fn sign(api_key: &str, body: &[u8], timestamp_ms: &str) -> String {
    data_encoding::HEXLOWER
        .encode(&hmac_sha256(api_key.as_bytes(), &[body, timestamp_ms.as_bytes()]))
}

/// `call_ended` and `call_analyzed` become the call (the later one enriches the same datapoint
/// with the analysis); every other event is ignored. The call is under `call`, or under the
/// deprecated `data` in older payloads.
pub fn normalize(
    context: &super::NormalizeContext<'_>,
    body: &[u8],
) -> Result<super::Normalized, super::PayloadError> {
    use super::payload::*;
    use crate::model::conversation::{AudioSource, Role, Turn};

    let root = parse_json(body)?;
    let event = required_str(&root, "event")?;
    if !matches!(event.as_str(), "call_ended" | "call_analyzed") {
        return Ok(super::Normalized::Ignored { event });
    }
    let key = if get(&root, "call").is_some() { "call" } else { "data" };
    let at = |field: &str| format!("{key}.{field}");
    let call_id = required_str(&root, &at("call_id"))?;
    let mut conversation = super::conversation(
        crate::model::integrations::Provider::Retell,
        call_id,
        context.first_turn(),
    );
    let started = opt_i64(&root, &at("start_timestamp"))?;
    let ended = opt_i64(&root, &at("end_timestamp"))?;
    conversation.started_at =
        started.map(|ms| from_millis(&at("start_timestamp"), ms)).transpose()?;
    conversation.ended_at = ended.map(|ms| from_millis(&at("end_timestamp"), ms)).transpose()?;
    conversation.duration_ms =
        opt_i64(&root, &at("duration_ms"))?.or_else(|| Some(ended? - started?));
    conversation.from_number = opt_str(&root, &at("from_number"))?;
    conversation.to_number = opt_str(&root, &at("to_number"))?;
    conversation.direction = opt_str(&root, &at("direction"))?;

    let mut previous_ms = 0;
    for (index, utterance) in opt_array(&root, &at("transcript_object"))?.iter().enumerate() {
        let field = |name: &str| format!("{key}.transcript_object[{index}].{name}");
        let role = match utterance.get("role").and_then(|role| role.as_str()) {
            Some("agent") => Role::Assistant,
            Some("user" | "transfer_target") => Role::User,
            Some(_) => continue,
            None => return Err(super::PayloadError::new(field("role"), "is required")),
        };
        let content = match utterance.get("content") {
            Some(serde_json::Value::String(content)) => content.clone(),
            _ => return Err(super::PayloadError::new(field("content"), "must be a string")),
        };
        let words = utterance.get("words").and_then(|words| words.as_array());
        let start = words
            .and_then(|words| words.first())
            .and_then(|word| word.get("start"))
            .and_then(serde_json::Value::as_f64)
            .map_or(previous_ms, seconds_to_ms);
        let end = words
            .and_then(|words| words.last())
            .and_then(|word| word.get("end"))
            .and_then(serde_json::Value::as_f64)
            .map(seconds_to_ms);
        previous_ms = end.unwrap_or(start);
        if content.trim().is_empty() {
            continue;
        }
        conversation.turns.push(Turn::said(role, content, start, end));
    }
    let recording =
        first(&root, &[&at("recording_multi_channel_url"), &at("recording_url")], opt_str)?;
    conversation.audio = recording.map(|url| AudioSource::Url { url, credentials: None });

    let extras = &mut conversation.extras;
    extras.summary = opt_str(&root, &at("call_analysis.call_summary"))?;
    extras.sentiment = opt_str(&root, &at("call_analysis.user_sentiment"))?;
    extras.successful = opt_bool(&root, &at("call_analysis.call_successful"))?;
    if opt_bool(&root, &at("call_analysis.in_voicemail"))? == Some(true) {
        extras.outcome = Some("voicemail".to_owned());
    }
    extras.raw = get(&root, &at("call_analysis")).filter(|value| value.is_object()).cloned();
    // Retell reports cost in cents.
    extras.cost_usd = opt_f64(&root, &at("call_cost.combined_cost"))?.map(|cents| cents / 100.0);
    extras.ended_reason = opt_str(&root, &at("disconnection_reason"))?;
    extras.agent_id = opt_str(&root, &at("agent_id"))?;
    conversation.metadata = opt_object(&root, &at("metadata"))?;
    Ok(super::Normalized::Call(Box::new(super::WebhookCall {
        event,
        conversation,
        inline_audio: None,
    })))
}
