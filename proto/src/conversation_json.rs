//! The JSON shape of one conversation, as the compat ingest route, canonical-JSON webhooks and
//! the SDKs' `from_json` take it (shared/reference/compat-api.md): one definition for the server
//! and the clients, with the rules every reader applies (audio given once, the accepted times)
//! and errors named by the field's path (`conversations[0].transcript[1].content`). Each reader
//! turns a `JsonConversation` into its own conversation type.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// One conversation. Unknown keys are refused, so a misspelt field is an error, not lost data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonConversation {
    pub call_id: String,
    pub source_platform: Option<String>,
    pub context_token: Option<String>,
    /// RFC 3339, or a date-time without an offset taken as UTC ([`parse_time`]).
    pub conversation_start_at: Option<String>,
    pub audio: Option<JsonAudio>,
    /// Older spellings of `audio`: a URL to fetch, or the recording's bytes in base64.
    pub recording_url: Option<String>,
    pub recording_bytes_b64: Option<String>,
    pub transcript: Option<Vec<JsonTurn>>,
    pub diarization: Option<bool>,
    pub first_turn: Option<String>,
    pub tags: Option<Vec<String>>,
    pub metadata: Option<Map<String, Value>>,
}

/// Where the recording is: `{"type": "inline_b64" | "url" | "voice_file_id", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JsonAudio {
    InlineB64 { inline_b64: String },
    Url { url: String },
    VoiceFileId { voice_file_id: String },
}

/// One turn. Unknown keys inside a turn (speaker_id and the like) are tolerated.
#[derive(Debug, Clone, Deserialize)]
pub struct JsonTurn {
    pub role: String,
    pub content: String,
    #[serde(default)]
    pub timestamp_ms: i64,
    pub end_ms: Option<i64>,
}

/// What a reader says when a conversation gives its audio more than once.
pub const AUDIO_GIVEN_TWICE: &str = "give audio once: audio, recording_url or recording_bytes_b64";

/// What a reader says of a time [`parse_time`] refuses.
pub const TIME_EXPECTED: &str = "must be an ISO 8601 date-time such as 2026-11-20T10:00:00Z";

impl JsonConversation {
    /// The recording, from `audio` or one of its older spellings; `Err(AUDIO_GIVEN_TWICE)` when
    /// more than one is given.
    pub fn take_audio(&mut self) -> Result<Option<JsonAudio>, &'static str> {
        match (self.audio.take(), self.recording_url.take(), self.recording_bytes_b64.take()) {
            (audio, None, None) => Ok(audio),
            (None, Some(url), None) => Ok(Some(JsonAudio::Url { url })),
            (None, None, Some(inline_b64)) => Ok(Some(JsonAudio::InlineB64 { inline_b64 })),
            _ => Err(AUDIO_GIVEN_TWICE),
        }
    }
}

/// RFC 3339 text, or a date-time without an offset taken as UTC, as the JSON API accepts.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).map(|time| time.with_timezone(&Utc)).ok().or_else(|| {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|naive| naive.and_utc())
    })
}

/// A value that does not fit the shape: the field by its path (empty for the whole value) and
/// why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub description: String,
}

/// Parses a JSON body into `T`, naming the field of any error by its path. A body that parses
/// is read once, without tracking paths; only one that does not is read again to name its field.
pub fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, FieldError> {
    serde_json::from_slice(body).or_else(|_| {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| field_error("", error))
    })
}

/// Reads a JSON value as `T`, naming the field of any error by its path under `prefix`
/// (`conversations[3]`, or empty).
pub fn from_value<T: DeserializeOwned>(prefix: &str, value: Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|error| field_error(prefix, error))
}

fn field_error(prefix: &str, error: serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    let message = inner.to_string();
    let mut field = match (prefix.is_empty(), path.as_str()) {
        (_, ".") => prefix.to_owned(),
        (true, _) => path,
        (false, _) => format!("{prefix}.{path}"),
    };
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
    FieldError { field, description }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn times_accept_rfc3339_and_naive() {
        assert_eq!(
            parse_time("2026-11-20T11:00:00+01:00"),
            DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z").ok().map(|t| t.to_utc())
        );
        assert!(parse_time("2022-12-31T23:59:59.999999").is_some());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn audio_is_given_once_in_any_spelling() {
        let read = |value: Value| from_value::<JsonConversation>("", value).unwrap().take_audio();
        assert_eq!(read(json!({"call_id": "a"})), Ok(None));
        assert_eq!(
            read(json!({"call_id": "a", "recording_url": "https://x/a.wav"})),
            Ok(Some(JsonAudio::Url { url: "https://x/a.wav".into() }))
        );
        assert_eq!(
            read(json!({"call_id": "a", "recording_bytes_b64": "UklG"})),
            Ok(Some(JsonAudio::InlineB64 { inline_b64: "UklG".into() }))
        );
        assert_eq!(
            read(json!({"call_id": "a", "audio": {"type": "voice_file_id", "voice_file_id": "f"}})),
            Ok(Some(JsonAudio::VoiceFileId { voice_file_id: "f".into() }))
        );
        assert_eq!(
            read(
                json!({"call_id": "a", "audio": {"type": "url", "url": "u"}, "recording_url": "v"})
            ),
            Err(AUDIO_GIVEN_TWICE)
        );
    }

    #[test]
    fn errors_name_the_field_by_its_path() {
        let error =
            |value: Value| from_value::<JsonConversation>("conversations[2]", value).unwrap_err();
        assert_eq!(error(json!({"transcript": []})).field, "conversations[2].call_id");
        let unknown = error(json!({"call_id": "b", "colour": "red"}));
        assert_eq!(unknown.field, "conversations[2].colour");
        assert!(unknown.description.contains("unknown field `colour`"), "{unknown:?}");
        assert_eq!(
            error(json!({"call_id": "d", "transcript": [{"role": "user", "content": 5}]})).field,
            "conversations[2].transcript[0].content"
        );
        let body = from_slice::<JsonConversation>(b"nope").unwrap_err();
        assert_eq!(body.field, "");
        assert!(body.description.starts_with("malformed JSON: "), "{body:?}");
        let typed = from_slice::<JsonConversation>(b"{\"call_id\": 7}").unwrap_err();
        assert_eq!(typed.field, "call_id");
        assert!(!typed.description.contains(" at line "), "{typed:?}");
    }
}
