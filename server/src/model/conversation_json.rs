//! The JSON shape of one conversation, as the compat ingest route and canonical-JSON webhooks
//! send it (shared/reference/compat-api.md), turned into a `ConversationInput`.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;
use crate::model::conversation::{AudioInput, ConversationInput, TurnInput};

/// Parses JSON, naming the field of a type error by its path (`conversations[0].call_id`).
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let mut field = if path == "." { String::new() } else { path };
        let message = inner.to_string();
        // serde names a missing field only in its message (the path ends at its parent).
        if let Some(name) =
            message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next())
        {
            field = if field.is_empty() { name.to_owned() } else { format!("{field}.{name}") };
        }
        let description = if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON: {message}")
        } else {
            message.split(" at line ").next().unwrap_or(&message).to_owned()
        };
        Error::invalid(if field.is_empty() { "body".to_owned() } else { field }, description)
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonConversation {
    pub call_id: String,
    pub source_platform: Option<String>,
    pub context_token: Option<String>,
    pub conversation_start_at: Option<String>,
    pub audio: Option<JsonAudio>,
    pub recording_url: Option<String>,
    pub recording_bytes_b64: Option<String>,
    pub transcript: Option<Vec<JsonTurn>>,
    pub diarization: Option<bool>,
    pub first_turn: Option<String>,
    pub tags: Option<Vec<String>>,
    pub metadata: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JsonAudio {
    InlineB64 { inline_b64: String },
    Url { url: String },
    VoiceFileId { voice_file_id: String },
}

/// Unknown keys inside a turn (speaker_id and the like) are tolerated.
#[derive(Debug, Deserialize)]
pub struct JsonTurn {
    pub role: String,
    pub content: String,
    #[serde(default)]
    pub timestamp_ms: i64,
    pub end_ms: Option<i64>,
}

pub fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(value)
        .map(|time| time.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|naive| naive.and_utc())
        })
        .map_err(|_| {
            Error::invalid(field, "must be an ISO 8601 date-time such as 2026-11-20T10:00:00Z")
        })
}

/// The JSON conversation as a `ConversationInput`; fields are named under `prefix`
/// (`conversations[3]`, or empty for a conversation that is the whole body).
pub fn conversation_input(
    prefix: &str,
    conversation: JsonConversation,
) -> Result<ConversationInput, Error> {
    let field =
        |name: &str| if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") };
    let audio =
        match (conversation.audio, conversation.recording_url, conversation.recording_bytes_b64) {
            (Some(audio), None, None) => Some(match audio {
                JsonAudio::InlineB64 { inline_b64 } => AudioInput::InlineBase64(inline_b64),
                JsonAudio::Url { url } => AudioInput::Url(url),
                JsonAudio::VoiceFileId { voice_file_id } => AudioInput::AudioId(voice_file_id),
            }),
            (None, Some(url), None) => Some(AudioInput::Url(url)),
            (None, None, Some(encoded)) => Some(AudioInput::InlineBase64(encoded)),
            (None, None, None) => None,
            _ => {
                return Err(Error::invalid(
                    field("audio"),
                    "give audio once: audio, recording_url or recording_bytes_b64",
                ));
            }
        };
    let conversation_start_at = conversation
        .conversation_start_at
        .as_deref()
        .map(|value| parse_time(&field("conversation_start_at"), value))
        .transpose()?;
    Ok(ConversationInput {
        call_id: conversation.call_id,
        context_token: conversation.context_token,
        source_platform: conversation.source_platform,
        conversation_start_at,
        audio,
        transcript: conversation
            .transcript
            .unwrap_or_default()
            .into_iter()
            .map(|turn| TurnInput {
                role: turn.role,
                content: turn.content,
                timestamp_ms: turn.timestamp_ms,
                end_ms: turn.end_ms,
            })
            .collect(),
        diarization: conversation.diarization,
        first_turn: conversation.first_turn,
        tags: conversation.tags.unwrap_or_default(),
        metadata: conversation.metadata.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_accept_rfc3339_and_naive() {
        assert!(parse_time("t", "2026-11-20T10:00:00Z").is_ok());
        assert!(parse_time("t", "2022-12-31T23:59:59.999999").is_ok());
        assert!(parse_time("t", "yesterday").is_err());
    }
}
