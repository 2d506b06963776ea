//! The canonical conversation: every call, however it arrived (webhook, SDK, API), becomes one
//! of these before it is stored. Also the transport-neutral input form clients send, and its
//! validation, shared by gRPC and the JSON routes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldViolation, Violations};

/// A speaker's role in a call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    #[default]
    Assistant,
    System,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Tool => "tool",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "system" => Some(Role::System),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }
}

/// How a call reached earshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Webhook,
    Sdk,
    Api,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::Sdk => "sdk",
            Source::Api => "api",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "webhook" => Some(Source::Webhook),
            "sdk" => Some(Source::Sdk),
            "api" => Some(Source::Api),
            _ => None,
        }
    }
}

/// One utterance. Times are milliseconds from the conversation start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub role: Role,
    pub content: String,
    pub start_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<i64>,
    /// 1-based audio channel, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u32>,
    /// 0..1 for estimated turns; None for provided transcripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// Speech was heard here (voice activity on the channel) but recognition returned no
    /// words for it: the turn keeps the time span so the loss shows, with empty content.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unrecognized: bool,
}

impl Turn {
    /// A turn of a provided transcript: no channel, no confidence (it is not an estimate).
    pub fn said(
        role: Role,
        content: impl Into<String>,
        start_ms: i64,
        end_ms: Option<i64>,
    ) -> Self {
        Self {
            role,
            content: content.into(),
            start_ms,
            end_ms,
            channel: None,
            confidence: None,
            unrecognized: false,
        }
    }
}

/// Where a conversation's audio is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AudioSource {
    /// Stored by earshot (inline bytes or an upload), by audio object id.
    Stored { audio_id: uuid::Uuid },
    /// To be downloaded by a worker.
    Url {
        url: String,
        /// How to authenticate the download, when the host requires it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials: Option<AudioCredentials>,
    },
}

/// A reference to credentials for an audio download. Never the secret itself: the worker opens
/// it from the integration when it fetches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AudioCredentials {
    /// HTTP Basic with the account SID and the integration's auth token (Twilio media URLs).
    TwilioBasic { integration_id: uuid::Uuid, account_sid: String },
}

/// What a provider says about the call beyond its turns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderExtras {
    pub summary: Option<String>,
    pub sentiment: Option<String>,
    pub successful: Option<bool>,
    pub cost_usd: Option<f64>,
    pub ended_reason: Option<String>,
    pub agent_id: Option<String>,
    /// The provider's own label for how the call went, as text: Vapi's `successEvaluation`
    /// (a rubric's label, number or boolean), ElevenLabs' `call_successful`, a lead platform's
    /// `analysis_result.intent`, Retell's `voicemail` when `in_voicemail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The provider's analysis object as it was sent (Retell `call_analysis`, Vapi `analysis`,
    /// ElevenLabs `analysis`, a lead platform's `analysis_result`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
}

/// The canonical conversation, stored as the versioned payload of an ingest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub call_id: String,
    pub context_token: String,
    pub source: Source,
    /// The platform that handled the call (retell, twilio, ..., custom).
    pub provider: String,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub duration_ms: Option<i64>,
    #[serde(default)]
    pub from_number: Option<String>,
    #[serde(default)]
    pub to_number: Option<String>,
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub turns: Vec<Turn>,
    #[serde(default)]
    pub audio: Option<AudioSource>,
    pub diarization: bool,
    pub first_turn: Role,
    /// The 1-based channel of the assistant in a dual-channel recording, when the integration
    /// says so; otherwise whoever speaks first has the role `first_turn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistant_channel: Option<u32>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub extras: ProviderExtras,
    /// The client's batch id, when it gave one.
    #[serde(default)]
    pub mut_id: Option<String>,
    /// The integration whose webhook delivered the call; none for the ingest APIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<uuid::Uuid>,
}

impl Conversation {
    /// Audio is present, no transcript came with it, and the client asked for transcription.
    pub fn needs_transcription(&self) -> bool {
        self.turns.is_empty() && self.audio.is_some() && self.diarization
    }

    /// The one contract every conversation meets before it is stored, however it arrived (gRPC,
    /// JSON, any provider's normalizer): ids of at most 256 bytes without control characters, no
    /// NUL in any text (PostgreSQL cannot store one), metadata bounded in bytes, keys and depth,
    /// times within the years 1 to 9999, turn times and durations within seven days, numbers
    /// finite and in range. Adds a violation, named under `prefix`, for every field that breaks
    /// it.
    pub fn check(&self, prefix: &str, violations: &mut Violations) {
        let field = |name: &str| {
            if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") }
        };
        check_id(&self.call_id, &field("call_id"), true, MAX_ID_BYTES, violations);
        check_id(&self.context_token, &field("context_token"), true, MAX_ID_BYTES, violations);
        check_id(&self.provider, &field("source_platform"), true, MAX_PROVIDER_BYTES, violations);
        for (name, value) in [
            ("mut_id", &self.mut_id),
            ("from_number", &self.from_number),
            ("to_number", &self.to_number),
            ("direction", &self.direction),
            ("extras.sentiment", &self.extras.sentiment),
            ("extras.ended_reason", &self.extras.ended_reason),
            ("extras.agent_id", &self.extras.agent_id),
        ] {
            if let Some(value) = value {
                check_id(value, &field(name), false, MAX_ID_BYTES, violations);
            }
        }
        for (name, time) in
            [("conversation_start_at", self.started_at), ("ended_at", self.ended_at)]
        {
            if let Some(time) = time
                && !(1..=9999).contains(&chrono::Datelike::year(&time))
            {
                violations.add(field(name), "must be within the years 1 to 9999");
            }
        }
        if let Some(duration) = self.duration_ms
            && !(0..=MAX_CALL_MS).contains(&duration)
        {
            violations.add(field("duration_ms"), format!("must be 0 to {MAX_CALL_MS} ms"));
        }
        if let Some(channel) = self.assistant_channel
            && !(1..=2).contains(&channel)
        {
            violations.add(field("assistant_channel"), "must be 1 or 2");
        }
        if let Some(AudioSource::Url { url, credentials }) = &self.audio {
            if url.chars().count() > MAX_URL_CHARS || url.chars().any(char::is_control) {
                violations.add(
                    field("audio.url"),
                    format!("at most {MAX_URL_CHARS} characters, no control characters"),
                );
            }
            if let Some(AudioCredentials::TwilioBasic { account_sid, .. }) = credentials {
                check_id(account_sid, &field("audio.account_sid"), true, MAX_ID_BYTES, violations);
            }
        }
        self.check_turns(&field("transcript"), violations);
        if self.tags.len() > MAX_TAGS {
            violations.add(field("tags"), format!("at most {MAX_TAGS} tags"));
        }
        for (index, tag) in self.tags.iter().enumerate() {
            if tag.is_empty()
                || tag.chars().count() > MAX_TAG_CHARS
                || tag.chars().any(char::is_control)
            {
                violations.add(
                    field(&format!("tags[{index}]")),
                    format!("must be 1 to {MAX_TAG_CHARS} characters, no control characters"),
                );
            }
        }
        check_metadata(&self.metadata, &field("metadata"), violations);
        if let Some(summary) = &self.extras.summary {
            check_text(summary, &field("extras.summary"), MAX_EXTRA_TEXT_BYTES, violations);
        }
        if let Some(cost) = self.extras.cost_usd
            && !(cost.is_finite() && (0.0..=MAX_COST_USD).contains(&cost))
        {
            violations.add(field("extras.cost_usd"), format!("must be 0 to {MAX_COST_USD}"));
        }
    }

    fn check_turns(&self, field: &str, violations: &mut Violations) {
        if self.turns.len() > MAX_TURNS {
            violations.add(field, format!("at most {MAX_TURNS} turns"));
        }
        for (index, turn) in self.turns.iter().enumerate() {
            let field = |name: &str| format!("{field}[{index}].{name}");
            if turn.content.chars().count() > MAX_TURN_CHARS {
                violations.add(field("content"), format!("at most {MAX_TURN_CHARS} characters"));
            } else if turn.content.contains('\0') {
                violations.add(field("content"), "must not contain NUL characters");
            }
            if !(0..=MAX_CALL_MS).contains(&turn.start_ms) {
                violations.add(field("timestamp_ms"), format!("must be 0 to {MAX_CALL_MS} ms"));
            }
            if let Some(end_ms) = turn.end_ms
                && !(turn.start_ms..=MAX_CALL_MS).contains(&end_ms)
            {
                violations
                    .add(field("end_ms"), format!("must be from timestamp_ms to {MAX_CALL_MS} ms"));
            }
            if let Some(channel) = turn.channel
                && !(1..=64).contains(&channel)
            {
                violations.add(field("channel"), "must be 1 to 64");
            }
            if let Some(confidence) = turn.confidence
                && !(0.0..=1.0).contains(&confidence)
            {
                violations.add(field("confidence"), "must be 0 to 1");
            }
        }
    }
}

/// An id: `required` ones not empty; at most `max_bytes`; no control characters (NUL, CR and LF
/// included).
fn check_id(
    value: &str,
    field: &str,
    required: bool,
    max_bytes: usize,
    violations: &mut Violations,
) {
    if value.is_empty() {
        if required {
            violations.add(field, "required and must not be empty");
        }
    } else if value.len() > max_bytes {
        violations.add(field, format!("at most {max_bytes} bytes"));
    } else if value.chars().any(char::is_control) {
        violations.add(field, "must not contain control characters");
    }
}

/// Free text: at most `max_bytes`, no NUL.
fn check_text(value: &str, field: &str, max_bytes: usize, violations: &mut Violations) {
    if value.len() > max_bytes {
        violations.add(field, format!("at most {max_bytes} bytes"));
    } else if value.contains('\0') {
        violations.add(field, "must not contain NUL characters");
    }
}

fn check_metadata(
    metadata: &serde_json::Map<String, serde_json::Value>,
    field: &str,
    violations: &mut Violations,
) {
    if metadata.len() > MAX_METADATA_KEYS {
        violations.add(field, format!("at most {MAX_METADATA_KEYS} keys"));
        return;
    }
    let bytes = serde_json::to_vec(metadata).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
    if bytes > MAX_METADATA_BYTES {
        violations.add(field, format!("at most {MAX_METADATA_BYTES} bytes as JSON"));
        return;
    }
    // Depth first, with the path of each value, without recursion.
    let mut pending: Vec<(String, &serde_json::Value, usize)> = Vec::new();
    for (key, value) in metadata {
        let path = format!("{field}.{key}");
        if key.is_empty() || key.len() > MAX_ID_BYTES || key.chars().any(char::is_control) {
            violations.add(
                path,
                format!("keys must be 1 to {MAX_ID_BYTES} bytes, no control characters"),
            );
            continue;
        }
        pending.push((path, value, 1));
    }
    while let Some((path, value, depth)) = pending.pop() {
        match value {
            serde_json::Value::String(text) if text.contains('\0') => {
                violations.add(path, "must not contain NUL characters");
            }
            serde_json::Value::Array(_) | serde_json::Value::Object(_)
                if depth >= MAX_METADATA_DEPTH =>
            {
                violations.add(path, format!("nested deeper than {MAX_METADATA_DEPTH} levels"));
            }
            serde_json::Value::Array(items) => pending.extend(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| (format!("{path}[{index}]"), item, depth + 1)),
            ),
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    let inner = format!("{path}.{key}");
                    if key.contains('\0') {
                        violations.add(inner, "keys must not contain NUL characters");
                    } else {
                        pending.push((inner, item, depth + 1));
                    }
                }
            }
            _ => {}
        }
    }
}

/// A conversation as a client sends it, before validation. Both the gRPC message and the JSON
/// body are turned into this, so the rules below are the same for both.
#[derive(Clone, Debug, Default)]
pub struct ConversationInput {
    pub call_id: String,
    pub context_token: Option<String>,
    pub source_platform: Option<String>,
    pub conversation_start_at: Option<DateTime<Utc>>,
    pub audio: Option<AudioInput>,
    pub transcript: Vec<TurnInput>,
    pub diarization: Option<bool>,
    /// "user" or "assistant"; None for the default (assistant).
    pub first_turn: Option<String>,
    pub tags: Vec<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioInput {
    InlineBase64(String),
    Url(String),
    AudioId(String),
}

#[derive(Clone, Debug, Default)]
pub struct TurnInput {
    pub role: String,
    pub content: String,
    pub timestamp_ms: i64,
    pub end_ms: Option<i64>,
}

/// Limits on one batch, from the configuration.
#[derive(Clone, Debug)]
pub struct IngestLimits {
    pub max_batch_conversations: usize,
    pub max_inline_audio_bytes: usize,
}

/// Ids (call_id, context_token, mut_id, phone numbers, provider ids), in UTF-8 bytes.
pub const MAX_ID_BYTES: usize = 256;
pub const MAX_PROVIDER_BYTES: usize = 64;
pub const MAX_TURNS: usize = 20_000;
pub const MAX_TURN_CHARS: usize = 100_000;
pub const MAX_TAGS: usize = 100;
pub const MAX_TAG_CHARS: usize = 200;
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Keys at the top of metadata (each becomes a filterable row of its datapoint).
pub const MAX_METADATA_KEYS: usize = 256;
/// Objects and arrays nested in metadata.
pub const MAX_METADATA_DEPTH: usize = 16;
pub const MAX_URL_CHARS: usize = 4096;
/// A provider's summary and other free text about the call, in bytes.
pub const MAX_EXTRA_TEXT_BYTES: usize = 64 * 1024;
/// The longest call: turn times, end times and durations, in milliseconds (seven days).
pub const MAX_CALL_MS: i64 = 7 * 24 * 3_600 * 1_000;
/// A call's cost in US dollars, at most.
pub const MAX_COST_USD: f64 = 1.0e9;

/// The audio of a validated conversation, before it is resolved to a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PendingAudio {
    Inline(Vec<u8>),
    Url(String),
    AudioId(uuid::Uuid),
}

/// A conversation that passed validation, with its audio still to resolve.
#[derive(Clone, Debug)]
pub struct ValidConversation {
    pub conversation: Conversation,
    pub audio: Option<PendingAudio>,
}

/// Validates a whole batch and names every problem as `conversations[i].field`.
pub fn validate_batch(
    inputs: Vec<ConversationInput>,
    source: Source,
    mut_id: Option<&str>,
    limits: &IngestLimits,
    violations: &mut Violations,
) -> Vec<ValidConversation> {
    if inputs.is_empty() {
        violations.add("conversations", "at least one conversation is required");
    }
    if let Some(mut_id) = mut_id {
        check_id(mut_id, "mut_id", false, MAX_ID_BYTES, violations);
        if !violations.is_empty() {
            return Vec::new();
        }
    }
    if inputs.len() > limits.max_batch_conversations {
        violations.add(
            "conversations",
            format!(
                "{} conversations exceed the limit of {} a batch; split the batch",
                inputs.len(),
                limits.max_batch_conversations
            ),
        );
        return Vec::new();
    }
    inputs
        .into_iter()
        .enumerate()
        .filter_map(|(index, input)| {
            validate_one(
                input,
                source,
                mut_id,
                limits,
                &format!("conversations[{index}]"),
                violations,
            )
        })
        .collect()
}

/// Validates one conversation that is a request body of its own (a canonical-JSON webhook):
/// fields are named from the body's root (`call_id`, `transcript[2].role`).
pub fn validate_conversation(
    input: ConversationInput,
    source: Source,
    limits: &IngestLimits,
) -> Result<ValidConversation, Error> {
    let mut violations = Violations::new();
    let valid = validate_one(input, source, None, limits, "", &mut violations);
    violations.into_result().map_err(|error| match error {
        Error::InvalidArgument(violations) => Error::InvalidArgument(
            violations
                .into_iter()
                .map(|violation| FieldViolation {
                    field: violation.field.trim_start_matches('.').to_owned(),
                    description: violation.description,
                })
                .collect(),
        ),
        other => other,
    })?;
    valid.ok_or_else(|| Error::invalid("body", "is not a valid conversation"))
}

fn validate_one(
    input: ConversationInput,
    source: Source,
    mut_id: Option<&str>,
    limits: &IngestLimits,
    prefix: &str,
    violations: &mut Violations,
) -> Option<ValidConversation> {
    let before = violations.len();
    let call_id = input.call_id.trim().to_owned();
    check_id(&call_id, &format!("{prefix}.call_id"), true, MAX_ID_BYTES, violations);
    let context_token = match input.context_token.map(|token| token.trim().to_owned()) {
        Some(token) if !token.is_empty() => {
            check_id(&token, &format!("{prefix}.context_token"), false, MAX_ID_BYTES, violations);
            token
        }
        _ => call_id.clone(),
    };
    let provider = match input.source_platform.map(|platform| platform.trim().to_ascii_lowercase())
    {
        Some(platform) if !platform.is_empty() => {
            let valid = platform.len() <= 64
                && platform
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte));
            if !valid {
                violations.add(
                    format!("{prefix}.source_platform"),
                    "must be at most 64 letters, digits, '-', '_' or '.'",
                );
            }
            platform
        }
        _ => "custom".to_owned(),
    };
    let first_turn = match input.first_turn.as_deref().map(str::trim) {
        None | Some("") | Some("assistant") => Role::Assistant,
        Some("user") => Role::User,
        Some(other) => {
            violations.add(
                format!("{prefix}.first_turn"),
                format!("must be user or assistant, not {other:?}"),
            );
            Role::Assistant
        }
    };

    let transcript_given = !input.transcript.is_empty();
    if input.transcript.len() > MAX_TURNS {
        violations.add(format!("{prefix}.transcript"), format!("at most {MAX_TURNS} turns"));
    }
    let mut turns = Vec::with_capacity(input.transcript.len().min(MAX_TURNS));
    for (index, turn) in input.transcript.into_iter().take(MAX_TURNS).enumerate() {
        let field = format!("{prefix}.transcript[{index}]");
        let role = Role::parse(turn.role.trim());
        if role.is_none() {
            let description = if turn.role.trim().is_empty() {
                "required: user, assistant, system or tool".to_owned()
            } else {
                format!("unknown role {:?}; use user, assistant, system or tool", turn.role)
            };
            violations.add(format!("{field}.role"), description);
        }
        if turn.content.chars().count() > MAX_TURN_CHARS {
            violations
                .add(format!("{field}.content"), format!("at most {MAX_TURN_CHARS} characters"));
        }
        if turn.timestamp_ms < 0 {
            violations.add(format!("{field}.timestamp_ms"), "must not be negative");
        }
        if let Some(end_ms) = turn.end_ms
            && end_ms < turn.timestamp_ms
        {
            violations.add(format!("{field}.end_ms"), "must not be before timestamp_ms");
        }
        if let Some(role) = role {
            turns.push(Turn::said(role, turn.content, turn.timestamp_ms, turn.end_ms));
        }
    }

    let audio_given = input.audio.is_some();
    let audio = input
        .audio
        .and_then(|audio| validate_audio(audio, limits, &format!("{prefix}.audio"), violations));
    if !transcript_given && !audio_given {
        violations.add(prefix.to_owned(), "needs a transcript, audio, or both");
    }

    if input.tags.len() > MAX_TAGS {
        violations.add(format!("{prefix}.tags"), format!("at most {MAX_TAGS} tags"));
    }
    let mut tags: Vec<String> = Vec::with_capacity(input.tags.len());
    for (index, tag) in input.tags.iter().enumerate() {
        let tag = tag.trim();
        if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS {
            violations.add(
                format!("{prefix}.tags[{index}]"),
                format!("must be 1 to {MAX_TAG_CHARS} characters"),
            );
        } else if !tags.iter().any(|existing| existing == tag) {
            tags.push(tag.to_owned());
        }
    }
    // Ids, metadata and the rest of the contract are checked on the conversation below.
    if violations.len() > before {
        return None;
    }
    let conversation = Conversation {
        call_id,
        context_token,
        source,
        provider,
        started_at: input.conversation_start_at,
        ended_at: None,
        duration_ms: None,
        from_number: None,
        to_number: None,
        direction: None,
        turns,
        audio: None,
        diarization: input.diarization.unwrap_or(true),
        first_turn,
        assistant_channel: None,
        tags,
        metadata: input.metadata,
        extras: ProviderExtras::default(),
        mut_id: mut_id.map(str::to_owned),
        integration_id: None,
    };
    conversation.check(prefix, violations);
    if violations.len() > before {
        return None;
    }
    Some(ValidConversation { conversation, audio })
}

fn validate_audio(
    audio: AudioInput,
    limits: &IngestLimits,
    field: &str,
    violations: &mut Violations,
) -> Option<PendingAudio> {
    match audio {
        AudioInput::InlineBase64(encoded) => {
            let field = format!("{field}.inline_b64");
            let encoded = encoded.trim();
            if encoded.is_empty() {
                violations.add(field, "must not be empty");
                return None;
            }
            // Reject before decoding what cannot fit: base64 carries 3 bytes in 4 characters.
            if encoded.len() / 4 * 3 > limits.max_inline_audio_bytes + 3 {
                violations.add(
                    field,
                    format!(
                        "audio exceeds the inline limit of {} bytes; upload it or send a URL",
                        limits.max_inline_audio_bytes
                    ),
                );
                return None;
            }
            match decode_base64(encoded) {
                Ok(bytes) if bytes.len() > limits.max_inline_audio_bytes => {
                    violations.add(
                        field,
                        format!(
                            "audio exceeds the inline limit of {} bytes; upload it or send a URL",
                            limits.max_inline_audio_bytes
                        ),
                    );
                    None
                }
                Ok(bytes) => Some(PendingAudio::Inline(bytes)),
                Err(position) => {
                    violations.add(field, format!("is not valid base64 (at character {position})"));
                    None
                }
            }
        }
        AudioInput::Url(url) => {
            let field = format!("{field}.url");
            let url = url.trim().to_owned();
            if url.chars().count() > MAX_URL_CHARS {
                violations.add(field, format!("at most {MAX_URL_CHARS} characters"));
                return None;
            }
            match http::Uri::try_from(url.as_str()) {
                Ok(uri)
                    if matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.host().is_some() =>
                {
                    Some(PendingAudio::Url(url))
                }
                _ => {
                    violations.add(field, "must be an absolute http or https URL");
                    None
                }
            }
        }
        AudioInput::AudioId(id) => match uuid::Uuid::parse_str(id.trim()) {
            Ok(id) => Some(PendingAudio::AudioId(id)),
            Err(_) => {
                violations.add(
                    format!("{field}.audio_id"),
                    "must be an audio id returned by UploadAudio",
                );
                None
            }
        },
    }
}

/// Standard base64, padding optional, also accepting the URL-safe alphabet and line breaks that
/// some encoders insert. On failure, the position of the offending character.
fn decode_base64(encoded: &str) -> Result<Vec<u8>, usize> {
    let cleaned: String = encoded.chars().filter(|c| !matches!(c, '\n' | '\r')).collect();
    let normalized: String = cleaned
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            other => other,
        })
        .collect();
    data_encoding::BASE64_NOPAD.decode(normalized.as_bytes()).map_err(|error| error.position)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> IngestLimits {
        IngestLimits { max_batch_conversations: 3, max_inline_audio_bytes: 16 }
    }

    fn turn(role: &str, content: &str, timestamp_ms: i64) -> TurnInput {
        TurnInput { role: role.to_owned(), content: content.to_owned(), timestamp_ms, end_ms: None }
    }

    fn valid_input() -> ConversationInput {
        ConversationInput {
            call_id: "call-1".to_owned(),
            transcript: vec![turn("assistant", "Hello", 0), turn("user", "Hi", 900)],
            ..Default::default()
        }
    }

    /// The fields `check` refuses in the valid conversation `change` edits.
    fn contract_fields(change: impl FnOnce(&mut Conversation)) -> Vec<String> {
        let mut violations = Violations::new();
        let mut conversation =
            validate_conversation(valid_input(), Source::Webhook, &limits()).unwrap().conversation;
        conversation.check("", &mut violations);
        assert!(violations.is_empty(), "the valid conversation passes");
        change(&mut conversation);
        conversation.check("", &mut violations);
        match violations.into_result() {
            Ok(()) => Vec::new(),
            Err(error) => {
                error.field_violations().iter().map(|violation| violation.field.clone()).collect()
            }
        }
    }

    #[test]
    fn the_contract_bounds_ids_and_refuses_control_characters_and_nul() {
        let long = "x".repeat(MAX_ID_BYTES + 1);
        assert_eq!(contract_fields(|c| c.call_id = long.clone()), ["call_id"]);
        assert_eq!(contract_fields(|c| c.call_id = "ca\0ll".into()), ["call_id"]);
        assert_eq!(contract_fields(|c| c.context_token = "a\r\nb".into()), ["context_token"]);
        assert_eq!(contract_fields(|c| c.mut_id = Some(long.clone())), ["mut_id"]);
        assert_eq!(contract_fields(|c| c.from_number = Some("+1\0".into())), ["from_number"]);
        assert_eq!(
            contract_fields(|c| c.extras.agent_id = Some(long.clone())),
            ["extras.agent_id"]
        );
        assert_eq!(
            contract_fields(|c| c.turns[1].content = "hi\0".into()),
            ["transcript[1].content"]
        );
        assert_eq!(contract_fields(|c| c.tags = vec!["a\0".into()]), ["tags[0]"]);
        assert_eq!(contract_fields(|c| c.extras.summary = Some("\0".into())), ["extras.summary"]);
        // A multi-byte id is measured in bytes: 100 four-byte characters are 400 bytes.
        assert_eq!(contract_fields(|c| c.call_id = "\u{1F600}".repeat(100)), ["call_id"]);
    }

    #[test]
    fn the_contract_bounds_metadata_in_bytes_keys_depth_and_text() {
        let metadata = |value: serde_json::Value| value.as_object().unwrap().clone();
        let many: serde_json::Map<String, serde_json::Value> =
            (0..8192).map(|key| (key.to_string(), serde_json::Value::from(1))).collect();
        assert_eq!(contract_fields(|c| c.metadata = many), ["metadata"]);
        assert_eq!(
            contract_fields(|c| c.metadata = metadata(serde_json::json!({"a": {"b": ["x\0"]}}))),
            ["metadata.a.b[0]"]
        );
        assert_eq!(
            contract_fields(|c| c.metadata = metadata(serde_json::json!({"k\0": 1}))),
            ["metadata.k\0"]
        );
        let mut deep = serde_json::json!(1);
        for _ in 0..MAX_METADATA_DEPTH {
            deep = serde_json::json!([deep]);
        }
        assert_eq!(
            contract_fields(|c| c.metadata = metadata(serde_json::json!({"deep": deep}))).len(),
            1
        );
        let big = "x".repeat(MAX_METADATA_BYTES);
        assert_eq!(
            contract_fields(|c| c.metadata = metadata(serde_json::json!({"big": big}))),
            ["metadata"]
        );
    }

    #[test]
    fn the_contract_keeps_times_durations_and_numbers_in_range() {
        let far = DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z").unwrap().to_utc()
            + chrono::Duration::days(1);
        assert_eq!(contract_fields(|c| c.ended_at = Some(far)), ["ended_at"]);
        assert_eq!(contract_fields(|c| c.duration_ms = Some(-1)), ["duration_ms"]);
        assert_eq!(contract_fields(|c| c.duration_ms = Some(i64::MAX)), ["duration_ms"]);
        assert_eq!(
            contract_fields(|c| c.turns[0].start_ms = i64::MAX),
            ["transcript[0].timestamp_ms"]
        );
        assert_eq!(
            contract_fields(|c| c.turns[1].end_ms = Some(MAX_CALL_MS + 1)),
            ["transcript[1].end_ms"]
        );
        assert_eq!(
            contract_fields(|c| c.turns[1].confidence = Some(f32::NAN)),
            ["transcript[1].confidence"]
        );
        assert_eq!(
            contract_fields(|c| c.extras.cost_usd = Some(f64::INFINITY)),
            ["extras.cost_usd"]
        );
        assert_eq!(contract_fields(|c| c.assistant_channel = Some(3)), ["assistant_channel"]);
        assert!(contract_fields(|c| c.duration_ms = Some(MAX_CALL_MS)).is_empty());
    }

    #[test]
    fn a_batch_refuses_an_unbounded_mut_id_by_name() {
        let mut violations = Violations::new();
        let long = "m".repeat(4 << 20);
        let valid = validate_batch(
            vec![valid_input()],
            Source::Sdk,
            Some(&long),
            &limits(),
            &mut violations,
        );
        assert!(valid.is_empty());
        let error = violations.into_result().unwrap_err();
        assert_eq!(error.field_violations()[0].field, "mut_id");
    }

    fn fields(inputs: Vec<ConversationInput>) -> Vec<String> {
        let mut violations = Violations::new();
        validate_batch(inputs, Source::Sdk, None, &limits(), &mut violations);
        match violations.into_result() {
            Ok(()) => Vec::new(),
            Err(error) => {
                error.field_violations().iter().map(|violation| violation.field.clone()).collect()
            }
        }
    }

    #[test]
    fn a_valid_conversation_gets_defaults() {
        let mut violations = Violations::new();
        let valid = validate_batch(
            vec![valid_input()],
            Source::Sdk,
            Some("batch-7"),
            &limits(),
            &mut violations,
        );
        assert!(violations.is_empty());
        let conversation = &valid[0].conversation;
        assert_eq!(conversation.context_token, "call-1");
        assert_eq!(conversation.provider, "custom");
        assert_eq!(conversation.first_turn, Role::Assistant);
        assert!(conversation.diarization);
        assert_eq!(conversation.turns[1].role, Role::User);
        assert_eq!(conversation.turns[1].start_ms, 900);
        assert_eq!(conversation.mut_id.as_deref(), Some("batch-7"));
    }

    #[test]
    fn every_problem_is_named_by_index_and_field() {
        let bad = ConversationInput {
            call_id: "  ".to_owned(),
            first_turn: Some("robot".to_owned()),
            transcript: vec![turn("agent", "x", 0), turn("user", "y", -5)],
            tags: vec![String::new()],
            ..Default::default()
        };
        assert_eq!(
            fields(vec![valid_input(), bad]),
            [
                "conversations[1].call_id",
                "conversations[1].first_turn",
                "conversations[1].transcript[0].role",
                "conversations[1].transcript[1].timestamp_ms",
                "conversations[1].tags[0]",
            ]
        );
    }

    #[test]
    fn audio_is_checked() {
        let with_audio = |audio| ConversationInput {
            audio: Some(audio),
            transcript: Vec::new(),
            ..valid_input()
        };
        assert_eq!(
            fields(vec![with_audio(AudioInput::InlineBase64("not base64!".into()))]),
            ["conversations[0].audio.inline_b64"]
        );
        let too_big = data_encoding::BASE64.encode(&[0u8; 17]);
        assert_eq!(
            fields(vec![with_audio(AudioInput::InlineBase64(too_big))]),
            ["conversations[0].audio.inline_b64"]
        );
        let fits = data_encoding::BASE64.encode(&[1u8; 16]);
        assert!(fields(vec![with_audio(AudioInput::InlineBase64(fits))]).is_empty());
        assert_eq!(
            fields(vec![with_audio(AudioInput::Url("ftp://x/a.wav".into()))]),
            ["conversations[0].audio.url"]
        );
        assert_eq!(
            fields(vec![with_audio(AudioInput::AudioId("abc".into()))]),
            ["conversations[0].audio.audio_id"]
        );
        assert_eq!(
            fields(vec![ConversationInput { transcript: Vec::new(), ..valid_input() }]),
            ["conversations[0]"]
        );
    }

    #[test]
    fn batch_limits() {
        assert_eq!(fields(Vec::new()), ["conversations"]);
        assert_eq!(fields(vec![valid_input(); 4]), ["conversations"]);
    }

    #[test]
    fn base64_variants_decode() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVs\nbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("_-8").unwrap(), decode_base64("/+8").unwrap());
        assert!(decode_base64("aGV$bG8").is_err());
    }
}
