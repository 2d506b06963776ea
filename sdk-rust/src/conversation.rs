//! Conversations as a client builds them: typed builders, or the JSON shape of
//! `POST /v0/conversations/ingest` that existing clients already send.

use std::path::PathBuf;

use bytes::Bytes;
use chrono::{DateTime, Utc};
pub use earshot_proto::conversation_json::parse_time;
use earshot_proto::conversation_json::{
    self, FieldError, JsonAudio, JsonConversation, TIME_EXPECTED,
};
use earshot_proto::json::json_to_struct;
use earshot_proto::v1 as pb;
use serde_json::{Map, Value};

use crate::error::{Error, FieldViolation, Result};

/// A speaker's role in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    System,
    Tool,
}

impl Role {
    /// `user`, `assistant`, `system` or `tool`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "user" => Some(Self::User),
            "assistant" => Some(Self::Assistant),
            "system" => Some(Self::System),
            "tool" => Some(Self::Tool),
            _ => None,
        }
    }

    fn to_proto(self) -> pb::Role {
        match self {
            Self::User => pb::Role::User,
            Self::Assistant => pb::Role::Assistant,
            Self::System => pb::Role::System,
            Self::Tool => pb::Role::Tool,
        }
    }
}

/// One utterance; times are milliseconds from the conversation start.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub role: Role,
    pub content: String,
    pub timestamp_ms: i64,
    pub end_ms: Option<i64>,
}

impl Turn {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into(), timestamp_ms: 0, end_ms: None }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// When the utterance started, in milliseconds from the conversation start.
    #[must_use]
    pub fn at_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = timestamp_ms;
        self
    }

    /// When the utterance ended, in milliseconds from the conversation start.
    #[must_use]
    pub fn end_ms(mut self, end_ms: i64) -> Self {
        self.end_ms = Some(end_ms);
        self
    }

    fn into_proto(self) -> pb::Turn {
        pb::Turn {
            role: self.role.to_proto() as i32,
            content: self.content,
            timestamp_ms: self.timestamp_ms,
            end_ms: self.end_ms,
        }
    }
}

/// Where a conversation's recording comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio(AudioSource);

#[derive(Debug, Clone, PartialEq)]
enum AudioSource {
    Bytes(Bytes),
    Base64(String),
    File(PathBuf),
    Url(String),
    Uploaded(String),
}

impl Audio {
    /// The file's bytes, sent inline (base64 in the request). For files of more than a few
    /// megabytes, [`Client::upload_audio`](crate::Client::upload_audio) streams instead.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        Self(AudioSource::Bytes(bytes.into()))
    }

    /// Bytes already in standard base64.
    pub fn from_base64(encoded: impl Into<String>) -> Self {
        Self(AudioSource::Base64(encoded.into()))
    }

    /// A local file, read when the conversation is sent and sent inline.
    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        Self(AudioSource::File(path.into()))
    }

    /// An http(s) URL the server downloads (loopback and private addresses are refused unless the
    /// server allows them).
    pub fn from_url(url: impl Into<String>) -> Self {
        Self(AudioSource::Url(url.into()))
    }

    /// The `audio_id` returned by [`Client::upload_audio`](crate::Client::upload_audio).
    pub fn uploaded(audio_id: impl Into<String>) -> Self {
        Self(AudioSource::Uploaded(audio_id.into()))
    }

    async fn into_proto(self) -> Result<pb::Audio> {
        use pb::audio::Source;
        let source = match self.0 {
            AudioSource::Bytes(bytes) => Source::InlineB64(data_encoding::BASE64.encode(&bytes)),
            AudioSource::Base64(encoded) => Source::InlineB64(encoded),
            AudioSource::File(path) => {
                let bytes =
                    tokio::fs::read(&path).await.map_err(|error| Error::file(path, error))?;
                Source::InlineB64(data_encoding::BASE64.encode(&bytes))
            }
            AudioSource::Url(url) => Source::Url(url),
            AudioSource::Uploaded(audio_id) => Source::AudioId(audio_id),
        };
        Ok(pb::Audio { source: Some(source) })
    }
}

/// One completed call. Needs a transcript, audio, or both; when both are given the transcript
/// wins and the audio is stored.
///
/// ```
/// use earshot::{Audio, Conversation, Turn};
///
/// let conversation = Conversation::new("call-123")
///     .source_platform("retell")
///     .turn(Turn::assistant("Thanks for calling, how can I help?").at_ms(0))
///     .turn(Turn::user("What are your hours?").at_ms(2400))
///     .audio(Audio::from_url("https://example.com/call-123.wav"))
///     .tag("support")
///     .metadata("customer_id", "cust_123");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    call_id: String,
    context_token: Option<String>,
    source_platform: Option<String>,
    started_at: Option<DateTime<Utc>>,
    audio: Option<Audio>,
    transcript: Vec<Turn>,
    diarization: Option<bool>,
    first_turn: Option<Role>,
    tags: Vec<String>,
    metadata: Map<String, Value>,
}

impl Conversation {
    /// A conversation identified by the platform's call id.
    pub fn new(call_id: impl Into<String>) -> Self {
        Self {
            call_id: call_id.into(),
            context_token: None,
            source_platform: None,
            started_at: None,
            audio: None,
            transcript: Vec::new(),
            diarization: None,
            first_turn: None,
            tags: Vec::new(),
            metadata: Map::new(),
        }
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Groups datapoints for search; defaults to the call id.
    #[must_use]
    pub fn context_token(mut self, context_token: impl Into<String>) -> Self {
        self.context_token = Some(context_token.into());
        self
    }

    /// retell, twilio, vapi, elevenlabs, livekit, bland, custom, ...; defaults to custom.
    #[must_use]
    pub fn source_platform(mut self, platform: impl Into<String>) -> Self {
        self.source_platform = Some(platform.into());
        self
    }

    /// The absolute call start; turn times are relative to it.
    #[must_use]
    pub fn started_at(mut self, started_at: DateTime<Utc>) -> Self {
        self.started_at = Some(started_at);
        self
    }

    #[must_use]
    pub fn audio(mut self, audio: Audio) -> Self {
        self.audio = Some(audio);
        self
    }

    #[must_use]
    pub fn turn(mut self, turn: Turn) -> Self {
        self.transcript.push(turn);
        self
    }

    #[must_use]
    pub fn transcript(mut self, turns: impl IntoIterator<Item = Turn>) -> Self {
        self.transcript.extend(turns);
        self
    }

    /// Transcribe and split speakers when there is audio but no transcript (default true).
    #[must_use]
    pub fn diarization(mut self, diarization: bool) -> Self {
        self.diarization = Some(diarization);
        self
    }

    /// Who spoke first in an audio-only call (default assistant).
    #[must_use]
    pub fn first_turn(mut self, role: Role) -> Self {
        self.first_turn = Some(role);
        self
    }

    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    #[must_use]
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// One metadata entry; any JSON value.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// A conversation in the JSON shape of `POST /v0/conversations/ingest`
    /// (shared/reference/compat-api.md): `call_id`, `context_token`, `source_platform`,
    /// `conversation_start_at`, `audio` (`{"type": "inline_b64" | "url" | "voice_file_id", ...}`)
    /// or the legacy `recording_url` / `recording_bytes_b64`, `transcript` turns of `role`,
    /// `content`, `timestamp_ms` (unknown keys in a turn are tolerated), `diarization`,
    /// `first_turn`, `tags`, `metadata`. Unknown top-level keys are refused, so a misspelt field
    /// is not silently dropped.
    ///
    /// ```
    /// let conversation = earshot::Conversation::from_json(serde_json::json!({
    ///     "call_id": "call-123",
    ///     "transcript": [{"role": "user", "content": "Hi", "timestamp_ms": 0}],
    /// }))?;
    /// assert_eq!(conversation.call_id(), "call-123");
    /// # Ok::<(), earshot::Error>(())
    /// ```
    pub fn from_json(value: Value) -> Result<Self> {
        Self::from_json_at("", value)
    }

    /// As [`Conversation::from_json`], naming fields under `prefix` (`conversations[3]`).
    pub(crate) fn from_json_at(prefix: &str, value: Value) -> Result<Self> {
        let field = |name: &str| {
            if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") }
        };
        let mut json: JsonConversation = conversation_json::from_value(prefix, value).map_err(
            |FieldError { field, description }| {
                let field = if field.is_empty() { "conversation".to_owned() } else { field };
                Error::invalid_field(field, description)
            },
        )?;
        let audio = json
            .take_audio()
            .map_err(|reason| Error::invalid_field(field("audio"), reason))?
            .map(|audio| match audio {
                JsonAudio::InlineB64 { inline_b64 } => Audio::from_base64(inline_b64),
                JsonAudio::Url { url } => Audio::from_url(url),
                JsonAudio::VoiceFileId { voice_file_id } => Audio::uploaded(voice_file_id),
            });
        let mut violations = Vec::new();
        let started_at = match json.conversation_start_at.as_deref().map(parse_time) {
            Some(Some(time)) => Some(time),
            Some(None) => {
                violations.push(FieldViolation::new(field("conversation_start_at"), TIME_EXPECTED));
                None
            }
            None => None,
        };
        let first_turn = match json.first_turn.as_deref() {
            None | Some("") => None,
            Some(text) => match Role::parse(text) {
                Some(role @ (Role::User | Role::Assistant)) => Some(role),
                _ => {
                    violations.push(FieldViolation::new(
                        field("first_turn"),
                        format!("must be user or assistant, not {text:?}"),
                    ));
                    None
                }
            },
        };
        let mut transcript = Vec::new();
        for (index, turn) in json.transcript.unwrap_or_default().into_iter().enumerate() {
            match Role::parse(turn.role.trim()) {
                Some(role) => transcript.push(Turn {
                    role,
                    content: turn.content,
                    timestamp_ms: turn.timestamp_ms,
                    end_ms: turn.end_ms,
                }),
                None => violations.push(FieldViolation::new(
                    field(&format!("transcript[{index}].role")),
                    format!("unknown role {:?}; use user, assistant, system or tool", turn.role),
                )),
            }
        }
        if !violations.is_empty() {
            return Err(Error::invalid(violations));
        }
        Ok(Self {
            call_id: json.call_id,
            context_token: json.context_token,
            source_platform: json.source_platform,
            started_at,
            audio,
            transcript,
            diarization: json.diarization,
            first_turn,
            tags: json.tags.unwrap_or_default(),
            metadata: json.metadata.unwrap_or_default(),
        })
    }

    pub(crate) async fn into_proto(self) -> Result<pb::Conversation> {
        let audio = match self.audio {
            Some(audio) => Some(audio.into_proto().await?),
            None => None,
        };
        Ok(pb::Conversation {
            call_id: self.call_id,
            context_token: self.context_token.unwrap_or_default(),
            source_platform: self.source_platform.unwrap_or_default(),
            conversation_start_at: self.started_at.map(timestamp),
            audio,
            transcript: self.transcript.into_iter().map(Turn::into_proto).collect(),
            diarization: self.diarization,
            first_turn: self.first_turn.map_or(pb::Role::Unspecified, Role::to_proto) as i32,
            tags: self.tags,
            metadata: (!self.metadata.is_empty()).then(|| json_to_struct(&self.metadata)),
        })
    }
}

/// A batch for [`Client::ingest_conversations`](crate::Client::ingest_conversations). The
/// server validates it as a whole: one invalid conversation refuses the batch and stores
/// nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestBatch {
    pub(crate) project_id: Option<String>,
    pub(crate) mut_id: Option<String>,
    pub(crate) conversations: Vec<Conversation>,
}

impl IngestBatch {
    pub fn new(conversations: impl IntoIterator<Item = Conversation>) -> Self {
        Self { project_id: None, mut_id: None, conversations: conversations.into_iter().collect() }
    }

    /// The project to store into; defaults to the client's project, then to the key's project
    /// when the key is restricted to one.
    #[must_use]
    pub fn project_id(mut self, project_id: impl Into<String>) -> Self {
        self.project_id = Some(project_id.into());
        self
    }

    /// A client-chosen id of this batch, echoed into the datapoints' metadata.
    #[must_use]
    pub fn mut_id(mut self, mut_id: impl Into<String>) -> Self {
        self.mut_id = Some(mut_id.into());
        self
    }

    /// A batch of conversations in the JSON shape (see [`Conversation::from_json`]); fields are
    /// named `conversations[i]....`, and every invalid conversation is reported, not just the
    /// first.
    pub fn from_json(conversations: Vec<Value>) -> Result<Self> {
        let mut parsed = Vec::with_capacity(conversations.len());
        let mut violations = Vec::new();
        for (index, value) in conversations.into_iter().enumerate() {
            match Conversation::from_json_at(&format!("conversations[{index}]"), value) {
                Ok(conversation) => parsed.push(conversation),
                Err(Error::Status { field_violations, .. }) => violations.extend(field_violations),
                Err(other) => return Err(other),
            }
        }
        if violations.is_empty() { Ok(Self::new(parsed)) } else { Err(Error::invalid(violations)) }
    }
}

impl From<Vec<Conversation>> for IngestBatch {
    fn from(conversations: Vec<Conversation>) -> Self {
        Self::new(conversations)
    }
}

impl From<Conversation> for IngestBatch {
    fn from(conversation: Conversation) -> Self {
        Self::new([conversation])
    }
}

pub(crate) fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(error: &Error) -> Vec<&str> {
        error.field_violations().iter().map(|violation| violation.field.as_str()).collect()
    }

    #[tokio::test]
    async fn json_shape_becomes_the_proto_conversation() {
        let conversation = Conversation::from_json(json!({
            "call_id": "call-123",
            "source_platform": "retell",
            "conversation_start_at": "2026-11-20T10:00:00Z",
            "recording_bytes_b64": "UklGRg==",
            "transcript": [
                {"role": "assistant", "content": "Hi", "timestamp_ms": 0, "speaker_id": "a"},
                {"role": "user", "content": "Hello", "timestamp_ms": 900, "end_ms": 1500}
            ],
            "diarization": false,
            "first_turn": "user",
            "tags": ["support"],
            "metadata": {"customer_id": "cust_123", "attempt": 2}
        }))
        .unwrap();
        let proto = conversation.into_proto().await.unwrap();
        assert_eq!(proto.call_id, "call-123");
        assert_eq!(proto.source_platform, "retell");
        assert_eq!(proto.conversation_start_at.unwrap().seconds, 1_795_168_800);
        assert_eq!(
            proto.audio.unwrap().source,
            Some(pb::audio::Source::InlineB64("UklGRg==".into()))
        );
        assert_eq!(proto.transcript.len(), 2);
        assert_eq!(proto.transcript[1].role, pb::Role::User as i32);
        assert_eq!(proto.transcript[1].end_ms, Some(1500));
        assert_eq!(proto.diarization, Some(false));
        assert_eq!(proto.first_turn, pb::Role::User as i32);
        let metadata = earshot_proto::json::struct_to_json(proto.metadata.unwrap());
        assert_eq!(Value::Object(metadata), json!({"customer_id": "cust_123", "attempt": 2}));
    }

    #[tokio::test]
    async fn every_audio_shape_is_understood() {
        let cases = [
            (
                json!({"type": "url", "url": "https://x/a.wav"}),
                pb::audio::Source::Url("https://x/a.wav".into()),
            ),
            (
                json!({"type": "voice_file_id", "voice_file_id": "aud_1"}),
                pb::audio::Source::AudioId("aud_1".into()),
            ),
            (
                json!({"type": "inline_b64", "inline_b64": "AAAA"}),
                pb::audio::Source::InlineB64("AAAA".into()),
            ),
        ];
        for (audio, expected) in cases {
            let conversation =
                Conversation::from_json(json!({"call_id": "c", "audio": audio})).unwrap();
            let proto = conversation.into_proto().await.unwrap();
            assert_eq!(proto.audio.unwrap().source, Some(expected));
        }
        let legacy_url =
            Conversation::from_json(json!({"call_id": "c", "recording_url": "https://x/b.mp3"}))
                .unwrap()
                .into_proto()
                .await
                .unwrap();
        assert_eq!(
            legacy_url.audio.unwrap().source,
            Some(pb::audio::Source::Url("https://x/b.mp3".into()))
        );
    }

    #[test]
    fn problems_are_named_by_their_path() {
        let error = IngestBatch::from_json(vec![
            json!({"call_id": "ok", "transcript": []}),
            json!({"call_id": "a", "transcript": [{"role": "robot", "content": "x"}], "first_turn": "bot"}),
            json!({"transcript": []}),
            json!({"call_id": "b", "colour": "red"}),
            json!({"call_id": "c", "audio": {"type": "url", "url": "u"}, "recording_url": "v"}),
            json!({"call_id": "d", "transcript": [{"role": "user", "content": 5}]}),
            json!({"call_id": "e", "conversation_start_at": "yesterday"}),
        ])
        .unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            fields(&error),
            [
                "conversations[1].first_turn",
                "conversations[1].transcript[0].role",
                "conversations[2].call_id",
                "conversations[3].colour",
                "conversations[4].audio",
                "conversations[5].transcript[0].content",
                "conversations[6].conversation_start_at",
            ]
        );
        assert!(error.field_violations()[3].description.contains("unknown field `colour`"));
    }

    #[tokio::test]
    async fn a_missing_audio_file_names_the_file() {
        let conversation =
            Conversation::new("c").audio(Audio::from_file("/nonexistent/earshot-test.wav"));
        let error = conversation.into_proto().await.unwrap_err();
        assert_eq!(error.code(), tonic::Code::NotFound);
        assert!(error.to_string().contains("/nonexistent/earshot-test.wav"));
    }
}
