//! The JSON shape of one conversation (`earshot_proto::conversation_json`, shared with the SDKs)
//! as the compat ingest route and canonical-JSON webhooks read it: errors as this crate's
//! `Error`, and the conversation turned into a `ConversationInput`.

use chrono::{DateTime, Utc};
use earshot_proto::conversation_json::{FieldError, TIME_EXPECTED};
pub use earshot_proto::conversation_json::{JsonAudio, JsonConversation, JsonTurn};

use crate::error::Error;
use crate::model::conversation::{AudioInput, ConversationInput, TurnInput};

/// Parses a JSON body, naming the field of a type error by its path (`conversations[0].call_id`),
/// or `body` when the body as a whole is wrong.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    earshot_proto::conversation_json::from_slice(body).map_err(
        |FieldError { field, description }| {
            Error::invalid(if field.is_empty() { "body".to_owned() } else { field }, description)
        },
    )
}

pub fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, Error> {
    earshot_proto::conversation_json::parse_time(value)
        .ok_or_else(|| Error::invalid(field, TIME_EXPECTED))
}

/// The JSON conversation as a `ConversationInput`; fields are named under `prefix`
/// (`conversations[3]`, or empty for a conversation that is the whole body).
pub fn conversation_input(
    prefix: &str,
    mut conversation: JsonConversation,
) -> Result<ConversationInput, Error> {
    let field =
        |name: &str| if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") };
    let audio = conversation
        .take_audio()
        .map_err(|reason| Error::invalid(field("audio"), reason))?
        .map(|audio| match audio {
            JsonAudio::InlineB64 { inline_b64 } => AudioInput::InlineBase64(inline_b64),
            JsonAudio::Url { url } => AudioInput::Url(url),
            JsonAudio::VoiceFileId { voice_file_id } => AudioInput::AudioId(voice_file_id),
        });
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
            .map(|turn: JsonTurn| TurnInput {
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
    fn a_body_error_names_the_body_and_a_bad_time_its_field() {
        let error = parse::<JsonConversation>(b"[").unwrap_err();
        assert_eq!(error.field_violations()[0].field, "body");
        let conversation: JsonConversation =
            parse(br#"{"call_id": "c", "conversation_start_at": "yesterday"}"#).unwrap();
        let error = conversation_input("conversations[4]", conversation).unwrap_err();
        assert_eq!(error.field_violations()[0].field, "conversations[4].conversation_start_at");
    }
}
