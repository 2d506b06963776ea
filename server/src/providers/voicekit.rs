//! VoiceKit-style senders: an envelope `{event, timestamp, data}` posted as each call starts,
//! ends and is finalized. They cannot sign, so their integrations authenticate with a URL token
//! or an IP allowlist. `call_finalized` carries the recording; `call_ended` contributes the
//! duration to the same call; `call_started` is ignored.

use serde_json::Value;

use super::payload::*;
use super::{NormalizeContext, Normalized, PayloadError, WebhookCall};
use crate::model::conversation::{AudioSource, Conversation};
use crate::model::integrations::Provider;

pub fn normalize(context: &NormalizeContext<'_>, body: &[u8]) -> Result<Normalized, PayloadError> {
    let root = parse_json(body)?;
    let event = required_str(&root, "event")?;
    if !matches!(event.as_str(), "call_ended" | "call_finalized") {
        return Ok(Normalized::Ignored { event });
    }
    let data = match root.get("data") {
        Some(data @ Value::Object(_)) => data,
        _ => return Err(PayloadError::new("data", "must be an object")),
    };
    let in_data = |error: PayloadError| error.under("data");
    let call_id = first(data, &["call_id", "id"], opt_str)
        .map_err(in_data)?
        .ok_or_else(|| PayloadError::new("data.call_id", "is required"))?;
    let mut conversation = super::conversation(Provider::Voicekit, call_id, context.first_turn());
    call_fields(&mut conversation, data).map_err(in_data)?;
    if event == "call_ended" && conversation.ended_at.is_none() {
        // The envelope's time of a call_ended event is when the call ended.
        conversation.ended_at = opt_time(&root, "timestamp")?;
    }
    Ok(Normalized::Call(Box::new(WebhookCall { event, conversation, inline_audio: None })))
}

/// The call fields VoiceKit-style and generic JSON senders share, read from `call`: times and
/// duration, numbers and direction, transcript, recording, summary, cost, sentiment, agent
/// and metadata. Errors name fields relative to `call`.
pub(crate) fn call_fields(
    conversation: &mut Conversation,
    call: &Value,
) -> Result<(), PayloadError> {
    conversation.started_at = first(call, &["started_at", "start_time", "startedAt"], opt_time)?;
    conversation.ended_at = first(call, &["ended_at", "end_time", "endedAt"], opt_time)?;
    conversation.duration_ms = match opt_i64(call, "duration_ms")? {
        Some(millis) => Some(millis.max(0)),
        None => first(call, &["duration", "duration_seconds", "duration_secs"], opt_f64)?
            .map(|seconds| seconds_to_ms(seconds).max(0)),
    };
    if conversation.duration_ms.is_none()
        && let (Some(started), Some(ended)) = (conversation.started_at, conversation.ended_at)
    {
        conversation.duration_ms =
            Some(ended.signed_duration_since(started).num_milliseconds().max(0));
    }
    if conversation.ended_at.is_none()
        && let (Some(started), Some(duration)) = (conversation.started_at, conversation.duration_ms)
    {
        conversation.ended_at = super::payload::end_time(started, duration);
    }
    conversation.from_number = first(call, &["from", "from_number"], opt_str)?;
    conversation.to_number = first(call, &["to", "to_number"], opt_str)?;
    conversation.direction = opt_str(call, "direction")?.map(|text| text.to_ascii_lowercase());
    conversation.turns = flexible_turns(call, "transcript")?;
    if conversation.turns.is_empty() {
        conversation.turns = flexible_turns(call, "transcription")?;
    }
    conversation.audio = first(call, &["recording_url", "recordingUrl", "audio_url"], opt_str)?
        .map(|url| AudioSource::Url { url, credentials: None });
    let extras = &mut conversation.extras;
    extras.summary = opt_str(call, "summary")?;
    extras.cost_usd = first(call, &["cost", "cost_usd", "price"], opt_f64)?;
    extras.sentiment = opt_str(call, "sentiment")?;
    extras.successful = opt_bool(call, "successful")?;
    extras.ended_reason = first(call, &["ended_reason", "end_reason"], opt_str)?;
    extras.agent_id = first(call, &["agent_id", "assistant_id"], opt_str)?;
    conversation.metadata = opt_object(call, "metadata")?;
    Ok(())
}
