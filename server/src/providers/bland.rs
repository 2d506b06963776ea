//! Bland AI: the post-call webhook (the full call object), signed with `X-Webhook-Signature`.

use super::signature::{constant_time_eq, header, hmac_sha256};
use super::{AuthFailure, WebhookRequest};

/// Checks `X-Webhook-Signature`: hex HMAC-SHA256 of the raw body under the webhook secret. The
/// scheme has no timestamp; the call id deduplicates replays.
pub fn verify(secret: &str, request: &WebhookRequest<'_>) -> Result<(), AuthFailure> {
    let signature = header(request.headers, "x-webhook-signature")
        .filter(|value| !value.is_empty())
        .ok_or(AuthFailure::MissingSignature)?;
    let expected = sign(secret, request.body);
    if constant_time_eq(expected.as_bytes(), signature.trim().to_ascii_lowercase().as_bytes()) {
        Ok(())
    } else {
        Err(AuthFailure::SignatureMismatch)
    }
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&hmac_sha256(secret.as_bytes(), &[body]))
}

/// The post-call webhook is the whole call object; every delivery is final.
pub fn normalize(
    context: &super::NormalizeContext<'_>,
    body: &[u8],
) -> Result<super::Normalized, super::PayloadError> {
    use super::payload::*;
    use super::{Normalized, PayloadError, WebhookCall};
    use crate::model::conversation::{AudioSource, Role, Turn};
    use serde_json::Value;

    let root = parse_json(body)?;
    let call_id = match opt_str(&root, "call_id")? {
        Some(call_id) => call_id,
        None => {
            required_str(&root, "c_id").map_err(|_| PayloadError::new("call_id", "is required"))?
        }
    };
    let mut conversation = super::conversation(
        crate::model::integrations::Provider::Bland,
        call_id,
        context.first_turn(),
    );
    let started = first(&root, &["started_at", "created_at"], opt_rfc3339)?;
    conversation.started_at = started;
    conversation.duration_ms = match opt_f64(&root, "corrected_duration")? {
        Some(seconds) => Some(seconds_to_ms(seconds)),
        None => opt_f64(&root, "call_length")?.map(|minutes| seconds_to_ms(minutes * 60.0)),
    };
    conversation.ended_at = match (started, conversation.duration_ms) {
        (Some(started), Some(duration)) => super::payload::end_time(started, duration),
        _ => None,
    };
    conversation.from_number = opt_str(&root, "from")?;
    conversation.to_number = opt_str(&root, "to")?;
    conversation.direction = opt_bool(&root, "inbound")?
        .map(|inbound| if inbound { "inbound" } else { "outbound" }.to_owned());
    for (index, entry) in opt_array(&root, "transcripts")?.iter().enumerate() {
        let role = match entry.get("user").and_then(Value::as_str) {
            Some("assistant" | "robot") => Role::Assistant,
            Some("user") => Role::User,
            Some(_) => continue,
            None => {
                return Err(PayloadError::new(format!("transcripts[{index}].user"), "is required"));
            }
        };
        let content = match entry.get("text") {
            Some(Value::String(text)) => text.clone(),
            _ => {
                return Err(PayloadError::new(
                    format!("transcripts[{index}].text"),
                    "must be a string",
                ));
            }
        };
        let said_at = opt_rfc3339(entry, "created_at").map_err(|error| {
            PayloadError::new(format!("transcripts[{index}].created_at"), error.reason)
        })?;
        let start_ms = match (said_at, started) {
            (Some(said_at), Some(started)) => (said_at - started).num_milliseconds().max(0),
            _ => 0,
        };
        if content.trim().is_empty() {
            continue;
        }
        conversation.turns.push(Turn::said(role, content, start_ms, None));
    }
    conversation.audio =
        opt_str(&root, "recording_url")?.map(|url| AudioSource::Url { url, credentials: None });
    let extras = &mut conversation.extras;
    extras.summary = opt_str(&root, "summary")?;
    extras.cost_usd = opt_f64(&root, "price")?;
    extras.ended_reason = opt_str(&root, "call_ended_by")?;
    conversation.metadata = opt_object(&root, "metadata")?;
    if let Some(variables) = get(&root, "variables") {
        conversation.metadata.insert("bland_variables".to_owned(), variables.clone());
    }
    Ok(Normalized::Call(Box::new(WebhookCall {
        event: "call_completed".to_owned(),
        conversation,
        inline_audio: None,
    })))
}
