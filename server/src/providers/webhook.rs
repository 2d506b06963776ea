//! The `webhook` provider: any sender that signs with Standard Webhooks (or a configured HMAC).
//! Its body is told apart by shape:
//!
//! - `{"event": {"id", "channel", "timestamp", "data": {...}}, "lead_id", ...}`: a lead
//!   platform's voice event (other channels are ignored);
//! - `{"event": "call.completed", ...}`, the call at the root or under `data` or `call`: a call
//!   platform's completion event (other event names are ignored);
//! - anything else: one canonical conversation in the JSON ingest shape
//!   (shared/reference/compat-api.md).

use serde_json::Value;

use super::payload::*;
use super::voicekit::call_fields;
use super::{NormalizeContext, Normalized, PayloadError, WebhookCall};
use crate::model::conversation::{
    AudioSource, IngestLimits, PendingAudio, Source, validate_conversation,
};
use crate::model::conversation_json::{self, JsonConversation};
use crate::model::integrations::Provider;

/// Event names of a completed call.
const COMPLETED: [&str; 6] =
    ["call.completed", "call_completed", "call.ended", "call_ended", "completed", "call.finished"];

pub fn normalize(
    context: &NormalizeContext<'_>,
    body: &[u8],
    limits: &IngestLimits,
) -> Result<Normalized, PayloadError> {
    if is_canonical(body) {
        return canonical(body, limits);
    }
    let root = parse_json(body)?;
    match root.get("event") {
        Some(Value::Object(_)) => lead_event(context, &root),
        Some(Value::String(_)) => call_event(context, &root),
        _ => canonical(body, limits),
    }
}

/// Whether `body` is a JSON object whose `event`, if any, is neither an object nor a string:
/// a canonical conversation, then read once, by its own parser, without a `Value` of the whole
/// document. Every other body (an event, another shape, not JSON) is told apart, or refused,
/// from its parsed `Value` as before.
fn is_canonical(body: &[u8]) -> bool {
    let mut reader = serde_json::Deserializer::from_slice(body);
    serde::Deserializer::deserialize_map(&mut reader, NamesAnEvent)
        .and_then(|names_an_event| reader.end().map(|()| names_an_event))
        .is_ok_and(|names_an_event| !names_an_event)
}

/// Reads an object for whether its `event` (the last, when given twice, as in a `Value`) is an
/// object or a string; the other values are skipped, not built.
struct NamesAnEvent;

impl<'de> serde::de::Visitor<'de> for NamesAnEvent {
    type Value = bool;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut names_an_event = false;
        while let Some(is_event) = map.next_key_seed(IsEvent)? {
            if is_event {
                let event: Value = map.next_value()?;
                names_an_event = matches!(event, Value::Object(_) | Value::String(_));
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(names_an_event)
    }
}

/// Reads a key for whether it is `event`, without copying it (an escaped key is compared as
/// the parser unescaped it).
struct IsEvent;

impl<'de> serde::de::DeserializeSeed<'de> for IsEvent {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for IsEvent {
    type Value = bool;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == "event")
    }
}

/// A lead platform's voice event: the call under `event.data`, the lead beside it.
fn lead_event(context: &NormalizeContext<'_>, root: &Value) -> Result<Normalized, PayloadError> {
    let channel = opt_str(root, "event.channel")?.unwrap_or_default();
    if channel != "voice" {
        return Ok(Normalized::Ignored { event: format!("lead_event.{channel}") });
    }
    let data = match get(root, "event.data") {
        Some(data @ Value::Object(_)) => data,
        _ => return Err(PayloadError::new("event.data", "must be an object")),
    };
    let call_id = first(root, &["event.data.call_id", "event.id"], opt_str)?
        .ok_or_else(|| PayloadError::new("event.data.call_id", "is required"))?;
    let mut conversation = super::conversation(Provider::Webhook, call_id, context.first_turn());
    call_fields(&mut conversation, data).map_err(|error| error.under("event.data"))?;
    if conversation.started_at.is_none() {
        conversation.started_at = opt_time(root, "event.timestamp")?;
    }
    conversation.extras.ended_reason =
        opt_str(data, "vapi_status").map_err(|error| error.under("event.data"))?;
    if let Some(analysis @ Value::Object(_)) = data.get("analysis_result") {
        let extras = &mut conversation.extras;
        extras.sentiment = opt_str(analysis, "sentiment").ok().flatten();
        extras.outcome = opt_str(analysis, "intent").ok().flatten();
        extras.raw = Some(analysis.clone());
    }
    for key in ["tools_called", "tool_calls", "analysis_result", "appointments"] {
        if let Some(value) = data.get(key).filter(|value| !value.is_null()) {
            conversation.metadata.insert(key.to_owned(), value.clone());
        }
    }
    for key in ["lead_id", "lead_contact", "business_id"] {
        if let Some(value) = root.get(key).filter(|value| !value.is_null()) {
            conversation.metadata.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(id) = opt_str(root, "event.id")? {
        conversation.metadata.insert("event_id".to_owned(), Value::String(id));
    }
    Ok(Normalized::Call(Box::new(WebhookCall {
        event: "lead_event.voice".to_owned(),
        conversation,
        inline_audio: None,
    })))
}

/// A call platform's event: `{"event": "call.completed", ...call}`, or the call under `data`
/// or `call`.
fn call_event(context: &NormalizeContext<'_>, root: &Value) -> Result<Normalized, PayloadError> {
    let event = required_str(root, "event")?;
    if !COMPLETED.contains(&event.to_ascii_lowercase().as_str()) {
        return Ok(Normalized::Ignored { event });
    }
    let (prefix, call) = match (root.get("data"), root.get("call")) {
        (Some(data @ Value::Object(_)), _) => ("data", data),
        (_, Some(call @ Value::Object(_))) => ("call", call),
        _ => ("", root),
    };
    let in_call = |error: PayloadError| error.under(prefix);
    let call_id = first(call, &["call_id", "callId", "id"], opt_str)
        .map_err(in_call)?
        .ok_or_else(|| PayloadError::new("call_id", "is required").under(prefix))?;
    let mut conversation = super::conversation(Provider::Webhook, call_id, context.first_turn());
    call_fields(&mut conversation, call).map_err(in_call)?;
    Ok(Normalized::Call(Box::new(WebhookCall { event, conversation, inline_audio: None })))
}

/// One conversation in the JSON ingest shape, validated by the same rules as the ingest API.
fn canonical(body: &[u8], limits: &IngestLimits) -> Result<Normalized, PayloadError> {
    let first_violation = |error: crate::error::Error| match error.field_violations().first() {
        Some(violation) => PayloadError::new(&violation.field, &violation.description),
        None => PayloadError::new("body", error.public_message()),
    };
    let parsed: JsonConversation = conversation_json::parse(body).map_err(first_violation)?;
    let platform_given =
        parsed.source_platform.as_deref().is_some_and(|name| !name.trim().is_empty());
    let input = conversation_json::conversation_input("", parsed).map_err(first_violation)?;
    let valid = validate_conversation(input, Source::Webhook, limits).map_err(first_violation)?;
    let mut conversation = valid.conversation;
    if !platform_given {
        conversation.provider = Provider::Webhook.as_str().to_owned();
    }
    let inline_audio = match valid.audio {
        None => None,
        Some(PendingAudio::Inline(bytes)) => Some(bytes),
        Some(PendingAudio::Url(url)) => {
            conversation.audio = Some(AudioSource::Url { url, credentials: None });
            None
        }
        Some(PendingAudio::AudioId(_)) => {
            return Err(PayloadError::new(
                "audio.voice_file_id",
                "is not accepted by webhooks; send the audio as a URL or inline_b64",
            ));
        }
    };
    Ok(Normalized::Call(Box::new(WebhookCall {
        event: "conversation".to_owned(),
        conversation,
        inline_audio,
    })))
}
