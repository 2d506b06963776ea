//! Ingests (one accepted conversation each, processed by one job), and stored audio objects.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::conversation::{Conversation, Source};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestState {
    Queued,
    Processing,
    AwaitingTranscription,
    Done,
    /// Failed an attempt; a retry is scheduled.
    Failed,
    /// Failed its last attempt; only RetryIngest queues it again.
    Dead,
}

impl IngestState {
    pub fn as_str(self) -> &'static str {
        match self {
            IngestState::Queued => "queued",
            IngestState::Processing => "processing",
            IngestState::AwaitingTranscription => "awaiting_transcription",
            IngestState::Done => "done",
            IngestState::Failed => "failed",
            IngestState::Dead => "dead",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            IngestState::Queued,
            IngestState::Processing,
            IngestState::AwaitingTranscription,
            IngestState::Done,
            IngestState::Failed,
            IngestState::Dead,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }
}

/// A stored audio file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioObject {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Uuid,
    pub sha256: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub blob_key: String,
    pub duration_ms: Option<i64>,
    pub channels: Option<u32>,
    pub sample_rate_hz: Option<u32>,
    pub created_at: DateTime<Utc>,
}

/// The id of an audio file in a project: derived from its content, so the same bytes get the
/// same id however often and concurrently they arrive.
pub fn audio_object_id(project_id: Uuid, sha256_hex: &str) -> Uuid {
    let digest = crate::crypto::sha256(
        format!("earshot audio object\0{project_id}\0{sha256_hex}").as_bytes(),
    );
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::new_v8(bytes)
}

/// The user-visible record of one accepted conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestRecord {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Uuid,
    pub call_id: String,
    pub context_token: String,
    pub provider: String,
    pub source: Source,
    pub state: IngestState,
    pub datapoint_id: Option<Uuid>,
    pub attempts: i32,
    pub last_error: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One conversation to write, with its dedup key.
#[derive(Clone, Debug)]
pub struct NewIngest {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Uuid,
    pub dedup_key: String,
    pub conversation: Conversation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestOutcome {
    Created(Uuid),
    /// The same content was ingested before, as this ingest.
    Duplicate(Uuid),
}

impl IngestOutcome {
    pub fn ingest_id(self) -> Uuid {
        match self {
            IngestOutcome::Created(id) | IngestOutcome::Duplicate(id) => id,
        }
    }
}

/// A content-based key: the same conversation (without the batch id) always gets the same key.
pub fn dedup_key(conversation: &Conversation) -> String {
    let mut canonical = conversation.clone();
    canonical.mut_id = None;
    canonical.integration_id = None;
    let json = serde_json::to_vec(&canonical).unwrap_or_default();
    format!(
        "{}:{}:{}",
        conversation.provider,
        conversation.call_id,
        crate::crypto::sha256_hex(&json)
    )
}
